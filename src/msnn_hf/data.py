"""Dataset loading and validation for text classification (SST-5 and any single-label dataset).

Three sources, one result (a `datasets.DatasetDict` with `train` / `validation` / `test` where present):

* a Hub dataset id (`load_classification_splits(dataset_name="SetFit/sst5")`);
* a local folder holding `{train,validation,test}.{jsonl,json,csv}` (`dev` is accepted for `validation`);
* explicit `train_file` / `validation_file` / `test_file` (JSON Lines or CSV).

`validate_classification_splits` checks every row before training starts and raises `DataValidationError`
naming the split, the row and the column: a missing column, an empty or non-string text, a missing label or a
label outside the label set.

Example::

    from msnn_hf.data import default_data_dir, load_classification_splits, validate_classification_splits

    raw = load_classification_splits(data_dir=default_data_dir() / "sst5")
    labels = validate_classification_splits(raw, "text", "label", label_names=SST5_LABELS)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SST5_LABELS: tuple[str, ...] = ("very negative", "negative", "neutral", "positive", "very positive")
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "validation": ("validation", "dev", "valid", "val"),
    "test": ("test",),
}
FILE_EXTENSIONS: tuple[str, ...] = ("jsonl", "json", "csv")
DATA_DIR_ENV = "MSNN_DATA_DIR"


class DataValidationError(ValueError):
    """A dataset row or column that training cannot use; the message names the split, row and column."""


@dataclass
class LabelSpace:
    """The label set of a classification dataset.

    Args:
        names (`list[str]`): label names in id order (`id2label[i] == names[i]`).
        value_to_id (`dict`): raw label value in the data (int or str) -> label id.
    """

    names: list[str]
    value_to_id: dict

    @property
    def num_labels(self) -> int:
        return len(self.names)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}


def default_data_dir() -> Path:
    """`$MSNN_DATA_DIR`, else `../shared/data` relative to the repository root."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def find_split_files(folder: str | os.PathLike) -> dict[str, str]:
    """`{split: path}` of the split files found in `folder` (`train.jsonl`, `dev.csv`, ...)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Data folder {folder} does not exist")
    found: dict[str, str] = {}
    for split, aliases in SPLIT_ALIASES.items():
        for alias in aliases:
            for ext in FILE_EXTENSIONS:
                path = folder / f"{alias}.{ext}"
                if split not in found and path.is_file():
                    found[split] = str(path)
    if "train" not in found and "validation" not in found and "test" not in found:
        raise FileNotFoundError(
            f"No split files in {folder}: expected train/validation/test (or dev) with one of the extensions "
            f"{list(FILE_EXTENSIONS)}"
        )
    return found


def _builder_for(paths: Sequence[str]) -> str:
    extensions = {Path(p).suffix.lstrip(".").lower() for p in paths}
    if extensions <= {"json", "jsonl"}:
        return "json"
    if extensions == {"csv"}:
        return "csv"
    raise ValueError(f"Data files must all be JSON Lines or all CSV; got {sorted(extensions)}")


def load_classification_splits(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    data_dir: str | os.PathLike | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
    cache_dir: str | None = None,
):
    """Load a classification dataset as a `DatasetDict` (`train` / `validation` / `test` where present)."""
    import datasets

    if dataset_name is not None:
        return datasets.load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)
    files = find_split_files(data_dir) if data_dir is not None else {}
    files.update(
        {
            k: v
            for k, v in {"train": train_file, "validation": validation_file, "test": test_file}.items()
            if v
        }
    )
    if not files:
        raise ValueError(
            "Give a dataset: --dataset_name, --data_dir or --train_file/--validation_file/--test_file"
        )
    for split, path in files.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"{split} file {path} does not exist")
    return datasets.load_dataset(_builder_for(list(files.values())), data_files=files, cache_dir=cache_dir)


def _label_names_from_feature(feature) -> list[str] | None:
    names = getattr(feature, "names", None)
    return list(names) if names else None


def build_label_space(raw, label_column: str, label_names: Sequence[str] | None = None) -> LabelSpace:
    """The label set: `label_names` if given (integer labels are ids into it; string labels are names), else a
    `ClassLabel` feature's names, else the sorted distinct labels of the training split (of all splits if there is
    no training split)."""
    reference = raw["train"] if "train" in raw else next(iter(raw.values()))
    if label_column not in reference.column_names:
        raise DataValidationError(
            f"Label column {label_column!r} not found in split {reference.split or 'train'!s}; "
            f"columns: {reference.column_names}"
        )
    names = list(label_names) if label_names else _label_names_from_feature(reference.features[label_column])
    if names:
        value_to_id: dict = {i: i for i in range(len(names))}
        value_to_id.update({name: i for i, name in enumerate(names)})
        return LabelSpace(names=[str(n) for n in names], value_to_id=value_to_id)
    splits = [raw["train"]] if "train" in raw else list(raw.values())
    values = {v for split in splits for v in split[label_column] if v is not None}
    if not values:
        raise DataValidationError(f"Label column {label_column!r} holds no labels")
    kinds = {type(v) for v in values}
    if kinds <= {int, bool}:
        ordered = sorted(int(v) for v in values)
    elif kinds == {str}:
        ordered = sorted(values)
    else:
        raise DataValidationError(
            f"Label column {label_column!r} mixes value types {sorted(k.__name__ for k in kinds)}; "
            "use integer ids or names, or pass --label_names"
        )
    return LabelSpace(names=[str(v) for v in ordered], value_to_id={v: i for i, v in enumerate(ordered)})


def validate_classification_splits(
    raw,
    text_column: str,
    label_column: str,
    label_names: Sequence[str] | None = None,
    text_pair_column: str | None = None,
    require_labels: Sequence[str] = ("train", "validation", "test"),
) -> LabelSpace:
    """Check every split before training; return the label space.

    Raises `DataValidationError` naming the split, row (0-based) and column of the first problem: a missing
    column, an empty / non-string text, a missing label or a label outside the label set. Labels are checked
    in the splits listed in `require_labels` (an unlabelled test split, e.g. `label = -1`, can be left out).
    """
    for split, dataset in raw.items():
        for column in (text_column, text_pair_column, label_column if split in require_labels else None):
            if column is not None and column not in dataset.column_names:
                raise DataValidationError(
                    f"Column {column!r} not found in split {split!r}; its columns are {dataset.column_names}. "
                    f"Set --text_column / --label_column to the right names."
                )
    labels = build_label_space(raw, label_column, label_names)
    for split, dataset in raw.items():
        for column in (text_column, text_pair_column):
            if column is None:
                continue
            for row, text in enumerate(dataset[column]):
                if not isinstance(text, str):
                    raise DataValidationError(
                        f"Split {split!r}, row {row}: column {column!r} is {type(text).__name__} "
                        f"({text!r}), not a string"
                    )
                if not text.strip():
                    raise DataValidationError(f"Split {split!r}, row {row}: column {column!r} is empty")
        if split not in require_labels:
            continue
        for row, value in enumerate(dataset[label_column]):
            if value is None:
                raise DataValidationError(f"Split {split!r}, row {row}: column {label_column!r} has no label")
            if isinstance(value, bool) or value not in labels.value_to_id:
                raise DataValidationError(
                    f"Split {split!r}, row {row}: label {value!r} in column {label_column!r} is outside the label "
                    f"set {labels.names} (valid values: {sorted(map(str, labels.value_to_id))})"
                )
    return labels


__all__ = [
    "DATA_DIR_ENV",
    "SST5_LABELS",
    "DataValidationError",
    "LabelSpace",
    "build_label_space",
    "default_data_dir",
    "find_split_files",
    "load_classification_splits",
    "validate_classification_splits",
]
