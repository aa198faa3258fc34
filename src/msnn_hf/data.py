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

Phrase-level SST training (the recipe of Munikar et al. 2019, which trains on every labelled node of the training
trees): `read_sentiment_trees` parses the PTB-format trees of an SST folder (`ptb_trees/train.txt`, one tree per
line, every node labelled), `SentimentTree.labelled_phrases` lists every node's (text, label) with the text as the
node's leaves joined by single spaces (the PTB escapes `-LRB-`, `\\/`, ... kept as they are, as in the sentence
files), and `phrase_training_rows` turns them into training rows: one row per distinct text, none equal to a
held-out (validation / test) sentence::

    trees = read_sentiment_trees(sst_tree_file(default_data_dir() / "sst5", "train"))
    held_out = [*raw["validation"]["text"], *raw["test"]["text"]]
    rows, stats = phrase_training_rows(trees, held_out)  # stats["phrases"] == 159268 on SST-5
"""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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


# ------------------------------------------------------------------------------------ SST phrase-level training
TRAIN_GRANULARITIES: tuple[str, ...] = ("sentences", "phrases")
SST_TREES_FOLDER = "ptb_trees"  # inside an SST data folder (see $MSNN_DATA_DIR/sst5/SOURCE.md)
SST_TREE_FILES: dict[str, str] = {"train": "train.txt", "validation": "dev.txt", "test": "test.txt"}


@dataclass
class SentimentTree:
    """A node of a Stanford Sentiment Treebank parse tree: its sentiment label and either its children (an inner
    node) or its word (a leaf).

    Args:
        label (`int`): the node's label (SST-5: 0 = very negative ... 4 = very positive).
        children (`list[SentimentTree]`): the sub-trees, left to right (empty for a leaf).
        word (`str`, *optional*): the leaf's token, as written in the tree file (None for an inner node).
    """

    label: int
    children: list[SentimentTree] = field(default_factory=list)
    word: str | None = None

    @property
    def words(self) -> list[str]:
        """The node's leaves, left to right."""
        return [self.word] if self.word is not None else [w for child in self.children for w in child.words]

    @property
    def text(self) -> str:
        """The node's leaves joined with single spaces (the root's is the sentence)."""
        return " ".join(self.words)

    def labelled_phrases(self) -> list[tuple[str, int]]:
        """`(text, label)` of every node of the tree, in pre-order (the root, i.e. the sentence, first)."""
        out: list[tuple[str, int]] = []
        self._collect(out)
        return out

    def _collect(self, out: list[tuple[str, int]]) -> list[str]:
        if self.word is not None:
            out.append((self.word, self.label))
            return [self.word]
        slot = len(out)
        out.append(("", self.label))  # filled once the children's words are known
        words = [word for child in self.children for word in child._collect(out)]
        out[slot] = (" ".join(words), self.label)
        return words


def parse_sentiment_tree(line: str) -> SentimentTree:
    """Parse one PTB-format sentiment tree, e.g. ``(3 (2 It) (4 (4 rocks) (2 .)))``.

    Every node is ``(<integer label> <children or one leaf token>)``; nodes are separated by ASCII spaces. A leaf's
    token is everything between its label and its closing parenthesis, kept byte for byte (PTB escapes such as
    ``-LRB-`` / ``-RRB-`` for parentheses and ``\\/`` for ``/``, and the no-break space inside ``8 1\\/2``, stay as
    they are, as in the SST sentence files).

    Raises:
        ValueError: the line is not one well-formed tree (the message gives the character position).
    """
    text = line.rstrip("\r\n")
    stack: list[SentimentTree] = []
    root: SentimentTree | None = None
    i, n = 0, len(text)

    def fail(why: str, at: int) -> None:
        raise ValueError(f"{why} at character {at + 1}: {text[max(0, at - 20) : at + 20]!r}")

    while i < n:
        char = text[i]
        if char == " ":
            i += 1
        elif char == "(":
            end = text.find(" ", i + 1)
            label = text[i + 1 : end] if end > 0 else ""
            if not (label.isascii() and label.isdigit()):
                fail(f"a node must start with '(<integer label> ', found {text[i : i + 8]!r}", i)
            node = SentimentTree(int(label))
            if stack:
                if stack[-1].word is not None:
                    fail("a leaf cannot have children", i)
                stack[-1].children.append(node)
            elif root is not None:
                fail("more than one tree on the line", i)
            else:
                root = node
            stack.append(node)
            i = end + 1
            if i < n and text[i] != "(":  # a leaf: its token runs to the closing parenthesis
                close = text.find(")", i)
                if close < 0:
                    fail("unclosed leaf", i)
                word = text[i:close]
                if "(" in word:
                    fail("a node holds both a word and children", i)
                if not word.strip():
                    fail("empty leaf", i)
                node.word = word
                i = close
        elif char == ")":
            if not stack:
                fail("unbalanced ')'", i)
            node = stack.pop()
            if node.word is None and not node.children:
                fail("a node without children or word", i)
            i += 1
        else:
            fail(f"unexpected {char!r} between nodes", i)
    if stack:
        fail(f"{len(stack)} unclosed node(s)", n)
    if root is None:
        raise ValueError("no tree on the line")
    return root


def read_sentiment_trees(path: str | os.PathLike) -> list[SentimentTree]:
    """The trees of an SST tree file (one per line; blank lines skipped).

    Raises:
        DataValidationError: a line that is not one well-formed tree, naming the file and the line.
    """
    path = Path(path)
    trees = []
    for number, line in enumerate(_read_text(path, "tree").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            trees.append(parse_sentiment_tree(line))
        except ValueError as err:
            raise DataValidationError(f"tree file {path}, line {number}: {err}") from None
    if not trees:
        raise DataValidationError(f"tree file {path} holds no trees")
    return trees


def sentence_match_key(text: str) -> str:
    """What a held-out sentence and a training phrase are compared on: the text case-folded, accents stripped
    (NFKD) and whitespace runs (no-break spaces too) collapsed to one space. An uncased BERT tokenizer (MiniLM's)
    cannot tell texts with the same key apart, so a phrase that only differs from a test sentence in case would
    still be that test sentence for the model."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(c for c in folded if not unicodedata.combining(c)).split())


def phrase_training_rows(
    trees: Iterable[SentimentTree],
    held_out_texts: Iterable[str] = (),
    text_column: str = "text",
    label_column: str = "label",
) -> tuple[list[dict], dict]:
    """Training rows ``{text_column: phrase, label_column: label}`` from every labelled node of `trees`.

    * one row per distinct phrase text (exact string), in order of first occurrence (tree by tree, pre-order);
    * a text seen with different labels takes its most frequent one, ties going to the label seen first (the SST-5
      training trees have no such text: SST labels each distinct phrase once);
    * phrases whose `sentence_match_key` equals a held-out text's (the validation and test sentences) are left out,
      so that no evaluated sentence is trained on, whichever tree it also occurs in.

    Returns:
        `(rows, stats)`: `stats` counts ``trees``, ``nodes`` (labelled nodes, duplicates included),
        ``distinct_phrases``, ``label_conflicts`` (distinct texts seen with more than one label),
        ``held_out_excluded`` (distinct texts left out as equal to a held-out sentence; ``held_out_exact``: those
        equal byte for byte) and ``phrases`` (the rows).
    """
    labels_of: dict[str, Counter] = {}
    num_trees = num_nodes = 0
    for tree in trees:
        num_trees += 1
        for text, label in tree.labelled_phrases():
            num_nodes += 1
            labels_of.setdefault(text, Counter())[label] += 1
    held_exact = set(held_out_texts)
    held_keys = {sentence_match_key(t) for t in held_exact}
    rows, conflicts, excluded, exact = [], 0, 0, 0
    for text, counts in labels_of.items():
        if len(counts) > 1:
            conflicts += 1
        if sentence_match_key(text) in held_keys:
            excluded += 1
            exact += text in held_exact
            continue
        # Counter.most_common keeps first-seen order among equal counts
        rows.append({text_column: text, label_column: counts.most_common(1)[0][0]})
    stats = {
        "trees": num_trees,
        "nodes": num_nodes,
        "distinct_phrases": len(labels_of),
        "label_conflicts": conflicts,
        "held_out_excluded": excluded,
        "held_out_exact": exact,
        "phrases": len(rows),
    }
    return rows, stats


def sst_tree_file(data_dir: str | os.PathLike, split: str = "train") -> Path:
    """Where an SST data folder keeps the parse trees of `split` (``<data_dir>/ptb_trees/<file>``)."""
    return Path(data_dir) / SST_TREES_FOLDER / SST_TREE_FILES[split]


def check_trees_match_sentences(
    trees: Sequence[SentimentTree], texts: Sequence[str], labels: Sequence, path: str | os.PathLike
) -> None:
    """The trees must be the sentence split's, row for row: each root's text and label equal the row's.

    `labels` are the rows' labels mapped to the same values as the tree labels (label ids).

    Raises:
        DataValidationError: another number of trees, or the first tree whose sentence or label differs.
    """
    if len(trees) != len(texts):
        raise DataValidationError(
            f"tree file {path} holds {len(trees)} trees but the training split {len(texts)} sentences: the trees "
            "must be the training split's (SST)"
        )
    for row, (tree, text, label) in enumerate(zip(trees, texts, labels)):
        root = tree.text
        if root != text or tree.label != label:
            what = f"sentence {root!r} vs {text!r}" if root != text else f"label {tree.label} vs {label!r}"
            raise DataValidationError(
                f"tree file {path}, tree {row + 1} differs from training row {row} ({what}): the trees must be "
                "the training split's, in the same order (SST)"
            )


__all__ = [
    "DATA_DIR_ENV",
    "SST5_LABELS",
    "SST_TREES_FOLDER",
    "SST_TREE_FILES",
    "TRAIN_GRANULARITIES",
    "VALIDATION_SPLIT_SEED",
    "DataValidationError",
    "LabelSpace",
    "SentimentTree",
    "build_label_space",
    "carve_validation_split",
    "check_data_file",
    "check_trees_match_sentences",
    "classification_files",
    "default_data_dir",
    "find_split_files",
    "load_classification_splits",
    "parse_sentiment_tree",
    "phrase_training_rows",
    "read_rows",
    "read_sentiment_trees",
    "row_location",
    "sentence_match_key",
    "sst_tree_file",
    "validate_classification_splits",
]
