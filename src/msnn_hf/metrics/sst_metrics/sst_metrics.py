"""Classification metrics for SST-5 and any single-label task: accuracy, macro-F1, per-class F1, confusion.

A local `evaluate` module (no Hub access needed)::

    import evaluate
    from msnn_hf.metrics import sst_metrics_path

    metric = evaluate.load(sst_metrics_path())
    metric.compute(predictions=[0, 1, 1], references=[0, 1, 2], num_labels=3)
    # {'accuracy': 0.667, 'macro_f1': 0.556, 'per_class_f1': [1.0, 0.667, 0.0],
    #  'confusion_matrix': [[1, 0, 0], [0, 1, 0], [0, 1, 0]]}

Pure NumPy so that the module has no dependency beyond `evaluate` itself; the values equal
scikit-learn's `accuracy_score`, `f1_score(average="macro" | None, labels=range(num_labels),
zero_division=0)` and `confusion_matrix(labels=range(num_labels))` (rows = true label, columns = prediction).
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Accuracy, macro-averaged F1, per-class F1 and the confusion matrix of a single-label
classifier. Classes are 0..num_labels-1; a class absent from both references and predictions has F1 0
(scikit-learn's zero_division=0) and still counts in the macro average."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted labels.
    references (`list` of `int`): gold labels.
    num_labels (`int`, *optional*): number of classes; defaults to 1 + the largest label seen.
Returns:
    accuracy (`float`), macro_f1 (`float`), per_class_f1 (`list[float]`, one per class),
    confusion_matrix (`list[list[int]]`, rows = gold label, columns = predicted label).
"""

_CITATION = ""


def classification_scores(predictions, references, num_labels: int | None = None) -> dict:
    """Accuracy, macro-F1, per-class F1 and confusion matrix (rows = gold, columns = predicted)."""
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    references = np.asarray(references, dtype=np.int64).reshape(-1)
    if predictions.shape != references.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {references.shape[0]} references")
    if predictions.size == 0:
        raise ValueError("No predictions to score")
    if num_labels is None:
        num_labels = int(max(predictions.max(), references.max())) + 1
    if min(predictions.min(), references.min()) < 0 or max(predictions.max(), references.max()) >= num_labels:
        raise ValueError(f"Labels must lie in 0..{num_labels - 1}")
    confusion = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(confusion, (references, predictions), 1)
    true_positive = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)  # predicted + gold = 2TP + FP + FN
    per_class_f1 = np.divide(2 * true_positive, denominator, out=np.zeros(num_labels), where=denominator > 0)
    return {
        "accuracy": float(true_positive.sum() / references.size),
        "macro_f1": float(per_class_f1.mean()),
        "per_class_f1": [float(v) for v in per_class_f1],
        "confusion_matrix": confusion.tolist(),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SstMetrics(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, num_labels: int | None = None) -> dict:
        return classification_scores(predictions, references, num_labels=num_labels)
