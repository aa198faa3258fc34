"""Flickr8k and DAQUAR readers on the real files of shared/data (small: about a second in all)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest

from msnn_hf.data import DataValidationError, default_data_dir
from msnn_hf.data_vl import (
    DAQUAR_COUNTS,
    FLICKR8K_COUNTS,
    iter_daquar,
    load_daquar,
    load_flickr8k,
    stream_daquar,
    stream_flickr8k,
)

FLICKR = default_data_dir() / "captions-flickr8k"
DAQUAR = default_data_dir() / "vqa-daquar"
pytestmark = pytest.mark.skipif(
    not (FLICKR / "captions.jsonl").is_file() or not DAQUAR.is_dir(),
    reason="the Flickr8k subset / DAQUAR sample are not here (set MSNN_DATA_DIR)",
)


@pytest.fixture(scope="module")
def flickr() -> datasets.DatasetDict:
    return load_flickr8k()


@pytest.fixture(scope="module")
def daquar() -> datasets.DatasetDict:
    return load_daquar()


def test_flickr8k_splits_as_in_source_md(flickr):
    assert {name: len(split) for name, split in flickr.items()} == FLICKR8K_COUNTS == {
        "train": 762, "validation": 113, "test": 125,
    }  # fmt: skip
    ids = [set(flickr[name]["image_id"]) for name in FLICKR8K_COUNTS]
    assert sum(map(len, ids)) == 1000 and len(set.union(*ids)) == 1000  # each image in exactly one split
    assert all(len(c) == 5 for c in flickr["train"]["captions"])
    assert sum(not official for official in flickr["train"]["official_split"]) == 9
    assert set(flickr["test"]["official_split"]) == set(flickr["validation"]["official_split"]) == {True}
    first = flickr["test"][0]
    assert Path(first["image"]).is_absolute() and Path(first["image"]).is_file()
    raw = json.loads((FLICKR / "captions.jsonl").read_text().splitlines()[0])
    row = next(r for name in flickr for r in flickr[name] if r["image_id"] == Path(raw["image"]).stem)
    assert row["captions"] == raw["captions"]  # captions untouched


def test_flickr8k_one_caption_per_row_and_stream(flickr):
    flat = load_flickr8k(split="validation", one_caption_per_row=True)
    assert len(flat) == 5 * 113 and flat[6]["caption_index"] == 1
    assert flat[6]["caption"] == flickr["validation"][1]["captions"][1]
    stream = stream_flickr8k(split="validation")
    assert isinstance(stream, datasets.IterableDataset)
    assert list(stream) == list(flickr["validation"])  # the same examples, in the same order
    assert sum(1 for _ in stream_flickr8k(split="train", one_caption_per_row=True)) == 5 * 762


def test_daquar_splits_as_in_source_md(daquar):
    assert {name: len(split) for name, split in daquar.items()} == DAQUAR_COUNTS == {
        "train": 796, "validation": 225, "test": 442,
    }  # fmt: skip
    images = {name: set(daquar[name]["image_id"]) for name in DAQUAR_COUNTS}
    assert {name: len(v) for name, v in images.items()} == {"train": 100, "validation": 25, "test": 51}
    assert not (images["train"] & images["validation"]) and not (images["train"] & images["test"])
    lists = [a for name in DAQUAR_COUNTS for a in daquar[name]["answers"]]
    assert sum(len(a) > 1 for a in lists) == 132  # SOURCE.md: 132 of the 1,463 answers are lists
    example = daquar["train"][0]
    assert example["image_id"] in example["question"] and example["answers"] == example["answer"].split(", ")


def test_daquar_stream_and_generic_image_name(daquar):
    assert list(stream_daquar(split="test")) == list(daquar["test"])
    generic = list(iter_daquar(split="test", generic_image_name=True))
    assert len(generic) == 442
    assert all("image" in q["question"] and q["image_id"] not in q["question"] for q in generic)
    assert generic[0]["question"].endswith("in the image ?")


def test_decode_images_casts_to_image_feature():
    test = load_daquar(split="validation", decode_images=True)
    assert isinstance(test.features["image"], datasets.Image)
    assert test[0]["image"].size == (256, 194)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="captions.jsonl not found"):
        load_flickr8k(tmp_path)
    with pytest.raises(FileNotFoundError, match="qa.jsonl not found"):
        stream_daquar(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split must be one of"):
        load_flickr8k(split="dev")
    folder = tmp_path / "flickr"
    (folder / "images").mkdir(parents=True)
    photo = next((FLICKR / "images").glob("*.jpg"))
    shutil.copy(photo, folder / "images" / photo.name)
    good = {"image": f"images/{photo.name}", "captions": ["a"] * 5, "split": "train", "official_split": True}
    cases = [
        (
            {**good, "image": "images/missing.jpg"},
            r"captions.jsonl:2: image file .*missing.jpg does not exist",
        ),
        ({**good, "captions": ["a"] * 4}, r"captions.jsonl:2: field 'captions' has 4 entries, expected 5"),
        ({**good, "split": "dev"}, r"captions.jsonl:2: unknown split 'dev'"),
        ({k: v for k, v in good.items() if k != "captions"}, r"captions.jsonl:2: missing field 'captions'"),
    ]
    for bad, match in cases:
        (folder / "captions.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(DataValidationError, match=match):
            load_flickr8k(folder)
    (folder / "captions.jsonl").write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(DataValidationError, match="captions.jsonl:2: not valid JSON"):
        list(stream_flickr8k(folder))
    (folder / "captions.jsonl").write_text(json.dumps(good) + "\n")
    assert len(load_flickr8k(folder, split="train")) == 1
    # a file with train rows only: all splits -> the splits it has; a split it lacks -> an error naming the file
    assert list(load_flickr8k(folder)) == ["train"]
    with pytest.raises(ValueError, match=r"captions.jsonl has no rows of split 'test'"):
        load_flickr8k(folder, split="test")


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MSNN_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"MSNN_DATA_DIR"):
        load_daquar()
    monkeypatch.setenv("MSNN_DATA_DIR", str(DAQUAR.parent))
    assert len(load_daquar(split="validation")) == 225
