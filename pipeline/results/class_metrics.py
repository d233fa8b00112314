"""Per-class precision, recall, F1 and the confusion matrix (scikit-learn), as plain JSON-ready data.

``metrics.json`` holds it as ``test_classes`` (``pipeline.train``), ``pipeline evaluate`` prints it, and
``pipeline aggregate`` draws the best run's confusion matrix (``pipeline.results.plots.confusion_figure``).
"""

from __future__ import annotations

from typing import Any


def per_class(y_true: Any, y_pred: Any, labels: list[str]) -> dict[str, Any]:
    """``{"labels", "precision", "recall", "f1", "support", "confusion_matrix"}``; lists follow ``labels``.

    ``y_true``/``y_pred`` are label ids (0..len(labels)-1). ``confusion_matrix[i][j]`` counts texts of class
    ``labels[i]`` predicted as ``labels[j]`` (rows: truth, columns: prediction; scikit-learn's layout).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    ids = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    return {
        "labels": list(labels),
        "precision": [round(float(x), 6) for x in p],
        "recall": [round(float(x), 6) for x in r],
        "f1": [round(float(x), 6) for x in f],
        "support": [int(x) for x in s],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }


def lines(report: dict[str, Any]) -> list[str]:
    """A per-class table and the confusion matrix as text lines that fit 80 columns for up to ~8 classes."""
    labels = report["labels"]
    width = min(max((len(x) for x in labels), default=5), 24)
    out = [f"{'class':<{width}}  precision  recall      f1  support"]
    for i, name in enumerate(labels):
        out.append(f"{name[:width]:<{width}}  {report['precision'][i]:9.4f}  {report['recall'][i]:6.4f}  "
                   f"{report['f1'][i]:6.4f}  {report['support'][i]:7d}")
    cell = max(5, max((len(str(v)) for row in report["confusion_matrix"] for v in row), default=1) + 1)
    short = [x[:cell - 1] for x in labels]
    out.append("")
    out.append("confusion matrix (rows: true, columns: predicted)")
    out.append(f"{'':<{width}}  " + "".join(f"{x:>{cell}}" for x in short))
    for name, row in zip(labels, report["confusion_matrix"], strict=True):
        out.append(f"{name[:width]:<{width}}  " + "".join(f"{v:>{cell}}" for v in row))
    return out
