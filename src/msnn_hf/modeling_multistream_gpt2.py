"""Multi-stream GPT-2: a causal GPT-2 decoder (semantic stream) plus phonetic and morphological streams.

The layer loop reads "run the GPT-2 block, and at an integration point run each stream's causal block and
integrate"::

    h = drop(wte(x) + wpe(pos));  z = h;  e_s = slot_embedding_s(ids_s, pos)
    for l, block in enumerate(gpt2.h):
        h = block(h)                                   # semantic stream, raw output = the residual state
        if l in integration_layers:                    # k-th integration point
            e_s = stream_s.layers[k](e_s)              # causal self-attention, same KV cache
            z = integrate({"semantic": h, **e_s}, z)   # LI or DM, per token
    logits = lm_head(ln_f(z))                          # lm_head tied to wte

Causality: the stream ids of token t are a gather of token t's row of the stream tables, every attention is
causal and the integration is per token, so position t never sees a later token. KV cache: one `DynamicCache`
holds the semantic blocks (cache layers ``0 .. n_layer-1``) and then every stream's layers (offsets after them);
streams of one shape run each point's layers as one batched layer (`batched_stream_layer`, their states stacked
through the whole forward), whose keys and values (all streams' heads) sit in the first stream's slot.

Only relative imports of siblings and public torch / transformers API: this module is copied into every
checkpoint as remote code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, GPT2Model, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.utils import ModelOutput

from .configuration_multistream_gpt2 import MultiStreamGPT2Config
from .integration import DirectMixing, LinearIntegration, ParameterCache, StackedStreams, build_integration
from .modeling_multistream_common import (
    StreamEncoder,
    StreamTables,
    StreamTablesVocabularyMixin,
    batched_stream_layer,
    batched_stream_weights,
    check_backbone_tokenizer,
    check_sequence_length,
    resolve_stream_ids,
    stream_attention_mask,
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


class MultiStreamGPT2PreTrainedModel(StreamTablesVocabularyMixin, PreTrainedModel):
    """Weight initialisation, stream tables and `from_backbone` shared by the multi-stream GPT-2 models."""

    config_class = MultiStreamGPT2Config
    config: MultiStreamGPT2Config
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GPT2Block", "StreamLayer"]
    _supports_sdpa = True
    _keys_to_ignore_on_load_unexpected = [r"attn\.bias", r"crossattention\.bias"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        # the integration modules have their own "start near the backbone" initialisation; keep loaded weights
        if isinstance(module, (LinearIntegration, DirectMixing)):
            if not any(getattr(p, "_is_hf_initialized", False) for p in module.parameters()):
                module.reset_parameters()

    def set_stream_tables(self, tables: dict[str, torch.Tensor]) -> None:
        """Copy a processor's stream tables (`processor.stream_tables`) into the model's buffers."""
        base = self.base_model
        if base.stream_tables is None:
            raise ValueError("This model has no non-semantic streams, hence no stream tables")
        base.stream_tables.load_tables(tables)

    def semantic_stream(self) -> nn.Module:
        return self.base_model.semantic

    @classmethod
    def from_backbone(
        cls, name_or_path: str, processor: Any | None = None, **overrides: Any
    ) -> MultiStreamGPT2PreTrainedModel:
        """Build a multi-stream model whose semantic stream is a pretrained GPT-2 checkpoint.

        Args:
            name_or_path: a Hub id (`"gpt2"`) or a local folder holding a `GPT2Model` / `GPT2LMHeadModel`.
            processor: a `MultiStreamProcessor`; sets `vocab_size` to `len(processor.tokenizer)` (rows added to
                `wte` beyond the backbone's vocabulary keep their fresh initialisation), the stream vocabulary and
                slot sizes, and loads its stream tables.
            overrides: any `MultiStreamGPT2Config` field (e.g. `integration_type="li"`, `integration_layers="last"`).
        """
        backbone = GPT2Model.from_pretrained(name_or_path)
        values: dict[str, Any] = {}
        if processor is not None:
            check_backbone_tokenizer(processor.tokenizer, name_or_path, backbone.config.vocab_size)
            vocab = processor.stream_vocab_sizes
            slots = processor.slot_sizes
            values.update(
                vocab_size=len(processor.tokenizer),
                phonetic_vocab_size=vocab["phonetic"],
                morph_vocab_size=vocab["morphological"],
                phonetic_slot_size=slots["phonetic"],
                morph_slot_size=slots["morphological"],
            )
        values.update(overrides)
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


class MultiStreamGPT2Model(MultiStreamGPT2PreTrainedModel):
    """GPT-2 (semantic stream) + causal non-semantic streams, integrated after the blocks in `integration_layers`.

    State-dict keys: `semantic.*` (a `GPT2Model`), `streams.<name>.*`, `integration.<k>.*`, `stream_tables.<name>`.
    """

    def __init__(self, config: MultiStreamGPT2Config) -> None:
        super().__init__(config)
        self.semantic = GPT2Model(config.semantic_config())
        names = config.non_semantic_streams
        self.stream_tables = StreamTables(config.vocab_size, config.slot_sizes) if names else None
        integrating = config.integration_type != "none"
        points = config.integration_layers if integrating else []
        self._integration_point = {layer: k for k, layer in enumerate(points)}  # block index -> point index
        streams, offset = {}, config.n_layer  # cache layers: semantic blocks first, then each stream's layers
        for name in names:
            streams[name] = StreamEncoder(
                vocab_size=config.stream_vocab_sizes[name],
                slot_size=config.slot_sizes[name],
                hidden_size=config.stream_hidden_size,
                num_layers=len(points),
                num_heads=config.stream_num_heads,
                intermediate_size=config.stream_intermediate_size,
                max_position_embeddings=config.n_positions,
                dropout=config.stream_dropout,
                layer_norm_eps=config.layer_norm_epsilon,
                layer_idx_offset=offset,
            )
            offset += len(points)
        self.num_cache_layers = offset
        # `batched_stream_weights`' stacked weights, kept within one generation (see `ParameterCache`)
        self._stacked_stream_weights = ParameterCache()
        self.streams = nn.ModuleDict(streams)
        self.integration = nn.ModuleList(
            build_integration(
                config.integration_type,
                config.stream_widths,
                config.n_embd,
                alpha_granularity=config.alpha_granularity,
                activation=config.integration_activation,
                recurrent=config.integration_recurrent,
                layer_norm_eps=config.layer_norm_epsilon,
                alpha_init=config.dm_alpha_init,
                init_std=config.initializer_range,
            )
            for _ in points
        )
        if any(module.streams != ["semantic", *names] for module in self.integration):
            raise ValueError(f"The integration's streams must be the semantic stream and then {names}")
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

    def _embed_streams(
        self,
        input_ids: torch.LongTensor | None,
        given: dict[str, torch.LongTensor | None],
        position_ids: torch.LongTensor,
    ) -> dict[str, torch.Tensor]:
        if not self.streams:
            return {}
        ids = resolve_stream_ids(self.stream_tables, input_ids, given, self.config.stream_vocab_sizes)
        batch = ids[next(iter(ids))].shape[0]
        positions = position_ids.expand(batch, -1)
        return {
            name: self.streams[name].embeddings(ids[name], positions) for name in self.streams
        }  # (B, T, d_s)

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
        output_stream_weights: bool | None = None,
        return_dict: bool | None = None,
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
            output_hidden_states (`bool`, *optional*): return the semantic stream's hidden states.
            output_stream_weights (`bool`, *optional*): return the integration weights.
            return_dict (`bool`, *optional*): return a `ModelOutput` (default `config.return_dict`) or a tuple.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Specify exactly one of `input_ids` and `inputs_embeds`")
        if input_ids is not None and input_ids.numel():
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.config.vocab_size:
                raise ValueError(
                    f"`input_ids` hold ids in [{low}, {high}], outside the vocabulary [0, {self.config.vocab_size})"
                )
        if use_cache is None:
            use_cache = bool(self.config.use_cache) and not self.training
        if self.training and torch.is_grad_enabled() and self.is_activation_checkpointing:
            use_cache = False
        cache = self._prepare_cache(cache, use_cache)
        past_length = cache.get_seq_length() if cache is not None else 0
        # derived weights (stacked stream layers, integrations') are reused within one generation: the calls that
        # continue the same cache; its first call, and every call without a cache, build them afresh
        for store in (self._stacked_stream_weights, *(m._derived for m in self.integration)):
            store.scope(cache, fresh=past_length == 0)
        sem = self.semantic
        embeds = inputs_embeds if inputs_embeds is not None else sem.wte(input_ids)  # (B, T, H)
        length = embeds.shape[1]
        check_sequence_length(past_length + length, self.config.n_positions)
        if position_ids is None:
            position_ids = torch.arange(past_length, past_length + length, device=embeds.device).unsqueeze(0)
        hidden = sem.drop(embeds + sem.wpe(position_ids))  # (B, T, H)
        if attention_mask is not None and attention_mask.dim() == 2:
            attention_mask = attention_mask.to(embeds.device)
        causal_mask = create_causal_mask(
            config=sem.config,
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        given = {name: ids for name, ids in (("phonetic", phonetic_ids), ("morphological", morph_ids))}
        states = self._embed_streams(input_ids, given, position_ids)  # {name: (B, T, d_s)}
        stream_mask = None
        if states:
            stream_mask = stream_attention_mask(
                attention_mask, length, past_length + length, causal=True, device=embeds.device
            )
        names = list(self.streams)
        groups = [[self.streams[name].layers[k] for name in names] for k in range(len(self.integration))]
        # the streams' layers at each point as one batched layer, their states stacked from here to the end
        plan = batched_stream_weights(groups, self._stacked_stream_weights) if states and groups else None
        stacked = (
            torch.stack([states[name] for name in names]) if plan is not None else None
        )  # (S, B, T, d_s)
        integrated, weights, all_hidden = hidden, [], (hidden,) if output_hidden_states else None
        for i, block in enumerate(sem.h):
            hidden = block(
                hidden,
                cache=cache,
                attention_mask=causal_mask,
                use_cache=use_cache,
                position_ids=position_ids,
            )
            if output_hidden_states:
                all_hidden = all_hidden + (hidden,)
            point = self._integration_point.get(i)
            if point is None:
                continue
            if plan is not None:
                stacked = batched_stream_layer(plan[point], groups[point][0], stacked, stream_mask, cache)
                inputs = StackedStreams(hidden, stacked)  # the integration's streams: semantic, then `names`
            else:
                outputs = [
                    layer(states[name], stream_mask, cache=cache) for name, layer in zip(names, groups[point])
                ]
                states = dict(zip(names, outputs, strict=True))  # {name: (B, T, d_s)}
                inputs = [hidden, *outputs]
            out = self.integration[point](
                inputs,
                previous=integrated,
                return_weights=bool(output_stream_weights),
            )
            integrated = out.integrated  # (B, T, H)
            if output_stream_weights:
                weights.append(out.weights)  # (B, T, S)
        final = integrated if self.integration else hidden
        stacked = torch.stack(weights) if (output_stream_weights and weights) else None
        out = MultiStreamGPT2ModelOutput(
            last_hidden_state=sem.ln_f(final),
            cache=cache,
            hidden_states=all_hidden,
            stream_weights=stacked,
        )
        return (
            out if (return_dict if return_dict is not None else self.config.return_dict) else out.to_tuple()
        )


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
        for key, name, given in (
            ("phonetic_ids", "phonetic", phonetic_ids),
            ("morph_ids", "morphological", morph_ids),
        ):
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
        output_stream_weights: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> MultiStreamGPT2CausalLMOutput | tuple:
        r"""
        Args:
            input_ids, cache, attention_mask, position_ids, inputs_embeds, phonetic_ids, morph_ids, use_cache,
            output_hidden_states, output_stream_weights: as in [`MultiStreamGPT2Model.forward`].
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
            output_stream_weights=output_stream_weights,
            return_dict=True,
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
