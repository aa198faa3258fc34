"""Configuration of the EfficientNet-Lite image encoder (`EfficientNetLiteConfig`).

Only relative imports of siblings and public transformers API: this module is copied into every checkpoint
as remote code.
"""

from __future__ import annotations

import math
from dataclasses import field
from typing import Any

from transformers import PreTrainedConfig

# activations an EfficientNet-Lite block may use (names of `transformers.activations.ACT2FN`)
HIDDEN_ACTS: tuple[str, ...] = ("relu6", "relu", "silu", "gelu")
STAGE_FIELDS: tuple[str, ...] = (
    "kernel_sizes",
    "strides",
    "expand_ratios",
    "out_channels",
    "num_block_repeats",
)


class EfficientNetLiteConfig(PreTrainedConfig):
    r"""
    Configuration of an [`EfficientNetLiteModel`] / [`EfficientNetLiteForImageClassification`]: EfficientNet-Lite
    (Tan & Le 2019; the "Lite" variants of the TensorFlow TPU repository), i.e. EfficientNet without
    squeeze-and-excitation, with ReLU6 instead of swish and a fixed (unscaled) stem and head. The defaults are
    EfficientNet-Lite0 (3.37M parameters without the ImageNet classifier, 4.65M with it).

    The network is a stem (3x3 convolution, stride 2), seven *stages* of MBConv blocks (1x1 expansion, depthwise
    kxk convolution, 1x1 projection, residual when shape allows) and a head (1x1 convolution to `hidden_size`).
    Every convolution pads like TensorFlow's ``"SAME"`` (output size ``ceil(input / stride)``, the extra pixel of
    an even padding at the bottom/right), which is what the converted TensorFlow weights expect. The encoder
    accepts any input size; with the default strides a ``H x W`` image gives a ``ceil(H/32) x ceil(W/32)`` grid.

    Args:
        num_channels (`int`, *optional*, defaults to 3):
            Channels of the input image.
        image_size (`int`, *optional*, defaults to 224):
            The resolution the weights were trained at (what the image processor resizes to). The model itself
            accepts any size.
        stem_channels (`int`, *optional*, defaults to 32):
            Output channels of the stem convolution.
        kernel_sizes (`list[int]`, *optional*, defaults to `[3, 3, 5, 3, 5, 5, 3]`):
            Depthwise kernel size of each stage.
        strides (`list[int]`, *optional*, defaults to `[1, 2, 2, 2, 1, 2, 1]`):
            Stride of the first block of each stage (the others have stride 1).
        expand_ratios (`list[int]`, *optional*, defaults to `[1, 6, 6, 6, 6, 6, 6]`):
            Expansion ratio of each stage's blocks (1 = no expansion convolution).
        out_channels (`list[int]`, *optional*, defaults to `[16, 24, 40, 80, 112, 192, 320]`):
            Output channels of each stage.
        num_block_repeats (`list[int]`, *optional*, defaults to `[1, 2, 2, 3, 3, 4, 1]`):
            Number of blocks in each stage.
        hidden_size (`int`, *optional*, defaults to 1280):
            Channels of the head convolution: the width of every patch token of `last_hidden_state`.
        hidden_act (`str`, *optional*, defaults to `"relu6"`):
            Activation after the stem, expansion, depthwise and head convolutions: one of `"relu6"`, `"relu"`,
            `"silu"`, `"gelu"`.
        batch_norm_eps (`float`, *optional*, defaults to 1e-3):
            Epsilon of every batch normalisation (TensorFlow's value).
        batch_norm_momentum (`float`, *optional*, defaults to 0.01):
            PyTorch-convention momentum of every batch normalisation (TensorFlow's decay 0.99 = 1 - 0.01).
        drop_connect_rate (`float`, *optional*, defaults to 0.2):
            Stochastic-depth rate: block `i` of `n` drops its residual branch with probability
            `drop_connect_rate * i / n` during training (never in eval mode).
        classifier_dropout (`float`, *optional*, defaults to 0.2):
            Dropout before the classifier of [`EfficientNetLiteForImageClassification`].
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the classifier's initial weights (convolutions use He-normal, fan-out, as
            TensorFlow's EfficientNet does).

    Example:

    ```python
    >>> from msnn_hf import EfficientNetLiteConfig, EfficientNetLiteModel
    >>> import torch

    >>> config = EfficientNetLiteConfig(  # a tiny random network; EfficientNetLiteConfig() is Lite0
    ...     stem_channels=8, kernel_sizes=[3, 5], strides=[2, 2], expand_ratios=[1, 4],
    ...     out_channels=[8, 16], num_block_repeats=[1, 2], hidden_size=32,
    ... )
    >>> config.total_stride
    8
    >>> model = EfficientNetLiteModel(config).eval()
    >>> model(torch.randn(2, 3, 64, 48)).last_hidden_state.shape  # 8 x 6 grid of patch tokens
    torch.Size([2, 48, 32])
    ```
    """

    model_type = "msnn_efficientnet_lite"

    num_channels: int = 3
    image_size: int = 224
    stem_channels: int = 32
    kernel_sizes: list[int] = field(default_factory=lambda: [3, 3, 5, 3, 5, 5, 3])
    strides: list[int] = field(default_factory=lambda: [1, 2, 2, 2, 1, 2, 1])
    expand_ratios: list[int] = field(default_factory=lambda: [1, 6, 6, 6, 6, 6, 6])
    out_channels: list[int] = field(default_factory=lambda: [16, 24, 40, 80, 112, 192, 320])
    num_block_repeats: list[int] = field(default_factory=lambda: [1, 2, 2, 3, 3, 4, 1])
    hidden_size: int = 1280
    hidden_act: str = "relu6"
    batch_norm_eps: float = 1e-3
    batch_norm_momentum: float = 0.01
    drop_connect_rate: float = 0.2
    classifier_dropout: float = 0.2
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs: Any) -> None:
        for name in STAGE_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not value:
                raise ValueError(f"`{name}` must be a non-empty list of ints; got {value!r}")
            if any(not isinstance(v, int) or v < 1 for v in value):
                raise ValueError(f"`{name}` must hold positive ints; got {value!r}")
            setattr(self, name, [int(v) for v in value])
        lengths = {name: len(getattr(self, name)) for name in STAGE_FIELDS}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"the per-stage lists must have one entry per stage; got lengths {lengths}")
        for name in ("num_channels", "image_size", "stem_channels", "hidden_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive int; got {getattr(self, name)!r}")
        if self.hidden_act not in HIDDEN_ACTS:
            raise ValueError(f"`hidden_act` must be one of {HIDDEN_ACTS}; got {self.hidden_act!r}")
        if not 0.0 <= self.drop_connect_rate < 1.0:
            raise ValueError(f"`drop_connect_rate` must lie in [0, 1); got {self.drop_connect_rate}")
        super().__post_init__(**kwargs)

    @property
    def num_stages(self) -> int:
        return len(self.out_channels)

    @property
    def num_blocks(self) -> int:
        """MBConv blocks in all stages together (16 for Lite0)."""
        return sum(self.num_block_repeats)

    @property
    def total_stride(self) -> int:
        """Downsampling factor from the image to the patch grid (32 for Lite0)."""
        return 2 * math.prod(self.strides)

    def num_patches(self, height: int, width: int) -> int:
        """Number of patch tokens the encoder returns for a `height x width` input."""
        stride = self.total_stride
        return math.ceil(height / stride) * math.ceil(width / stride)


__all__ = ["EfficientNetLiteConfig"]
