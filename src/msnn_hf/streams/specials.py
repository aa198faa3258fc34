"""Special ids shared by every non-semantic stream vocabulary, and a small JSON-backed vocabulary class.

The ids follow the stream-id contract in `docs/architecture.md`:

| id | token | meaning |
| --- | --- | --- |
| 0 | `<pad>` | padding (the tokenizer's pad token has an all-zero slot) |
| 1 | `<unk>` | unknown unit (e.g. a morph outside the top-K, a letter word g2p cannot spell) |
| 2 | `<cls>` | the tokenizer's CLS token |
| 3 | `<sep>` | the tokenizer's SEP token |
| 4 | `<mask>` | the tokenizer's MASK token (and nothing else: no leakage) |
| 5 | `<bos>` | the tokenizer's BOS token |
| 6 | `<eos>` | the tokenizer's EOS token |
| 7 | `<special>` | any other special token |
| 8 | `<punct>` | a token without letters (punctuation, digits, symbols) |
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

SPECIAL_TOKENS: tuple[str, ...] = (
    "<pad>",
    "<unk>",
    "<cls>",
    "<sep>",
    "<mask>",
    "<bos>",
    "<eos>",
    "<special>",
    "<punct>",
)
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID, BOS_ID, EOS_ID, SPECIAL_ID, PUNCT_ID = range(len(SPECIAL_TOKENS))
NUM_SPECIAL_IDS = len(SPECIAL_TOKENS)


class StreamVocab:
    """
    A stream vocabulary: the 9 reserved specials (ids 0-8) followed by the stream's own units.

    Args:
        units (`Iterable[str]`):
            The stream's units (phonemes or morphs), in id order, without the specials. Duplicates and units that
            collide with a special token raise a `ValueError`.
        name (`str`, *optional*, defaults to `"stream"`):
            Name used in error messages and saved in the JSON file.
    """

    def __init__(self, units: Iterable[str], name: str = "stream") -> None:
        self.name = name
        self.itos: list[str] = list(SPECIAL_TOKENS)
        self.stoi: dict[str, int] = {tok: i for i, tok in enumerate(self.itos)}
        for unit in units:
            if not isinstance(unit, str) or not unit:
                raise ValueError(f"{name} vocabulary: units must be non-empty strings, got {unit!r}")
            if unit in self.stoi:
                raise ValueError(f"{name} vocabulary: duplicate or reserved unit {unit!r}")
            self.stoi[unit] = len(self.itos)
            self.itos.append(unit)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, unit: str) -> bool:
        return unit in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StreamVocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"StreamVocab(name={self.name!r}, size={len(self)})"

    def id(self, unit: str) -> int:
        """Id of `unit`, `<unk>` (1) if it is not in the vocabulary."""
        return self.stoi.get(unit, UNK_ID)

    def ids(self, units: Iterable[str]) -> list[int]:
        """Ids of `units` (`<unk>` for unknown ones)."""
        return [self.stoi.get(u, UNK_ID) for u in units]

    def tokens(self, ids: Iterable[int], skip_pad: bool = True) -> list[str]:
        """Units of `ids`; padding (id 0) is dropped unless `skip_pad=False`."""
        return [self.itos[i] for i in ids if not (skip_pad and i == PAD_ID)]

    @property
    def units(self) -> list[str]:
        """The stream's own units (without the specials)."""
        return self.itos[NUM_SPECIAL_IDS:]

    def to_dict(self) -> dict:
        return {"name": self.name, "special_tokens": list(SPECIAL_TOKENS), "itos": self.itos}

    def save(self, path: str | os.PathLike) -> None:
        """Save as JSON (`{"name", "special_tokens", "itos"}`)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> StreamVocab:
        """Load a vocabulary written by [`StreamVocab.save`]; checks that the specials match the contract."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        itos = data["itos"]
        if tuple(itos[:NUM_SPECIAL_IDS]) != SPECIAL_TOKENS:
            raise ValueError(
                f"{path}: the first {NUM_SPECIAL_IDS} entries must be the reserved specials {SPECIAL_TOKENS}, "
                f"got {itos[:NUM_SPECIAL_IDS]}"
            )
        return cls(itos[NUM_SPECIAL_IDS:], name=data.get("name", "stream"))
