"""Local `evaluate` modules (no Hub access needed) and the Trainer `compute_metrics` factory.

Example::

    import evaluate
    from msnn_hf.metrics import build_compute_metrics, sst_metrics_path

    metric = evaluate.load(sst_metrics_path())
    trainer = Trainer(..., compute_metrics=build_compute_metrics(num_labels=5, id2label=model.config.id2label))

Vision + language: `caption_metrics_path()` (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D), `vqa_metrics_path()` (exact match,
set-F1) and `caption_human_agreement(captions_per_image)` (one human caption scored against the others)::

    caption_metric = evaluate.load(caption_metrics_path())
    caption_metric.compute(predictions=["a dog runs"], references=[["a dog is running .", "a brown dog runs"]])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent


def sst_metrics_path() -> str:
    """Path of the local `evaluate` module computing accuracy, macro-F1, per-class F1 and confusion matrix."""
    return str(_HERE / "sst_metrics" / "sst_metrics.py")


def caption_metrics_path() -> str:
    """Path of the local `evaluate` module computing BLEU-1..4, METEOR (with Java), ROUGE-L and CIDEr-D."""
    return str(_HERE / "caption_metrics" / "caption_metrics.py")


def vqa_metrics_path() -> str:
    """Path of the local `evaluate` module computing VQA exact-match accuracy and set-F1 (DAQUAR answers)."""
    return str(_HERE / "vqa_metrics" / "vqa_metrics.py")


def load_caption_metric():
    """`evaluate.load` of the local caption module (never touches the Hub)."""
    import evaluate

    return evaluate.load(caption_metrics_path())


def load_vqa_metric():
    """`evaluate.load` of the local VQA module (never touches the Hub)."""
    import evaluate

    return evaluate.load(vqa_metrics_path())


def caption_human_agreement(
    captions_per_image: Sequence[Sequence[str]],
    held_out: int = 0,
    meteor: bool = False,
    per_image: bool = False,
) -> dict:
    """How well one human caption matches the others: caption `held_out` of every image is the "prediction",
    its remaining captions the references (for Flickr8k: caption 1 against the other 4). A reference point for
    model scores, which are computed against all 5 (the human score is slightly pessimistic: one fewer
    reference). METEOR is off by default (a Java process)."""
    from .caption_metrics.caption_metrics import caption_scores

    predictions, references = [], []
    for index, captions in enumerate(captions_per_image):
        if len(captions) < 2 or not 0 <= held_out < len(captions):
            raise ValueError(
                f"image {index} has {len(captions)} captions: need 2 or more to hold caption {held_out} out"
            )
        predictions.append(captions[held_out])
        references.append([c for i, c in enumerate(captions) if i != held_out])
    return caption_scores(predictions, references, meteor=meteor, per_image=per_image)


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
    "caption_human_agreement",
    "caption_metrics_path",
    "load_caption_metric",
    "load_vqa_metric",
    "vqa_metrics_path",
    "flatten_classification_metrics",
    "load_classification_metric",
    "sst_metrics_path",
]
