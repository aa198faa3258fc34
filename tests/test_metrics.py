"""The local classification `evaluate` module and the Trainer `compute_metrics` factory agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from transformers import EvalPrediction

from msnn_hf.metrics import build_compute_metrics, load_classification_metric, sst_metrics_path
from msnn_hf.metrics.sst_metrics.sst_metrics import classification_scores


@pytest.fixture(scope="module")
def metric():
    return load_classification_metric()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_sklearn(metric, seed):
    rng = np.random.default_rng(seed)
    references = rng.integers(0, 5, size=200)
    predictions = np.where(rng.random(200) < 0.5, references, rng.integers(0, 5, size=200))
    scores = metric.compute(predictions=predictions, references=references, num_labels=5)
    labels = list(range(5))
    assert scores["accuracy"] == pytest.approx(accuracy_score(references, predictions))
    assert scores["macro_f1"] == pytest.approx(
        f1_score(references, predictions, average="macro", labels=labels, zero_division=0)
    )
    np.testing.assert_allclose(
        scores["per_class_f1"],
        f1_score(references, predictions, average=None, labels=labels, zero_division=0),
    )
    assert scores["confusion_matrix"] == confusion_matrix(references, predictions, labels=labels).tolist()


def test_absent_class_counts_as_zero_in_macro_f1():
    # class 2 never occurs: F1 0, as scikit-learn's zero_division=0 with labels=range(3)
    scores = classification_scores([0, 1, 1], [0, 1, 1], num_labels=3)
    assert scores["per_class_f1"] == [1.0, 1.0, 0.0]
    assert scores["macro_f1"] == pytest.approx(
        f1_score([0, 1, 1], [0, 1, 1], average="macro", labels=[0, 1, 2], zero_division=0)
    )


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="predictions for"):
        classification_scores([0, 1], [0], num_labels=2)
    with pytest.raises(ValueError, match="0..1"):
        classification_scores([0, 2], [0, 1], num_labels=2)


def test_module_is_local_file():
    assert sst_metrics_path().endswith("sst_metrics.py")


def test_compute_metrics_factory(metric):
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 1.0, 0.5], [0.1, 0.0, 0.9]])
    labels = np.array([0, 1, 2, 2])
    compute = build_compute_metrics(3, {0: "neg", 1: "neu", 2: "pos"}, metric=metric)
    out = compute(EvalPrediction(predictions=logits, label_ids=labels))
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["f1_neg"] == 1.0 and out["f1_pos"] == pytest.approx(2 / 3)
    assert out["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    scalar_only = build_compute_metrics(3, metric=metric, confusion=False)
    out = scalar_only(EvalPrediction(predictions=(logits,), label_ids=labels))
    assert "confusion_matrix" not in out and set(out) == {"accuracy", "macro_f1", "f1_0", "f1_1", "f1_2"}
