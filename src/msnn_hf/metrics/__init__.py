"""Local `evaluate` modules (no Hub access needed) and the Trainer `compute_metrics` factory.

Example::

    import evaluate
    from msnn_hf.metrics import build_compute_metrics, sst_metrics_path

    metric = evaluate.load(sst_metrics_path())
    trainer = Trainer(..., compute_metrics=build_compute_metrics(num_labels=5, id2label=model.config.id2label))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent


def sst_metrics_path() -> str:
    """Path of the local `evaluate` module computing accuracy, macro-F1, per-class F1 and confusion matrix."""
    return str(_HERE / "sst_metrics" / "sst_metrics.py")


def load_classification_metric():
    """`evaluate.load` of the local classification module (never touches the Hub)."""
    import evaluate

    return evaluate.load(sst_metrics_path())


def flatten_classification_metrics(scores: Mapping, id2label: Mapping[int, str] | None = None) -> dict:
    """Scalar view of `classification_scores`: per-class F1 as `f1_<label>` and the confusion matrix as a
    list of lists (kept; Trainer logs only scalars but `all_results.json` keeps everything)."""
    out = {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}
    for index, value in enumerate(scores["per_class_f1"]):
        name = str(id2label[index]) if id2label is not None and index in id2label else str(index)
        out[f"f1_{name.replace(' ', '_')}"] = value
    out["confusion_matrix"] = scores["confusion_matrix"]
    return out


def build_compute_metrics(
    num_labels: int, id2label: Mapping[int, str] | None = None, metric=None, confusion: bool = True
) -> Callable:
    """`compute_metrics` for `transformers.Trainer` on single-label classification.

    Returns accuracy, macro_f1, `f1_<label>` per class and, with `confusion=True`, `confusion_matrix` (a list of
    lists: fine in `log_history`, but TensorBoard only takes scalars, so training-time evaluation may leave it out).
    """
    metric = metric if metric is not None else load_classification_metric()
    id2label = {int(k): v for k, v in id2label.items()} if id2label is not None else None

    def compute_metrics(eval_pred) -> dict:
        logits = (
            eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        )
        predictions = np.argmax(logits, axis=-1)
        scores = metric.compute(
            predictions=predictions, references=eval_pred.label_ids, num_labels=num_labels
        )
        flat = flatten_classification_metrics(scores, id2label)
        if not confusion:
            flat.pop("confusion_matrix")
        return flat

    return compute_metrics


__all__ = [
    "build_compute_metrics",
    "flatten_classification_metrics",
    "load_classification_metric",
    "sst_metrics_path",
]
