"""alpha-viz: what each stream of a multi-stream (msnn_hf) classifier contributes, token by token.

Type a sentence and see
  * the predicted class probabilities;
  * the three streams of every token side by side (word piece, phonemes, morphs);
  * the integration weights per layer x token x stream as a heatmap (LI: contribution shares
    ``||W_s r_s|| / sum ||W_s' r_s'||``; DM: the mixing weights ``alpha_s``);
  * how the prediction moves when streams are dropped.

**Dropping a stream** removes its term from the integrated pathway at every integration point: a forward
pre-hook on each integration module replaces that stream's raw output ``r_s`` with zeros. For Linear
Integration the term ``W_s r_s`` is then exactly zero; for Direct Mixing ``u_s = rms_normalise(P_s 0) = 0``, so
``alpha_s u_s`` is zero (with token-level alpha the gate re-distributes over the remaining streams). The stream's
own layers still run; nothing else changes. The integrated pathway starts from the semantic embedding output
``z_0``, so dropping the semantic stream removes its layer outputs but not that starting point. (Setting a
stream's ids to ``<pad>`` instead would still feed the stream's biases and position embeddings into the sum.)

Configuration (command line or environment; command line wins):
  ``--model`` / ``MSNN_MODEL``: a local checkpoint folder or a Hub id (default ``msnn/li-bert-sst5``);
  ``--host`` / ``MSNN_HOST`` or ``GRADIO_SERVER_NAME``: bind address (default ``127.0.0.1``);
  ``--port`` / ``GRADIO_SERVER_PORT``: port (default 7860).

Work per request is bounded: at most `MAX_CHARS` characters and `MAX_TOKENS` tokens are analysed (a visible
notice says when the input was cut), one request runs at a time (`CONCURRENCY_LIMIT`) and at most
`MAX_QUEUE` wait. No telemetry: Gradio analytics and Hugging Face Hub telemetry are switched off before
gradio is imported.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

logger = logging.getLogger("alpha-viz")

DEFAULT_MODEL = "msnn/li-bert-sst5"
MAX_CHARS = 512
MAX_TOKENS = 128
CONCURRENCY_LIMIT = 1
MAX_QUEUE = 16
TIME_LIMIT_S = 60
INTEGRATION_CLASS_NAMES = ("LinearIntegration", "DirectMixing")
EXAMPLES = [
    "A gorgeous, witty, seductive movie.",
    "The plot is paper-thin and the acting is wooden.",
    "It's not a bad film, just an unremarkable one.",
]


class ModelLoadError(RuntimeError):
    """The model or its processor could not be loaded; the message says why, in words."""


# ------------------------------------------------------------------------------------------------ loading
@dataclass
class LoadedModel:
    """A classifier, its processor and what the UI needs to know about them."""

    model: Any
    processor: Any
    source: str
    labels: list[str]
    streams: list[str]
    integration_type: str
    integration_layers: list[int]
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def droppable(self) -> list[str]:
        """Streams that can be dropped: all of them for LI / DM, none for other fusion strategies."""
        return list(self.streams) if integration_modules(self.model) else []


def _json_object(path: Path) -> dict:
    """The JSON object in `path`; `ModelLoadError` naming the file when it is not one."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{path} is not valid JSON ({err}).") from err
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path} must hold a JSON object, not a JSON {type(value).__name__}.")
    return value


def _check_local_checkpoint(folder: Path) -> None:
    """Fail early, in words, on a local folder that lacks a file, holds a JSON file that is not a JSON object or
    an unreadable safetensors file."""
    from msnn_hf.publishing import CheckpointError, check_safetensors, weight_files

    missing = [name for name in ("config.json", "processor_config.json") if not (folder / name).is_file()]
    if missing:
        raise ModelLoadError(f"Checkpoint folder {folder} is missing {', '.join(missing)}.")
    _json_object(folder / "config.json")
    processor_config = _json_object(folder / "processor_config.json")
    files = processor_config.get("files") or {}
    if not isinstance(files, dict):
        raise ModelLoadError(f"{folder / 'processor_config.json'}: 'files' must map roles to file names.")
    try:
        weights = weight_files(folder)
        listed = [f for f in files.values() if f]
        missing = [f for f in listed if not (folder / f).is_file()]
        if missing:
            raise ModelLoadError(
                f"Checkpoint folder {folder} is missing processor files: {', '.join(missing)}."
            )
        for name in [*weights, *listed]:
            if name.endswith(".safetensors"):
                check_safetensors(folder / name)
    except CheckpointError as err:
        raise ModelLoadError(str(err)) from err


# a Hub repository id: `name` or `owner/name` (what huggingface_hub's validate_repo_id accepts, roughly)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def _looks_local(source: str) -> bool:
    """Whether `source` can only be a local path (not a Hub id): absolute, ``./`` / ``../`` / ``~``, or more than
    one ``/``."""
    return not HUB_ID.match(source) or source.startswith((".", "~", "/"))


def load_model(source: str) -> LoadedModel:
    """Load a sequence classifier and its processor from a local folder or a Hub id.

    Raises:
        ModelLoadError: with a one-paragraph explanation (never a traceback).
    """
    from transformers import AutoModelForSequenceClassification

    from msnn_hf import MultiStreamProcessor  # importing msnn_hf registers its Auto classes

    folder = Path(source).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise ModelLoadError(f"{source} is a file; give a checkpoint folder or a Hub id.")
        _check_local_checkpoint(folder)
    elif _looks_local(source):
        raise ModelLoadError(
            f"Checkpoint folder {source} does not exist (resolved to {folder.resolve()}); give an existing folder "
            "or a Hub id (owner/name)."
        )
    no_folder = "" if folder.exists() else f" (and there is no local folder {source} either)"
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(source))
        processor = MultiStreamProcessor.from_pretrained(str(source))
    except ModelLoadError:
        raise
    except OSError as err:  # missing repo / file / no connection: transformers says which in one line
        raise ModelLoadError(f"Could not load {source}: {_first_line(err)}{no_folder}") from err
    except Exception as err:  # anything else: type and first line, the traceback goes to the server log
        logger.exception("loading %s failed", source)
        raise ModelLoadError(
            f"Could not load {source}: {type(err).__name__}: {_first_line(err)}{no_folder}"
        ) from err
    model.eval()
    config = model.config
    labels = [str(config.id2label.get(i, f"class {i}")) for i in range(config.num_labels)]
    return LoadedModel(
        model=model,
        processor=processor,
        source=str(source),
        labels=labels,
        streams=list(getattr(config, "streams", ["semantic"])),
        integration_type=str(getattr(config, "integration_type", "?")),
        integration_layers=list(getattr(config, "integration_layers", []) or []),
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


# ------------------------------------------------------------------------------------------------ dropping
def integration_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's integration modules (LI / DM), whichever copy of the classes (package or remote code)."""
    return [
        m for m in model.modules() if type(m).__name__ in INTEGRATION_CLASS_NAMES and hasattr(m, "streams")
    ]


@contextmanager
def dropped(model: torch.nn.Module, streams: Sequence[str]) -> Iterator[None]:
    """Within the block, every integration module sees zeros as the raw output of `streams`."""
    streams = set(streams)

    def zero_streams(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            outputs, rest = args[0], args[1:]
        else:
            outputs, rest = kwargs.pop("stream_outputs"), ()
        if isinstance(outputs, dict):
            outputs = {s: torch.zeros_like(r) if s in streams else r for s, r in outputs.items()}
        else:  # a list in the order of the module's streams (what the models pass)
            outputs = [torch.zeros_like(r) if s in streams else r for s, r in zip(module.streams, outputs)]
        return (outputs, *rest), kwargs

    handles = [
        m.register_forward_pre_hook(zero_streams, with_kwargs=True) for m in integration_modules(model)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# ------------------------------------------------------------------------------------------------ analysis
@dataclass
class Analysis:
    """Everything the page shows for one sentence.

    Attributes:
        probabilities: ``{label: p}`` with all streams.
        dropped_probabilities: ``{label: p}`` with `dropped` streams removed (None when nothing is dropped).
        dropped: the streams that were dropped.
        tokens: the word pieces analysed.
        rows: one row per token: position, token, phonemes, morphs, then the mean weight of every stream.
        weights: integration weights, shape ``(layers, tokens, streams)`` (None when the model has none).
        layers: the integration layer index of every row of `weights`.
        streams: stream names, in the order of the last axis of `weights`.
        notices: messages to show (input cut, nothing to analyse, errors).
    """

    probabilities: dict[str, float] = field(default_factory=dict)
    dropped_probabilities: dict[str, float] | None = None
    dropped: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    weights: np.ndarray | None = None
    layers: list[int] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.probabilities)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (the API endpoint returns this)."""
        return {
            "probabilities": self.probabilities,
            "dropped": self.dropped,
            "dropped_probabilities": self.dropped_probabilities,
            "tokens": self.tokens,
            "streams": self.streams,
            "layers": self.layers,
            "weights": None if self.weights is None else np.round(self.weights, 4).tolist(),
            "notices": self.notices,
        }


_LOADED: LoadedModel | None = None
_LOAD_ERROR: str | None = None


def set_model(loaded: LoadedModel | None, error: str | None = None) -> None:
    """Install the model that `analyse` uses (or the load error it reports)."""
    global _LOADED, _LOAD_ERROR
    _LOADED, _LOAD_ERROR = loaded, error


def _forward(
    loaded: LoadedModel, inputs: dict[str, torch.Tensor], drop: Sequence[str]
) -> tuple[np.ndarray, Any]:
    with torch.no_grad(), dropped(loaded.model, drop):
        out = loaded.model(**inputs, output_stream_weights=True)
    probs = torch.softmax(out.logits.float(), dim=-1)[0].numpy()
    weights = getattr(out, "stream_weights", None)
    return probs, None if weights is None else weights[:, 0].float().numpy()  # (L, T, S)


def analyse(
    text: Any, dropped_streams: Sequence[str] | None = None, loaded: LoadedModel | None = None
) -> Analysis:
    """Classify `text` and collect the streams and integration weights of every token.

    Args:
        text: the sentence (at most `MAX_CHARS` characters and `MAX_TOKENS` tokens are used).
        dropped_streams: streams whose contribution to the integrated pathway is removed for a second
            prediction (see the module docstring for the method).
        loaded: the model to use (default: the one installed with `set_model`).

    Returns:
        an `Analysis`; problems (empty input, load errors, bad stream names) are `notices`, never exceptions.
    """
    loaded = loaded or _LOADED
    result = Analysis()
    if loaded is None:
        result.notices.append(_LOAD_ERROR or "No model is loaded.")
        return result
    result.streams = list(loaded.streams)
    if not isinstance(text, str) or not text.strip():
        result.notices.append("Type a sentence to analyse.")
        return result
    if len(text) > MAX_CHARS:
        result.notices.append(
            f"The input has {len(text):,} characters; only the first {MAX_CHARS} were analysed."
        )
        text = text[:MAX_CHARS]
    if isinstance(dropped_streams, str):  # one name or "a,b" from an API client, not a list of characters
        dropped_streams = dropped_streams.split(",")
    drop = [s.strip() for s in (dropped_streams or []) if s and s.strip()]
    unknown = [s for s in drop if s not in loaded.droppable]
    if unknown:
        result.notices.append(f"Cannot drop {unknown}: droppable streams are {loaded.droppable or 'none'}.")
        drop = [s for s in drop if s in loaded.droppable]
    try:
        with loaded.lock:
            _analyse_into(result, loaded, text, drop)
    except Exception as err:  # the page gets one line; the traceback goes to the server log only
        logger.exception("analyse failed")
        result.probabilities, result.dropped_probabilities = {}, None
        result.notices.append(f"Could not analyse this input ({type(err).__name__}).")
    return result


def _analyse_into(result: Analysis, loaded: LoadedModel, text: str, drop: list[str]) -> None:
    processor = loaded.processor
    full = processor.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"]
    if len(full) > MAX_TOKENS:
        result.notices.append(
            f"The input has {len(full)} tokens; only the first {MAX_TOKENS} (with special tokens) were analysed."
        )
    encoding = processor(text, truncation=True, max_length=MAX_TOKENS)  # one text: [T] / [T, slot] lists
    inputs = {key: torch.tensor([value]) for key, value in encoding.items()}
    probs, weights = _forward(loaded, inputs, [])
    result.probabilities = {label: float(p) for label, p in zip(loaded.labels, probs)}
    if drop:
        dropped_probs, _ = _forward(loaded, inputs, drop)
        result.dropped = drop
        result.dropped_probabilities = {label: float(p) for label, p in zip(loaded.labels, dropped_probs)}
    result.tokens = processor.tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    result.weights = weights
    result.layers = loaded.integration_layers[: 0 if weights is None else weights.shape[0]]
    means = weights.mean(0) if weights is not None else None  # (T, S)
    for t, token in enumerate(result.tokens):
        phonemes = processor.phonetic_vocab.tokens(encoding["phonetic_ids"][t])
        morphs = processor.morph_vocab.tokens(encoding["morph_ids"][t])
        cells = [t, token, " ".join(phonemes), " + ".join(morphs)]
        if means is not None:
            cells += [round(float(v), 3) for v in means[t]]
        result.rows.append(cells)


# ------------------------------------------------------------------------------------------------ figures
def heatmap(analysis: Analysis) -> Any:
    """One panel per stream: integration weight per layer (rows) x token (columns); None without weights."""
    if analysis.weights is None or not analysis.tokens:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = analysis.weights  # (L, T, S)
    layers, tokens, streams = weights.shape
    vmin, vmax = min(0.0, float(weights.min())), max(1.0, float(weights.max()))
    width = min(18.0, 3.0 + 0.28 * tokens)
    fig, axes = plt.subplots(
        streams,
        1,
        figsize=(width, 1.2 + streams * (0.45 + 0.3 * layers)),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    step = max(1, tokens // 60)
    image = None
    for s, ax in enumerate(axes[:, 0]):
        image = ax.imshow(weights[:, :, s], aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
        ax.set_title(
            analysis.streams[s] if s < len(analysis.streams) else f"stream {s}", fontsize=9, loc="left"
        )
        ax.set_yticks(
            range(layers), [str(layer) for layer in analysis.layers] or list(range(layers)), fontsize=7
        )
        ax.set_ylabel("layer", fontsize=8)
    axes[-1, 0].set_xticks(
        range(0, tokens, step), analysis.tokens[::step], rotation=60, ha="right", fontsize=7
    )
    fig.colorbar(image, ax=axes[:, 0].tolist(), fraction=0.025, pad=0.01, label="weight")
    fig.suptitle("integration weight per layer × token", fontsize=9)
    return fig


def probability_table(analysis: Analysis) -> list[list[Any]]:
    """Rows of (class, p with all streams, p with the dropped streams removed, difference)."""
    rows = []
    for label, p in analysis.probabilities.items():
        q = analysis.dropped_probabilities.get(label) if analysis.dropped_probabilities else None
        rows.append(
            [label, round(p, 4), None if q is None else round(q, 4), None if q is None else round(q - p, 4)]
        )
    return rows


def notice_markdown(analysis: Analysis) -> str:
    lines = [f"⚠️ {n}" for n in analysis.notices]
    if analysis.dropped_probabilities:
        before = max(analysis.probabilities, key=analysis.probabilities.get)
        after = max(analysis.dropped_probabilities, key=analysis.dropped_probabilities.get)
        moved = "unchanged" if before == after else f"changes to **{after}**"
        lines.append(f"Without {', '.join(analysis.dropped)}: the prediction **{before}** {moved}.")
    return "\n\n".join(lines)


# ------------------------------------------------------------------------------------------------ UI
def build_demo(loaded: LoadedModel | None, load_error: str | None = None) -> Any:
    """The Gradio Blocks app around `analyse` (the model is installed with `set_model`)."""
    import gradio as gr

    set_model(loaded, load_error)
    streams = loaded.streams if loaded else []
    droppable = loaded.droppable if loaded else []
    weight_headers = [f"w {s}" for s in streams] if loaded and droppable else []

    def run(text: str, drop: list[str]) -> tuple:
        analysis = analyse(text, drop)
        table = analysis.rows or None
        return (
            notice_markdown(analysis),
            analysis.probabilities or None,
            analysis.dropped_probabilities or None,
            probability_table(analysis) or None,
            table,
            heatmap(analysis),
        )

    def run_json(text: str, drop: list[str] | None = None) -> dict:
        return analyse(text, drop or []).to_dict()

    with gr.Blocks(title="alpha-viz: multi-stream integration weights", analytics_enabled=False) as demo:
        gr.Markdown(
            "# alpha-viz\nHow much each stream (word pieces, phonemes, morphs) of a multi-stream classifier "
            "contributes at every token and layer, and what happens to the prediction without it."
        )
        if loaded is None:
            gr.Markdown(f"### ⚠️ The model could not be loaded\n\n{load_error}", elem_id="load-error")
        else:
            gr.Markdown(
                f"Model: `{_display_source(loaded.source)}` · integration: **{loaded.integration_type}** · streams: "
                f"{', '.join(streams)} · classes: {', '.join(loaded.labels)} · input limit: {MAX_CHARS} "
                f"characters / {MAX_TOKENS} tokens",
                elem_id="model-info",
            )
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(
                    label="Sentence", lines=2, placeholder="Type a sentence…", elem_id="sentence"
                )
            with gr.Column(scale=2):
                drop = gr.CheckboxGroup(
                    choices=droppable,
                    label="Drop streams (remove their contribution to the integrated pathway)",
                    elem_id="drop",
                )
                button = gr.Button("Analyse", variant="primary", elem_id="analyse")
        notice = gr.Markdown(elem_id="notice")
        with gr.Row():
            probs = gr.Label(label="Prediction (all streams)", elem_id="probs")
            probs_dropped = gr.Label(
                label="Prediction with the dropped streams removed", elem_id="probs-dropped"
            )
        shift = gr.Dataframe(
            headers=["class", "p (all streams)", "p (dropped)", "difference"],
            label="How the prediction moves",
            interactive=False,
            elem_id="shift",
        )
        tokens = gr.Dataframe(
            headers=["#", "word piece", "phonemes", "morphs", *weight_headers],
            label="The streams of every token (w = mean integration weight over layers)",
            interactive=False,
            elem_id="tokens",
        )
        plot = gr.Plot(label="Integration weights: layer × token, one panel per stream", elem_id="heatmap")
        gr.Examples(EXAMPLES, inputs=[text])
        outputs = [notice, probs, probs_dropped, shift, tokens, plot]
        kwargs = {
            "concurrency_limit": CONCURRENCY_LIMIT,
            "concurrency_id": "model",
            "time_limit": TIME_LIMIT_S,
        }
        button.click(run, inputs=[text, drop], outputs=outputs, api_name="analyse", **kwargs)
        text.submit(run, inputs=[text, drop], outputs=outputs, api_visibility="private", **kwargs)
        gr.api(run_json, api_name="predict", concurrency_limit=CONCURRENCY_LIMIT, concurrency_id="model")
    demo.queue(max_size=MAX_QUEUE, default_concurrency_limit=CONCURRENCY_LIMIT)
    return demo


def _display_source(source: str) -> str:
    """A Hub id as is; a local folder by its name only (the page does not show the server's paths)."""
    path = Path(source)
    return path.name if path.exists() else source


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="alpha-viz: integration weights of a multi-stream classifier"
    )
    parser.add_argument(
        "--model", default=os.environ.get("MSNN_MODEL", DEFAULT_MODEL), help="folder or Hub id"
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("MSNN_HOST") or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        help="bind address (default 127.0.0.1: this machine only)",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    loaded, error = None, None
    try:
        loaded = load_model(args.model)
    except ModelLoadError as err:
        error = str(err)
        logger.error("%s", error)
    demo = build_demo(loaded, error)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        show_error=False,
        ssr_mode=False,
        footer_links=["api"],
        theme=_theme(),
    )


def _theme() -> Any:
    """The default theme with system fonts: the page loads nothing from third-party servers."""
    import gradio as gr

    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )


if __name__ == "__main__":
    main()
