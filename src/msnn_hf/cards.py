"""Model cards: ``model_cards/template.md`` filled from a card spec and a result record.

`render_card` fills the template from a card spec (``model_cards/<name>.yaml``: prose and paths only, no numbers)
and a result JSON (`msnn_hf.records`): Hub metadata (``library_name``, ``license``, ``base_model``, ``datasets``,
``metrics``, ``pipeline_tag``, ``model-index``), the exact training command, metrics tables, the alpha analysis and
its plot. `validate_card` checks the rendered card offline with huggingface_hub's own parser (``ModelCard`` ->
``model_index_to_eval_results`` round trip).

Example::

    from msnn_hf.cards import render_card

    card = render_card("li-bert-sst5", "results/sst5-v0.2/li-gate1e-2-seed42.json", out_dir="/tmp/card")
    print(str(card))
"""

from __future__ import annotations

import glob
import math
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import (
    DEFAULT_DATASET,
    SST5_LABELS,
    ResultsError,
    alpha_means,
    command_line,
    hub_base_model,
    hub_dataset,
    load_result,
    per_layer_alpha,
    result_value,
)

LICENSE = "apache-2.0"
LIBRARY_NAME = "transformers"
FIGURE_NAME = "alpha.png"
INTEGRATION_NAMES = {"li": "Linear Integration (LI)", "dm": "Direct Mixing (DM)"}


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
    if result_value(result, "integration_init") == "backbone":
        # msnn_hf >= 0.2: the model reports each stream's share in z, i.e. the mechanism's weight scaled by the gate
        # (docs/architecture.md, "How α relates to the gate")
        what = (
            f"streams' shares in the integrated state z (the {what} inside the mix, scaled by the gate "
            "τ = mean tanh β: stream s ≠ semantic gets τ·w_s, the semantic stream (1 − τ) + τ·w_semantic)"
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


def gate_sentence(result: dict) -> str | None:
    """How far the run's integration gates opened (its `gate_openness`), or None when the record has none."""
    values = result_value(result, "gate_openness")
    if not isinstance(values, list) or not values:
        return None
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 1 for v in values):
        raise ResultsError(f"gate_openness must be numbers in [0, 1], got {values!r}")
    mean = statistics.fmean(values)
    per_layer = ", ".join(f"{v:.3f}" for v in values)
    text = (
        f"The integration gates |tanh β| after training (0 = closed: the model computes its backbone's function; "
        f"1 = open), per integration layer: {per_layer} (mean {mean:.3f})."
    )
    if mean < 0.01:
        text += (
            " They stayed nearly closed: this model still computes almost exactly its backbone's function."
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
        gate_text=gate_sentence(result),
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


__all__ = [
    "CardSpec",
    "FIGURE_NAME",
    "INTEGRATION_NAMES",
    "LIBRARY_NAME",
    "LICENSE",
    "alpha_sentence",
    "build_card_data",
    "cards_dir",
    "load_card_spec",
    "plot_alpha",
    "render_card",
    "seed_table",
    "spec_for_repo",
    "validate_card",
]
