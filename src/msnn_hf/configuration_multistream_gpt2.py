"""Configuration of the multi-stream GPT-2 family (`MultiStreamGPT2Config`).

The multi-stream fields are declared once, in `MultiStreamConfigMixin`; this module adds GPT-2's names and
defaults. Only relative imports of siblings and public transformers API: this module is copied into every
checkpoint as remote code.
"""

from __future__ import annotations

from typing import Any

from transformers import GPT2Config

from .configuration_multistream_common import MULTISTREAM_ARGS_DOC, MultiStreamConfigMixin

# model types whose config.json / weights a `GPT2Model` can read (the semantic stream's backbone)
GPT2_COMPATIBLE_MODEL_TYPES: tuple[str, ...] = ("gpt2",)


class MultiStreamGPT2Config(MultiStreamConfigMixin, GPT2Config):
    model_type = "multistream_gpt2"

    stream_hidden_size: int = 128
    stream_num_heads: int = 4
    stream_intermediate_size: int = 256

    semantic_config_class = GPT2Config
    compatible_model_types = GPT2_COMPATIBLE_MODEL_TYPES
    num_layers_attribute = "n_layer"
    hidden_size_attribute = "n_embd"
    max_positions_attribute = "n_positions"
    layer_norm_eps_attribute = "layer_norm_epsilon"
    requires_semantic = True  # the LM head predicts the semantic vocabulary
    causal = True

    def __post_init__(self, **kwargs: Any) -> None:
        self.validate_multistream_fields()
        super().__post_init__(**kwargs)

    def check_stream_combination(self) -> None:
        if self.integration_type == "none" and self.streams != ["semantic"]:
            raise ValueError(
                f"integration_type='none' is the plain GPT-2: `streams` must be ['semantic']; got {self.streams}"
            )
        super().check_stream_combination()

    @classmethod
    def from_gpt2_config(cls, gpt2_config: GPT2Config, **overrides: Any) -> MultiStreamGPT2Config:
        """A multi-stream config around an existing GPT-2 config (its fields, plus `overrides`)."""
        return cls.from_semantic_config(gpt2_config, **overrides)


MultiStreamGPT2Config.__doc__ = (
    r"""
    Configuration of a [`MultiStreamGPT2Model`] / [`MultiStreamGPT2LMHeadModel`]: a GPT-2 decoder (the *semantic*
    stream) plus narrow, causal phonetic and morphological streams, combined at the integration points.

    It holds every field of [`~transformers.GPT2Config`] under GPT-2's own names (`vocab_size`, `n_positions`,
    `n_embd`, `n_layer`, `n_head`, `n_inner`, `resid_pdrop`, ...; they configure the semantic stream, and `n_embd` is
    also the width of the integrated pathway and of the LM head) plus the multi-stream fields below (`streams` must
    contain `"semantic"`; `"none"` is the plain GPT-2 with `streams=["semantic"]`). Everything is validated on
    construction; a `ValueError` names the field.

    Args:"""
    + MULTISTREAM_ARGS_DOC.replace(
        "Width of the non-semantic streams (family default).",
        "Width of the non-semantic streams (GPT-2: 128).",
    )
    + r"""
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
    ```
    """
)

__all__ = ["MultiStreamGPT2Config"]
