"""What every multi-stream configuration shares: the stream registry, the constants, and the multi-stream fields
(declared once, with their documentation and defaults) in `MultiStreamConfigMixin`.

A family config extends it next to its backbone's config (``class MultiStreamBertConfig(MultiStreamConfigMixin,
BertConfig)``) and says only where it differs: its integration defaults, the name of its layer count and width
fields, the backbone model types it can read.

No torch and no Hugging Face imports at module level: the processor and the streams package read the registry
without pulling in a model, and this module is copied into every checkpoint as remote code (sibling imports only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


# ------------------------------------------------------------------------------------------ the stream registry
@dataclass(frozen=True)
class StreamSpec:
    """One stream: how its input reaches the model and which config fields size it.

    Args:
        name: the stream's name in `config.streams`.
        input_key: the model / processor input that carries it (`phonetic_ids`, ...).
        kind: ``"semantic"`` (the backbone's own tokens), ``"slots"`` (a slot of sub-unit ids per semantic token,
            gathered from a per-vocabulary table) or ``"patches"`` (feature vectors from a vision encoder).
        vocab_size_field / slot_size_field: the config fields holding its vocabulary and slot sizes (slots only).
    """

    name: str
    input_key: str
    kind: str
    vocab_size_field: str | None = None
    slot_size_field: str | None = None


SEMANTIC = "semantic"
STREAM_REGISTRY: dict[str, StreamSpec] = {
    spec.name: spec
    for spec in (
        StreamSpec(SEMANTIC, "input_ids", "semantic"),
        StreamSpec("phonetic", "phonetic_ids", "slots", "phonetic_vocab_size", "phonetic_slot_size"),
        StreamSpec("morphological", "morph_ids", "slots", "morph_vocab_size", "morph_slot_size"),
        # the image encoder's patch tokens, projected to the decoder's width: `(B, N, n_embd)`, read by cross-attention
        # at every integration point (built by the vision encoder-decoder only; the text stacks refuse it)
        StreamSpec("vision", "encoder_hidden_states", "patches"),
    )
}
# the streams a text processor derives from tokens (one slot per semantic token), and their input keys
SLOT_STREAMS: tuple[str, ...] = tuple(n for n, s in STREAM_REGISTRY.items() if s.kind == "slots")
STREAM_INPUT_KEYS: dict[str, str] = {n: STREAM_REGISTRY[n].input_key for n in SLOT_STREAMS}
KNOWN_STREAMS: tuple[str, ...] = tuple(STREAM_REGISTRY)
# the streams fed by an image encoder (kind "patches"), and the families whose configs may hold them: the GPT-2
# family is the decoder of `MultiStreamVisionEncoderDecoder`; elsewhere they are unknown stream names
PATCH_STREAMS: tuple[str, ...] = tuple(n for n, s in STREAM_REGISTRY.items() if s.kind == "patches")
PATCH_STREAM_MODEL_TYPES: tuple[str, ...] = ("multistream_gpt2",)

# ------------------------------------------------------------------------------------------------- constants
INTEGRATION_TYPES: tuple[str, ...] = ("li", "dm", "none", "early", "concat")
ALPHA_GRANULARITIES: tuple[str, ...] = ("scalar", "channel", "token")
INTEGRATION_ACTIVATIONS: tuple[str, ...] = ("gelu", "relu", "tanh", "silu", "identity")
# "backbone": the model computes the backbone's function before training (gated / zero-initialised new paths);
# "mix": the integrated pathway starts as a mixture of the streams (the start of msnn_hf 0.1, for the ablation)
INTEGRATION_INITS: tuple[str, ...] = ("backbone", "mix")
# "piece": each piece's slot is its own surface string's (a table gather, derived from input_ids); "word": every piece
# carries its whole word's units (computed by the processor from the word boundaries, passed explicitly)
STREAM_ALIGNMENTS: tuple[str, ...] = ("piece", "word")

# keys of a config dict that describe the file, not the model
_BOOKKEEPING_KEYS: tuple[str, ...] = (
    "model_type",
    "transformers_version",
    "architectures",
    "auto_map",
    "_name_or_path",
)

MULTISTREAM_ARGS_DOC = r"""
        streams (`list[str]`, *optional*, defaults to `["semantic", "phonetic", "morphological"]`):
            The streams of the model, names from the stream registry (`STREAM_REGISTRY`) without repeats, reordered
            so that `"semantic"` (the reference stream of the integration) comes first.
        integration_type (`str`, *optional*, defaults to `"dm"`):
            How the streams are combined (one entry of the stack's `FUSIONS`):
            - `"li"`: Linear Integration at every point of `integration_layers`
              (`z = act(norm(W_z z_prev + sum_s W_s r_s + b))`);
            - `"dm"`: Direct Mixing (`z = act(gamma W_z z_prev + sum_s alpha_s u_s + b)`);
            - `"none"`: no integration, a single stream whose output the head reads;
            - `"early"`: the non-semantic streams' slot embeddings, projected by zero-initialised bias-free linears,
              are added to the backbone's input embeddings; only the backbone layers run;
            - `"concat"`: every stream runs its layers without integration; the head reads a linear map of the
              concatenated final outputs.
        integration_init (`str`, *optional*, defaults to `"backbone"`):
            `"backbone"`: the model computes the pretrained backbone's function before training. At every
            integration point `z = r_sem + tanh(beta) * (z_hat - r_sem)` with the gate `beta` at zero (`z_hat` the LI
            / DM equation), concat starts as `[I, 0]`, early fusion's projections at zero; the gates still receive
            gradient at step 0. `"mix"`: the start of msnn_hf 0.1 (no gate; the integrated pathway starts as a
            mixture, read through a new final LayerNorm), kept for the ablation. Checkpoints written before the field
            existed load as `"mix"`.
        alpha_granularity (`str`, *optional*, defaults to `"scalar"`):
            DM only: `"scalar"` (one alpha per stream and point), `"channel"` (one per stream, point and hidden unit)
            or `"token"` (a gate computed from the streams at each token, softmax over streams).
        integration_layers (`str` or `list[int]`, *optional*, defaults to `"all"`):
            The 0-based backbone layers after which the streams are integrated, *the integration points*: `"all"`
            (roadmap option B), `"last"` (option A) or a list that contains the last layer (the heads read the last
            integrated state). Every non-semantic stream runs one layer per integration point. Normalised to a
            sorted list of indices.
        integration_activation (`str`, *optional*, defaults to `"gelu"`):
            The integrated pathway's activation ("threshold"): `"gelu"`, `"relu"`, `"tanh"`, `"silu"` or
            `"identity"`.
        integration_recurrent (`bool`, *optional*, defaults to `True`):
            Whether the integrated state of the previous point enters the next one (`W_z z_prev`); before the first
            point it is the semantic embedding output.
        dm_alpha_init (`float`, *optional*, defaults to 0.1):
            DM only: initial alpha of the non-semantic streams (the semantic stream starts at 1).
        stream_hidden_size (`int`, *optional*):
            Width of the non-semantic streams (family default).
        stream_num_heads (`int`, *optional*):
            Attention heads of every non-semantic stream layer (must divide `stream_hidden_size`).
        stream_intermediate_size (`int`, *optional*):
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
        stream_alignment (`str`, *optional*, defaults to `"piece"`):
            `processor.alignment`: `"piece"` (each piece's slot from its own surface string; the model derives the
            streams from `input_ids` through its tables) or `"word"` (every piece carries its whole word's phonemes
            and morphs; the processor computes them from the word boundaries and they must be passed explicitly).
            `"word"` is refused by causal families: a word's first piece would see its later pieces.
"""


@dataclass(kw_only=True, repr=False)
class MultiStreamConfigMixin:
    """The multi-stream fields (documented in `MULTISTREAM_ARGS_DOC`), their validation and derived sizes, for a
    `PreTrainedConfig` subclass of a backbone config. Subclasses set the class attributes below and may redeclare a
    field to change its default."""

    streams: list[str] = field(default_factory=lambda: [SEMANTIC, *SLOT_STREAMS])
    integration_type: str = "dm"
    integration_init: str = "backbone"
    alpha_granularity: str = "scalar"
    integration_layers: str | list[int] = "all"
    integration_activation: str = "gelu"
    integration_recurrent: bool = True
    dm_alpha_init: float = 0.1
    stream_hidden_size: int = 64
    stream_num_heads: int = 2
    stream_intermediate_size: int = 128
    stream_dropout: float = 0.1
    phonetic_vocab_size: int = 79
    morph_vocab_size: int = 2000
    phonetic_slot_size: int = 8
    morph_slot_size: int = 4
    stream_alignment: str = "piece"

    # the config class of the semantic stream and the model types whose config/weights it reads
    semantic_config_class: ClassVar[type | None] = None
    compatible_model_types: ClassVar[tuple[str, ...]] = ()
    # the name of the semantic stream's layer count, width and norm epsilon in this config (BERT vs GPT-2 names)
    num_layers_attribute: ClassVar[str] = "num_hidden_layers"
    hidden_size_attribute: ClassVar[str] = "hidden_size"
    max_positions_attribute: ClassVar[str] = "max_position_embeddings"
    layer_norm_eps_attribute: ClassVar[str] = "layer_norm_eps"
    # the family needs its backbone: a model without the semantic stream is refused
    requires_semantic: ClassVar[bool] = False
    # causal families refuse stream alignments that let a token see later tokens
    causal: ClassVar[bool] = False

    # ------------------------------------------------------------------------------------------------- validation
    def validate_multistream_fields(self) -> None:
        """Check and normalise every multi-stream field; a `ValueError` names the field and the valid values."""
        self.streams = _normalise_streams(self.streams, self.known_streams())
        _check_choice("integration_type", self.integration_type, INTEGRATION_TYPES)
        _check_choice("integration_init", self.integration_init, INTEGRATION_INITS)
        _check_choice("alpha_granularity", self.alpha_granularity, ALPHA_GRANULARITIES)
        _check_choice("integration_activation", self.integration_activation, INTEGRATION_ACTIVATIONS)
        _check_choice("stream_alignment", self.stream_alignment, STREAM_ALIGNMENTS)
        if self.stream_alignment == "word" and self.causal:
            raise ValueError(
                "stream_alignment='word' gives every piece its whole word's streams, so in a causal model a word's "
                "first piece would see its later pieces; build the processor with alignment='piece'"
            )
        self.check_stream_combination()
        self.integration_layers = _normalise_layers(self.integration_layers, self.num_layers)
        for name in MULTISTREAM_POSITIVE_INT_FIELDS:
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

    @classmethod
    def known_streams(cls) -> tuple[str, ...]:
        """The stream names this family's `streams` may hold: the registry's, without the patch streams unless the
        family can be the decoder of a vision model (`PATCH_STREAM_MODEL_TYPES`)."""
        if cls.model_type in PATCH_STREAM_MODEL_TYPES:
            return KNOWN_STREAMS
        return tuple(n for n in KNOWN_STREAMS if n not in PATCH_STREAMS)

    def check_stream_combination(self) -> None:
        """Which `streams` the `integration_type` accepts."""
        if self.requires_semantic and SEMANTIC not in self.streams:
            raise ValueError(f"`streams` must contain 'semantic' (the backbone); got {list(self.streams)}")
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
        if self.integration_type == "early" and SEMANTIC not in self.streams:
            raise ValueError(
                f"integration_type='early' adds streams to the semantic backbone; `streams`={self.streams}"
            )

    # ---------------------------------------------------------------------------------------------- derived sizes
    @property
    def num_layers(self) -> int:
        return getattr(self, self.num_layers_attribute)

    @property
    def non_semantic_streams(self) -> list[str]:
        """The streams with a pathway of their own (`StreamEncoder`s): everything but `"semantic"`."""
        return [s for s in self.streams if s != SEMANTIC]

    @property
    def stream_vocab_sizes(self) -> dict[str, int]:
        """``{stream: vocabulary size}`` of the slot streams of this model."""
        return {
            s: getattr(self, STREAM_REGISTRY[s].vocab_size_field)
            for s in self.non_semantic_streams
            if STREAM_REGISTRY[s].kind == "slots"
        }

    @property
    def slot_sizes(self) -> dict[str, int]:
        """``{stream: slot size}`` of the slot streams of this model."""
        return {
            s: getattr(self, STREAM_REGISTRY[s].slot_size_field)
            for s in self.non_semantic_streams
            if STREAM_REGISTRY[s].kind == "slots"
        }

    @property
    def stream_widths(self) -> dict[str, int]:
        """``{stream: width of its hidden states}``, in the order of `streams`."""
        semantic_width = getattr(self, self.hidden_size_attribute)
        return {s: semantic_width if s == SEMANTIC else self.stream_hidden_size for s in self.streams}

    @property
    def output_hidden_size(self) -> int:
        """Width of the representation the heads read: the backbone's, or a single non-semantic stream's."""
        if self.integration_type == "none":
            return self.stream_widths[self.streams[0]]
        return getattr(self, self.hidden_size_attribute)

    @staticmethod
    def processor_overrides(processor: Any) -> dict[str, int]:
        """The config fields a `MultiStreamProcessor` determines: each slot stream's vocabulary and slot size, and
        its alignment."""
        values = {}
        for name in SLOT_STREAMS:
            spec = STREAM_REGISTRY[name]
            values[spec.vocab_size_field] = processor.stream_vocab_sizes[name]
            values[spec.slot_size_field] = processor.slot_sizes[name]
        values["stream_alignment"] = getattr(processor, "alignment", "piece")
        return values

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

    @classmethod
    def get_config_dict(
        cls, pretrained_model_name_or_path, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """As in `PreTrainedConfig`, but a checkpoint of another model type fails clearly instead of warning (a
        backbone, or a multi-stream model of the other family), and a checkpoint of an earlier msnn_hf version is read
        in today's form (`upgrade_config_dict`)."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        model_type = config_dict.get("model_type")
        if model_type is not None and model_type != cls.model_type:
            hint = (
                f" To start from a {model_type!r} backbone use `from_backbone({str(pretrained_model_name_or_path)!r})`."
                if model_type in cls.compatible_model_types
                else ""
            )
            raise ValueError(
                f"{pretrained_model_name_or_path} holds a checkpoint of model_type {model_type!r}, not "
                f"{cls.model_type!r}.{hint}"
            )
        return cls.upgrade_config_dict(config_dict), kwargs

    @classmethod
    def upgrade_config_dict(cls, config_dict: dict[str, Any]) -> dict[str, Any]:
        """A saved config dict in today's form (see docs/architecture.md, "Compatibility").

        Checkpoints written before `integration_init` existed (msnn_hf 0.1) started their integration as a mixture
        and load as ``"mix"``. In 0.1 the BERT family ran the streams at every layer whatever `integration_layers`
        said; such a checkpoint with fewer integration points than layers has stream layers this version does not
        build, and is refused with a clear error rather than loaded with weights silently dropped.
        """
        if "integration_type" not in config_dict or "integration_init" in config_dict:
            return config_dict
        config_dict = {**config_dict, "integration_init": "mix"}
        layers = config_dict.get("integration_layers", "all")
        num_layers = config_dict.get(cls.num_layers_attribute)
        partial = layers != "all" and not (
            isinstance(layers, list) and num_layers and len(layers) == num_layers
        )
        if (
            cls.runs_streams_at_every_layer_before_0_2
            and partial
            and config_dict["integration_type"] != "early"
        ):
            raise ValueError(
                f"This checkpoint was written by msnn_hf 0.1 with integration_layers={layers!r}: its streams ran one "
                f"layer per backbone layer, this version runs one per integration point. Load it with msnn_hf 0.1 "
                "(see docs/architecture.md, 'Compatibility')."
            )
        return config_dict

    # the BERT family's 0.1 checkpoints ran their streams at every layer (see `upgrade_config_dict`)
    runs_streams_at_every_layer_before_0_2: ClassVar[bool] = False


MULTISTREAM_FIELDS: tuple[str, ...] = tuple(
    name
    for name in MultiStreamConfigMixin.__dataclass_fields__  # the fields declared above, in order
)
MULTISTREAM_POSITIVE_INT_FIELDS: tuple[str, ...] = (
    "stream_hidden_size",
    "stream_num_heads",
    "stream_intermediate_size",
    *(STREAM_REGISTRY[s].vocab_size_field for s in SLOT_STREAMS),
    *(STREAM_REGISTRY[s].slot_size_field for s in SLOT_STREAMS),
)


def _check_choice(name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"Unknown `{name}` {value!r}; valid values: {list(valid)}")


def _normalise_streams(streams: Any, known: tuple[str, ...] = KNOWN_STREAMS) -> list[str]:
    if isinstance(streams, str) or not isinstance(streams, (list, tuple)) or not streams:
        raise ValueError(
            f"`streams` must be a non-empty list of stream names from {list(known)}; got {streams!r}"
        )
    unknown = [s for s in streams if s not in known]
    if unknown:
        hint = ""
        if any(s in PATCH_STREAMS for s in unknown):
            hint = " (the vision stream belongs to the GPT-2 decoder of MultiStreamVisionEncoderDecoder)"
        raise ValueError(f"Unknown stream name(s) {unknown} in `streams`; valid names: {list(known)}{hint}")
    if len(set(streams)) != len(streams):
        raise ValueError(f"`streams` lists a stream twice: {list(streams)}")
    return sorted(streams, key=lambda s: s != SEMANTIC)  # semantic first, the others keep their order


def _normalise_layers(layers: Any, num_layers: int) -> list[int]:
    if layers == "all":
        return list(range(num_layers))
    if layers == "last":
        return [num_layers - 1]
    valid = (
        f"'all', 'last' or a list of 0-based layer indices in [0, {num_layers}) that contains {num_layers - 1} "
        "(the last layer feeds the heads)"
    )
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"`integration_layers` must be {valid}; got {layers!r}")
    bad = [i for i in layers if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_layers]
    if bad:
        raise ValueError(f"`integration_layers` holds invalid layer indices {bad}; valid: {valid}")
    if num_layers - 1 not in layers:
        raise ValueError(f"`integration_layers` {list(layers)} misses the last layer; valid: {valid}")
    return sorted(set(layers))
