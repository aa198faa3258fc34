"""Configuration of the multi-stream GPT-2 family (`MultiStreamGPT2Config`).

Only relative imports of siblings and public transformers API: this module is copied into every checkpoint
as remote code.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from transformers import GPT2Config

KNOWN_STREAMS: tuple[str, ...] = ("semantic", "phonetic", "morphological")
# "early" / "concat" (BERT family baselines) are not implemented for the causal family
INTEGRATION_TYPES: tuple[str, ...] = ("li", "dm", "none")
ALPHA_GRANULARITIES: tuple[str, ...] = ("scalar", "channel", "token")
INTEGRATION_ACTIVATIONS: tuple[str, ...] = ("gelu", "relu", "tanh", "silu", "identity")
# model types whose config.json / weights a `GPT2Model` can read (the semantic stream's backbone)
GPT2_COMPATIBLE_MODEL_TYPES: tuple[str, ...] = ("gpt2",)
# fields that belong to the multi-stream wrapper, not to the semantic stream's `GPT2Config`
MULTISTREAM_FIELDS: tuple[str, ...] = (
    "streams",
    "integration_type",
    "alpha_granularity",
    "integration_layers",
    "integration_activation",
    "integration_recurrent",
    "dm_alpha_init",
    "stream_hidden_size",
    "stream_num_heads",
    "stream_intermediate_size",
    "stream_dropout",
    "phonetic_vocab_size",
    "morph_vocab_size",
    "phonetic_slot_size",
    "morph_slot_size",
)


class MultiStreamGPT2Config(GPT2Config):
    r"""
    Configuration of a [`MultiStreamGPT2Model`] / [`MultiStreamGPT2LMHeadModel`]: a GPT-2 decoder (the *semantic*
    stream) plus narrow, causal phonetic and morphological streams, combined by Linear Integration (LI) or Direct
    Mixing (DM) after the GPT-2 blocks listed in `integration_layers`.

    It holds every field of [`~transformers.GPT2Config`] under GPT-2's own names (`vocab_size`, `n_positions`,
    `n_embd`, `n_layer`, `n_head`, `n_inner`, `resid_pdrop`, ...; they configure the semantic stream, and `n_embd` is
    also the width of the integrated pathway and of the LM head) plus the fields below, named as in
    `MultiStreamBertConfig`. Everything is validated on construction; a `ValueError` names the field.

    Args:
        streams (`list[str]`, *optional*, defaults to `["semantic", "phonetic", "morphological"]`):
            The streams of the model, a subset of `"semantic"`, `"phonetic"`, `"morphological"` that contains
            `"semantic"` (reordered so that it comes first: it is the reference stream of the integration).
        integration_type (`str`, *optional*, defaults to `"dm"`):
            `"li"` (Linear Integration, `z = act(norm(W_z z_prev + sum_s W_s r_s + b))`), `"dm"` (Direct Mixing,
            `z = act(gamma W_z z_prev + sum_s alpha_s u_s + b)`) or `"none"` (no integration: with
            `streams=["semantic"]` this is a plain GPT-2, the single-stream baseline of the family).
        alpha_granularity (`str`, *optional*, defaults to `"scalar"`):
            DM only: `"scalar"`, `"channel"` or `"token"` (a per-token gate, softmax over streams).
        integration_layers (`str` or `list[int]`, *optional*, defaults to `"all"`):
            The 0-based GPT-2 blocks after which the streams are integrated: `"all"` (roadmap option B,
            integration within every layer), `"last"` (roadmap option A, integration at the output only) or a list
            that contains the last block (the LM head reads the last integrated state). Normalised to a sorted
            list. Every non-semantic stream has one layer per integration point.
        integration_activation (`str`, *optional*, defaults to `"gelu"`):
            The integrated pathway's activation ("threshold"): `"gelu"`, `"relu"`, `"tanh"`, `"silu"` or
            `"identity"`.
        integration_recurrent (`bool`, *optional*, defaults to `True`):
            Whether the previous integrated state enters the next integration point (`W_z z_prev`). The state
            before the first integration point is the semantic embedding output (`wte + wpe`).
        dm_alpha_init (`float`, *optional*, defaults to 0.1):
            DM only: initial alpha of the non-semantic streams (the semantic stream starts at 1).
        stream_hidden_size (`int`, *optional*, defaults to 128):
            Width of the phonetic and morphological streams.
        stream_num_heads (`int`, *optional*, defaults to 4):
            Attention heads of every non-semantic stream layer (must divide `stream_hidden_size`).
        stream_intermediate_size (`int`, *optional*, defaults to 256):
            MLP width of every non-semantic stream layer.
        stream_dropout (`float`, *optional*, defaults to 0.1):
            Dropout inside the non-semantic streams.
        phonetic_vocab_size (`int`, *optional*, defaults to 79):
            Size of the phoneme vocabulary (`processor.stream_vocab_sizes["phonetic"]`).
        morph_vocab_size (`int`, *optional*, defaults to 2000):
            Size of the morph vocabulary (`processor.stream_vocab_sizes["morphological"]`).
        phonetic_slot_size (`int`, *optional*, defaults to 8):
            Phoneme ids per semantic token (`processor.slot_sizes["phonetic"]`).
        morph_slot_size (`int`, *optional*, defaults to 4):
            Morph ids per semantic token (`processor.slot_sizes["morphological"]`).

    Example:

    ```python
    >>> from msnn_hf import MultiStreamGPT2Config, MultiStreamGPT2LMHeadModel

    >>> config = MultiStreamGPT2Config(
    ...     vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=2,
    ...     integration_type="li", integration_layers="last",
    ...     stream_hidden_size=16, stream_num_heads=2, stream_intermediate_size=32,
    ...     phonetic_vocab_size=20, morph_vocab_size=30, bos_token_id=1, eos_token_id=2,
    ... )
    >>> config.integration_layers
    [1]
    >>> model = MultiStreamGPT2LMHeadModel(config)
    >>> baseline = MultiStreamGPT2LMHeadModel(
    ...     MultiStreamGPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2,
    ...                           streams=["semantic"], integration_type="none")
    ... )
    ```
    """

    model_type = "multistream_gpt2"

    streams: list[str] = field(default_factory=lambda: list(KNOWN_STREAMS))
    integration_type: str = "dm"
    alpha_granularity: str = "scalar"
    integration_layers: str | list[int] = "all"
    integration_activation: str = "gelu"
    integration_recurrent: bool = True
    dm_alpha_init: float = 0.1
    stream_hidden_size: int = 128
    stream_num_heads: int = 4
    stream_intermediate_size: int = 256
    stream_dropout: float = 0.1
    phonetic_vocab_size: int = 79
    morph_vocab_size: int = 2000
    phonetic_slot_size: int = 8
    morph_slot_size: int = 4

    def __post_init__(self, **kwargs: Any) -> None:
        self.streams = _normalise_streams(self.streams)
        _check_choice("integration_type", self.integration_type, INTEGRATION_TYPES)
        _check_choice("alpha_granularity", self.alpha_granularity, ALPHA_GRANULARITIES)
        _check_choice("integration_activation", self.integration_activation, INTEGRATION_ACTIVATIONS)
        if self.integration_type == "none" and self.streams != ["semantic"]:
            raise ValueError(
                f"integration_type='none' is the plain GPT-2: `streams` must be ['semantic']; got {self.streams}"
            )
        if self.integration_type != "none" and len(self.streams) < 2:
            raise ValueError(
                f"integration_type={self.integration_type!r} needs at least 2 streams; got {self.streams} "
                "(use integration_type='none' for the single-stream GPT-2)"
            )
        self.integration_layers = _normalise_layers(self.integration_layers, self.n_layer)
        for name in ("stream_hidden_size", "stream_num_heads", "stream_intermediate_size"):
            _check_positive(name, getattr(self, name))
        for name in ("phonetic_vocab_size", "morph_vocab_size", "phonetic_slot_size", "morph_slot_size"):
            _check_positive(name, getattr(self, name))
        if self.stream_hidden_size % self.stream_num_heads:
            raise ValueError(
                f"`stream_hidden_size` ({self.stream_hidden_size}) must be a multiple of `stream_num_heads` "
                f"({self.stream_num_heads})"
            )
        if not 0.0 <= float(self.stream_dropout) < 1.0:
            raise ValueError(f"`stream_dropout` must be in [0, 1); got {self.stream_dropout!r}")
        super().__post_init__(**kwargs)

    @property
    def non_semantic_streams(self) -> list[str]:
        """The streams that run as `StreamEncoder`s (everything but `"semantic"`)."""
        return [s for s in self.streams if s != "semantic"]

    @property
    def stream_vocab_sizes(self) -> dict[str, int]:
        """``{stream: vocabulary size}`` of the non-semantic streams of this model."""
        sizes = {"phonetic": self.phonetic_vocab_size, "morphological": self.morph_vocab_size}
        return {s: sizes[s] for s in self.non_semantic_streams}

    @property
    def slot_sizes(self) -> dict[str, int]:
        """``{stream: slot size}`` of the non-semantic streams of this model."""
        sizes = {"phonetic": self.phonetic_slot_size, "morphological": self.morph_slot_size}
        return {s: sizes[s] for s in self.non_semantic_streams}

    @property
    def stream_widths(self) -> dict[str, int]:
        """``{stream: width of its hidden states}``, in the order of `streams`."""
        return {s: self.n_embd if s == "semantic" else self.stream_hidden_size for s in self.streams}

    def semantic_config(self) -> GPT2Config:
        """The plain `GPT2Config` of the semantic stream (the GPT-2 fields of this config)."""
        own = {k: v for k, v in self.to_dict().items() if k not in MULTISTREAM_FIELDS}
        for key in ("model_type", "transformers_version", "architectures", "auto_map", "_name_or_path"):
            own.pop(key, None)
        own["attn_implementation"] = self._attn_implementation
        return GPT2Config(**own)

    @classmethod
    def from_gpt2_config(cls, gpt2_config: GPT2Config, **overrides: Any) -> MultiStreamGPT2Config:
        """A multi-stream config around an existing GPT-2 config (its fields, plus `overrides`)."""
        model_type = getattr(gpt2_config, "model_type", None)
        if model_type not in GPT2_COMPATIBLE_MODEL_TYPES:
            raise ValueError(
                f"The backbone is of model_type {model_type!r}; the semantic stream of {cls.__name__} needs one of "
                f"{list(GPT2_COMPATIBLE_MODEL_TYPES)}"
            )
        values = gpt2_config.to_dict()
        for key in ("model_type", "transformers_version", "architectures", "auto_map", "_name_or_path"):
            values.pop(key, None)
        values.update(overrides)
        return cls(**values)


def _check_choice(name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"Unknown `{name}` {value!r}; valid values: {list(valid)}")


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}")


def _normalise_streams(streams: Any) -> list[str]:
    if isinstance(streams, str) or not isinstance(streams, (list, tuple)) or not streams:
        raise ValueError(
            f"`streams` must be a non-empty list of names from {list(KNOWN_STREAMS)}; got {streams!r}"
        )
    unknown = [s for s in streams if s not in KNOWN_STREAMS]
    if unknown:
        raise ValueError(f"Unknown stream name(s) {unknown} in `streams`; valid names: {list(KNOWN_STREAMS)}")
    if len(set(streams)) != len(streams):
        raise ValueError(f"`streams` lists a stream twice: {list(streams)}")
    if "semantic" not in streams:
        raise ValueError(f"`streams` must contain 'semantic' (the GPT-2 backbone); got {list(streams)}")
    return sorted(streams, key=lambda s: s != "semantic")


def _normalise_layers(layers: Any, num_layers: int) -> list[int]:
    if layers == "all":
        return list(range(num_layers))
    if layers == "last":
        return [num_layers - 1]
    valid = f"'all', 'last' or a list of 0-based block indices in [0, {num_layers}) that contains {num_layers - 1}"
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"`integration_layers` must be {valid}; got {layers!r}")
    bad = [i for i in layers if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_layers]
    if bad or num_layers - 1 not in layers:
        raise ValueError(f"`integration_layers` {list(layers)} is invalid; valid: {valid}")
    return sorted(set(layers))


__all__ = ["MultiStreamGPT2Config"]
