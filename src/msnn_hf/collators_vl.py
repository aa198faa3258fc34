"""Batching image-caption examples for an encoder-decoder captioner (`VisionEncoderDecoderModel` and kin).

`CaptionCollator` turns examples with an image path and a caption (e.g. `msnn_hf.data_vl.load_flickr8k(...,
one_caption_per_row=True)`) into `pixel_values` and `labels`: the caption's tokens, then the tokenizer's EOS, padded
with -100 (ignored by the loss). The model builds `decoder_input_ids` itself by shifting `labels` right behind
`decoder_start_token_id`. With `features` (precomputed encoder tokens keyed by the image column's value, see
`msnn_hf.features_vl`) batches carry `encoder_outputs` instead of `pixel_values`: the encoder is skipped.

Example::

    from transformers import Trainer, TrainingArguments
    from msnn_hf.collators_vl import CaptionCollator
    from msnn_hf.data_vl import load_flickr8k

    train = load_flickr8k(split="train", one_caption_per_row=True)
    collator = CaptionCollator(image_processor, tokenizer, max_length=32)
    args = TrainingArguments("out", remove_unused_columns=False)  # the collator needs the `image` column
    Trainer(model=model, args=args, train_dataset=train, data_collator=collator).train()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class CaptionCollator:
    """`pixel_values` + `labels` for a batch of `{image_column: path or image, caption_column: str}` examples.

    Args:
        image_processor: any image processor returning `pixel_values` (e.g. `EfficientNetLiteImageProcessor`).
        tokenizer: a tokenizer with an `eos_token_id`; captions are tokenised without special tokens.
        max_length (`int`, defaults to 32): label length including the EOS (longer captions are truncated).
        image_column, caption_column (`str`): the example keys.
        features (`Mapping[str, torch.Tensor]`, *optional*): `{image: (num_patches, hidden)}` encoder tokens;
            when given, batches hold `encoder_outputs=(tokens,)` and no `pixel_values`.
    """

    image_processor: Any
    tokenizer: Any
    max_length: int = 32
    image_column: str = "image"
    caption_column: str = "caption"
    features: Mapping[str, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if self.tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer needs an eos_token_id: generation stops there")
        if self.max_length < 2:
            raise ValueError(f"max_length must be at least 2 (one token and the EOS); got {self.max_length}")

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        missing = [k for k in (self.image_column, self.caption_column) if examples and k not in examples[0]]
        if missing:
            raise KeyError(
                f"examples lack {missing}; with Trainer pass TrainingArguments(remove_unused_columns=False)"
            )
        images = [example[self.image_column] for example in examples]
        if self.features is not None:
            unknown = [image for image in images if image not in self.features]
            if unknown:
                raise KeyError(f"no precomputed features for {unknown[:3]} ({len(unknown)} images)")
            vision = {"encoder_outputs": (torch.stack([self.features[image] for image in images]),)}
        else:
            vision = {"pixel_values": self.image_processor(images, return_tensors="pt")["pixel_values"]}
        captions = [example[self.caption_column] for example in examples]
        ids = self.tokenizer(
            captions, add_special_tokens=False, truncation=True, max_length=self.max_length - 1
        )
        sequences = [list(tokens) + [self.tokenizer.eos_token_id] for tokens in ids["input_ids"]]
        labels = torch.full((len(sequences), max(map(len, sequences))), -100, dtype=torch.long)
        for row, tokens in enumerate(sequences):
            labels[row, : len(tokens)] = torch.tensor(tokens)
        return {**vision, "labels": labels}


__all__ = ["CaptionCollator"]
