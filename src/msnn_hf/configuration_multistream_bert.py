"""Configuration of the multi-stream BERT family (`MultiStreamBertConfig`).

The multi-stream fields are declared once, in `MultiStreamConfigMixin`; this module adds BERT's names and defaults.
Only relative imports of siblings and public transformers API: this module is copied into every checkpoint as
remote code.
"""

from __future__ import annotations

from typing import Any

from transformers import BertConfig

from .configuration_multistream_common import MULTISTREAM_ARGS_DOC, MultiStreamConfigMixin

# model types whose config.json / weights a `BertModel` can read (the semantic stream's backbone)
BERT_COMPATIBLE_MODEL_TYPES: tuple[str, ...] = ("bert",)


class MultiStreamBertConfig(MultiStreamConfigMixin, BertConfig):
    model_type = "multistream_bert"

    # 64 wide, 2 heads of 32 (like MiniLM's), 128 intermediate: a training step of LI / DM on MiniLM near 1.3x the
    # backbone's (128 / 4 / 256 costs ~1.5x; benchmarks/results/bert_step.json)
    stream_hidden_size: int = 64
    stream_num_heads: int = 2
    stream_intermediate_size: int = 128

    semantic_config_class = BertConfig
    compatible_model_types = BERT_COMPATIBLE_MODEL_TYPES
    runs_streams_at_every_layer_before_0_2 = True

    def __post_init__(self, **kwargs: Any) -> None:
        self.validate_multistream_fields()
        super().__post_init__(**kwargs)

    @classmethod
    def from_bert_config(cls, bert_config: BertConfig, **overrides: Any) -> MultiStreamBertConfig:
        """A multi-stream config around an existing BERT config (its fields, plus `overrides`)."""
        return cls.from_semantic_config(bert_config, **overrides)


MultiStreamBertConfig.__doc__ = (
    r"""
    Configuration of a [`MultiStreamBertModel`]: a BERT backbone (the *semantic* stream) plus narrow phonetic and
    morphological streams, combined at the integration points by Linear Integration (LI) or Direct Mixing (DM), or by
    one of the baseline strategies.

    It holds every field of [`~transformers.BertConfig`] (they configure the semantic stream, e.g. `hidden_size`,
    `num_hidden_layers`, `vocab_size`) plus the multi-stream fields below. Everything is validated on construction; a
    `ValueError` names the field and the valid values. Unknown extra keys (e.g. in a `config.json` written by a newer
    version) are kept as attributes and do not fail.

    Args:"""
    + MULTISTREAM_ARGS_DOC.replace(
        "Width of the non-semantic streams (family default).", "Width of the non-semantic streams (BERT: 64)."
    )
    + r"""
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
)

__all__ = ["MultiStreamBertConfig"]
