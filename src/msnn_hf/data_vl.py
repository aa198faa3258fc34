"""Vision + language data: the Flickr8k captioning subset and the DAQUAR VQA sample of `shared/data`.

Both come as a `datasets.DatasetDict` / `Dataset` (the whole split in memory: they are small) or as a streaming
`datasets.IterableDataset` (the same examples, in the same order, read line by line from the JSON Lines file).
Images stay files: the `image` column holds the absolute path (`decode_images=True` casts it to `datasets.Image()`,
which decodes lazily on access); an image processor reads the paths directly.

| reader | split sizes (train / validation / test) | columns |
| --- | --- | --- |
| `load_flickr8k` | 762 / 113 / 125 images, 5 captions each | `image`, `image_id`, `captions` (5 str), `official_split` |
| `load_flickr8k(one_caption_per_row=True)` | 3,810 / 565 / 625 | `image`, `image_id`, `caption`, `caption_index` |
| `load_daquar` | 796 / 225 / 442 QA pairs over 100 / 25 / 51 photos | `image`, `image_id`, `question`, `answers` (list), `answer` |

The folder is `data_dir` (the dataset folder itself) or `$MSNN_DATA_DIR/<folder>` (default `../shared/data`
relative to the repository, see `msnn_hf.data.default_data_dir`). A missing folder, file or image and a malformed
line raise `FileNotFoundError` / `DataValidationError` naming the file and line.

Example::

    from msnn_hf.data_vl import load_daquar, load_flickr8k, stream_flickr8k

    flickr = load_flickr8k()  # DatasetDict(train=762, validation=113, test=125)
    flickr["test"][0]["captions"]  # five human captions
    for example in stream_flickr8k(split="train", one_caption_per_row=True).take(3):
        print(example["image"], example["caption"])
    daquar = load_daquar(split="test")  # Dataset of 442 questions
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .data import DataValidationError, default_data_dir

SPLITS: tuple[str, ...] = ("train", "validation", "test")
FLICKR8K_FOLDER = "captions-flickr8k"
FLICKR8K_FILE = "captions.jsonl"
FLICKR8K_COUNTS: dict[str, int] = {"train": 762, "validation": 113, "test": 125}  # images (SOURCE.md)
FLICKR8K_CAPTIONS_PER_IMAGE = 5
DAQUAR_FOLDER = "vqa-daquar"
DAQUAR_FILE = "qa.jsonl"
DAQUAR_COUNTS: dict[str, int] = {"train": 796, "validation": 225, "test": 442}  # QA pairs (SOURCE.md)
_IMAGE_NAME = re.compile(r"\b(?:the\s+)?image\d+\b")


def _folder(data_dir: str | os.PathLike | None, default_name: str, file_name: str) -> Path:
    folder = Path(data_dir) if data_dir is not None else default_data_dir() / default_name
    path = folder / file_name
    if not path.is_file():
        hint = (
            "" if data_dir is not None else f" (set $MSNN_DATA_DIR to the folder that holds {default_name}/)"
        )
        raise FileNotFoundError(f"{file_name} not found in {folder}{hint}")
    return folder


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None (all); got {split!r}")


def _read_lines(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataValidationError(f"{path}:{number}: not valid JSON ({err.msg})") from err
            if not isinstance(row, dict):
                raise DataValidationError(f"{path}:{number}: expected a JSON object")
            yield number, row


def _field(row: dict, key: str, kind: type, where: str) -> Any:
    if key not in row:
        raise DataValidationError(f"{where}: missing field {key!r}")
    if not isinstance(row[key], kind):
        raise DataValidationError(
            f"{where}: field {key!r} must be {kind.__name__}; got {type(row[key]).__name__}"
        )
    return row[key]


def _image(folder: Path, row: dict, where: str) -> str:
    path = folder / _field(row, "image", str, where)
    if not path.is_file():
        raise DataValidationError(f"{where}: image file {path} does not exist")
    return str(path.resolve())


def _strings(row: dict, key: str, where: str, count: int | None = None) -> list[str]:
    values = _field(row, key, list, where)
    if not values or any(not isinstance(v, str) or not v.strip() for v in values):
        raise DataValidationError(f"{where}: field {key!r} must be a list of non-empty strings")
    if count is not None and len(values) != count:
        raise DataValidationError(f"{where}: field {key!r} has {len(values)} entries, expected {count}")
    return values


def _split_of(row: dict, where: str) -> str:
    split = _field(row, "split", str, where)
    if split not in SPLITS:
        raise DataValidationError(f"{where}: unknown split {split!r}")
    return split


def _flickr8k_rows(folder: Path, one_caption_per_row: bool) -> Iterator[tuple[str, dict]]:
    path = folder / FLICKR8K_FILE
    for number, row in _read_lines(path):
        where = f"{path}:{number}"
        split = _split_of(row, where)
        image = _image(folder, row, where)
        captions = _strings(row, "captions", where, FLICKR8K_CAPTIONS_PER_IMAGE)
        image_id = Path(image).stem
        if one_caption_per_row:
            for index, caption in enumerate(captions):
                yield (
                    split,
                    {"image": image, "image_id": image_id, "caption": caption, "caption_index": index},
                )
        else:
            official = bool(row.get("official_split", True))
            yield (
                split,
                {"image": image, "image_id": image_id, "captions": captions, "official_split": official},
            )


def _daquar_rows(folder: Path, generic_image_name: bool) -> Iterator[tuple[str, dict]]:
    path = folder / DAQUAR_FILE
    for number, row in _read_lines(path):
        where = f"{path}:{number}"
        split = _split_of(row, where)
        question = _field(row, "question", str, where)
        if not question.strip():
            raise DataValidationError(f"{where}: empty question")
        if generic_image_name:
            question = _IMAGE_NAME.sub("the image", question)
        yield (
            split,
            {
                "image": _image(folder, row, where),
                "image_id": _field(row, "image_id", str, where),
                "question": question,
                "answers": _strings(row, "answers", where),
                "answer": _field(row, "answer_raw", str, where),
            },
        )


def iter_flickr8k(
    data_dir: str | os.PathLike | None = None, split: str | None = None, one_caption_per_row: bool = False
) -> Iterator[dict]:
    """Validated Flickr8k examples of `split` (`None`: all, file order), read line by line."""
    _check_split(split)
    folder = _folder(data_dir, FLICKR8K_FOLDER, FLICKR8K_FILE)
    for row_split, example in _flickr8k_rows(folder, one_caption_per_row):
        if split is None or row_split == split:
            yield example


def iter_daquar(
    data_dir: str | os.PathLike | None = None, split: str | None = None, generic_image_name: bool = False
) -> Iterator[dict]:
    """Validated DAQUAR QA pairs of `split` (`None`: all, file order), read line by line.

    `generic_image_name=True` replaces the image's name in the question by "the image" (DAQUAR questions end
    "... in the image3 ?"; the name tells a model nothing about the picture).
    """
    _check_split(split)
    folder = _folder(data_dir, DAQUAR_FOLDER, DAQUAR_FILE)
    for row_split, example in _daquar_rows(folder, generic_image_name):
        if split is None or row_split == split:
            yield example


def _by_split(rows: Iterator[tuple[str, dict]], split: str | None) -> dict[str, list[dict]]:
    names = SPLITS if split is None else (split,)
    out: dict[str, list[dict]] = {name: [] for name in names}
    for row_split, example in rows:
        if row_split in out:
            out[row_split].append(example)
    return out


def _features(kind: str, one_caption_per_row: bool = False, decode_images: bool = False):
    import datasets

    image = datasets.Image() if decode_images else datasets.Value("string")
    text = datasets.Value("string")
    if kind == "daquar":
        columns = {
            "image": image,
            "image_id": text,
            "question": text,
            "answers": datasets.List(text),
            "answer": text,
        }
    elif one_caption_per_row:
        columns = {
            "image": image,
            "image_id": text,
            "caption": text,
            "caption_index": datasets.Value("int32"),
        }
    else:
        columns = {
            "image": image,
            "image_id": text,
            "captions": datasets.List(text),
            "official_split": datasets.Value("bool"),
        }
    return datasets.Features(columns)


def _as_datasets(rows_of: dict[str, list[dict]], features, split: str | None, source: Path | None = None):
    """One split's `Dataset`, or a `DatasetDict` of the splits that have rows. A requested split without rows is an
    error naming the file (not an empty dataset a run would train or score nothing on)."""
    import datasets

    if split is not None and not rows_of.get(split):
        raise ValueError(f"{source or 'the data file'} has no rows of split {split!r}")
    built = {
        name: datasets.Dataset.from_list(rows, features=features, split=name)
        for name, rows in rows_of.items()
        if rows
    }
    return built[split] if split is not None else datasets.DatasetDict(built)


def load_flickr8k(
    data_dir: str | os.PathLike | None = None,
    split: str | None = None,
    one_caption_per_row: bool = False,
    decode_images: bool = False,
):
    """Flickr8k subset as a `DatasetDict` (`split=None`) or one split's `Dataset` (see the module docstring)."""
    _check_split(split)
    folder = _folder(data_dir, FLICKR8K_FOLDER, FLICKR8K_FILE)
    rows = _by_split(_flickr8k_rows(folder, one_caption_per_row), split)
    features = _features("flickr8k", one_caption_per_row, decode_images)
    return _as_datasets(rows, features, split, folder / FLICKR8K_FILE)


def load_daquar(
    data_dir: str | os.PathLike | None = None,
    split: str | None = None,
    generic_image_name: bool = False,
    decode_images: bool = False,
):
    """DAQUAR sample as a `DatasetDict` (`split=None`) or one split's `Dataset` (see the module docstring)."""
    _check_split(split)
    folder = _folder(data_dir, DAQUAR_FOLDER, DAQUAR_FILE)
    rows = _by_split(_daquar_rows(folder, generic_image_name), split)
    return _as_datasets(rows, _features("daquar", decode_images=decode_images), split, folder / DAQUAR_FILE)


def stream_flickr8k(
    data_dir: str | os.PathLike | None = None,
    split: str = "train",
    one_caption_per_row: bool = False,
    decode_images: bool = False,
):
    """One Flickr8k split as a streaming `datasets.IterableDataset` (same examples and order as `load_flickr8k`)."""
    import datasets

    _check_split(split)
    folder = _folder(data_dir, FLICKR8K_FOLDER, FLICKR8K_FILE)  # fail now, not at the first iteration
    return datasets.IterableDataset.from_generator(
        iter_flickr8k,
        features=_features("flickr8k", one_caption_per_row, decode_images),
        gen_kwargs={"data_dir": str(folder), "split": split, "one_caption_per_row": one_caption_per_row},
        split=datasets.NamedSplit(split),
    )


def stream_daquar(
    data_dir: str | os.PathLike | None = None,
    split: str = "train",
    generic_image_name: bool = False,
    decode_images: bool = False,
):
    """One DAQUAR split as a streaming `datasets.IterableDataset` (same examples and order as `load_daquar`)."""
    import datasets

    _check_split(split)
    folder = _folder(data_dir, DAQUAR_FOLDER, DAQUAR_FILE)
    return datasets.IterableDataset.from_generator(
        iter_daquar,
        features=_features("daquar", decode_images=decode_images),
        gen_kwargs={"data_dir": str(folder), "split": split, "generic_image_name": generic_image_name},
        split=datasets.NamedSplit(split),
    )


__all__ = [
    "DAQUAR_COUNTS",
    "FLICKR8K_COUNTS",
    "SPLITS",
    "iter_daquar",
    "iter_flickr8k",
    "load_daquar",
    "load_flickr8k",
    "stream_daquar",
    "stream_flickr8k",
]
