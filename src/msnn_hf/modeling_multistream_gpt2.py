"""Multi-stream GPT-2: a causal GPT-2 decoder (semantic stream) plus phonetic and morphological streams.

This file holds the family's *semantic adapter* (GPT-2's embeddings, one `GPT2Block`, its causal mask and KV cache)
and its LM head; the streams, the loop, the fusion strategies and the readout are the shared stack
(`modeling_multistream_stack.py`)::

    h = drop(wte(x) + early-fusion terms + wpe(pos));  z = h
    for l, block in enumerate(gpt2.h):
        h = block(h)                                   # semantic stream, raw output = the residual state
        if l is an integration point:                  # k-th point
            e = streams' layer k (causal, same KV cache);  z = integrate([h, *e], z)
    logits = lm_head(ln_f(readout))                    # lm_head tied to wte; = GPT-2's logits before training

Causality: the stream ids of token t are a gather of token t's row of the stream tables, every attention is
causal and the integration is per token, so position t never sees a later token. KV cache: one `DynamicCache`
holds the semantic blocks (cache layers ``0 .. n_layer-1``) and then the streams' layers; streams of one shape run
each point's layers as one batched layer whose keys and values (all streams' heads) sit in the first stream's slot.

Only relative imports of siblings and public torch / transformers API: this module is copied into every
checkpoint as remote code.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, GPT2Model, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.models.gpt2.modeling_gpt2 import GPT2MLP, GPT2Attention
from transformers.pytorch_utils import Conv1D
from transformers.utils import ModelOutput

from .configuration_multistream_common import STREAM_INPUT_KEYS
from .configuration_multistream_gpt2 import MultiStreamGPT2Config
from .modeling_multistream_common import check_backbone_tokenizer, check_token_inputs, stream_attention_mask
from .modeling_multistream_stack import (
    MultiStreamPreTrainedMixin,
    MultiStreamStackMixin,
    init_stack_module,
    select_hidden_states,
)


@dataclass
class MultiStreamGPT2ModelOutput(ModelOutput):
    """Output of [`MultiStreamGPT2Model`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, n_embd)`):
            `ln_f` of the last integrated state (of the last semantic block's output for `integration_type="none"`).
        cache (`Cache`, *optional*, returned when `use_cache=True`):
            The `DynamicCache` of every attention layer: semantic blocks first, then each stream's layers.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            The semantic stream: embedding output and every block's output, each `(batch_size, sequence_length, n_embd)`.
        stream_weights (`torch.FloatTensor` of shape `(num_integration_layers, batch_size, sequence_length, num_streams)`, *optional*):
            Returned when `output_stream_weights=True` and the model integrates: per-token weight of every stream
            (in the order of `config.streams`) at every integration point (DM: alpha; LI: contribution share).
    """

    last_hidden_state: torch.FloatTensor | None = None
    cache: Cache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    stream_weights: torch.FloatTensor | None = None


@dataclass
class MultiStreamGPT2CausalLMOutput(ModelOutput):
    """Output of [`MultiStreamGPT2LMHeadModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` are given):
            Mean next-token cross-entropy over the labels that are not `-100` (labels are shifted inside).
        logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, vocab_size)`):
            Next-token scores (before softmax); `sequence_length` is `logits_to_keep` when that is set.
        cache (`Cache`, *optional*): as in [`MultiStreamGPT2ModelOutput`].
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): as in [`MultiStreamGPT2ModelOutput`].
        stream_weights (`torch.FloatTensor` of shape `(num_integration_layers, batch_size, sequence_length, num_streams)`, *optional*):
            as in [`MultiStreamGPT2ModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: Cache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    stream_weights: torch.FloatTensor | None = None


class MultiStreamGPT2PreTrainedModel(MultiStreamPreTrainedMixin, PreTrainedModel):
    """Weight initialisation, stream tables and `from_backbone` shared by the multi-stream GPT-2 models."""

    config_class = MultiStreamGPT2Config
    config: MultiStreamGPT2Config
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GPT2Block", "StreamLayer"]
    _supports_sdpa = True
    _keys_to_ignore_on_load_unexpected = [r"attn\.bias", r"crossattention\.bias"]

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's own initialisation (Conv1D normal, residual projections scaled by ``1/sqrt(2 n_layer)``), then the
        stack's starts (gates, identity / zero paths, empty stream tables). Loaded weights are never re-initialised."""
        super()._init_weights(module)
        if isinstance(module, Conv1D):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        if isinstance(module, (GPT2Attention, GPT2MLP)):
            std = self.config.initializer_range / math.sqrt(2 * self.config.n_layer)
            init.normal_(module.c_proj.weight, mean=0.0, std=std)
        init_stack_module(module)

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """As `PreTrainedModel.initialize_weights`, then GPT-2's scaled residual projections for every `c_proj` not
        loaded from a checkpoint: transformers skips that step for models outside its own package (it counts
        `GPT2Attention` / `GPT2MLP`, which hold no parameters of their own, as initialised)."""
        super().initialize_weights()
        std = self.config.initializer_range / math.sqrt(2 * self.config.n_layer)
        for module in self.modules():
            if isinstance(module, (GPT2Attention, GPT2MLP)):
                weight = module.c_proj.weight
                if not getattr(weight, "_is_hf_initialized", False) and weight.device.type != "meta":
                    weight.normal_(0.0, std)

    def semantic_stream(self) -> nn.Module:
        return self.base_model.semantic

    @classmethod
    def from_backbone(
        cls, name_or_path: str, processor: Any | None = None, **overrides: Any
    ) -> MultiStreamGPT2PreTrainedModel:
        """Build a multi-stream model whose semantic stream is a pretrained GPT-2 checkpoint. Before training it
        computes the backbone's function (`integration_init="backbone"`, the default): a `MultiStreamGPT2LMHeadModel`
        gives the checkpoint's `GPT2LMHeadModel` logits.

        Args:
            name_or_path: a Hub id (`"gpt2"`) or a local folder holding a `GPT2Model` / `GPT2LMHeadModel`.
            processor: a `MultiStreamProcessor`; sets `vocab_size` to `len(processor.tokenizer)` (rows added to
                `wte` beyond the backbone's vocabulary keep their fresh initialisation), the stream vocabulary and
                slot sizes, and loads its stream tables.
            overrides: any `MultiStreamGPT2Config` field (e.g. `integration_type="li"`, `integration_layers="last"`).
        """
        backbone = GPT2Model.from_pretrained(name_or_path)
        if processor is not None:
            check_backbone_tokenizer(processor.tokenizer, name_or_path, backbone.config.vocab_size)
        values = cls.backbone_config_overrides(backbone.config, processor, overrides)
        if processor is not None:
            values.setdefault("vocab_size", len(processor.tokenizer))
        config = MultiStreamGPT2Config.from_gpt2_config(backbone.config, **values)
        model = cls(config)
        state = backbone.state_dict()
        wte = model.base_model.semantic.wte.weight
        rows = min(wte.shape[0], state["wte.weight"].shape[0])
        new_wte = wte.detach().clone()
        new_wte[:rows] = state["wte.weight"][:rows]
        state["wte.weight"] = new_wte
        model.base_model.semantic.load_state_dict(state)
        if processor is not None and config.non_semantic_streams:
            model.set_stream_tables(processor.stream_tables)
        return model


class MultiStreamGPT2Model(MultiStreamStackMixin, MultiStreamGPT2PreTrainedModel):
    """GPT-2 (semantic stream) + causal non-semantic streams, integrated at the points of `integration_layers`.

    State-dict keys: `semantic.*` (a `GPT2Model`), `streams.<name>.*`, `integration.<k>.*`, `stream_tables.<name>`.
    """

    semantic_has_final_norm = True  # GPT-2 reads its last state through `ln_f`

    def __init__(self, config: MultiStreamGPT2Config) -> None:
        super().__init__(config)
        self.semantic = GPT2Model(config.semantic_config())
        # cache layers: the semantic blocks first, then each stream's layers
        self.build_stack(config, cache_offset=config.n_layer)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.semantic.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.semantic.wte = value

    def _prepare_cache(self, cache: Cache | None, use_cache: bool) -> Cache | None:
        if not use_cache:
            return None
        if cache is None:
            cache = DynamicCache(config=self.semantic.config)
        # `generate()` sizes its DynamicCache from `config.n_layer`; the streams' layers come after those
        layers = getattr(cache, "layers", None)
        if isinstance(cache, DynamicCache) and layers is not None and cache.layer_class_to_replicate is None:
            while len(layers) < self.num_cache_layers:
                layers.append(DynamicLayer())
        return cache

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        phonetic_ids: torch.LongTensor | None = None,
        morph_ids: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        output_stream_weights: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs: Any,
    ) -> MultiStreamGPT2ModelOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
                Token ids; with a `cache`, only the tokens not yet in the cache. The non-semantic streams are
                gathered from them through the stream tables unless given explicitly.
            cache (`Cache`, *optional*):
                KV cache of every attention layer (semantic and streams), e.g. the one returned by a previous call.
            attention_mask (`torch.Tensor` of shape `(batch_size, past_length + sequence_length)`, *optional*):
                1 for real tokens, 0 for padding.
            position_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
                Positions (used by GPT-2's `wpe` and the streams' position embeddings); default
                `past_length + arange(sequence_length)`.
            inputs_embeds (`torch.FloatTensor` of shape `(batch_size, sequence_length, n_embd)`, *optional*):
                Instead of `input_ids` for the semantic stream; the stream ids must then be given.
            phonetic_ids (`torch.LongTensor` of shape `(batch_size, sequence_length, phonetic_slot_size)`, *optional*):
                Explicit phonetic slots (take precedence over the tables).
            morph_ids (`torch.LongTensor` of shape `(batch_size, sequence_length, morph_slot_size)`, *optional*):
                Explicit morph slots (take precedence over the tables).
            use_cache (`bool`, *optional*): return a cache (default `config.use_cache`, off when training).
            output_hidden_states (`bool`, *optional*): return the semantic stream's hidden states (default
                `config.output_hidden_states`).
            output_attentions (`bool`, *optional*): not supported (`True` raises); accepted for API compatibility.
            output_stream_weights (`bool`, *optional*): return the integration weights.
            return_dict (`bool`, *optional*): return a `ModelOutput` (default `config.return_dict`) or a tuple.
            past_key_values (`Cache`, *optional*): deprecated name of `cache` (a `FutureWarning`; as transformers'
                own GPT-2 still accepts it).
        """
        cache = _cache_argument(cache, past_key_values)
        if output_attentions:
            raise ValueError(
                "output_attentions=True is not supported by multi-stream models; use output_stream_weights"
            )
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if use_cache is None:
            use_cache = bool(self.config.use_cache) and not self.training
        if self.training and torch.is_grad_enabled() and self.is_activation_checkpointing:
            use_cache = False
        cache = self._prepare_cache(cache, use_cache)
        past_length = cache.get_seq_length() if cache is not None else 0
        batch, length = check_token_inputs(
            self.config, input_ids, inputs_embeds, attention_mask, position_ids, past_length=past_length
        )
        self.scope_kept_weights(cache, past_length)
        sem = self.semantic
        words = inputs_embeds if inputs_embeds is not None else sem.wte(input_ids)  # (B, T, H)
        device = words.device
        if position_ids is None:
            position_ids = torch.arange(past_length, past_length + length, device=device).unsqueeze(0)
        given = {"phonetic": phonetic_ids, "morphological": morph_ids}
        slots = self.embed_streams(self.stream_ids(input_ids, given, (batch, length)), position_ids)
        words = self.fusion.semantic_inputs_embeds(self, words, slots)
        hidden = sem.drop(words + sem.wpe(position_ids))  # (B, T, H)
        if attention_mask is not None and attention_mask.dim() == 2:
            attention_mask = attention_mask.to(device)
        causal_mask = create_causal_mask(
            config=sem.config, inputs_embeds=words, attention_mask=attention_mask, cache=cache,
            position_ids=position_ids,
        )  # fmt: skip
        stream_mask = None
        if slots and self.fusion.runs_stream_layers:
            stream_mask = stream_attention_mask(
                attention_mask, length, past_length + length, causal=True, device=device
            )

        def semantic_layer(index: int, state: torch.Tensor) -> torch.Tensor:
            return sem.h[index](
                state, cache=cache, attention_mask=causal_mask, use_cache=use_cache, position_ids=position_ids
            )

        out = self.run_stack(
            hidden, slots, semantic_layer, stream_mask, cache=cache,
            output_hidden_states=output_hidden_states is not None and output_hidden_states is not False,
            output_stream_weights=bool(output_stream_weights), stream_context=kwargs.get("stream_context"),
        )  # fmt: skip
        last_hidden_state = sem.ln_f(out.representation)
        hidden_states = None
        if out.hidden_states is not None:
            hidden_states = select_hidden_states(
                (*out.hidden_states[:-1], last_hidden_state), output_hidden_states
            )
        result = MultiStreamGPT2ModelOutput(
            last_hidden_state=last_hidden_state,
            cache=cache,
            hidden_states=hidden_states,
            stream_weights=out.stream_weights if output_stream_weights else None,
        )
        return (
            result
            if (return_dict if return_dict is not None else self.config.return_dict)
            else result.to_tuple()
        )


def _cache_argument(cache: Cache | None, past_key_values: Cache | None) -> Cache | None:
    """`past_key_values` as transformers' own GPT-2 still takes it: the same cache, with a deprecation warning."""
    if past_key_values is None:
        return cache
    if cache is not None:
        raise ValueError("Pass the KV cache as `cache` or as `past_key_values`, not both")
    warnings.warn(
        "`past_key_values` is deprecated in transformers 5.x; pass the KV cache as `cache`",
        FutureWarning,
        stacklevel=3,
    )
    return past_key_values


class MultiStreamGPT2LMHeadModel(MultiStreamGPT2PreTrainedModel, GenerationMixin):
    """[`MultiStreamGPT2Model`] with a language-modelling head tied to the semantic `wte`.

    Works with `generate()` (greedy, beam search, sampling) from plain `input_ids`: the streams are derived from the
    token ids, and one `DynamicCache` covers the semantic blocks and every stream layer.
    """

    _tied_weights_keys = {"lm_head.weight": "transformer.semantic.wte.weight"}

    def __init__(self, config: MultiStreamGPT2Config) -> None:
        super().__init__(config)
        self.transformer = MultiStreamGPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.loss_type = "ForCausalLM"
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.transformer.semantic.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.transformer.semantic.wte = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        phonetic_ids: torch.LongTensor | None = None,
        morph_ids: torch.LongTensor | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """`GenerationMixin`'s inputs, plus explicit stream ids sliced to the tokens of this step.

        Explicit `phonetic_ids` / `morph_ids` given to `generate()` describe the prompt; the generated tokens'
        stream ids come from the stream tables, as they would for plain `input_ids`.
        """
        inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        step = inputs.get("input_ids")
        prompt_from_embeds = kwargs.get("inputs_embeds") is not None
        for name, given in (("phonetic", phonetic_ids), ("morphological", morph_ids)):
            key = STREAM_INPUT_KEYS[name]
            if given is None:
                continue
            if step is None:  # first step from `inputs_embeds`: the whole prompt
                inputs[key] = given
                continue
            # the sequence so far: the prompt (explicit ids), then the generated tokens (from the tables)
            generated = input_ids if prompt_from_embeds else input_ids[:, given.shape[1] :]
            if generated.shape[1]:
                if self.transformer.stream_tables is None:
                    raise ValueError(f"`{key}` given, but this model has no {name} stream")
                given = torch.cat([given, self.transformer.stream_tables(generated)[name]], dim=1)
            inputs[key] = given[:, -step.shape[1] :]  # (B, T_step, slot)
        return inputs

    def _transformer_inputs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Inputs of `forward`'s `**kwargs` meant for the transformer, removed from `kwargs` (none here; the vision
        decoder's patch tokens in [`MultiStreamVisionGPT2LMHeadModel`])."""
        return {}

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        phonetic_ids: torch.LongTensor | None = None,
        morph_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        output_stream_weights: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        return_dict: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs: Any,
    ) -> MultiStreamGPT2CausalLMOutput | tuple:
        r"""
        Args:
            input_ids, cache, attention_mask, position_ids, inputs_embeds, phonetic_ids, morph_ids, use_cache,
            output_hidden_states, output_attentions, output_stream_weights, past_key_values: as in
            [`MultiStreamGPT2Model.forward`].
            labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
                Next-token targets, `labels = input_ids` (shifted inside); `-100` is ignored.
            logits_to_keep (`int` or `torch.Tensor`, *optional*):
                If an int > 0, compute logits for the last that many positions only (generation uses 1).
        """
        outputs = self.transformer(
            input_ids,
            cache=cache,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            phonetic_ids=phonetic_ids,
            morph_ids=morph_ids,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            output_stream_weights=output_stream_weights,
            return_dict=True,
            past_key_values=past_key_values,
            **self._transformer_inputs(kwargs),
        )
        hidden = outputs.last_hidden_state  # (B, T, H)
        if isinstance(logits_to_keep, int):
            hidden = hidden[:, -logits_to_keep:] if logits_to_keep > 0 else hidden
        else:
            hidden = hidden[:, logits_to_keep]
        logits = self.lm_head(hidden)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        out = MultiStreamGPT2CausalLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            stream_weights=outputs.stream_weights,
        )
        return (
            out if (return_dict if return_dict is not None else self.config.return_dict) else out.to_tuple()
        )


_REGISTERED = False


def register() -> None:
    """Register the family with the Auto classes (idempotent) and for remote code (`auto_map`)."""
    global _REGISTERED
    if _REGISTERED:
        return
    AutoConfig.register(MultiStreamGPT2Config.model_type, MultiStreamGPT2Config, exist_ok=True)
    AutoModel.register(MultiStreamGPT2Config, MultiStreamGPT2Model, exist_ok=True)
    AutoModelForCausalLM.register(MultiStreamGPT2Config, MultiStreamGPT2LMHeadModel, exist_ok=True)
    MultiStreamGPT2Config.register_for_auto_class()
    MultiStreamGPT2Model.register_for_auto_class("AutoModel")
    MultiStreamGPT2LMHeadModel.register_for_auto_class("AutoModelForCausalLM")
    _REGISTERED = True


__all__ = [
    "MultiStreamGPT2CausalLMOutput",
    "MultiStreamGPT2LMHeadModel",
    "MultiStreamGPT2Model",
    "MultiStreamGPT2ModelOutput",
    "MultiStreamGPT2PreTrainedModel",
]
