"""Configuration of the multi-stream GPT-2 family (`MultiStreamGPT2Config`).

Only relative imports of siblings and public transformers API: this module is copied into every checkpoint
as remote code.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from transformers import GPT2Config

from .configuration_multistream_common import KNOWN_STREAMS, MultiStreamConfigMixin

# "early" / "concat" (BERT family baselines) are not implemented for the causal family
INTEGRATION_TYPES: tuple[str, ...] = ("li", "dm", "none")
# model types whose config.json / weights a `GPT2Model` can read (the semantic stream's backbone)
GPT2_COMPATIBLE_MODEL_TYPES: tuple[str, ...] = ("gpt2",)


class MultiStreamGPT2Config(MultiStreamConfigMixin, GPT2Config):
    r"""
    Configuration of a [`MultiStreamGPT2Model`] / [`MultiStreamGPT2LMHeadModel`]: a GPT-2 decoder (the *semantic*
    stream) plus narrow, causal phonetic and morphological streams, combined by Linear Integration (LI) or Direct
    Mixing (DM) after the GPT-2 blocks listed in `integration_layers`.

    It holds every field of [`~transformers.GPT2Config`] under GPT-2's own names (`vocab_size`, `n_positions`,
    `n_embd`, `n_layer`, `n_head`, `n_inner`, `resid_pdrop`, ...; they configure the semantic stream, and `n_embd` is
    also the width of the integrated pathway and of the LM head) plus the fields below, named as in
    `MultiStreamBertConfig`. Everything is validated on construction; a `ValueError` names the field.

    Args:
        streams (`list[str]`, *optional*, defaults to `["semantic", "phonetic", "morphological"]`):
            The streams of the model, a subset of `"semantic"`, `"phonetic"`, `"morphological"` that contains
            `"semantic"` (reordered so that it comes first: it is the reference stream of the integration).
        integration_type (`str`, *optional*, defaults to `"dm"`):
            `"li"` (Linear Integration, `z = act(norm(W_z z_prev + sum_s W_s r_s + b))`), `"dm"` (Direct Mixing,
            `z = act(gamma W_z z_prev + sum_s alpha_s u_s + b)`) or `"none"` (no integration: with
            `streams=["semantic"]` this is a plain GPT-2, the single-stream baseline of the family).
        alpha_granularity (`str`, *optional*, defaults to `"scalar"`):
            DM only: `"scalar"`, `"channel"` or `"token"` (a per-token gate, softmax over streams).
        integration_layers (`str` or `list[int]`, *optional*, defaults to `"all"`):
            The 0-based GPT-2 blocks after which the streams are integrated: `"all"` (roadmap option B,
            integration within every layer), `"last"` (roadmap option A, integration at the output only) or a list
            that contains the last block (the LM head reads the last integrated state). Normalised to a sorted
            list. Every non-semantic stream has one layer per integration point.
        integration_activation (`str`, *optional*, defaults to `"gelu"`):
            The integrated pathway's activation ("threshold"): `"gelu"`, `"relu"`, `"tanh"`, `"silu"` or
            `"identity"`.
        integration_recurrent (`bool`, *optional*, defaults to `True`):
            Whether the previous integrated state enters the next integration point (`W_z z_prev`). The state
            before the first integration point is the semantic embedding output (`wte + wpe`).
        dm_alpha_init (`float`, *optional*, defaults to 0.1):
            DM only: initial alpha of the non-semantic streams (the semantic stream starts at 1).
        stream_hidden_size (`int`, *optional*, defaults to 128):
            Width of the phonetic and morphological streams.
        stream_num_heads (`int`, *optional*, defaults to 4):
            Attention heads of every non-semantic stream layer (must divide `stream_hidden_size`).
        stream_intermediate_size (`int`, *optional*, defaults to 256):
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
    >>> baseline = MultiStreamGPT2LMHeadModel(
    ...     MultiStreamGPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2,
    ...                           streams=["semantic"], integration_type="none")
    ... )
    ```
    """

    model_type = "multistream_gpt2"

    streams: list[str] = field(default_factory=lambda: list(KNOWN_STREAMS))
    integration_type: str = "dm"
    alpha_granularity: str = "scalar"
    integration_layers: str | list[int] = "all"
    integration_activation: str = "gelu"
    integration_recurrent: bool = True
    dm_alpha_init: float = 0.1
    stream_hidden_size: int = 128
    stream_num_heads: int = 4
    stream_intermediate_size: int = 256
    stream_dropout: float = 0.1
    phonetic_vocab_size: int = 79
    morph_vocab_size: int = 2000
    phonetic_slot_size: int = 8
    morph_slot_size: int = 4

    integration_types = INTEGRATION_TYPES
    semantic_config_class = GPT2Config
    compatible_model_types = GPT2_COMPATIBLE_MODEL_TYPES
    num_layers_attribute = "n_layer"
    hidden_size_attribute = "n_embd"
    requires_last_integration_layer = True  # the LM head reads the last integrated state

    def __post_init__(self, **kwargs: Any) -> None:
        self.validate_multistream_fields()
        super().__post_init__(**kwargs)

    def check_stream_combination(self) -> None:
        if "semantic" not in self.streams:
            raise ValueError(
                f"`streams` must contain 'semantic' (the GPT-2 backbone); got {list(self.streams)}"
            )
        if self.integration_type == "none" and self.streams != ["semantic"]:
            raise ValueError(
                f"integration_type='none' is the plain GPT-2: `streams` must be ['semantic']; got {self.streams}"
            )
        super().check_stream_combination()

    @classmethod
    def from_gpt2_config(cls, gpt2_config: GPT2Config, **overrides: Any) -> MultiStreamGPT2Config:
        """A multi-stream config around an existing GPT-2 config (its fields, plus `overrides`)."""
        return cls.from_semantic_config(gpt2_config, **overrides)


__all__ = ["MultiStreamGPT2Config"]
