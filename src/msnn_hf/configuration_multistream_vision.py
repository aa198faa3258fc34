"""Configuration of the multi-stream vision encoder-decoder (`MultiStreamVisionEncoderDecoderConfig`).

Nested like transformers' `VisionEncoderDecoderConfig`: an ``encoder`` sub-config (any transformers vision model:
ViT, CLIP vision, our EfficientNet-Lite, ...) and a ``decoder`` sub-config, a `MultiStreamGPT2Config` whose
``streams`` contain ``"vision"``. Only relative imports of siblings and public transformers API: this module is
copied into every checkpoint as remote code.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_efficientnet_lite import EfficientNetLiteConfig
from .configuration_multistream_common import PATCH_STREAMS, SEMANTIC
from .configuration_multistream_gpt2 import MultiStreamGPT2Config

# our EfficientNet-Lite encoder's sub-config must resolve where only a checkpoint's own code is available (remote
# code, without msnn_hf); where `import msnn_hf` registered it already, that registration stays
try:
    AutoConfig.register(EfficientNetLiteConfig.model_type, EfficientNetLiteConfig)
except ValueError:
    pass

VISION = PATCH_STREAMS[0]  # "vision"
# the fusions that combine a vision stream with the text: per-point LI / DM, or concat's readout. "early" adds slot
# embeddings to the word embeddings (the vision stream has none before it reads the patches) and "none" is one stream
VISION_INTEGRATION_TYPES: tuple[str, ...] = ("li", "dm", "concat")


class MultiStreamVisionEncoderDecoderConfig(PreTrainedConfig):
    r"""
    Configuration of a [`MultiStreamVisionEncoderDecoder`]: an image encoder whose patch tokens become the decoder's
    *vision stream*, and a multi-stream GPT-2 decoder that integrates that stream with its text stream(s) by Linear
    Integration or Direct Mixing at every integration point.

    Args:
        encoder (`PreTrainedConfig` or `dict`, *optional*):
            The image encoder's config (any model `AutoModel` builds whose output `last_hidden_state` is
            `(batch, patches, hidden_size)`, or a `(batch, channels, height, width)` map, flattened to patches).
            Default: a ViT-Base config.
        decoder (`MultiStreamGPT2Config` or `dict`, *optional*):
            The decoder's config; `streams` must contain `"vision"` (and `"semantic"`; `"phonetic"` /
            `"morphological"` stay available), `integration_type` one of `"li"`, `"dm"`, `"concat"`. Default:
            GPT-2 small with `streams=["semantic", "vision"]`.
        decoder_start_token_id (`int`, *optional*):
            The token a generation starts with (the decoder's BOS; default `decoder.bos_token_id`).
        pad_token_id (`int`, *optional*): padding token (default `decoder.pad_token_id`, else the EOS).
        bos_token_id / eos_token_id (`int`, *optional*): default the decoder's.

    The encoder's patch tokens are projected to the decoder width (`enc_to_dec_proj`, when the widths differ, as in
    `VisionEncoderDecoderModel`) and handed to the decoder as `encoder_hidden_states` `(batch, patches, n_embd)`,
    the vision stream's input (`STREAM_REGISTRY["vision"].input_key`).

    Example:

    ```python
    >>> from transformers import ViTConfig
    >>> from msnn_hf import MultiStreamGPT2Config, MultiStreamVisionEncoderDecoderConfig

    >>> encoder = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
    ...                     num_attention_heads=2, intermediate_size=64)
    >>> decoder = MultiStreamGPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=2,
    ...                                 streams=["semantic", "vision"], integration_type="dm",
    ...                                 alpha_granularity="token", stream_hidden_size=16, stream_num_heads=2,
    ...                                 stream_intermediate_size=32, bos_token_id=1, eos_token_id=2)
    >>> config = MultiStreamVisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    >>> config.decoder_start_token_id, config.decoder.streams
    (1, ['semantic', 'vision'])
    ```
    """

    model_type = "multistream_vision_encoder_decoder"
    sub_configs_defaults = {
        "encoder": SubConfigSpec(config_class=AutoConfig, model_type="vit"),
        "decoder": SubConfigSpec(
            config_class=MultiStreamGPT2Config, init_kwargs={"streams": [SEMANTIC, VISION]}
        ),
    }

    encoder: PreTrainedConfig | dict | None = None
    decoder: PreTrainedConfig | dict | None = None
    is_encoder_decoder: bool = True
    decoder_start_token_id: int | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        decoder = self.decoder
        if getattr(decoder, "model_type", None) != MultiStreamGPT2Config.model_type:
            raise ValueError(
                f"`decoder` must be a MultiStreamGPT2Config; got {type(decoder).__name__} (start from a GPT-2 with "
                "`MultiStreamGPT2Config.from_gpt2_config(gpt2_config, streams=['semantic', 'vision'])`)"
            )
        decoder.validate_multistream_fields()
        if VISION not in decoder.streams:
            raise ValueError(f"the decoder's `streams` must contain {VISION!r}; got {decoder.streams}")
        if decoder.integration_type not in VISION_INTEGRATION_TYPES:
            raise ValueError(
                f"the vision stream is integrated by one of {list(VISION_INTEGRATION_TYPES)}; the decoder has "
                f"integration_type={decoder.integration_type!r}"
            )
        self.encoder_hidden_size  # noqa: B018 (raises a clear error for an encoder without a width)
        if self.bos_token_id is None:
            self.bos_token_id = decoder.bos_token_id
        if self.eos_token_id is None:
            self.eos_token_id = decoder.eos_token_id
        if self.decoder_start_token_id is None:
            self.decoder_start_token_id = self.bos_token_id
        if self.pad_token_id is None:
            self.pad_token_id = (
                decoder.pad_token_id if decoder.pad_token_id is not None else self.eos_token_id
            )

    @property
    def encoder_hidden_size(self) -> int:
        """Width of the encoder's patch tokens (`hidden_size`, or the last of `hidden_sizes` for CNN backbones)."""
        width = getattr(self.encoder, "hidden_size", None)
        if width is None and getattr(self.encoder, "hidden_sizes", None):
            width = self.encoder.hidden_sizes[-1]
        if not isinstance(width, int):
            raise ValueError(
                f"the encoder config ({type(self.encoder).__name__}) has no `hidden_size`: which width are its "
                "patch tokens?"
            )
        return width

    @classmethod
    def from_encoder_decoder_configs(
        cls, encoder_config: PreTrainedConfig, decoder_config: MultiStreamGPT2Config, **kwargs: Any
    ) -> MultiStreamVisionEncoderDecoderConfig:
        """A config from an encoder config and a decoder `MultiStreamGPT2Config` (copied, not shared)."""
        return cls(encoder=encoder_config.to_dict(), decoder=decoder_config.to_dict(), **kwargs)


__all__ = ["MultiStreamVisionEncoderDecoderConfig", "VISION", "VISION_INTEGRATION_TYPES"]
