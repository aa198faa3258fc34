"""MultiStreamVisionProcessor: an image processor + the multi-stream text processor, for
`MultiStreamVisionEncoderDecoder` (captioning and VQA).

It returns `pixel_values`, `decoder_input_ids` (BOS + prompt: the question for VQA, nothing for captioning; + the
target when one is given), `decoder_attention_mask` and, with targets, `labels` (`labels[:, t]` is the token after
`decoder_input_ids[:, t]`; the prompt's positions are `-100`, the target ends with EOS). Without targets it pads on
the left (batched generation), with targets on the right.

Files written by `save_pretrained`: the image processor's `preprocessor_config.json` at the top of the folder, the
text processor (a `MultiStreamProcessor`, or a plain tokenizer) in `text_processor/`, and `processor_config.json`
(processor class, token ids, the text processor's kind). Loadable with `AutoProcessor.from_pretrained`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    AutoImageProcessor,
    AutoProcessor,
    AutoTokenizer,
    BatchFeature,
    PreTrainedTokenizerBase,
)
from transformers.processing_utils import ProcessorMixin

from .processing_multistream import MultiStreamProcessor

PROCESSOR_CONFIG_FILE = "processor_config.json"
TEXT_PROCESSOR_FOLDER = "text_processor"
#: Key under which the processor is registered with `AutoProcessor`.
PROCESSOR_REGISTRY_KEY = "msnn_multistream_vision"

__all__ = ["MultiStreamVisionProcessor", "register_processor"]


def _as_list(value: str | Sequence[str] | None, count: int | None, name: str) -> list[str] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value)
    for i, item in enumerate(values):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(item).__name__}")
    if count is not None and len(values) != count:
        raise ValueError(f"{len(values)} {name} for {count} images")
    return values


class MultiStreamVisionProcessor(ProcessorMixin):
    r"""
    Image processor + text processor for [`MultiStreamVisionEncoderDecoder`].

    Args:
        image_processor ([`BaseImageProcessor`]): the encoder's image processor (e.g. `ViTImageProcessor`,
            `EfficientNetLiteImageProcessor`).
        text_processor ([`MultiStreamProcessor`] or [`PreTrainedTokenizerBase`]): the decoder's text side. Public as
            `processor.text_processor`; its tokenizer as `processor.tokenizer`.
        bos_token_id / eos_token_id / pad_token_id (`int`, *optional*): the decoder's start, end and padding tokens
            (default: the tokenizer's BOS, or CLS; EOS, or SEP; PAD, or EOS).

    Example:

    ```python
    >>> processor = MultiStreamVisionProcessor(image_processor, text_processor)
    >>> batch = processor(images=[image], text=["what color is the dog?"], targets=["brown"])
    >>> sorted(batch)  # pixel_values (1, 3, H, W); the rest (1, T)
    ['decoder_attention_mask', 'decoder_input_ids', 'labels', 'pixel_values']
    >>> captions = processor.batch_decode(model.generate(**processor(images=[image])), skip_special_tokens=True)
    ```
    """

    def __init__(
        self,
        image_processor: Any,
        text_processor: MultiStreamProcessor | PreTrainedTokenizerBase,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
    ) -> None:
        super().__init__(image_processor)
        if not isinstance(text_processor, (MultiStreamProcessor, PreTrainedTokenizerBase)):
            raise TypeError(
                f"text_processor must be a MultiStreamProcessor or a tokenizer; got {type(text_processor).__name__}"
            )
        self.text_processor = text_processor
        tokenizer = self.tokenizer
        self.bos_token_id = _first(bos_token_id, tokenizer.bos_token_id, tokenizer.cls_token_id)
        self.eos_token_id = _first(eos_token_id, tokenizer.eos_token_id, tokenizer.sep_token_id)
        self.pad_token_id = _first(pad_token_id, tokenizer.pad_token_id, self.eos_token_id)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            if getattr(self, name) is None:
                raise ValueError(f"give `{name}`: the tokenizer has none")

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        text = self.text_processor
        return text.tokenizer if isinstance(text, MultiStreamProcessor) else text

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values", "decoder_input_ids", "decoder_attention_mask"]

    # -------------------------------------------------------------------------------------------------- processing
    def __call__(
        self,
        images: Any = None,
        text: str | Sequence[str] | None = None,
        targets: str | Sequence[str] | None = None,
        padding: bool | str = True,
        padding_side: str | None = None,
        max_length: int | None = None,
        truncation: bool | None = None,
        return_tensors: str | None = "pt",
        **image_kwargs: Any,
    ) -> BatchFeature:
        """
        Args:
            images: one image or a batch (anything the image processor takes); optional for text only.
            text (`str` or `list[str]`, *optional*): the prompts (VQA: the questions); none for captioning.
            targets (`str` or `list[str]`, *optional*): what the model should produce (captions, answers): adds
                them to `decoder_input_ids` and returns `labels`.
            padding (`bool` or `str`): pad to the longest sequence (`True` / `"longest"`) or not (`False`: one
                sequence, or all of the same length).
            padding_side (`str`, *optional*): `"left"` (default without targets: generation) or `"right"` (default
                with targets: training).
            max_length / truncation: with `truncation=True`, sequences are cut to `max_length` tokens (from the end).
            return_tensors (`str`, *optional*): `"pt"` (default), `"np"` or `None` (lists).
            image_kwargs: passed to the image processor.
        """
        pixel_values = None
        count = None
        if images is not None:
            pixel_values = self.image_processor(images, return_tensors="pt", **image_kwargs)["pixel_values"]
            count = pixel_values.shape[0]
        prompts = _as_list(text, count, "texts")
        answers = _as_list(targets, count, "targets")
        if prompts is None:
            if count is None and answers is None:
                raise ValueError("give images, text or targets")
            prompts = [""] * (count if count is not None else len(answers))
        if answers is not None and len(answers) != len(prompts):
            raise ValueError(f"{len(answers)} targets for {len(prompts)} texts")
        tokenize = self.tokenizer
        prompt_ids = [tokenize(p, add_special_tokens=False)["input_ids"] if p else [] for p in prompts]
        rows, labels = [], []
        for i, ids in enumerate(prompt_ids):
            sequence = [self.bos_token_id, *ids]
            if answers is not None:
                target = [*tokenize(answers[i], add_special_tokens=False)["input_ids"], self.eos_token_id]
                labels.append([-100] * len(ids) + target)
                sequence = sequence + target[:-1]
            rows.append(sequence)
        if truncation and max_length is not None:
            rows = [r[:max_length] for r in rows]
            labels = [r[:max_length] for r in labels]
        side = padding_side or ("right" if answers is not None else "left")
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right'; got {side!r}")
        width = max(len(r) for r in rows)
        if not padding and len({len(r) for r in rows}) > 1:
            raise ValueError("sequences of different lengths: pass padding=True")

        def pad(row: list[int], value: int) -> list[int]:
            fill = [value] * (width - len(row))
            return fill + row if side == "left" else row + fill

        data: dict[str, Any] = {
            "decoder_input_ids": [pad(r, self.pad_token_id) for r in rows],
            "decoder_attention_mask": [pad([1] * len(r), 0) for r in rows],
        }
        if answers is not None:
            data["labels"] = [pad(r, -100) for r in labels]
        if pixel_values is not None:
            data["pixel_values"] = pixel_values if return_tensors == "pt" else pixel_values.numpy()
        if return_tensors == "pt":
            data = {k: torch.as_tensor(v) for k, v in data.items()}
        return BatchFeature(data=data, tensor_type=return_tensors if return_tensors != "pt" else None)

    def batch_decode(self, sequences: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(sequences, **kwargs)

    def decode(self, sequence: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(sequence, **kwargs)

    def post_process_image_text_to_text(
        self, generated_outputs: Any, skip_special_tokens: bool = True, **kwargs: Any
    ) -> list[str]:
        """Decode `generate()`'s output (what `pipeline("image-text-to-text")` calls)."""
        return self.tokenizer.batch_decode(
            generated_outputs, skip_special_tokens=skip_special_tokens, **kwargs
        )

    # ------------------------------------------------------------------------------------------------ save / load
    def to_dict(self) -> dict[str, Any]:
        return {
            "processor_class": type(self).__name__,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "text_processor": {
                "folder": TEXT_PROCESSOR_FOLDER,
                "kind": "multistream"
                if isinstance(self.text_processor, MultiStreamProcessor)
                else "tokenizer",
            },
        }

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(image_processor={type(self.image_processor).__name__}, "
            f"text_processor={type(self.text_processor).__name__}, bos/eos/pad={self.bos_token_id}/"
            f"{self.eos_token_id}/{self.pad_token_id})"
        )

    def save_pretrained(
        self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs
    ) -> list[str]:
        """Save the image processor, the text processor (in `text_processor/`) and `processor_config.json`."""
        if push_to_hub:
            raise NotImplementedError(
                "push_to_hub: save locally, then upload the folder with huggingface_hub"
            )
        os.makedirs(save_directory, exist_ok=True)
        files = list(self.image_processor.save_pretrained(save_directory))
        files += list(
            self.text_processor.save_pretrained(os.path.join(save_directory, TEXT_PROCESSOR_FOLDER))
        )
        path = os.path.join(save_directory, PROCESSOR_CONFIG_FILE)
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json_string())
        return [str(f) for f in files] + [path]

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs
    ) -> MultiStreamVisionProcessor:
        """Load a processor saved with `save_pretrained` (a local folder)."""
        for key in (
            "_from_auto",
            "trust_remote_code",
            "_commit_hash",
            "code_revision",
            "return_unused_kwargs",
        ):
            kwargs.pop(key, None)
        folder = str(pretrained_model_name_or_path)
        if not os.path.isdir(folder):
            raise OSError(f"{folder} is not a folder saved by MultiStreamVisionProcessor.save_pretrained")
        with open(os.path.join(folder, PROCESSOR_CONFIG_FILE), encoding="utf-8") as f:
            config = json.load(f)
        if config.get("processor_class") != cls.__name__:
            raise ValueError(f"{folder}: processor_config.json is for {config.get('processor_class')!r}")
        text = config["text_processor"]
        text_folder = os.path.join(folder, text["folder"])
        if text["kind"] == "multistream":
            text_processor = MultiStreamProcessor.from_pretrained(text_folder)
        else:
            text_processor = AutoTokenizer.from_pretrained(text_folder)
        image_processor = AutoImageProcessor.from_pretrained(folder, **kwargs)
        return cls(
            image_processor,
            text_processor,
            bos_token_id=config["bos_token_id"],
            eos_token_id=config["eos_token_id"],
            pad_token_id=config["pad_token_id"],
        )


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def register_processor(config_classes: Sequence[type] = ()) -> None:
    """Register with `AutoProcessor` (idempotent), by name and for the given model config classes."""
    AutoProcessor.register(PROCESSOR_REGISTRY_KEY, MultiStreamVisionProcessor, exist_ok=True)
    for config_class in config_classes:
        AutoProcessor.register(config_class, MultiStreamVisionProcessor, exist_ok=True)
