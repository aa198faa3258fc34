"""Local caption and VQA `evaluate` modules: hand-computed tiny cases, the scorers directly, human agreement."""

from __future__ import annotations

import json
import logging
import math

import evaluate
import pytest

from msnn_hf.data import default_data_dir
from msnn_hf.metrics import (
    caption_human_agreement,
    caption_metrics_path,
    load_caption_metric,
    load_vqa_metric,
    vqa_metrics_path,
)
from msnn_hf.metrics.caption_metrics import caption_metrics as caption_module
from msnn_hf.metrics.caption_metrics.caption_metrics import caption_scores, meteor_available, simple_tokenize
from msnn_hf.metrics.vqa_metrics.vqa_metrics import answer_set, normalize_answer, vqa_scores

CAPTIONS = default_data_dir() / "captions-flickr8k" / "captions.jsonl"


@pytest.fixture(scope="module")
def caption_metric():
    return load_caption_metric()


def test_modules_are_local_files():
    assert caption_metrics_path().endswith("caption_metrics.py")
    assert vqa_metrics_path().endswith("vqa_metrics.py")
    assert evaluate.load(vqa_metrics_path()).name == "vqa_metrics"


def test_simple_tokenize():
    assert simple_tokenize("A dog's T-shirt, isn't 3.5 m long!  Two-year-old girl .") == [
        "a", "dog", "'s", "t-shirt", "is", "n't", "3.5", "m", "long", "two-year-old", "girl",
    ]  # fmt: skip
    assert simple_tokenize("...") == [] and simple_tokenize("An entry way .") == ["an", "entry", "way"]


def test_identical_and_disjoint_captions(caption_metric):
    same = caption_metric.compute(
        predictions=["A black dog runs through the grass .", "two men are playing football"],
        references=[["a black dog runs through the grass", "a dog"], ["Two men are playing football ."]],
        meteor=False,
    )
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l"):
        assert same[key] == pytest.approx(1.0, abs=1e-6), key
    assert "meteor" not in same
    disjoint = caption_metric.compute(
        predictions=["red car parked outside", "snowy mountain peak view"],
        references=[["a black dog runs through the grass"], ["two men are playing football"]],
        meteor=False,
    )
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d"):
        assert disjoint[key] == pytest.approx(0.0, abs=1e-6), key


def test_bleu_and_rouge_by_hand():
    """'the cat sat on the mat' vs 'the cat is on the mat': clipped n-gram precisions 5/6, 3/5, 1/4, 0/3, equal
    lengths (no brevity penalty); LCS 'the cat on the mat' = 5 of 6 tokens both ways."""
    scores = caption_scores(["the cat sat on the mat"], [["the cat is on the mat"]], meteor=False)
    assert scores["bleu_1"] == pytest.approx(5 / 6, abs=1e-6)
    assert scores["bleu_2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 5), abs=1e-6)
    assert scores["bleu_3"] == pytest.approx((5 / 6 * 3 / 5 * 1 / 4) ** (1 / 3), abs=1e-6)
    assert scores["bleu_4"] < 1e-3  # no matching 4-gram: only pycocoevalcap's tiny smoothing remains
    assert scores["rouge_l"] == pytest.approx(5 / 6)
    # brevity penalty: 2 tokens against a 6-token reference, all unigrams right -> exp(1 - 6/2)
    short = caption_scores(["the cat"], [["the cat sat on the mat"]], meteor=False)
    assert short["bleu_1"] == pytest.approx(math.exp(-2), abs=1e-6)


def test_cider_d_by_hand_and_against_the_scorer():
    """Two images, one reference each, every reference n-gram in one image: idf = log 2 for all n-grams (an
    n-gram no reference has gets df max(1, 0) = 1, also log 2). Image 0 matches exactly: the n = 1, 2 terms
    are 1, n = 3, 4 have no n-grams (0): 10 * (1 + 1) / 4 = 5. Image 1 shares nothing: 0. Corpus: 2.5."""
    from pycocoevalcap.cider.cider import Cider

    scores = caption_scores(["a b", "x y"], [["a b"], ["c d"]], meteor=False, per_image=True)
    assert scores["cider_d"] == pytest.approx(2.5)
    assert scores["per_image"]["cider_d"] == pytest.approx([5.0, 0.0])
    predictions = ["A dog runs on the grass .", "Two men play football", "a girl in pink"]
    references = [
        ["A dog is running on grass .", "The brown dog runs ."],
        ["Two men are playing soccer .", "men playing football"],
        ["A little girl in a pink dress .", "a girl wearing pink"],
    ]
    direct, _ = Cider().compute_score(
        {i: [" ".join(simple_tokenize(r)) for r in refs] for i, refs in enumerate(references)},
        {i: [" ".join(simple_tokenize(p))] for i, p in enumerate(predictions)},
    )
    assert caption_scores(predictions, references, meteor=False)["cider_d"] == pytest.approx(direct)
    assert direct > 0


def test_invalid_inputs():
    with pytest.raises(ValueError, match="predictions for"):
        caption_scores(["a"], [["a"], ["b"]], meteor=False)
    with pytest.raises(ValueError, match="non-empty list"):
        caption_scores(["a"], [[]], meteor=False)
    with pytest.raises(ValueError, match="need 2 or more"):
        caption_human_agreement([["only one caption"]])


def test_meteor_skipped_cleanly_without_java(monkeypatch, caplog):
    monkeypatch.setattr(caption_module.shutil, "which", lambda name: None)
    assert meteor_available() == (False, "METEOR needs Java (`java` is not on the PATH)")
    with caplog.at_level(logging.WARNING):
        scores = caption_scores(["a dog"], [["a dog runs"]], meteor=True)
    assert "meteor" not in scores and "METEOR skipped" in caplog.text


@pytest.mark.slow
@pytest.mark.skipif(not meteor_available()[0], reason=meteor_available()[1])
def test_meteor_with_java():
    """One Java run (11-25 s here, mostly the JVM start: marked slow): identical ~ 1 (only the fragmentation penalty 0.5 / m^3), disjoint 0,
    partial in between."""
    scores = caption_scores(
        ["a black dog runs through the tall grass", "red car parked outside", "a dog runs in the grass"],
        [["a black dog runs through the tall grass"], ["two men are playing football"], ["a black dog runs"]],
        per_image=True,
    )
    identical, disjoint, partial = scores["per_image"]["meteor"]
    assert identical > 0.99 and disjoint == 0.0 and 0.1 < partial < identical
    assert 0 < scores["meteor"] < 1


@pytest.mark.skipif(not CAPTIONS.is_file(), reason="no Flickr8k subset here (set MSNN_DATA_DIR)")
def test_human_agreement_on_flickr8k_test():
    rows = [json.loads(line) for line in CAPTIONS.read_text().splitlines()]
    captions = [r["captions"] for r in rows if r["split"] == "test"]
    assert len(captions) == 125 and all(len(c) == 5 for c in captions)
    human = caption_human_agreement(captions)
    direct = caption_scores([c[0] for c in captions], [c[1:] for c in captions], meteor=False)
    assert human == direct
    # people agree only partly: far from the identical-caption 1.0, far from the disjoint 0
    assert 0.05 < human["bleu_4"] < 0.5 and 0.2 < human["cider_d"] < 2.0 and 0.3 < human["rouge_l"] < 0.7
    other = caption_human_agreement(captions, held_out=4)
    assert other["bleu_4"] != human["bleu_4"]


# --------------------------------------------------------------------------- VQA
def test_vqa_normalisation():
    assert normalize_answer("  The Tape_Dispenser! ") == "tape dispenser"
    assert answer_set("book, scissor,papers") == answer_set(["papers", "book", "scissor"])
    assert answer_set("") == frozenset()


def test_vqa_scores_by_hand():
    metric = load_vqa_metric()
    scores = metric.compute(
        predictions=["Chair", "tape dispenser, book", "book", "table"],
        references=[["chair"], ["book", "tape_dispenser"], ["book", "scissor"], ["sofa"]],
    )
    # exact: 1, 1, 0 (one of two items), 0; set-F1 of the third: P = 1, R = 1/2 -> 2/3
    assert scores["exact_match"] == pytest.approx(2 / 4)
    assert scores["answer_f1"] == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)
    assert scores["num_examples"] == 4
    with pytest.raises(ValueError, match="predictions for"):
        vqa_scores(["a"], [])
