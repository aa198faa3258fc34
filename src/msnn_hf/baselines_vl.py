"""Baseline (a) of the vision + language experiments: transformers' own `VisionEncoderDecoderModel` with the
EfficientNet-Lite encoder and a GPT-2 decoder that cross-attends to the 49 patch tokens.

Nothing here forks transformers: the model is `VisionEncoderDecoderModel(encoder=..., decoder=...)`, which adds
`enc_to_dec_proj` (a linear map 1280 -> decoder width) when the widths differ, runs the encoder once per
`generate()` call and saves/loads as one folder (the encoder's config has `model_type` "msnn_efficientnet_lite",
which `import msnn_hf` registers with `AutoModel`).

Example::

    from transformers import GPT2Config
    from msnn_hf.baselines_vl import build_captioning_baseline
    from msnn_hf.pretrained import efficientnet_lite0_path

    model = build_captioning_baseline(
        efficientnet_lite0_path(),  # or an EfficientNetLiteConfig / EfficientNetLiteModel
        GPT2Config(vocab_size=50257, n_embd=768, n_layer=12, n_head=12),  # or "gpt2" with Hub access
        bos_token_id=50256, eos_token_id=50256, pad_token_id=50256,
    )
    captions = model.generate(pixel_values, max_new_tokens=20, num_beams=3)
"""

from __future__ import annotations

import os

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    GPT2Config,
    PreTrainedConfig,
    PreTrainedModel,
    VisionEncoderDecoderModel,
)

from .configuration_efficientnet_lite import EfficientNetLiteConfig
from .modeling_efficientnet_lite import EfficientNetLiteModel


def _encoder(encoder: str | os.PathLike | PreTrainedConfig | PreTrainedModel) -> PreTrainedModel:
    if isinstance(encoder, PreTrainedModel):
        return encoder
    if isinstance(encoder, EfficientNetLiteConfig):
        return EfficientNetLiteModel(encoder)
    if isinstance(encoder, PreTrainedConfig):
        return AutoModel.from_config(encoder)
    return AutoModel.from_pretrained(encoder)


def _decoder(decoder: str | os.PathLike | PreTrainedConfig | PreTrainedModel) -> PreTrainedModel:
    if isinstance(decoder, PreTrainedModel):
        if not getattr(decoder.config, "add_cross_attention", False):
            raise ValueError("the decoder must have cross-attention layers (config.add_cross_attention=True)")
        return decoder
    if isinstance(decoder, PreTrainedConfig):
        decoder.is_decoder, decoder.add_cross_attention = True, True
        return AutoModelForCausalLM.from_config(decoder)
    # a pretrained decoder gains freshly initialised cross-attention layers (transformers reports them as missing);
    # the flags go through the config: transformers 5.24's GPT-2 takes no `is_decoder` keyword
    config = AutoConfig.from_pretrained(decoder)
    config.is_decoder, config.add_cross_attention = True, True
    return AutoModelForCausalLM.from_pretrained(decoder, config=config)


def build_captioning_baseline(
    encoder: str | os.PathLike | PreTrainedConfig | PreTrainedModel,
    decoder: str | os.PathLike | PreTrainedConfig | PreTrainedModel | None = None,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> VisionEncoderDecoderModel:
    """A `VisionEncoderDecoderModel` from an image encoder (folder / Hub id, config or model) and a causal decoder
    (folder / Hub id, config or model; default: a GPT-2-small-shaped `GPT2Config`). Generation starts from
    `bos_token_id` (default: the decoder's), ends at `eos_token_id`, pads with `pad_token_id` (default: eos)."""
    encoder_model = _encoder(encoder)
    decoder_model = _decoder(decoder if decoder is not None else GPT2Config())
    model = VisionEncoderDecoderModel(encoder=encoder_model, decoder=decoder_model)
    bos = bos_token_id if bos_token_id is not None else decoder_model.config.bos_token_id
    eos = eos_token_id if eos_token_id is not None else decoder_model.config.eos_token_id
    pad = pad_token_id if pad_token_id is not None else eos
    if bos is None or eos is None:
        raise ValueError("give bos_token_id and eos_token_id (the decoder config has none)")
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id, config.bos_token_id = bos, bos
        config.eos_token_id, config.pad_token_id = eos, pad
    return model


__all__ = ["build_captioning_baseline"]
