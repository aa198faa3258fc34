"""Dataset loading and validation for text classification (SST-5 and any single-label dataset).

Three sources, one result (a `datasets.DatasetDict` with `train` / `validation` / `test` where present):

* a Hub dataset id (`load_classification_splits(dataset_name="SetFit/sst5")`);
* a local folder holding `{train,validation,test}.{jsonl,json,csv}` (`dev` is accepted for `validation`);
* explicit `train_file` / `validation_file` / `test_file` (JSON Lines or CSV).

Local files are read once in Python before `datasets` sees them (`check_data_file`): a file that is not UTF-8,
holds no rows, or has a line that is not a JSON object (a CSV row with the wrong number of fields) raises
`DataValidationError` naming the file, the split and the line. Each split is loaded on its own, so a column that
one split lacks is reported by name rather than as a cast error.

`validate_classification_splits` checks every row before training starts and raises `DataValidationError`
naming the split, the row and the column (and, for local files, the file and line): a missing column, an empty or
non-string text, a missing label or a label outside the label set. Without label names, integer labels must be
the contiguous ids ``0..K-1`` (a stray ``7`` or ``-1`` is an error, not a new class); string labels are sorted.

Example::

    from msnn_hf.data import default_data_dir, load_classification_splits, validate_classification_splits

    raw = load_classification_splits(data_dir=default_data_dir() / "sst5")
    labels = validate_classification_splits(raw, "text", "label", label_names=SST5_LABELS)
"""

from __future__ import annotations

import csv
import io
import json
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


def classification_files(
    data_dir: str | os.PathLike | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
) -> dict[str, str]:
    """`{split: path}` of local data: the split files of `data_dir`, overridden by explicit files."""
    files = find_split_files(data_dir) if data_dir is not None else {}
    files.update(
        {
            k: v
            for k, v in {"train": train_file, "validation": validation_file, "test": test_file}.items()
            if v
        }
    )
    return files


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "str", list: "list", dict: "object"}.get(type(value), type(value).__name__)


def _read_text(path: Path, split: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataValidationError(
            f"{split} file {path}, line {line}: not UTF-8 text (byte {data[err.start]:#04x} at offset "
            f"{err.start}); save the file as UTF-8"
        ) from None


def _json_rows(path: Path, split: str, text: str) -> list[tuple[int | None, dict]]:
    """`[(line, row)]` of a JSON Lines file (or of a `.json` file holding one list of objects)."""
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataValidationError(
                f"{split} file {path}, line {err.lineno}: not valid JSON ({err.msg}, column {err.colno})"
            ) from None
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataValidationError(
                    f"{split} file {path}: item {i} of its list is a JSON {_json_kind(row)}, not an object"
                )
        return [(None, row) for row in rows]
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataValidationError(
                f"{split} file {path}, line {number}: not valid JSON ({err.msg}, column {err.colno}); JSON Lines "
                "files hold one JSON object per line"
            ) from None
        if not isinstance(row, dict):
            raise DataValidationError(
                f"{split} file {path}, line {number}: a JSON {_json_kind(row)}, not an object (JSON Lines files "
                "hold one JSON object per line)"
            )
        out.append((number, row))
    return out


def _csv_rows(path: Path, split: str, text: str) -> list[tuple[int | None, dict]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        out = []
        for values in reader:
            if not values:
                continue
            if header is not None and len(values) != len(header):
                raise DataValidationError(
                    f"{split} file {path}, line {reader.line_num}: {len(values)} fields, but the header has "
                    f"{len(header)} ({header})"
                )
            out.append((reader.line_num, dict(zip(header, values))))
    except csv.Error as err:
        raise DataValidationError(
            f"{split} file {path}, line {reader.line_num}: not valid CSV ({err})"
        ) from None
    return out


def read_rows(path: str | os.PathLike, split: str = "data") -> list[tuple[int | None, dict]]:
    """The rows of a local JSON Lines / JSON / CSV file with their line numbers (None inside a JSON list).

    Raises:
        DataValidationError: naming the file, the split and the line of the first problem.
    """
    path = Path(path)
    text = _read_text(path, split)
    return _csv_rows(path, split, text) if path.suffix.lower() == ".csv" else _json_rows(path, split, text)


def check_data_file(path: str | os.PathLike, split: str) -> None:
    """Read a local split file once before `datasets` does, so that a bad file fails with its name and line.

    Raises:
        DataValidationError: not UTF-8, no rows, a line that is not a JSON object (a CSV row with the wrong number
            of fields), or a column whose values are of different JSON types (``1`` and ``"1"``).
    """
    rows = read_rows(path, split)
    if not rows:
        raise DataValidationError(f"{split} file {path} holds no rows")
    kinds: dict[str, dict[str, int | None]] = {}
    for line, row in rows:
        for column, value in row.items():
            if value is None:
                continue
            seen = kinds.setdefault(column, {})
            seen.setdefault(_json_kind(value), line)
            if len(seen) > 1:
                (first, first_line), (kind, _) = list(seen.items())[:2]
                raise DataValidationError(
                    f"{split} file {path}, line {line}: column {column!r} holds a {kind} here but a {first} on "
                    f"line {first_line}; give every row the same type"
                )


def row_location(path: str | os.PathLike | None, row: int) -> str:
    """`` (file <path>, line <n>)`` for 0-based `row` of a local split file ('' when there is no file)."""
    if not path:
        return ""
    try:
        rows = read_rows(path)
    except (OSError, DataValidationError):
        return f" (file {path})"
    line = rows[row][0] if 0 <= row < len(rows) else None
    return f" (file {path}, line {line})" if line is not None else f" (file {path})"


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
    files = classification_files(data_dir, train_file, validation_file, test_file)
    if not files:
        raise DataValidationError(
            "Give a dataset: --dataset_name, --data_dir or --train_file/--validation_file/--test_file"
        )
    for split, path in files.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"{split} file {path} does not exist")
        check_data_file(path, split)
    splits = {}
    for split, path in files.items():  # one split at a time: a column one split lacks is not a cast error
        try:
            splits[split] = datasets.load_dataset(
                _builder_for([path]), data_files={split: path}, cache_dir=cache_dir
            )[split]
        except Exception as err:  # what the checks above did not catch, still named by file and split
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise DataValidationError(
                f"{split} file {path} could not be read: {type(err).__name__}: {first}"
            ) from err
    return datasets.DatasetDict(splits)


def _label_names_from_feature(feature) -> list[str] | None:
    names = getattr(feature, "names", None)
    return list(names) if names else None


def build_label_space(
    raw,
    label_column: str,
    label_names: Sequence[str] | None = None,
    files: dict[str, str] | None = None,
) -> LabelSpace:
    """The label set: `label_names` if given (integer labels are ids into it; string labels are names), else a
    `ClassLabel` feature's names, else the distinct labels of the training split (of all splits if there is no
    training split): sorted strings, or integer ids that must be exactly ``0..K-1``.

    Raises:
        DataValidationError: integer labels that are not ``0..K-1`` (a stray ``7`` or ``-1`` would otherwise
            become a class of its own, or shift every id), naming the split, row, value (and file and line).
    """
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
        if ordered != list(range(len(ordered))):
            _raise_non_contiguous(raw, splits, label_column, ordered, files or {})
    elif kinds == {str}:
        ordered = sorted(values)
    else:
        raise DataValidationError(
            f"Label column {label_column!r} mixes value types {sorted(k.__name__ for k in kinds)}; "
            "use integer ids or names, or pass --label_names"
        )
    return LabelSpace(names=[str(v) for v in ordered], value_to_id={v: i for i, v in enumerate(ordered)})


def _raise_non_contiguous(raw, splits, label_column: str, ordered: list[int], files: dict[str, str]) -> None:
    """Raise the `DataValidationError` of the first row whose integer label lies outside ``0..K-1``."""
    stray = [v for v in ordered if not 0 <= v < len(ordered)]
    for name, dataset in raw.items():
        if not any(dataset is split for split in splits):
            continue
        for row, value in enumerate(dataset[label_column]):
            if value is not None and int(value) in stray:
                raise DataValidationError(
                    f"Split {name!r}, row {row}: label {value!r} in column {label_column!r} is not one of the ids "
                    f"0..{len(ordered) - 1}; the distinct labels are {ordered}, and classes are inferred only from "
                    "string labels or the contiguous ids 0..K-1. Fix the row, or pass --class_names (the names in "
                    f"id order) to give the label set{row_location(files.get(name), row)}"
                )
    raise DataValidationError(  # not reached: a stray value lies in some row
        f"Column {label_column!r}: integer labels {ordered} are not the contiguous ids 0..K-1; pass --class_names"
    )


def validate_classification_splits(
    raw,
    text_column: str,
    label_column: str,
    label_names: Sequence[str] | None = None,
    text_pair_column: str | None = None,
    require_labels: Sequence[str] = ("train", "validation", "test"),
    files: dict[str, str] | None = None,
) -> LabelSpace:
    """Check every split before training; return the label space.

    Raises `DataValidationError` naming the split, row (0-based) and column of the first problem: a missing
    column, an empty / non-string text, a missing label or a label outside the label set. Labels are checked
    in the splits listed in `require_labels` (an unlabelled test split, e.g. `label = -1`, can be left out).
    `files` (`{split: path}` of local data) adds the file and line to the messages.
    """
    files = files or {}
    for split, dataset in raw.items():
        for column in (text_column, text_pair_column, label_column if split in require_labels else None):
            if column is not None and column not in dataset.column_names:
                where = f" (file {files[split]})" if split in files else ""
                raise DataValidationError(
                    f"Column {column!r} not found in split {split!r}{where}; its columns are "
                    f"{dataset.column_names}. Set --text_column / --label_column to the right names."
                )
    labels = build_label_space(raw, label_column, label_names, files)
    for split, dataset in raw.items():
        for column in (text_column, text_pair_column):
            if column is None:
                continue
            for row, text in enumerate(dataset[column]):
                if not isinstance(text, str):
                    raise DataValidationError(
                        f"Split {split!r}, row {row}: column {column!r} is {type(text).__name__} "
                        f"({text!r}), not a string{row_location(files.get(split), row)}"
                    )
                if not text.strip():
                    raise DataValidationError(
                        f"Split {split!r}, row {row}: column {column!r} is empty{row_location(files.get(split), row)}"
                    )
        if split not in require_labels:
            continue
        for row, value in enumerate(dataset[label_column]):
            if value is None:
                raise DataValidationError(
                    f"Split {split!r}, row {row}: column {label_column!r} has no label"
                    f"{row_location(files.get(split), row)}"
                )
            if isinstance(value, bool) or value not in labels.value_to_id:
                raise DataValidationError(
                    f"Split {split!r}, row {row}: label {value!r} in column {label_column!r} is outside the label "
                    f"set {labels.names} (valid values: {sorted(map(str, labels.value_to_id))})"
                    f"{row_location(files.get(split), row)}"
                )
    return labels


VALIDATION_SPLIT_SEED = 0  # the same carved validation split for every training seed of a grid


def carve_validation_split(raw, percentage: float, seed: int = VALIDATION_SPLIT_SEED):
    """Split `percentage` % of the training rows off as a `validation` split, reproducibly (a permutation drawn
    from `seed`, rows kept in file order within each part). Returns a new `DatasetDict`.

    Raises:
        DataValidationError: no train split, a validation split already there, a percentage outside (0, 100),
            or too few training rows to leave some on each side.
    """
    import datasets
    import numpy as np

    if "train" not in raw:
        raise DataValidationError(
            "--validation_split_percentage carves the validation split from train: no train split"
        )
    if "validation" in raw:
        raise DataValidationError(
            "--validation_split_percentage carves a validation split from train, but the data has one already"
        )
    if not 0 < percentage < 100:
        raise DataValidationError(f"--validation_split_percentage must lie in (0, 100), got {percentage}")
    n = len(raw["train"])
    n_validation = round(n * percentage / 100)
    if not 0 < n_validation < n:
        raise DataValidationError(
            f"--validation_split_percentage {percentage} of {n} training rows leaves no rows for one side"
        )
    order = np.random.default_rng(seed).permutation(n)
    out = datasets.DatasetDict(raw)
    out["validation"] = raw["train"].select(sorted(order[:n_validation].tolist()))
    out["train"] = raw["train"].select(sorted(order[n_validation:].tolist()))
    return out


__all__ = [
    "DATA_DIR_ENV",
    "SST5_LABELS",
    "VALIDATION_SPLIT_SEED",
    "DataValidationError",
    "LabelSpace",
    "build_label_space",
    "carve_validation_split",
    "check_data_file",
    "classification_files",
    "default_data_dir",
    "find_split_files",
    "load_classification_splits",
    "read_rows",
    "row_location",
    "validate_classification_splits",
]
