"""Per-class metrics: confusion matrix and classification report (scikit-learn)."""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): rows are true labels, columns predictions."""
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> str:
    from sklearn.metrics import classification_report as report

    return report(y_true, y_pred, labels=list(range(len(classes))), target_names=classes, digits=3, zero_division=0)
