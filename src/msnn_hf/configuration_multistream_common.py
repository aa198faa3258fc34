"""What the multi-stream configurations share: the integration and stream fields' validation and derived sizes.

`MultiStreamBertConfig` and `MultiStreamGPT2Config` both mix in `MultiStreamConfigMixin`; each declares the
fields (with its own defaults) and says where it differs (which integration types it has, whether the semantic
stream is required, whether the last layer must be an integration point, the name of its hidden size).

Only relative imports of siblings and public transformers API: this module is copied into every checkpoint
as remote code, next to the configuration module that imports it.
"""

from __future__ import annotations

from typing import Any

KNOWN_STREAMS: tuple[str, ...] = ("semantic", "phonetic", "morphological")
ALPHA_GRANULARITIES: tuple[str, ...] = ("scalar", "channel", "token")
INTEGRATION_ACTIVATIONS: tuple[str, ...] = ("gelu", "relu", "tanh", "silu", "identity")
# fields that belong to the multi-stream wrapper, not to the semantic stream's own config
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
POSITIVE_INT_FIELDS: tuple[str, ...] = (
    "stream_hidden_size",
    "stream_num_heads",
    "stream_intermediate_size",
    "phonetic_vocab_size",
    "morph_vocab_size",
    "phonetic_slot_size",
    "morph_slot_size",
)
# keys of a config dict that describe the file, not the model
_BOOKKEEPING_KEYS: tuple[str, ...] = (
    "model_type",
    "transformers_version",
    "architectures",
    "auto_map",
    "_name_or_path",
)


class MultiStreamConfigMixin:
    """Validation and derived properties of the multi-stream fields, for a `PreTrainedConfig` subclass that
    declares them (see `MULTISTREAM_FIELDS`). Subclasses set the class attributes below."""

    integration_types: tuple[str, ...] = ()
    # the config class of the semantic stream and the model types whose config/weights it reads
    semantic_config_class: type | None = None
    compatible_model_types: tuple[str, ...] = ()
    # the name of the semantic stream's layer count and width in this config (BERT vs GPT-2 field names)
    num_layers_attribute: str = "num_hidden_layers"
    hidden_size_attribute: str = "hidden_size"
    # GPT-2: the LM head reads the last integrated state, so the last layer must be an integration point
    requires_last_integration_layer: bool = False

    # ------------------------------------------------------------------------------------------------- validation
    def validate_multistream_fields(self) -> None:
        """Check and normalise every multi-stream field; a `ValueError` names the field and the valid values."""
        self.streams = _normalise_streams(self.streams)
        _check_choice("integration_type", self.integration_type, self.integration_types)
        _check_choice("alpha_granularity", self.alpha_granularity, ALPHA_GRANULARITIES)
        _check_choice("integration_activation", self.integration_activation, INTEGRATION_ACTIVATIONS)
        self.check_stream_combination()
        self.integration_layers = _normalise_layers(
            self.integration_layers,
            getattr(self, self.num_layers_attribute),
            require_last=self.requires_last_integration_layer,
        )
        for name in POSITIVE_INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer; got {value!r}")
        if self.stream_hidden_size % self.stream_num_heads:
            raise ValueError(
                f"`stream_hidden_size` ({self.stream_hidden_size}) must be a multiple of `stream_num_heads` "
                f"({self.stream_num_heads})"
            )
        if not 0.0 <= float(self.stream_dropout) < 1.0:
            raise ValueError(f"`stream_dropout` must be in [0, 1); got {self.stream_dropout!r}")

    def check_stream_combination(self) -> None:
        """Which `streams` the `integration_type` accepts (the family's own rules extend this)."""
        if self.integration_type == "none" and len(self.streams) != 1:
            raise ValueError(
                f"integration_type='none' reads a single stream; got `streams`={self.streams} "
                "(use e.g. ['semantic'] for the backbone alone)"
            )
        if self.integration_type != "none" and len(self.streams) < 2:
            raise ValueError(
                f"integration_type={self.integration_type!r} combines streams and needs at least 2 in `streams`; "
                f"got {self.streams} (use integration_type='none' for a single stream)"
            )

    # ---------------------------------------------------------------------------------------------- derived sizes
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
        semantic_width = getattr(self, self.hidden_size_attribute)
        return {s: semantic_width if s == "semantic" else self.stream_hidden_size for s in self.streams}

    # ------------------------------------------------------------------------------ the semantic stream's config
    def semantic_config(self):
        """The plain config of the semantic stream (this config's fields minus the multi-stream ones)."""
        own = {k: v for k, v in self.to_dict().items() if k not in MULTISTREAM_FIELDS}
        for key in _BOOKKEEPING_KEYS:
            own.pop(key, None)
        own["attn_implementation"] = self._attn_implementation
        return self.semantic_config_class(**own)

    @classmethod
    def from_semantic_config(cls, semantic_config: Any, **overrides: Any):
        """A multi-stream config around an existing backbone config (its fields, plus `overrides`)."""
        model_type = getattr(semantic_config, "model_type", None)
        if model_type not in cls.compatible_model_types:
            raise ValueError(
                f"The backbone is of model_type {model_type!r}; the semantic stream of {cls.__name__} needs one of "
                f"{list(cls.compatible_model_types)}"
            )
        values = semantic_config.to_dict()
        for key in _BOOKKEEPING_KEYS:
            values.pop(key, None)
        values.update(overrides)
        return cls(**values)


def _check_choice(name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"Unknown `{name}` {value!r}; valid values: {list(valid)}")


def _normalise_streams(streams: Any) -> list[str]:
    if isinstance(streams, str) or not isinstance(streams, (list, tuple)) or not streams:
        raise ValueError(
            f"`streams` must be a non-empty list of stream names from {list(KNOWN_STREAMS)}; got {streams!r}"
        )
    unknown = [s for s in streams if s not in KNOWN_STREAMS]
    if unknown:
        raise ValueError(f"Unknown stream name(s) {unknown} in `streams`; valid names: {list(KNOWN_STREAMS)}")
    if len(set(streams)) != len(streams):
        raise ValueError(f"`streams` lists a stream twice: {list(streams)}")
    return sorted(streams, key=lambda s: s != "semantic")  # semantic first, the others keep their order


def _normalise_layers(layers: Any, num_layers: int, require_last: bool = False) -> list[int]:
    if layers == "all":
        return list(range(num_layers))
    if layers == "last":
        return [num_layers - 1]
    valid = f"'all', 'last' or a list of 0-based layer indices in [0, {num_layers})"
    if require_last:
        valid += f" that contains {num_layers - 1} (the last layer feeds the head)"
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"`integration_layers` must be {valid}; got {layers!r}")
    bad = [i for i in layers if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_layers]
    if bad:
        raise ValueError(f"`integration_layers` holds invalid layer indices {bad}; valid: {valid}")
    if require_last and num_layers - 1 not in layers:
        raise ValueError(f"`integration_layers` {list(layers)} misses the last layer; valid: {valid}")
    return sorted(set(layers))
