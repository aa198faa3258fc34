"""Multi-stream vision encoder-decoder: an image encoder's patch tokens become the *vision stream* of a multi-stream
GPT-2 decoder, integrated with the text stream(s) by Linear Integration or Direct Mixing.

The decoder is the GPT-2 family (its semantic adapter, LM head and generation) on the shared stack; the vision
stream is one more stream of `run_stack`, a *context stream* (`MultiStreamStackMixin.context_streams`)::

    P = enc_to_dec_proj(encoder(pixel_values))          # (B, N, n_embd) patch tokens, computed once per image
    h = wte(x) + wpe(pos);  z = h;  v = 0               # v: the vision stream's state (B, T, d_v)
    for l, block in enumerate(gpt2.h):
        h = block(h)                                    # semantic stream
        if l is the k-th integration point:
            v = v + CrossAttn_k(q = ln(h), kv = ln(P))  # every token reads the patches it needs (attention-based
            v = v + MLP_k(ln(v))                        #   alignment); this readout is the vision stream's state
            z = integrate_k([h, (phonetic, morph,) v], z)   # LI / DM, gated: z = h before training
    logits = lm_head(ln_f(z))

Causality: a token's vision readout depends on that token's semantic state and the image only, so the decoder stays
causal. Cache: the decoder's `EncoderDecoderCache` holds the text layers' keys/values (self-attention part) and the
vision layers' projected patch keys/values (cross-attention part, written on the first call of a generation and read
afterwards, like transformers' own cross-attention); beams reorder both.

Only relative imports of siblings and public torch / transformers API: this module is copied into every
checkpoint as remote code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageTextToText,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.generation import GenerationMixin
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from .configuration_efficientnet_lite import EfficientNetLiteConfig
from .configuration_multistream_gpt2 import MultiStreamGPT2Config
from .configuration_multistream_vision import VISION, MultiStreamVisionEncoderDecoderConfig
from .modeling_efficientnet_lite import EfficientNetLiteModel
from .modeling_multistream_common import StreamMLP
from .modeling_multistream_gpt2 import (
    MultiStreamGPT2LMHeadModel,
    MultiStreamGPT2Model,
    MultiStreamGPT2PreTrainedModel,
)


# ------------------------------------------------------------------------------------------------ the vision stream
class PatchReadoutLayer(GradientCheckpointingLayer):
    """The vision stream's layer at one integration point: every text token reads the patch tokens by attention.

    ``v = v + out(softmax(q k^T / sqrt(d)) val)`` with ``q`` from the token's semantic state ``ln(h)`` and ``k, val``
    from the projected patches ``ln(P)``; then ``v = v + mlp(ln(v))``. Returns the raw residual state (like
    `StreamLayer`). ``layer_idx`` is its slot in the cross-attention part of an `EncoderDecoderCache`.
    """

    def __init__(
        self,
        query_size: int,
        context_size: int,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-5,
        layer_idx: int = 0,
    ) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"vision stream width {hidden_size} is not a multiple of its {num_heads} heads")
        self.num_heads, self.head_dim, self.layer_idx = num_heads, hidden_size // num_heads, layer_idx
        self.dropout = dropout
        self.query_norm = nn.LayerNorm(query_size, eps=layer_norm_eps)
        self.context_norm = nn.LayerNorm(context_size, eps=layer_norm_eps)
        self.q_proj = nn.Linear(query_size, hidden_size)
        self.kv_proj = nn.Linear(context_size, 2 * hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.resid_dropout = nn.Dropout(dropout)
        self.mlp_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.mlp = StreamMLP(hidden_size, intermediate_size, "gelu", dropout)

    def patch_keys_values(
        self, patches: torch.Tensor | None, cache: EncoderDecoderCache | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The patches' keys and values `(B, heads, N, head_dim)`: from the cache once it holds them, else computed
        (and written into the cache)."""
        if cache is not None and cache.is_updated.get(self.layer_idx, False):
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            return layer.keys, layer.values
        if patches is None:
            raise ValueError("the vision stream needs `encoder_hidden_states` (nothing is cached yet)")
        batch, num_patches, _ = patches.shape
        kv = self.kv_proj(self.context_norm(patches))  # (B, N, 2 d_v)
        k, v = kv.view(batch, num_patches, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if cache is not None:
            k, v = cache.cross_attention_cache.update(k, v, self.layer_idx)
            cache.is_updated[self.layer_idx] = True
        return k, v

    def forward(
        self,
        state: torch.Tensor,
        semantic: torch.Tensor,
        patches: torch.Tensor | None,
        patch_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
    ) -> torch.Tensor:
        batch, tokens, _ = semantic.shape
        q = (
            self.q_proj(self.query_norm(semantic))
            .view(batch, tokens, self.num_heads, self.head_dim)
            .transpose(1, 2)
        )
        k, v = self.patch_keys_values(patches, cache)  # (B, nh, N, hd)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=patch_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hd)
        y = self.out_proj(y.transpose(1, 2).reshape(batch, tokens, -1))  # (B, T, d_v)
        state = state + self.resid_dropout(y)
        return state + self.mlp(self.mlp_norm(state))  # (B, T, d_v)


class PatchStream(nn.Module):
    """The vision stream: one `PatchReadoutLayer` per integration point, fed the projected patch tokens as its
    context (`MultiStreamStackMixin.context_streams`). It starts at zero at every token and holds no self-attention
    cache (``num_cache_layers = 0``)."""

    reads_context = True
    num_cache_layers = 0

    def __init__(
        self,
        query_size: int,
        hidden_size: int,
        num_layers: int,
        num_heads: int,
        intermediate_size: int,
        dropout: float,
        layer_norm_eps: float,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.layers = nn.ModuleList(
            PatchReadoutLayer(
                query_size, query_size, hidden_size, num_heads, intermediate_size, dropout, layer_norm_eps, i
            )
            for i in range(num_layers)
        )

    def initial_state(self, semantic: torch.Tensor) -> torch.Tensor:
        return semantic.new_zeros(*semantic.shape[:-1], self.hidden_size)  # (B, T, d_v)


def patch_attention_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """A `(B, N)` patch mask (1 = real) as SDPA's boolean `(B, 1, 1, N)`; ``None`` stays ``None``."""
    return None if mask is None else mask.bool()[:, None, None, :]


# ------------------------------------------------------------------------------------------------------ the decoder
class MultiStreamVisionGPT2Model(MultiStreamGPT2Model):
    """[`MultiStreamGPT2Model`] that also builds the vision stream (``"vision"`` in `config.streams`): the same
    semantic adapter and stack, one more stream kind (``"patches"``). Its forward takes the projected patch tokens
    as `encoder_hidden_states` `(batch, patches, n_embd)` and a cache that may be an `EncoderDecoderCache`
    (its self-attention part serves the text layers, its cross-attention part the vision layers)."""

    buildable_stream_kinds = ("slots", "patches")

    def build_stream(self, name: str, config, num_layers: int, layer_idx_offset: int) -> nn.Module:
        if name != VISION:
            return super().build_stream(name, config, num_layers, layer_idx_offset)
        return PatchStream(
            query_size=config.n_embd,
            hidden_size=config.stream_hidden_size,
            num_layers=num_layers,
            num_heads=config.stream_num_heads,
            intermediate_size=config.stream_intermediate_size,
            dropout=config.stream_dropout,
            layer_norm_eps=config.layer_norm_epsilon,
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        encoder_hidden_states: torch.FloatTensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ):
        r"""
        Args:
            input_ids, use_cache and every other argument: as in [`MultiStreamGPT2Model.forward`].
            cache (`Cache`, *optional*): a `DynamicCache` (text layers only: the patch keys/values are recomputed
                at every call) or an `EncoderDecoderCache` (the patch keys/values are computed once and kept).
            encoder_hidden_states (`torch.FloatTensor` of shape `(batch_size, num_patches, n_embd)`):
                The projected patch tokens (the vision stream's input); may be omitted once `cache` holds their keys
                and values.
            encoder_attention_mask (`torch.Tensor` of shape `(batch_size, num_patches)`, *optional*): 1 = real patch.
        """
        if use_cache is None:
            use_cache = bool(self.config.use_cache) and not self.training
        if self.training and torch.is_grad_enabled() and self.is_activation_checkpointing:
            use_cache = False
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        cross = cache if isinstance(cache, EncoderDecoderCache) else None
        self._check_patches(input_ids, kwargs.get("inputs_embeds"), encoder_hidden_states, cross)
        # the vision stream's inputs of this call travel as an argument (no state on the module: one model can
        # serve concurrent requests)
        context = {
            VISION: (
                encoder_hidden_states,
                patch_attention_mask(encoder_attention_mask),
                cross if use_cache else None,
            )
        }
        out = super().forward(
            input_ids,
            cache=cross.self_attention_cache if cross is not None else cache,
            use_cache=use_cache,
            stream_context=context,
            **kwargs,
        )
        if cross is not None and use_cache:
            if isinstance(out, tuple):
                return (out[0], cross, *out[2:])
            out.cache = cross
        return out

    def _check_patches(self, input_ids, inputs_embeds, patches, cross) -> None:
        if patches is None:
            if cross is None or not all(
                cross.is_updated.get(k, False) for k in range(len(self.streams[VISION].layers))
            ):
                raise ValueError(
                    "the vision stream needs `encoder_hidden_states` (batch, patches, n_embd): the projected patch "
                    "tokens of the image encoder"
                )
            return
        batch = (input_ids if input_ids is not None else inputs_embeds).shape[0]
        if patches.dim() != 3 or patches.shape[0] != batch or patches.shape[-1] != self.config.n_embd:
            raise ValueError(
                f"`encoder_hidden_states` must have shape ({batch}, patches, {self.config.n_embd}); got "
                f"{tuple(patches.shape)}"
            )


class MultiStreamVisionGPT2LMHeadModel(MultiStreamGPT2LMHeadModel):
    """[`MultiStreamGPT2LMHeadModel`] over [`MultiStreamVisionGPT2Model`]: the decoder of
    [`MultiStreamVisionEncoderDecoder`]. Its forward also takes `encoder_hidden_states` / `encoder_attention_mask`;
    `from_backbone("gpt2", streams=["semantic", "vision"])` starts it from a plain GPT-2 checkpoint."""

    def __init__(self, config: MultiStreamGPT2Config) -> None:
        MultiStreamGPT2PreTrainedModel.__init__(self, config)
        self.transformer = MultiStreamVisionGPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.loss_type = "ForCausalLM"
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        encoder_hidden_states: torch.FloatTensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        r"""
        Args:
            encoder_hidden_states, encoder_attention_mask: as in [`MultiStreamVisionGPT2Model.forward`].
            input_ids and every other argument: as in [`MultiStreamGPT2LMHeadModel.forward`].
        """
        return super().forward(
            input_ids, encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask,
            **kwargs,
        )  # fmt: skip

    def _transformer_inputs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {
            key: kwargs.pop(key)
            for key in ("encoder_hidden_states", "encoder_attention_mask")
            if key in kwargs
        }


# ------------------------------------------------------------------------------------------ the encoder-decoder
@dataclass
class MultiStreamVisionSeq2SeqLMOutput(ModelOutput):
    """Output of [`MultiStreamVisionEncoderDecoder`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` are given):
            Mean cross-entropy of `logits` against `labels` (aligned with `decoder_input_ids`: `labels[:, t]` is the
            token that follows `decoder_input_ids[:, t]`; `-100` is ignored).
        logits (`torch.FloatTensor` of shape `(batch_size, target_length, vocab_size)`): next-token scores.
        cache (`EncoderDecoderCache`, *optional*, returned when `use_cache=True`): the text layers' keys/values and
            the vision layers' patch keys/values.
        decoder_hidden_states (`tuple(torch.FloatTensor)`, *optional*, with `output_hidden_states=True`):
            The decoder's semantic stream: embedding output and every block's output.
        stream_weights (`torch.FloatTensor` of shape `(num_integration_points, batch_size, target_length, num_streams)`, *optional*):
            With `output_stream_weights=True`: every stream's weight at every token and integration point, in the
            order of `config.decoder.streams` (DM: alpha; LI: contribution share; see `modality_weights`).
        encoder_last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_patches, encoder_hidden_size)`):
            The encoder's patch tokens (before `enc_to_dec_proj`).
        encoder_hidden_states (`tuple(torch.FloatTensor)`, *optional*): the encoder's hidden states, if asked.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: Cache | None = None
    decoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    stream_weights: torch.FloatTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None
    encoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None


def shift_tokens_right(labels: torch.LongTensor, pad_token_id: int, start_token_id: int) -> torch.LongTensor:
    """Decoder inputs from labels: ``[start, labels[:-1]]`` with `-100` replaced by the pad token."""
    shifted = labels.new_full(labels.shape, pad_token_id)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


def patch_tokens(encoder_output: torch.Tensor) -> torch.Tensor:
    """An encoder's `last_hidden_state` as patch tokens `(B, N, D)`: a `(B, D, H, W)` feature map is flattened."""
    if encoder_output.dim() == 4:
        return encoder_output.flatten(2).transpose(1, 2)
    if encoder_output.dim() != 3:
        raise ValueError(
            f"the encoder's last_hidden_state must be (batch, patches, width) or (batch, channels, height, width); "
            f"got shape {tuple(encoder_output.shape)}"
        )
    return encoder_output


def build_encoder(config: PreTrainedConfig) -> PreTrainedModel:
    """The image encoder of a config: `AutoModel.from_config`, and our EfficientNet-Lite by its model type (its code
    travels with the checkpoint, where `AutoModel` may not know it: remote code without msnn_hf)."""
    if getattr(config, "model_type", None) == EfficientNetLiteConfig.model_type:
        return EfficientNetLiteModel(config)
    return AutoModel.from_config(config)


class MultiStreamVisionEncoderDecoder(PreTrainedModel, GenerationMixin):
    """Image encoder (any transformers vision model) + [`MultiStreamVisionGPT2LMHeadModel`]: captions and answers
    with `generate()`, the encoder's patch tokens integrated as the decoder's vision stream.

    Inputs: `pixel_values` (the main input), `decoder_input_ids` (BOS + prompt; the question for VQA),
    `decoder_attention_mask`, `labels`. With a pretrained decoder the model computes that decoder's function before
    training (the integration gates start at zero). State-dict keys: `encoder.*`, `enc_to_dec_proj.*` (when the
    widths differ), `decoder.transformer.semantic.*` (GPT-2), `decoder.transformer.streams.vision.layers.<k>.*`,
    `decoder.transformer.integration.<k>.*`, `decoder.lm_head.weight` (tied to `wte`).
    """

    config_class = MultiStreamVisionEncoderDecoderConfig
    config: MultiStreamVisionEncoderDecoderConfig
    base_model_prefix = "vision_encoder_decoder"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["GPT2Block", "StreamLayer", "PatchReadoutLayer"]
    # the loss is the mean over this batch's labelled tokens (`num_items_in_batch` is not used): the Trainer must
    # scale it for gradient accumulation / several processes itself (with **kwargs it would assume we do)
    accepts_loss_kwargs = False

    def __init__(
        self,
        config: MultiStreamVisionEncoderDecoderConfig | None = None,
        encoder: PreTrainedModel | None = None,
        decoder: MultiStreamVisionGPT2LMHeadModel | None = None,
    ) -> None:
        if config is None:
            if encoder is None or decoder is None:
                raise ValueError("Give a config, or an encoder and a decoder")
            config = MultiStreamVisionEncoderDecoderConfig.from_encoder_decoder_configs(
                encoder.config, decoder.config
            )
        elif getattr(config, "model_type", None) != MultiStreamVisionEncoderDecoderConfig.model_type:
            # compared by model type: remote code may load the config class as another module's class
            raise ValueError(
                f"config must be a MultiStreamVisionEncoderDecoderConfig; got {type(config).__name__}"
            )
        config.tie_word_embeddings = False  # the encoder's and the decoder's embeddings are not tied
        super().__init__(config)
        given = [part for part in (encoder, decoder) if part is not None]
        if encoder is None:
            encoder = build_encoder(config.encoder)
        if decoder is None:
            decoder = MultiStreamVisionGPT2LMHeadModel(config.decoder)
        if not isinstance(decoder, MultiStreamVisionGPT2LMHeadModel):
            raise ValueError(
                f"the decoder must be a MultiStreamVisionGPT2LMHeadModel; got {type(decoder).__name__} "
                "(start it from a GPT-2 with `MultiStreamVisionGPT2LMHeadModel.from_backbone(...)`)"
            )
        if encoder.get_output_embeddings() is not None:
            raise ValueError(f"the encoder {type(encoder).__name__} has an LM head; use its base model")
        for part in given:  # weights that came with the parts are kept: the composite's init skips them
            for tensor in (*part.parameters(), *part.buffers()):
                tensor._is_hf_initialized = True
        self.encoder, self.decoder = encoder, decoder
        # one config object per part, shared with the composite (edits reach both)
        self.config.encoder, self.config.decoder = encoder.config, decoder.config
        if config.encoder_hidden_size != decoder.config.n_embd:
            self.enc_to_dec_proj = nn.Linear(config.encoder_hidden_size, decoder.config.n_embd)
        self._encoder_frozen = False
        self.post_init()
        for key in ("decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id"):
            setattr(self.generation_config, key, getattr(config, key))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(
            module, nn.Linear
        ):  # `enc_to_dec_proj`, the composite's own module (loaded weights stay)
            init.normal_(module.weight, std=self.config.decoder.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)

    # ---------------------------------------------------------------------------------------------------- parts
    def get_encoder(self) -> PreTrainedModel:
        return self.encoder

    def get_decoder(self) -> MultiStreamVisionGPT2LMHeadModel:
        return self.decoder

    def get_input_embeddings(self) -> nn.Embedding:
        return self.decoder.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Linear:
        return self.decoder.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.decoder.set_output_embeddings(value)

    def freeze_encoder(self, frozen: bool = True) -> None:
        """Stop (or restart) training the encoder: its parameters get no gradient and it stays in eval mode (its
        dropout off, its BatchNorm statistics fixed) while the rest of the model trains."""
        self.encoder.requires_grad_(not frozen)
        self._encoder_frozen = frozen
        if frozen:
            self.encoder.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self._encoder_frozen:
            self.encoder.eval()
        return self

    @classmethod
    def from_encoder_decoder_pretrained(
        cls,
        encoder_pretrained_model_name_or_path: str | os.PathLike,
        decoder_pretrained_model_name_or_path: str | os.PathLike,
        processor: Any | None = None,
        **kwargs: Any,
    ) -> MultiStreamVisionEncoderDecoder:
        """A model from a pretrained image encoder and a pretrained plain GPT-2 (Hub ids or local folders).

        The encoder is loaded with `AutoModel.from_pretrained` (a ViT, CLIP vision or EfficientNet-Lite checkpoint;
        the vision tower of a full CLIP checkpoint is taken); the decoder with
        `MultiStreamVisionGPT2LMHeadModel.from_backbone` (`streams` default `["semantic", "vision"]`), so the model
        computes that GPT-2's function before training.

        Args:
            processor: a `MultiStreamProcessor` for the decoder's slot streams (needed for phonetic/morphological).
            kwargs: ``encoder_*`` go to `AutoModel.from_pretrained` (e.g. `encoder_revision`), ``decoder_*`` are
                decoder config overrides (e.g. `decoder_integration_type="dm"`, `decoder_alpha_granularity="token"`),
                the rest are fields of the composite config (e.g. `pad_token_id`).
        """
        encoder_kwargs = {k[len("encoder_") :]: v for k, v in kwargs.items() if k.startswith("encoder_")}
        decoder_kwargs = {k[len("decoder_") :]: v for k, v in kwargs.items() if k.startswith("decoder_")}
        config_kwargs = {k: v for k, v in kwargs.items() if not k.startswith(("encoder_", "decoder_"))}
        encoder = AutoModel.from_pretrained(encoder_pretrained_model_name_or_path, **encoder_kwargs)
        if getattr(encoder, "vision_model", None) is not None and hasattr(encoder, "text_model"):
            encoder = encoder.vision_model  # a full CLIP checkpoint: its vision tower (a CLIPVisionModel)
            if not isinstance(encoder, PreTrainedModel):
                raise ValueError(
                    f"{encoder_pretrained_model_name_or_path}: its vision tower is no PreTrainedModel"
                )
        decoder_kwargs.setdefault("streams", ["semantic", VISION])
        decoder = MultiStreamVisionGPT2LMHeadModel.from_backbone(
            str(decoder_pretrained_model_name_or_path), processor=processor, **decoder_kwargs
        )
        config = MultiStreamVisionEncoderDecoderConfig.from_encoder_decoder_configs(
            encoder.config, decoder.config, **config_kwargs
        )
        return cls(config=config, encoder=encoder, decoder=decoder)

    # ------------------------------------------------------------------------------------------------- forward
    def project_patches(self, encoder_output: torch.Tensor) -> torch.Tensor:
        """The encoder's output as the decoder's vision input `(B, N, n_embd)`."""
        patches = patch_tokens(encoder_output)
        projection = getattr(self, "enc_to_dec_proj", None)
        return projection(patches) if projection is not None else patches

    def forward(
        self,
        pixel_values: torch.FloatTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        decoder_inputs_embeds: torch.FloatTensor | None = None,
        decoder_position_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_stream_weights: bool | None = None,
        return_dict: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> MultiStreamVisionSeq2SeqLMOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
                The images (the encoder's input), unless `encoder_outputs` are given.
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, target_length)`):
                BOS + prompt (+ target when training); with a `cache`, only the tokens not yet in it. Default, with
                `labels`: the labels shifted right behind `decoder_start_token_id`.
            decoder_attention_mask (`torch.Tensor` of shape `(batch_size, past_length + target_length)`, *optional*):
                1 for real tokens, 0 for padding (left padding for batched generation). The decoder's positions are
                counted over the real tokens (`cumsum(mask) - 1`) unless `decoder_position_ids` are given.
            encoder_outputs (`BaseModelOutput` or `tuple`, *optional*): the encoder's outputs, computed once
                (`generate()` passes them at every step).
            cache (`Cache`, *optional*): an `EncoderDecoderCache` (text keys/values + patch keys/values).
            labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*): `labels[:, t]` is the
                token after `decoder_input_ids[:, t]` (`-100` ignored): what `MultiStreamVisionProcessor` returns.
            output_stream_weights (`bool`, *optional*): return the integration weights (see `modality_weights`).
            attention_mask (`torch.Tensor`, *optional*): accepted for `generate()` (image encoders take no mask).
            logits_to_keep (`int` or `torch.Tensor`, *optional*): as in [`MultiStreamGPT2LMHeadModel.forward`]
                (generation computes the last position's logits only).
            decoder_inputs_embeds, decoder_position_ids, use_cache, output_hidden_states, return_dict: as their
                counterparts in [`MultiStreamGPT2LMHeadModel.forward`].
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if encoder_outputs is None:
            if pixel_values is None:
                raise ValueError("Give `pixel_values` (or `encoder_outputs`)")
            encoder_outputs = self.encoder(
                pixel_values=pixel_values, output_hidden_states=output_hidden_states, return_dict=True
            )
        elif isinstance(encoder_outputs, tuple):
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = shift_tokens_right(
                labels, self.config.pad_token_id, self.config.decoder_start_token_id
            )
        points = len(self.config.decoder.integration_layers)
        cached = isinstance(cache, EncoderDecoderCache) and all(
            cache.is_updated.get(k, False) for k in range(points)
        )
        # once the cache holds the patch keys/values, the projection is not needed any more
        patches = None if cached else self.project_patches(encoder_outputs[0])
        tokens = decoder_input_ids if decoder_input_ids is not None else decoder_inputs_embeds[..., 0]
        if (
            decoder_position_ids is None
            and decoder_attention_mask is not None
            and decoder_attention_mask.dim() == 2
        ):
            positions = decoder_attention_mask.long().cumsum(-1) - 1  # left padding: count the real tokens
            decoder_position_ids = positions.clamp_min(0)[:, -tokens.shape[1] :]
        if isinstance(cache, Cache) and not isinstance(cache, EncoderDecoderCache):
            cache = EncoderDecoderCache(cache, DynamicCache())
        outputs = self.decoder(
            input_ids=decoder_input_ids,
            encoder_hidden_states=patches,
            cache=cache,
            attention_mask=decoder_attention_mask,
            position_ids=decoder_position_ids,
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            output_stream_weights=output_stream_weights,
            logits_to_keep=logits_to_keep,
            return_dict=True,
            **kwargs,
        )
        loss = None
        if labels is not None:
            logits = outputs.logits
            loss = F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
            )
        result = MultiStreamVisionSeq2SeqLMOutput(
            loss=loss,
            logits=outputs.logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.hidden_states,
            stream_weights=outputs.stream_weights,
            encoder_last_hidden_state=encoder_outputs[0],
            encoder_hidden_states=getattr(encoder_outputs, "hidden_states", None),
        )
        return result if return_dict else result.to_tuple()

    def generate(self, inputs: torch.Tensor | None = None, **kwargs: Any):
        """`GenerationMixin.generate`; `encoder_outputs` passed in are left as they are (generation expands them for
        the beams in place, which would leave a caller's batch, e.g. `Seq2SeqTrainer`'s, with the wrong size)."""
        given = kwargs.get("encoder_outputs")
        if isinstance(given, ModelOutput):
            kwargs["encoder_outputs"] = type(given)(**given)
        return super().generate(inputs, **kwargs)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.LongTensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def modality_weights(self, stream_weights: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"vision": α_vision, "text": α_text}`` from `stream_weights` `(points, B, T, S)`: the vision stream's
        weight and the sum of the text streams' (semantic, phonetic, morphological), each `(points, B, T)`. For
        DM-token they sum to 1 at every token."""
        streams = self.config.decoder.streams
        vision = streams.index(VISION)
        text = [i for i, s in enumerate(streams) if s != VISION]
        return {"vision": stream_weights[..., vision], "text": stream_weights[..., text].sum(-1)}


_REGISTERED = False


def register() -> None:
    """Register with `AutoConfig`, `AutoModel` and `AutoModelForImageTextToText` (idempotent) and for remote code."""
    global _REGISTERED
    if _REGISTERED:
        return
    config_class = MultiStreamVisionEncoderDecoderConfig
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, MultiStreamVisionEncoderDecoder, exist_ok=True)
    AutoModelForImageTextToText.register(config_class, MultiStreamVisionEncoderDecoder, exist_ok=True)
    config_class.register_for_auto_class()
    MultiStreamVisionEncoderDecoder.register_for_auto_class("AutoModelForImageTextToText")
    _REGISTERED = True


__all__ = [
    "MultiStreamVisionEncoderDecoder",
    "MultiStreamVisionGPT2LMHeadModel",
    "MultiStreamVisionGPT2Model",
    "MultiStreamVisionSeq2SeqLMOutput",
    "PatchReadoutLayer",
    "PatchStream",
    "register",
]
