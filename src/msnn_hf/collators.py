"""Data collators for multi-stream models.

`WholeWordMaskCollator`: masked-LM batches with whole-word masking whose stream ids are recomputed from the
*masked* `input_ids`. This is what word-aligned streams (`MultiStreamProcessor(alignment="word")`) need: every piece
of a word carries the whole word's phonemes and morphs, so masking only some pieces of a word, or keeping the
streams computed from the unmasked text, would hand the masked word to the model through its streams. Here

- words are chosen as a whole (all positions with the same word id), each with probability `mlm_probability`;
- a chosen word is, as a whole, replaced by `[MASK]` pieces (`replace_probabilities[0]`), by random tokens
  (`[1]`) or kept (`[2]`); labels are the original ids at the chosen words' positions, -100 elsewhere;
- `phonetic_ids` / `morph_ids` are computed by `processor.compute_stream_ids(masked_input_ids, word_ids)`, a
  function of the masked ids and the word boundaries only. A `[MASK]`ed word is therefore `<mask>` in every stream
  at every one of its pieces, and no stream id given in the features is passed through.

It works for piece alignment too (the streams are then the table rows of the masked ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["WholeWordMaskCollator", "whole_word_mask"]


def whole_word_mask(
    input_ids: Sequence[int],
    word_ids: Sequence[int | None],
    mask_token_id: int,
    random_token_ids: Sequence[int],
    rng: np.random.Generator,
    mlm_probability: float = 0.15,
    replace_probabilities: tuple[float, float, float] = (0.8, 0.1, 0.1),
    special_tokens_mask: Sequence[int] | None = None,
) -> tuple[list[int], list[int]]:
    """
    Whole-word masking of one sequence.

    Args:
        input_ids: the token ids.
        word_ids: the word of each position (`None` or a negative value: no word, never masked).
        mask_token_id: the tokenizer's mask token id.
        random_token_ids: ids random replacements are drawn from.
        rng: the random generator (the decisions depend on it and the word ids only, never on the token ids).
        mlm_probability: probability that a word is chosen; at least one word is chosen when there is one.
        replace_probabilities: `(mask, random, keep)` shares of the chosen words.
        special_tokens_mask: 1 at positions never to mask (special tokens).

    Returns:
        `(masked input_ids, labels)`; labels are -100 outside the chosen words.
    """
    if len(word_ids) != len(input_ids):
        raise ValueError(f"{len(input_ids)} input ids but {len(word_ids)} word ids")
    special = list(special_tokens_mask) if special_tokens_mask is not None else [0] * len(input_ids)
    words = sorted({int(w) for w, s in zip(word_ids, special) if w is not None and int(w) >= 0 and not s})
    chosen = {w for w, r in zip(words, rng.random(len(words))) if r < mlm_probability}
    if words and not chosen:
        chosen = {words[int(rng.integers(len(words)))]}
    p_mask, p_random, _ = replace_probabilities
    action = {w: r for w, r in zip(sorted(chosen), rng.random(len(chosen)))}
    out, labels = list(input_ids), [-100] * len(input_ids)
    for t, (token, w, s) in enumerate(zip(input_ids, word_ids, special)):
        if w is None or int(w) not in action or s:
            continue
        labels[t] = int(token)
        roll = action[int(w)]
        if roll < p_mask:
            out[t] = mask_token_id
        elif roll < p_mask + p_random:
            out[t] = int(random_token_ids[int(rng.integers(len(random_token_ids)))])
    return out, labels


class WholeWordMaskCollator:
    """
    Pads, masks whole words and computes the streams from the masked ids (see the module docstring).

    Args:
        processor ([`~msnn_hf.processing_multistream.MultiStreamProcessor`]): gives the tokenizer and
            `compute_stream_ids`.
        mlm_probability (`float`, *optional*, defaults to 0.15): share of the words to mask.
        replace_probabilities (`tuple`, *optional*, defaults to `(0.8, 0.1, 0.1)`): `(mask, random, keep)` of a
            chosen word; `(1, 0, 0)` for evaluation.
        seed (`int`, *optional*): seed of the collator's random generator.

    Features: dicts with `input_ids` and `word_ids` (from `processor(..., return_word_ids=True)`, -1 outside
    words), optionally `special_tokens_mask` and `token_type_ids`. Other keys (e.g. stream ids computed from the
    unmasked text) are dropped.

    Returns:
        `dict` of `torch.LongTensor`: `input_ids`, `attention_mask`, `labels`, `phonetic_ids`, `morph_ids` (and
        `token_type_ids` when the features have them).
    """

    def __init__(
        self,
        processor: Any,
        mlm_probability: float = 0.15,
        replace_probabilities: tuple[float, float, float] = (0.8, 0.1, 0.1),
        seed: int | None = None,
    ) -> None:
        tokenizer = processor.tokenizer
        if tokenizer.mask_token_id is None:
            raise ValueError("WholeWordMaskCollator: the tokenizer has no mask token")
        if not 0.0 < mlm_probability <= 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1], got {mlm_probability}")
        if len(replace_probabilities) != 3 or abs(sum(replace_probabilities) - 1.0) > 1e-6:
            raise ValueError(
                f"replace_probabilities must be 3 shares summing to 1, got {replace_probabilities}"
            )
        self.processor = processor
        self.tokenizer = tokenizer
        self.mlm_probability = mlm_probability
        self.replace_probabilities = tuple(replace_probabilities)
        self.rng = np.random.default_rng(seed)
        specials = set(tokenizer.all_special_ids)
        self.random_token_ids = [i for i in range(len(tokenizer)) if i not in specials]

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("WholeWordMaskCollator: empty batch")
        rows, labels, words = [], [], []
        for i, feature in enumerate(features):
            if "word_ids" not in feature:
                raise KeyError(
                    f"feature {i} has no 'word_ids': tokenize with processor(..., return_word_ids=True)"
                )
            ids = [int(x) for x in feature["input_ids"]]
            word_ids = [None if w is None or int(w) < 0 else int(w) for w in feature["word_ids"]]
            masked, lab = whole_word_mask(
                ids,
                word_ids,
                self.tokenizer.mask_token_id,
                self.random_token_ids,
                self.rng,
                self.mlm_probability,
                self.replace_probabilities,
                feature.get("special_tokens_mask"),
            )
            rows.append(masked)
            labels.append(lab)
            words.append(word_ids)
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batch = {
            "input_ids": torch.full((len(rows), width), pad, dtype=torch.long),
            "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
            "labels": torch.full((len(rows), width), -100, dtype=torch.long),
        }
        has_types = all("token_type_ids" in f for f in features)
        if has_types:
            batch["token_type_ids"] = torch.zeros((len(rows), width), dtype=torch.long)
        padded_words = []
        for i, (ids, lab, w) in enumerate(zip(rows, labels, words)):
            n = len(ids)
            batch["input_ids"][i, :n] = torch.tensor(ids, dtype=torch.long)
            batch["attention_mask"][i, :n] = 1
            batch["labels"][i, :n] = torch.tensor(lab, dtype=torch.long)
            if has_types:
                batch["token_type_ids"][i, :n] = torch.tensor(
                    list(features[i]["token_type_ids"]), dtype=torch.long
                )
            padded_words.append(w + [None] * (width - n))
        streams = self.processor.compute_stream_ids(batch["input_ids"], padded_words, return_tensors="pt")
        batch.update(streams)
        return batch


class StreamPaddingCollator:
    """Pads a batch of processor features for classification: the tokenizer's fields through `tokenizer.pad`, and
    the word-aligned stream ids (`phonetic_ids`, `morph_ids`: one `(slot,)` row per token, as
    `MultiStreamProcessor(...)` returns them without padding) to `(batch, tokens, slot)` with the pad slot (all 0,
    what the processor itself puts at padded positions), on the tokenizer's padding side.

    Word-aligned models (`stream_alignment="word"`) need it: their streams cannot be derived from `input_ids`, so
    `DataCollatorWithPadding` (which only pads the tokenizer's fields) cannot batch them.
    """

    STREAM_KEYS = ("phonetic_ids", "morph_ids")

    def __init__(self, processor: Any, pad_to_multiple_of: int | None = None) -> None:
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = [dict(f) for f in features]  # the dataset's rows stay as they are
        streams = {k: [r.pop(k) for r in rows] for k in self.STREAM_KEYS if k in rows[0]}
        batch = self.tokenizer.pad(
            rows, padding=True, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"
        )
        width = batch["input_ids"].shape[1]
        left = self.tokenizer.padding_side == "left"
        for key, values in streams.items():
            slot = len(values[0][0])
            out = torch.zeros((len(values), width, slot), dtype=torch.long)
            for i, value in enumerate(values):
                value = torch.as_tensor(value, dtype=torch.long)
                if left:
                    out[i, width - len(value) :] = value
                else:
                    out[i, : len(value)] = value
            batch[key] = out
        return batch
