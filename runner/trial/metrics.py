"""Per-class metrics: confusion matrix and classification report (scikit-learn)."""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): rows are true labels, columns predictions; all zero for no samples."""
    from sklearn.metrics import confusion_matrix

    if len(y_true) == 0:  # scikit-learn refuses empty input
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    return confusion_matrix(y_true, y_pred, labels=range(n_classes))


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> str:
    from sklearn.metrics import classification_report as report

    return report(y_true, y_pred, labels=list(range(len(classes))), target_names=classes, digits=3, zero_division=0)
