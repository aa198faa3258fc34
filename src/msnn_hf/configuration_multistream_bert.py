"""Configuration of the multi-stream BERT family (`MultiStreamBertConfig`).

Only relative imports of siblings and public transformers API: this module is copied into every checkpoint
as remote code.
"""

from __future__ import annotations

import os
from dataclasses import field
from typing import Any

from transformers import BertConfig

from .configuration_multistream_common import KNOWN_STREAMS, MultiStreamConfigMixin

INTEGRATION_TYPES: tuple[str, ...] = ("li", "dm", "none", "early", "concat")
# model types whose config.json / weights a `BertModel` can read (the semantic stream's backbone)
BERT_COMPATIBLE_MODEL_TYPES: tuple[str, ...] = ("bert",)


class MultiStreamBertConfig(MultiStreamConfigMixin, BertConfig):
    r"""
    Configuration of a [`MultiStreamBertModel`]: a BERT backbone (the *semantic* stream) plus narrow phonetic and
    morphological streams, combined layer by layer by Linear Integration (LI) or Direct Mixing (DM), or by one of the
    baseline strategies.

    It holds every field of [`~transformers.BertConfig`] (they configure the semantic stream, e.g. `hidden_size`,
    `num_hidden_layers`, `vocab_size`) plus the fields below. Everything is validated on construction; a `ValueError`
    names the field and the valid values. Unknown extra keys (e.g. in a `config.json` written by a newer version) are
    kept as attributes and do not fail.

    Args:
        streams (`list[str]`, *optional*, defaults to `["semantic", "phonetic", "morphological"]`):
            The streams of the model, a subset of `"semantic"`, `"phonetic"`, `"morphological"` without repeats.
            They are reordered so that `"semantic"` (the reference stream of the integration) comes first.
        integration_type (`str`, *optional*, defaults to `"dm"`):
            How the streams are combined:
            - `"li"`: Linear Integration at every layer in `integration_layers`
              (`z = act(norm(W_z z_prev + sum_s W_s r_s + b))`);
            - `"dm"`: Direct Mixing (`z = act(gamma W_z z_prev + sum_s alpha_s u_s + b)`);
            - `"none"`: no integration, a single stream whose output the head reads (the backbone alone with
              `streams=["semantic"]`, or a phonetic-only / morphological-only model for late fusion);
            - `"early"`: the non-semantic streams' slot embeddings, projected by zero-initialised bias-free linears,
              are added to the backbone's input embeddings; only the backbone layers run;
            - `"concat"`: every stream runs its layers without integration; the head reads
              `LayerNorm(Linear(concat of the streams' final outputs))`.
        alpha_granularity (`str`, *optional*, defaults to `"scalar"`):
            DM only: `"scalar"` (one alpha per stream and layer), `"channel"` (one per stream, layer and hidden unit)
            or `"token"` (a gate computed from the streams at each token, softmax over streams).
        integration_layers (`str` or `list[int]`, *optional*, defaults to `"all"`):
            The 0-based layers after which the streams are integrated (LI / DM): `"all"`, `"last"` or a list of
            layer indices. Normalised to a sorted list of indices.
        integration_activation (`str`, *optional*, defaults to `"gelu"`):
            The integrated pathway's activation ("threshold"): `"gelu"`, `"relu"`, `"tanh"`, `"silu"` or `"identity"`.
        integration_recurrent (`bool`, *optional*, defaults to `True`):
            Whether the integrated state of the previous integration point enters the next one (`W_z z_prev`).
        dm_alpha_init (`float`, *optional*, defaults to 0.1):
            DM only: initial alpha of the non-semantic streams (the semantic stream starts at 1).
        stream_hidden_size (`int`, *optional*, defaults to 64):
            Width of the phonetic and morphological streams. 64 / 2 heads / 128 (with `stream_num_heads`,
            `stream_intermediate_size`) keeps a training step of LI / DM on a MiniLM backbone near 1.3x the
            backbone's time; 128 / 4 / 256 costs ~1.5x (`benchmarks/results/bert_step.json`).
        stream_num_heads (`int`, *optional*, defaults to 2):
            Attention heads of every non-semantic stream layer (must divide `stream_hidden_size`); 2 heads of 32
            like MiniLM's heads. On CPU a stream layer's cost is mostly its attention matrices, not its width.
        stream_intermediate_size (`int`, *optional*, defaults to 128):
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
    >>> from msnn_hf import MultiStreamBertConfig, MultiStreamBertModel

    >>> config = MultiStreamBertConfig(
    ...     vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    ...     integration_type="dm", alpha_granularity="token", integration_layers="last",
    ...     stream_hidden_size=16, stream_num_heads=2, stream_intermediate_size=32,
    ... )
    >>> config.integration_layers
    [1]
    >>> model = MultiStreamBertModel(config)
    ```
    """

    model_type = "multistream_bert"

    streams: list[str] = field(default_factory=lambda: list(KNOWN_STREAMS))
    integration_type: str = "dm"
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

    integration_types = INTEGRATION_TYPES
    semantic_config_class = BertConfig
    compatible_model_types = BERT_COMPATIBLE_MODEL_TYPES

    def __post_init__(self, **kwargs: Any) -> None:
        self.validate_multistream_fields()
        super().__post_init__(**kwargs)

    def check_stream_combination(self) -> None:
        super().check_stream_combination()
        if self.integration_type == "early" and "semantic" not in self.streams:
            raise ValueError(
                f"integration_type='early' adds streams to the semantic backbone; `streams`={self.streams}"
            )

    @property
    def output_hidden_size(self) -> int:
        """Width of `last_hidden_state`: `hidden_size`, or the stream width of a single non-semantic stream."""
        if self.integration_type == "none":
            return self.stream_widths[self.streams[0]]
        return self.hidden_size

    @classmethod
    def from_bert_config(cls, bert_config: BertConfig, **overrides: Any) -> MultiStreamBertConfig:
        """A multi-stream config around an existing BERT config (its fields, plus `overrides`)."""
        return cls.from_semantic_config(bert_config, **overrides)

    @classmethod
    def get_config_dict(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """As in `PreTrainedConfig`, but a checkpoint of another model type fails clearly instead of warning."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        model_type = config_dict.get("model_type")
        if model_type is not None and model_type != cls.model_type:
            hint = (
                f" To start from a {model_type!r} backbone use `from_backbone({str(pretrained_model_name_or_path)!r})`."
                if model_type in BERT_COMPATIBLE_MODEL_TYPES
                else ""
            )
            raise ValueError(
                f"{pretrained_model_name_or_path} holds a checkpoint of model_type {model_type!r}, not "
                f"{cls.model_type!r}.{hint}"
            )
        return config_dict, kwargs


__all__ = ["MultiStreamBertConfig"]
