"""alpha-viz: what each stream of a multi-stream (msnn_hf) model contributes, token by token.

**Text tab** (a sentence classifier). Type a sentence and see
  * the predicted class probabilities;
  * the three streams of every token side by side (word piece, phonemes, morphs);
  * the integration weights per layer x token x stream as a heatmap (LI: contribution shares
    ``||W_s r_s|| / sum ||W_s' r_s'||``; DM: the mixing weights ``alpha_s``);
  * how the prediction moves when streams are dropped.

**Image tab** (a `MultiStreamVisionEncoderDecoder`). Upload an image or pick an example, get its caption, or ask
a question (VQA: the question is the decoder prompt, the generated continuation is the answer), with every
generated token coloured by its α_vision and the numbers in a table. The model generates greedily; one
teacher-forced forward over prompt + generated tokens with ``output_stream_weights=True`` then gives the stream
weights at every position, and a generated token's α_vision is read at the position that *predicts* it (the one
before it), averaged over the integration points (``modality_weights()``: the vision stream's share in the
integrated state, gate included). A model without per-token α (LI, DM with scalar / channel α, concat) still
captions; the tab says why no α is coloured.

**Dropping a stream** removes its term from the integrated pathway at every integration point: a forward
pre-hook on each integration module replaces that stream's raw output ``r_s`` with zeros. For Linear
Integration the term ``W_s r_s`` is then exactly zero; for Direct Mixing ``u_s = rms_normalise(P_s 0) = 0``, so
``alpha_s u_s`` is zero (with token-level alpha the gate re-distributes over the remaining streams). The stream's
own layers still run; nothing else changes. The integrated pathway starts from the semantic embedding output
``z_0``, so dropping the semantic stream removes its layer outputs but not that starting point. (Setting a
stream's ids to ``<pad>`` instead would still feed the stream's biases and position embeddings into the sum.)

Configuration (command line or environment; command line wins):
  ``--model`` / ``MSNN_MODEL``: the sentence classifier, a local checkpoint folder or a Hub id (default
  ``msnn/li-bert-sst5``; ``none``: no text tab);
  ``--vision_model`` / ``MSNN_VISION_MODEL``: the vision encoder-decoder (folder or Hub id; safetensors only);
  adds the image tab (default: none);
  ``--data_dir`` / ``MSNN_DATA_DIR``: the shared data folder whose Flickr8k / DAQUAR test photos become the image
  tab's examples, read where they lie (default: msnn_hf's default data folder; none there, no examples);
  ``--host`` / ``MSNN_HOST`` or ``GRADIO_SERVER_NAME``: bind address (default ``127.0.0.1``);
  ``--port`` / ``GRADIO_SERVER_PORT``: port (default 7860).

Work per request is bounded: at most `MAX_CHARS` characters and `MAX_TOKENS` tokens are analysed (a visible
notice says when the input was cut); images are refused above `MAX_IMAGE_PIXELS` pixels (read from the file
header before decoding) or `MAX_UPLOAD` bytes, questions are cut to `MAX_QUESTION_CHARS` characters and
`MAX_QUESTION_TOKENS` tokens, at most `MAX_NEW_TOKENS` tokens are generated; a file that is no image, or a
truncated one, gets a message, not a traceback. One request runs at a time (`CONCURRENCY_LIMIT`, both tabs) and
at most `MAX_QUEUE` wait. No telemetry: Gradio analytics and Hugging Face Hub telemetry are switched off before
gradio is imported.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import html  # noqa: E402
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
VISION_MODEL_TYPE = "multistream_vision_encoder_decoder"
MAX_IMAGE_PIXELS = 25_000_000  # checked on the file header before decoding (a 6,000 x 4,000 photo passes)
MAX_UPLOAD = "20mb"  # Gradio refuses larger uploads
MAX_NEW_TOKENS = 40
DEFAULT_NEW_TOKENS = 20
MAX_QUESTION_CHARS = 300
MAX_QUESTION_TOKENS = 48
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


def _checked_source(source: str) -> tuple[Path, str]:
    """`source` as a path, after the local-folder checks (`_check_local_checkpoint`) when it is a folder, and the
    phrase that load errors append when it is no folder (a Hub id).

    Raises:
        ModelLoadError: a file instead of a folder, a missing local folder, or a broken one.
    """
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
    return folder, "" if folder.exists() else f" (and there is no local folder {source} either)"


def _model_type(folder: Path) -> str | None:
    """``model_type`` of a local checkpoint's config.json (None for a Hub id or a config without one)."""
    if not folder.is_dir():
        return None
    value = _json_object(folder / "config.json").get("model_type")
    return value if isinstance(value, str) else None


def load_model(source: str) -> LoadedModel:
    """Load a sequence classifier and its processor from a local folder or a Hub id.

    Raises:
        ModelLoadError: with a one-paragraph explanation (never a traceback).
    """
    from transformers import AutoModelForSequenceClassification

    from msnn_hf import MultiStreamProcessor  # importing msnn_hf registers its Auto classes

    folder, no_folder = _checked_source(source)
    if _model_type(folder) == VISION_MODEL_TYPE:
        raise ModelLoadError(
            f"{source} is a multi-stream vision encoder-decoder (captioning / VQA), not a sentence classifier: "
            "give it with --vision_model (MSNN_VISION_MODEL)."
        )
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


# ------------------------------------------------------------------------------------------------ images
@dataclass
class LoadedVisionModel:
    """A `MultiStreamVisionEncoderDecoder`, its `MultiStreamVisionProcessor` and what the image tab needs."""

    model: Any
    processor: Any
    source: str
    streams: list[str]
    integration_type: str
    alpha_granularity: str
    integration_layers: list[int]
    max_positions: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def alpha_kind(self) -> str:
        """``"token"`` (DM-token: one α per token), ``"constant"`` (DM scalar / channel: the same α at every
        token), ``"li"`` (Linear Integration: no α) or ``"none"`` (no integration weights, e.g. concat)."""
        if self.integration_type == "dm":
            return "token" if self.alpha_granularity == "token" else "constant"
        return "li" if self.integration_type == "li" else "none"

    @property
    def alpha_notice(self) -> str | None:
        """Why no α_vision per token is shown (None when it is)."""
        if self.alpha_kind == "token":
            return None
        if self.alpha_kind == "constant":
            return (
                f"This model mixes by Direct Mixing with {self.alpha_granularity} α: one learned weight per "
                "integration point, the same at every token, so there is no α_vision per token to colour (its "
                "value is given below)."
            )
        if self.alpha_kind == "li":
            return (
                "This model integrates by Linear Integration (LI): it has no mixing weight α, so no α_vision per "
                "token is shown. The caption and the answer are generated as usual."
            )
        return (
            f"This model's integration ({self.integration_type}) reports no stream weights, so no α_vision per "
            "token is shown."
        )


def _check_vision_folder(folder: Path) -> None:
    """The files a `MultiStreamVisionProcessor` folder needs beyond `_check_local_checkpoint`'s."""
    config = _json_object(folder / "processor_config.json")
    if config.get("processor_class") != "MultiStreamVisionProcessor":
        raise ModelLoadError(
            f"{folder / 'processor_config.json'} is for {config.get('processor_class')!r}, not a "
            "MultiStreamVisionProcessor."
        )
    if not (folder / "preprocessor_config.json").is_file():
        raise ModelLoadError(
            f"Checkpoint folder {folder} is missing preprocessor_config.json (the image processor)."
        )
    text = config.get("text_processor")
    text_folder = folder / str(text.get("folder", "")) if isinstance(text, dict) else None
    if text_folder is None or not text_folder.is_dir():
        raise ModelLoadError(
            f"Checkpoint folder {folder} is missing its text processor folder (text_processor/)."
        )


def load_vision_model(source: str) -> LoadedVisionModel:
    """Load a `MultiStreamVisionEncoderDecoder` and its processor from a local folder or a Hub id (safetensors
    weights only; a Hub repository is fetched with `snapshot_download`, without pickles or code).

    Raises:
        ModelLoadError: with a one-paragraph explanation (never a traceback).
    """
    from msnn_hf import MultiStreamVisionEncoderDecoder, MultiStreamVisionProcessor

    folder, no_folder = _checked_source(source)
    try:
        if not folder.exists():  # a Hub id: the files, then the same checks as for a local folder
            from huggingface_hub import snapshot_download

            folder = Path(
                snapshot_download(source, allow_patterns=["*.json", "*.safetensors", "text_processor/*"])
            )
            _check_local_checkpoint(folder)
        model_type = _model_type(folder)
        if model_type != VISION_MODEL_TYPE:
            raise ModelLoadError(
                f"{source} is a {model_type or 'model without a model_type'} checkpoint, not a multi-stream vision "
                f"encoder-decoder ({VISION_MODEL_TYPE}): the image tab needs a decoder with a vision stream (a "
                "sentence classifier goes to --model)."
            )
        _check_vision_folder(folder)
        model = MultiStreamVisionEncoderDecoder.from_pretrained(str(folder), use_safetensors=True)
        processor = MultiStreamVisionProcessor.from_pretrained(str(folder))
    except ModelLoadError:
        raise
    except OSError as err:
        raise ModelLoadError(f"Could not load {source}: {_first_line(err)}{no_folder}") from err
    except Exception as err:
        logger.exception("loading %s failed", source)
        raise ModelLoadError(
            f"Could not load {source}: {type(err).__name__}: {_first_line(err)}{no_folder}"
        ) from err
    model.eval()
    decoder = model.config.decoder
    return LoadedVisionModel(
        model=model,
        processor=processor,
        source=str(source),
        streams=list(decoder.streams),
        integration_type=str(decoder.integration_type),
        alpha_granularity=str(getattr(decoder, "alpha_granularity", "") or ""),
        integration_layers=list(decoder.integration_layers or []),
        max_positions=int(decoder.n_positions),
    )


@dataclass
class ImageAnalysis:
    """What the image tab shows for one caption or one answer.

    Attributes:
        task: ``"caption"`` or ``"answer"``.
        prompt: the question the decoder was prompted with (after cutting; empty for a caption).
        text: the generated caption / answer, special tokens removed.
        tokens: the generated tokens, as vocabulary entries (the end-of-text token included when the model
            produced it).
        pieces: the text of every token (``" man"`` for the byte-level BPE entry ``"Ġman"``).
        token_ids: their ids.
        alpha_vision: α_vision per generated token, the mean over integration points (None without per-token α).
        alpha_text: α_text per generated token (semantic + other text streams), likewise.
        alpha_by_point: α_vision per integration point x generated token, shape ``(points, tokens)``.
        mixing_vision: DM-token's softmax weight of the vision stream per generated token (mean over points):
            which stream the token gate chose, before the integration gate scales it (None without DM-token).
        layers: the decoder block of every integration point (the rows of `alpha_by_point`).
        constant_alpha: α_vision of a model whose α is the same at every token (DM scalar / channel), else None.
        image_info: size and mode of the image read.
        notices: messages to show (bad image, input cut, no α, ...).
    """

    task: str = "caption"
    prompt: str = ""
    text: str = ""
    tokens: list[str] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    alpha_vision: list[float] | None = None
    alpha_text: list[float] | None = None
    alpha_by_point: np.ndarray | None = None
    mixing_vision: list[float] | None = None
    layers: list[int] = field(default_factory=list)
    constant_alpha: float | None = None
    image_info: str = ""
    notices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.token_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "prompt": self.prompt,
            "text": self.text,
            "tokens": self.tokens,
            "pieces": self.pieces,
            "alpha_vision": self.alpha_vision,
            "alpha_text": self.alpha_text,
            "alpha_vision_by_point": None
            if self.alpha_by_point is None
            else np.round(self.alpha_by_point, 5).tolist(),
            "mixing_alpha_vision": self.mixing_vision,
            "layers": self.layers,
            "constant_alpha_vision": self.constant_alpha,
            "image": self.image_info,
            "notices": self.notices,
        }


_VISION: LoadedVisionModel | None = None
_VISION_ERROR: str | None = None


def set_vision_model(loaded: LoadedVisionModel | None, error: str | None = None) -> None:
    """Install the model that `describe_image` uses (or the load error it reports)."""
    global _VISION, _VISION_ERROR
    _VISION, _VISION_ERROR = loaded, error


def _image_source(image: Any) -> tuple[Any, str]:
    """What `load_rgb_image` reads for a Gradio payload (``{"path": ..., "orig_name": ...}``), a path or a PIL
    image, and the name the page may show (never a server path)."""
    if isinstance(image, dict):
        path = image.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError("the upload carried no file")
        return path, str(image.get("orig_name") or Path(path).name)
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image), Path(image).name
    return image, "the image"


EXIF_ORIENTATION = 274  # the EXIF orientation tag
# the transposition that undoes each orientation value (as PIL.ImageOps.exif_transpose)
EXIF_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
                  7: "TRANSVERSE", 8: "ROTATE_90"}  # fmt: skip


def read_image(image: Any) -> tuple[Any, str]:
    """Read an upload as an RGB PIL image (grey-scale, palette, 16-bit converted; transparency on white) with at
    most `MAX_IMAGE_PIXELS` pixels (checked on the file header, before decoding). The image is decoded at full
    size (no reduced JPEG decoding here): the model's image processor sees what it would see for the file, turned
    upright when the file carries an EXIF orientation.

    Returns:
        the image and a one-line description of what was read (size, format, mode).

    Raises:
        ImageLoadError: a non-image, truncated or too large file, in words that name the upload only.
    """
    from PIL import Image

    from msnn_hf.image_processing_efficientnet_lite import ImageLoadError, load_rgb_image

    try:
        source, name = _image_source(image)
    except ValueError as err:
        raise ImageLoadError(f"Could not read the upload: {err}.") from err
    try:
        rgb = load_rgb_image(source, max_image_pixels=MAX_IMAGE_PIXELS)
    except ImageLoadError as err:
        message = str(err)
        if isinstance(source, str):
            message = message.replace(repr(source), repr(name))  # the page does not show the server's paths
        raise ImageLoadError(message) from err
    # what the upload was: a file's header (read again, cheap: the file was decoded above) or the image given
    if isinstance(source, str):
        header = Image.open(source)
    else:
        header = source if isinstance(source, Image.Image) else rgb
    try:
        size, mode, kind = header.size, header.mode, header.format or "image"
        transparent = "A" in mode or (mode == "P" and "transparency" in header.info)
        orientation = header.getexif().get(EXIF_ORIENTATION, 1)
    finally:
        if isinstance(source, str):
            header.close()
    info = f"{name}: {kind} {size[0]}×{size[1]}, mode {mode}"
    if mode != "RGB":
        info += " → RGB" + (" (transparency composited onto white)" if transparent else "")
    if orientation in EXIF_TRANSPOSE:  # a camera's "rotate on display" tag: shown and captioned upright
        rgb = rgb.transpose(Image.Transpose[EXIF_TRANSPOSE[orientation]])
        info += f", EXIF orientation {orientation} applied"
    return rgb, info


def describe_image(
    image: Any,
    question: str | None = None,
    max_new_tokens: Any = DEFAULT_NEW_TOKENS,
    loaded: LoadedVisionModel | None = None,
) -> ImageAnalysis:
    """Caption an image (`question` None) or answer a question about it, with α_vision per generated token.

    The model generates greedily (BOS + question as the decoder prompt). Then one teacher-forced forward over
    prompt + generated tokens with ``output_stream_weights=True`` gives the stream weights at every position; a
    generated token's α_vision is read at the position that *predicts* it (the one before it) and averaged over
    the integration points (`MultiStreamVisionEncoderDecoder.modality_weights`).

    Args:
        image: a Gradio upload payload, a file path or a PIL image.
        question: the question (VQA), or None for a caption. At most `MAX_QUESTION_CHARS` characters and
            `MAX_QUESTION_TOKENS` tokens are used.
        max_new_tokens: at most this many tokens are generated (clamped to 1..`MAX_NEW_TOKENS` and to the
            decoder's positions).
        loaded: the model (default: the one installed with `set_vision_model`).

    Returns:
        an `ImageAnalysis`; problems (bad image, empty question, load errors) are `notices`, never exceptions.
    """
    from msnn_hf import ImageLoadError

    loaded = loaded or _VISION
    result = ImageAnalysis(task="caption" if question is None else "answer")
    if loaded is None:
        result.notices.append(
            _VISION_ERROR or "No image model is loaded (start the app with --vision_model PATH)."
        )
        return result
    result.layers = list(loaded.integration_layers)
    if image is None:
        result.notices.append("Upload an image or pick an example.")
        return result
    if question is not None:
        question = question.strip() if isinstance(question, str) else ""
        if not question:
            result.notices.append("Type a question about the image.")
            return result
        if len(question) > MAX_QUESTION_CHARS:
            result.notices.append(
                f"The question has {len(question):,} characters; only the first {MAX_QUESTION_CHARS} were used."
            )
            question = question[:MAX_QUESTION_CHARS]
    new_tokens = _clamp_new_tokens(max_new_tokens, result)
    try:
        rgb, result.image_info = read_image(image)
    except ImageLoadError as err:
        result.notices.append(str(err))
        return result
    except Exception as err:  # anything PIL raised that load_rgb_image did not name
        logger.exception("reading the image failed")
        result.notices.append(f"Could not read this image ({type(err).__name__}).")
        return result
    try:
        with loaded.lock:
            _describe_into(result, loaded, rgb, question or "", new_tokens)
    except Exception as err:
        logger.exception("describe_image failed")
        result.tokens, result.pieces, result.token_ids, result.text = [], [], [], ""
        result.alpha_vision = result.alpha_text = result.alpha_by_point = None
        result.notices.append(f"Could not process this image ({type(err).__name__}).")
    return result


def _clamp_new_tokens(value: Any, result: ImageAnalysis) -> int:
    try:
        wanted = int(float(value))
    except (TypeError, ValueError):
        wanted = DEFAULT_NEW_TOKENS
    if wanted > MAX_NEW_TOKENS:
        result.notices.append(f"At most {MAX_NEW_TOKENS} new tokens are generated per request.")
    return min(max(wanted, 1), MAX_NEW_TOKENS)


def _describe_into(
    result: ImageAnalysis, loaded: LoadedVisionModel, rgb: Any, question: str, new_tokens: int
) -> None:
    processor, model = loaded.processor, loaded.model
    result.prompt = question
    if question:
        ids = processor.tokenizer(question, add_special_tokens=False)["input_ids"]
        if len(ids) > MAX_QUESTION_TOKENS:
            result.notices.append(
                f"The question has {len(ids)} tokens; only the first {MAX_QUESTION_TOKENS} were used."
            )
            result.prompt = processor.decode(ids[:MAX_QUESTION_TOKENS]).strip()
    inputs = processor(
        images=[rgb],
        text=[question] if question else None,
        truncation=True,
        max_length=1 + MAX_QUESTION_TOKENS,
    )
    prompt_ids = inputs["decoder_input_ids"]
    start = prompt_ids.shape[1]  # BOS + question
    room = loaded.max_positions - start
    if room < 1:
        result.notices.append(f"The prompt fills all {loaded.max_positions} positions of the decoder.")
        return
    if new_tokens > room:
        result.notices.append(f"The decoder has room for {room} more tokens after this prompt.")
        new_tokens = room
    with torch.no_grad():
        sequence = model.generate(
            **inputs, max_new_tokens=new_tokens, do_sample=False, num_beams=1, num_return_sequences=1
        )
    generated = sequence[0, start:].tolist()
    result.token_ids = generated
    result.tokens = processor.tokenizer.convert_ids_to_tokens(generated)
    result.pieces = [processor.tokenizer.convert_tokens_to_string([token]) for token in result.tokens]
    result.text = processor.decode(generated, skip_special_tokens=True).strip()
    if not generated:
        result.notices.append("The model generated no token.")
        return
    if loaded.alpha_kind in ("li", "none"):
        result.notices.append(loaded.alpha_notice)
        return
    # teacher-forced: position t predicts token t + 1, so the generated tokens are predicted at start - 1, ...
    forced = sequence[:, :-1]
    from msnn_hf.analysis import capture_mixing_weights

    with torch.no_grad(), capture_mixing_weights(model) as mixing:
        out = model(
            pixel_values=inputs["pixel_values"],
            decoder_input_ids=forced,
            decoder_attention_mask=torch.ones_like(forced),
            output_stream_weights=True,
        )
    predicted = out.logits[0, start - 1 :].argmax(-1).tolist()
    differ = [i for i, (p, g) in enumerate(zip(predicted, generated)) if p != g]
    if differ:  # a near tie between two tokens, decided differently by the cached and the full forward
        result.notices.append(
            f"At generated token {differ[0]} the teacher-forced forward prefers another token (a near tie); "
            "its α is still read at the position that produced the generated token."
        )
    if out.stream_weights is None:
        result.notices.append(loaded.alpha_notice or "This model reports no stream weights.")
        return
    alpha = model.modality_weights(out.stream_weights.float())
    vision = alpha["vision"][:, 0, start - 1 :].numpy()  # (points, generated)
    text = alpha["text"][:, 0, start - 1 :].numpy()
    if loaded.alpha_kind == "constant":
        result.constant_alpha = float(vision.mean())
        result.notices.append(
            f"{loaded.alpha_notice} α_vision = {result.constant_alpha:.4g} (mean over points)."
        )
        return
    result.alpha_by_point = vision
    result.alpha_vision = [float(v) for v in vision.mean(0)]
    result.alpha_text = [float(v) for v in text.mean(0)]
    if mixing:
        index = model.config.decoder.streams.index("vision")
        chosen = torch.stack([m[0, start - 1 :, index] for m in mixing]).float()  # (points, generated)
        result.mixing_vision = [float(v) for v in chosen.mean(0)]
    if not np.any(vision):
        result.notices.append(
            "α_vision is 0 at every token: the integration gates are closed, the model ignores the image."
        )


# α colour scale, diverging around 0 (after ColorBrewer's RdBu): positive α_vision blue, negative red, linear
# between the stops; α_vision is negative where the integration gates tanh(β) are (the vision term is subtracted)
_NEUTRAL = (0.97, 0.97, 0.97)
_POSITIVE = (_NEUTRAL, (0.57, 0.77, 0.87), (0.13, 0.40, 0.67))
_NEGATIVE = (_NEUTRAL, (0.96, 0.65, 0.51), (0.70, 0.09, 0.17))


def _colour(t: float) -> tuple[str, str]:
    """Background and text colour for a value `t` in [-1, 1] (0: neutral grey; 1: dark blue; -1: dark red)."""
    stops = _POSITIVE if t >= 0 else _NEGATIVE
    t = min(abs(t), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    r, g, b = (a + (c - a) * f for a, c in zip(stops[i], stops[i + 1]))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return (
        f"rgb({round(255 * r)}, {round(255 * g)}, {round(255 * b)})",
        "#fff" if luminance < 0.45 else "#111",
    )


def alpha_html(analysis: ImageAnalysis) -> str:
    """The generated tokens, each coloured by its α_vision with the number under it, on a scale from 0 to the
    largest |α_vision| of this text (blue above 0, red below); plain tokens when there is no per-token α.
    Everything from the model is HTML-escaped."""
    if not analysis.tokens:
        return ""
    alphas = analysis.alpha_vision
    mixing = analysis.mixing_vision
    top = max(abs(a) for a in alphas) if alphas else 0.0
    pieces = analysis.pieces or analysis.tokens
    cells = []
    for i, token in enumerate(analysis.tokens):
        label = html.escape(pieces[i].strip() or token)
        if alphas is None:
            cells.append(f'<span class="alpha-token plain" data-index="{i}">{label}</span>')
            continue
        if mixing is not None:  # the token gate's choice, on the absolute scale 0..1
            background, colour = _colour(mixing[i])
            number = f"{mixing[i]:.2f}"
            extra = f' data-mixing="{mixing[i]:.6g}"'
            title = f"α_vision (mixing) = {mixing[i]:.4g}; share in z = {alphas[i]:.4g}"
        else:
            background, colour = _colour(alphas[i] / top if top > 0 else 0.0)
            number, extra, title = f"{alphas[i]:.3g}", "", f"α_vision = {alphas[i]:.4g}"
        cells.append(
            f'<span class="alpha-token" data-index="{i}" data-alpha="{alphas[i]:.6g}"{extra} '
            f'title="{html.escape(token)}: {title}" '
            f'style="background: {background}; color: {colour}">'
            f'<span class="tok">{label}</span><span class="num">{number}</span></span>'
        )
    legend = ""
    if mixing is not None:
        stops = ", ".join(_colour(k / 4)[0] for k in range(5))
        legend = (
            f'<div class="alpha-legend">α_vision (mixing): 0 <span class="bar" style="background: '
            f'linear-gradient(to right, {stops})"></span> 1</div><div class="alpha-note">colour and number: '
            "the token gate's weight of the vision stream (DM-token softmax, 0 = all text, 1 = all image); "
            "the share in z, gate included, is in the table and the tooltip</div>"
        )
    elif alphas is not None:
        low = -top if min(alphas) < 0 else 0.0
        stops = ", ".join(_colour(low / top + k / 4 * (1 - low / top))[0] for k in range(5)) if top else ""
        bar = (
            f'<span class="bar" style="background: linear-gradient(to right, {stops})"></span>' if top else ""
        )
        legend = (
            f'<div class="alpha-legend">α_vision: {low:.3g} {bar} {top:.3g}</div><div class="alpha-note">'
            "colour: 0 (grey) to the largest |α_vision| of this text; blue above 0, red below</div>"
        )
    return f'<div class="alpha-tokens">{"".join(cells)}</div>{legend}'


ALPHA_CSS = """
.alpha-tokens { display: flex; flex-wrap: wrap; gap: 4px; padding: 4px 0; }
.alpha-token { display: inline-flex; flex-direction: column; align-items: center; padding: 2px 6px;
               border-radius: 4px; border: 1px solid #ccc; font-family: ui-monospace, monospace; }
.alpha-token .num { font-size: 0.7em; opacity: 0.9; }
.alpha-legend { font-size: 0.85em; margin-top: 6px; display: flex; align-items: center; gap: 6px; }
.alpha-legend .bar { display: inline-block; width: 160px; height: 12px; border: 1px solid #999; }
.alpha-note { font-size: 0.75em; opacity: 0.8; }
"""


def alpha_table(analysis: ImageAnalysis) -> list[list[Any]]:
    """Rows of (position, token text, α_vision, α_text, α_vision at every integration point)."""
    rows = []
    pieces = analysis.pieces or analysis.tokens
    for i, token in enumerate(analysis.tokens):
        row: list[Any] = [i, pieces[i].strip() or token]
        if analysis.alpha_vision is not None:  # 4 significant digits: trained gates give |α_vision| ~ 1e-3
            mixing = analysis.mixing_vision[i] if analysis.mixing_vision is not None else float("nan")
            row += [_digits(mixing), _digits(analysis.alpha_vision[i]), _digits(analysis.alpha_text[i])]
            row += [_digits(v) for v in analysis.alpha_by_point[:, i]]
        rows.append(row)
    return rows


def _digits(value: float, significant: int = 4) -> float:
    return float(f"{float(value):.{significant}g}")


def image_notice_markdown(analysis: ImageAnalysis) -> str:
    lines = [f"⚠️ {n}" for n in analysis.notices]
    if analysis.image_info:
        lines.append(f"Image: {analysis.image_info}")
    if analysis.prompt:
        lines.append(f"Question: {analysis.prompt}")
    return "\n\n".join(lines)


def image_examples(
    data_dir: str | os.PathLike | None, captions: int = 3, questions: int = 2
) -> list[list[str]]:
    """``[image path, question]`` examples from the shared data folder: the first `captions` Flickr8k test photos
    (no question) and the first `questions` DAQUAR test questions, one per photo. Empty when the folder or its
    files are absent; the photos are referenced where they lie, never copied."""
    if not data_dir:
        return []
    root = Path(data_dir).expanduser()
    examples: list[list[str]] = []
    for folder, count, with_question in (("captions-flickr8k/captions.jsonl", captions, False),
                                         ("vqa-daquar/qa.jsonl", questions, True)):  # fmt: skip
        index = root / folder
        if not index.is_file():
            continue
        try:
            with index.open(encoding="utf-8") as lines:
                for line in lines:
                    if len([e for e in examples if bool(e[1]) == with_question]) >= count:
                        break
                    row = json.loads(line)
                    image = index.parent / str(row.get("image", ""))
                    seen = {e[0] for e in examples}
                    if row.get("split") == "test" and image.is_file() and str(image) not in seen:
                        examples.append([str(image), str(row.get("question", "")) if with_question else ""])
        except (OSError, ValueError) as err:
            logger.warning("no examples from %s: %s", index, err)
    return examples


# ------------------------------------------------------------------------------------------------ UI
TEXT_INTRO = (
    "How much each stream (word pieces, phonemes, morphs) of a multi-stream classifier contributes at every token "
    "and layer, and what happens to the prediction without it."
)
IMAGE_INTRO = (
    "Caption an image, or ask a question about it, with a multi-stream vision encoder-decoder, and see how much "
    "of every generated token came from the image.\n\n"
    "**α_vision of a token** is read at the position that *predicts* that token (the position before it), "
    "averaged over the integration points: the model generates greedily, then one teacher-forced forward over "
    "prompt + generated tokens returns the weights. **Colour and number:** DM-token's own choice, the softmax "
    "weight of the vision stream in the mix (`msnn_hf.analysis.capture_mixing_weights`; 0 = all text, 1 = all "
    "image). **The table** adds each stream's share *in z* (`output_stream_weights=True`, `modality_weights()`; "
    "α_vision + α_text = 1): the mixing weight times the gate's mean opening τ = mean(tanh(β)), so a closed gate "
    "gives 0 and a gate that averages below 0 a negative share (the vision term is subtracted). "
    "For a question, the question is the decoder's prompt and the generated continuation is the answer."
)


def build_demo(
    loaded: LoadedModel | None,
    load_error: str | None = None,
    *,
    vision: LoadedVisionModel | None = None,
    vision_error: str | None = None,
    text_tab: bool = True,
    image_tab: bool | None = None,
    examples: Sequence[Sequence[str]] = (),
) -> Any:
    """The Gradio Blocks app: a text tab around `analyse` (a sentence classifier, installed with `set_model`)
    and / or an image tab around `describe_image` (a vision encoder-decoder, installed with
    `set_vision_model`). The image tab is shown when `image_tab` is true (default: when a vision model or its
    load error is given); `examples` are ``[image path, question]`` rows for it."""
    import gradio as gr

    set_model(loaded, load_error)
    set_vision_model(vision, vision_error)
    if image_tab is None:
        image_tab = vision is not None or vision_error is not None
    kwargs = {"concurrency_limit": CONCURRENCY_LIMIT, "concurrency_id": "model", "time_limit": TIME_LIMIT_S}
    with gr.Blocks(title="alpha-viz: multi-stream integration weights", analytics_enabled=False) as demo:
        gr.Markdown("# alpha-viz")
        if text_tab and image_tab:
            with gr.Tabs():
                with gr.Tab("Sentence (text model)", id="text-tab", elem_id="text-tab"):
                    _text_tab(gr, loaded, load_error, kwargs)
                with gr.Tab("Image (vision model)", id="image-tab", elem_id="image-tab"):
                    _image_tab(gr, vision, vision_error, examples, kwargs)
        elif image_tab:
            _image_tab(gr, vision, vision_error, examples, kwargs)
        else:
            _text_tab(gr, loaded, load_error, kwargs)
    demo.queue(max_size=MAX_QUEUE, default_concurrency_limit=CONCURRENCY_LIMIT)
    return demo


def _text_tab(gr: Any, loaded: LoadedModel | None, load_error: str | None, kwargs: dict) -> None:
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

    gr.Markdown(TEXT_INTRO)
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
            text = gr.Textbox(label="Sentence", lines=2, placeholder="Type a sentence…", elem_id="sentence")
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
        probs_dropped = gr.Label(label="Prediction with the dropped streams removed", elem_id="probs-dropped")
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
    button.click(run, inputs=[text, drop], outputs=outputs, api_name="analyse", **kwargs)
    text.submit(run, inputs=[text, drop], outputs=outputs, api_visibility="private", **kwargs)
    gr.api(run_json, api_name="predict", concurrency_limit=CONCURRENCY_LIMIT, concurrency_id="model")


def _image_tab(
    gr: Any,
    vision: LoadedVisionModel | None,
    vision_error: str | None,
    examples: Sequence[Sequence[str]],
    kwargs: dict,
) -> None:
    layers = vision.integration_layers if vision else []
    alpha_headers = [
        "α_vision (mixing)",
        "α_vision (share in z)",
        "α_text (share in z)",
        *[f"α_vision share @ block {layer}" for layer in layers],
    ]
    if vision is not None and vision.alpha_kind != "token":
        alpha_headers = []

    def outputs_of(analysis: ImageAnalysis) -> tuple:
        return (
            image_notice_markdown(analysis),
            analysis.text,
            alpha_html(analysis),
            alpha_table(analysis) or None,
        )

    # the events run with preprocess=False: the image arrives as Gradio's upload record ({"path": ...} inside
    # Gradio's upload cache) and is read here, so a file PIL cannot open gets a message instead of a failed event
    def caption(image: Any, max_new_tokens: Any) -> tuple:
        return outputs_of(describe_image(image, None, max_new_tokens))

    def ask(image: Any, question: str, max_new_tokens: Any) -> tuple:
        return outputs_of(
            describe_image(image, question if isinstance(question, str) else "", max_new_tokens)
        )

    gr.Markdown(IMAGE_INTRO)
    if vision is None:
        reason = vision_error or "No image model is loaded: start the app with --vision_model PATH."
        gr.Markdown(f"### ⚠️ The image model could not be loaded\n\n{reason}", elem_id="vision-load-error")
    else:
        info = (
            f"Model: `{_display_source(vision.source)}` · integration: **{vision.integration_type}"
            f"{'-' + vision.alpha_granularity if vision.integration_type == 'dm' else ''}** at blocks "
            f"{', '.join(map(str, layers)) or '–'} · streams: {', '.join(vision.streams)} · limits: images up to "
            f"{MAX_IMAGE_PIXELS / 1e6:g} megapixels ({MAX_UPLOAD}), questions up to {MAX_QUESTION_CHARS} characters "
            f"/ {MAX_QUESTION_TOKENS} tokens, at most {MAX_NEW_TOKENS} new tokens (greedy decoding)"
        )
        gr.Markdown(info, elem_id="vision-model-info")
        if vision.alpha_notice:
            gr.Markdown(f"ℹ️ {vision.alpha_notice}", elem_id="alpha-kind-notice")
    with gr.Row():
        with gr.Column(scale=2):
            image = gr.Image(
                type="filepath",
                image_mode=None,
                sources=["upload", "clipboard"],
                label="Image",
                height=300,
                elem_id="image-input",
            )
        with gr.Column(scale=3):
            new_tokens = gr.Slider(
                1,
                MAX_NEW_TOKENS,
                value=DEFAULT_NEW_TOKENS,
                step=1,
                label="Max new tokens",
                elem_id="new-tokens",
            )
            caption_button = gr.Button("Caption", variant="primary", elem_id="caption-button")
            question = gr.Textbox(
                label="Question (VQA)", lines=1, placeholder="Ask about the image…", elem_id="question"
            )
            ask_button = gr.Button("Ask", variant="primary", elem_id="ask-button")
    with gr.Row():
        with gr.Column():
            gr.Markdown("### Caption")
            caption_notice = gr.Markdown(elem_id="caption-notice")
            caption_text = gr.Textbox(label="Caption", interactive=False, elem_id="caption-text")
            caption_tokens = gr.HTML(elem_id="caption-tokens", js_on_load=None)
            caption_table = gr.Dataframe(
                headers=["#", "token", *alpha_headers],
                label="α per generated token",
                interactive=False,
                elem_id="caption-table",
            )
        with gr.Column():
            gr.Markdown("### Answer")
            answer_notice = gr.Markdown(elem_id="answer-notice")
            answer_text = gr.Textbox(label="Answer", interactive=False, elem_id="answer-text")
            answer_tokens = gr.HTML(elem_id="answer-tokens", js_on_load=None)
            answer_table = gr.Dataframe(
                headers=["#", "token", *alpha_headers],
                label="α per generated token",
                interactive=False,
                elem_id="answer-table",
            )
    if examples:
        gr.Examples(
            [list(e) for e in examples],
            inputs=[image, question],
            label="Examples (shared data folder)",
            elem_id="image-examples",
        )
    image_kwargs = {**kwargs, "preprocess": False}
    caption_outputs = [caption_notice, caption_text, caption_tokens, caption_table]
    answer_outputs = [answer_notice, answer_text, answer_tokens, answer_table]
    caption_button.click(
        caption, inputs=[image, new_tokens], outputs=caption_outputs, api_name="caption", **image_kwargs
    )
    ask_button.click(
        ask, inputs=[image, question, new_tokens], outputs=answer_outputs, api_name="ask", **image_kwargs
    )
    question.submit(
        ask,
        inputs=[image, question, new_tokens],
        outputs=answer_outputs,
        api_visibility="private",
        **image_kwargs,
    )


def _display_source(source: str) -> str:
    """A Hub id as is; a local folder by its name only (the page does not show the server's paths)."""
    path = Path(source)
    return path.name if path.exists() else source


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from msnn_hf.data import DATA_DIR_ENV, default_data_dir

    parser = argparse.ArgumentParser(
        description="alpha-viz: integration weights of a multi-stream classifier and / or vision encoder-decoder"
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("MSNN_MODEL", DEFAULT_MODEL),
        help="sentence classifier: folder or Hub id ('none': no text tab)",
    )
    parser.add_argument(
        "--vision_model",
        default=os.environ.get("MSNN_VISION_MODEL") or None,
        help="multi-stream vision encoder-decoder (captioning / VQA): folder or Hub id; adds the image tab",
    )
    parser.add_argument(
        "--data_dir",
        default=os.environ.get(DATA_DIR_ENV) or str(default_data_dir()),
        help=f"shared data folder for the image tab's examples (default ${DATA_DIR_ENV}); photos are read in place",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("MSNN_HOST") or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        help="bind address (default 127.0.0.1: this machine only)",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    return parser.parse_args(argv)


def _no_model(source: str | None) -> bool:
    return source is None or source.strip().lower() in ("", "none")


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    text_tab, image_tab = not _no_model(args.model), not _no_model(args.vision_model)
    if not (text_tab or image_tab):
        raise SystemExit("give a text model (--model) or a vision model (--vision_model)")
    loaded, error, vision, vision_error = None, None, None, None
    if text_tab:
        try:
            loaded = load_model(args.model)
        except ModelLoadError as err:
            error = str(err)
            logger.error("%s", error)
    if image_tab:
        try:
            vision = load_vision_model(args.vision_model)
        except ModelLoadError as err:
            vision_error = str(err)
            logger.error("%s", vision_error)
    examples = image_examples(args.data_dir) if image_tab else []
    demo = build_demo(
        loaded, error, vision=vision, vision_error=vision_error, text_tab=text_tab, image_tab=image_tab,
        examples=examples,
    )  # fmt: skip
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        show_error=False,
        ssr_mode=False,
        footer_links=["api"],
        theme=_theme(),
        css=ALPHA_CSS,
        max_file_size=MAX_UPLOAD,
        allowed_paths=sorted({str(Path(e[0]).parent) for e in examples}),  # the example photos, in place
    )


def _theme() -> Any:
    """The default theme with system fonts: the page loads nothing from third-party servers."""
    import gradio as gr

    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )


if __name__ == "__main__":
    main()
