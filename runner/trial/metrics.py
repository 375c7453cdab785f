"""Per-class metrics: confusion matrix and classification report, from the counts with numpy.

Both give what scikit-learn's ``confusion_matrix`` and ``classification_report(digits=3, zero_division=0)`` give,
to the character (tests/test_model_engine.py checks them against it): importing ``sklearn.metrics`` took 1.1 s in
every new trial process, at its first trial's end (docs/performance.md).
"""

from __future__ import annotations

import numpy as np

DIGITS = 3


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): rows are true labels, columns predictions; all zero for no samples."""
    cells = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(cells, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> str:
    """Precision, recall, F1 and support per class, then accuracy and the macro and support-weighted averages
    (0 where a ratio has nothing to divide by), laid out as scikit-learn does."""
    cm = confusion(y_true, y_pred, len(classes)).astype(float)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * tp, support + predicted)
    width = max(max((len(c) for c in classes), default=0), len("weighted avg"), DIGITS)
    head = "{:>{width}s} " + " {:>9}" * 4
    row = "{:>{width}s} " + f" {{:>9.{DIGITS}f}}" * 3 + " {:>9}\n"
    out = head.format("", "precision", "recall", "f1-score", "support", width=width) + "\n\n"
    for name, p, r, f, s in zip(classes, precision, recall, f1, support):
        out += row.format(name, p, r, f, int(s), width=width)
    total = int(support.sum())
    accuracy = float(tp.sum() / total) if total else 0.0
    out += "\n" + ("{:>{width}s} " + " {:>9}" * 2 + f" {{:>9.{DIGITS}f}} {{:>9}}\n").format(
        "accuracy", "", "", accuracy, total, width=width
    )
    weights = support / total if total else np.zeros_like(support)
    for name, avg in (("macro avg", lambda v: v.mean()), ("weighted avg", lambda v: (v * weights).sum())):
        out += row.format(name, avg(precision), avg(recall), avg(f1), total, width=width)
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
