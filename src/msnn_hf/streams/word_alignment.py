"""Word-level alignment: every word piece carries its whole word's phonemes and morphs, plus its place in the word.

With the default *piece* alignment (`msnn_hf.streams.tables`) slot t holds the streams of token t's own surface
string, so `unearned` (`une ##ar ##ned`) reads `Y UW1 N | AA1 R | ...` and `un + e | ear | ...`: the word's real
pronunciation and its `un- earn -ed` structure never reach the model. With *word* alignment
(`MultiStreamProcessor.from_tokenizer(..., alignment="word")`) each piece of a word gets

    slot = [<piece:k>] + the whole word's units (truncated to the slot size)

where `k` is the piece's index inside its word (`<piece:0>`, `<piece:1>`, `<piece:2>`, `<piece:3+>` for the fourth
and later pieces), so all three pieces of `unearned` read `AH0 N ER1 N D` and `un + earn + ed`, and the marker says
which piece each is. The markers are units of the stream vocabularies (appended after the phonemes / morphs), so a
model consumes them like any other unit. What stays per piece (exactly the table row of the token):

- special tokens (`[CLS]`, `[SEP]`, `[MASK]`, `[UNK]`, the pad token, ...): a word with *any* such piece is not
  joined, each of its pieces keeps its own row (so a masked piece shows `<mask>` and nothing else);
- tokens outside any word (`word_ids` `None`) and words without letters (punctuation, numbers): their table rows.

A word is a maximal run of consecutive positions with the same word key (the fast tokenizer's
`(sequence_id, word_id)`); its string is the concatenation of its pieces' surface strings (`##` stripped, byte-level
tokens decoded), so the streams are a function of `input_ids` and word boundaries only. A word cut by truncation is
the part that is left.

**Not causal.** A word's first piece sees its later pieces, so word alignment must never feed a causal (GPT-2 style)
model: the processor exposes `processor.alignment` and the model configuration refuses `"word"` for causal models.
(The processor cannot tell a causal tokenizer from a bidirectional one reliably, e.g. RoBERTa also uses byte-level
BPE, so it does not refuse by itself.) For masked LM it is valid only with whole-word masking
([`msnn_hf.collators.WholeWordMaskCollator`]): a masked word's pieces all show `[MASK]`, hence `<mask>` streams.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from .morphology import MorfessorSegmenter, has_letter, morph_ids
from .phonetic import OfflineG2p
from .specials import PAD_ID, UNK_ID, StreamVocab
from .tables import special_token_roles, token_surface_strings

__all__ = ["ALIGNMENTS", "NUM_PIECE_MARKERS", "WordStreamBuilder", "piece_markers", "word_keys"]

ALIGNMENTS = ("piece", "word")
#: Piece-index markers per word: `<piece:0>`, `<piece:1>`, `<piece:2>`, `<piece:3+>`.
NUM_PIECE_MARKERS = 4


def piece_markers(n: int = NUM_PIECE_MARKERS) -> list[str]:
    """The piece-index marker units: `<piece:0>` ... `<piece:{n-2}>`, `<piece:{n-1}+>`."""
    if n < 1:
        raise ValueError(f"need at least one piece marker, got {n}")
    return [f"<piece:{k}>" for k in range(n - 1)] + [f"<piece:{n - 1}+>"]


def word_keys(encoding, batch_index: int = 0) -> list[Hashable | None]:
    """`(sequence_id, word_id)` of each position of one row of a fast tokenizer's encoding (`None` outside words)."""
    try:
        words = encoding.word_ids(batch_index)
        sequences = encoding.sequence_ids(batch_index)
    except (ValueError, AttributeError) as err:
        raise ValueError(
            "alignment='word' needs word boundaries, which only fast tokenizers (PreTrainedTokenizerFast) give"
        ) from err
    return [None if w is None else (s, w) for s, w in zip(sequences, words)]


def _slot(ids: list[int], size: int) -> list[int]:
    ids = ids[:size]
    return ids + [PAD_ID] * (size - len(ids))


class WordStreamBuilder:
    """
    Computes word-aligned `phonetic_ids` / `morph_ids` from `input_ids` and word keys (see the module docstring).
    Results are cached per word string.

    Args:
        tokenizer: the backbone tokenizer (for surface strings and special-token roles).
        tables ([`~msnn_hf.streams.tables.AlignmentTables`]): the per-piece tables (rows of specials, punctuation).
        g2p ([`~msnn_hf.streams.phonetic.OfflineG2p`]): grapheme-to-phoneme converter (whole words, batched).
        segmenter ([`~msnn_hf.streams.morphology.MorfessorSegmenter`]): morph segmenter.
        phonetic_vocab / morph_vocab ([`~msnn_hf.streams.specials.StreamVocab`]): must contain [`piece_markers`].
        morph_backoff (`bool`, *optional*, defaults to `True`): back off out-of-vocabulary morphs.
    """

    def __init__(
        self,
        tokenizer,
        tables,
        g2p: OfflineG2p,
        segmenter: MorfessorSegmenter,
        phonetic_vocab: StreamVocab,
        morph_vocab: StreamVocab,
        morph_backoff: bool = True,
    ) -> None:
        markers = piece_markers()
        for vocab in (phonetic_vocab, morph_vocab):
            missing = [m for m in markers if m not in vocab]
            if missing:
                raise ValueError(
                    f"alignment='word' needs the piece markers {markers} in the {vocab.name} vocabulary "
                    f"(missing {missing}): build the processor with alignment='word'"
                )
        self.g2p = g2p
        self.segmenter = segmenter
        self.phonetic_vocab = phonetic_vocab
        self.morph_vocab = morph_vocab
        self.morph_backoff = morph_backoff
        self.surfaces = [s or "" for s in token_surface_strings(tokenizer)]
        self.roles = set(special_token_roles(tokenizer)[0])
        self.tables = {k: v.numpy() for k, v in tables.as_dict().items()}
        self.slot_sizes = tables.slot_sizes
        self.markers = {
            "phonetic": phonetic_vocab.ids(markers),
            "morphological": morph_vocab.ids(markers),
        }
        self._cache: dict[str, tuple[list[int], list[int]]] = {}
        self._slots: dict[str, dict[str, np.ndarray]] = {}  # word -> stream -> [NUM_PIECE_MARKERS, slot] ids

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = {}
        state["_slots"] = {}
        return state

    def _word_slots(self, word: str) -> dict[str, np.ndarray]:
        slots = self._slots.get(word)
        if slots is None:
            p_ids, m_ids = self._cache[word]
            slots = {
                stream: np.array(
                    [
                        _slot([self.markers[stream][k], *content], self.slot_sizes[stream])
                        for k in range(NUM_PIECE_MARKERS)
                    ],
                    dtype=np.int64,
                )
                for stream, content in (("phonetic", p_ids), ("morphological", m_ids))
            }
            self._slots[word] = slots
        return slots

    # ------------------------------------------------------------------ words
    def word_units(self, words: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """`(phoneme ids, morph ids)` of each whole word (no marker, not truncated); cached, g2p batched."""
        missing = [w for w in dict.fromkeys(words) if w not in self._cache]
        if missing:
            for word, pron in zip(missing, self.g2p.words(missing)):
                p_ids = self.phonetic_vocab.ids(pron) or [UNK_ID]
                m_ids = morph_ids(
                    self.segmenter.segment(word), self.morph_vocab, backoff=self.morph_backoff
                ) or [UNK_ID]
                self._cache[word] = (p_ids, m_ids)
        return [self._cache[w] for w in words]

    def spans(self, input_ids: Sequence[int], keys: Sequence[Hashable | None]) -> list[tuple[int, int, str]]:
        """`(start, end, word)` of the joined words of one row (runs of equal keys, no special piece, letters)."""
        out = []
        t, n = 0, len(input_ids)
        while t < n:
            key = keys[t]
            end = t + 1
            if key is None:
                t = end
                continue
            while end < n and keys[end] == key:
                end += 1
            pieces = input_ids[t:end]
            if not any(int(p) in self.roles for p in pieces):
                word = "".join(
                    self.surfaces[int(p)] if 0 <= int(p) < len(self.surfaces) else "" for p in pieces
                )
                if has_letter(word):
                    out.append((t, end, word.lower()))
            t = end
        return out

    # ------------------------------------------------------------------ batches
    def __call__(
        self, input_ids: Sequence[Sequence[int]], keys: Sequence[Sequence[Hashable | None]]
    ) -> dict[str, np.ndarray | list]:
        """
        Word-aligned slots of a batch. `input_ids` / `keys`: one sequence per row (rows may differ in length).

        Returns:
            `{"phonetic": rows, "morphological": rows}`, each row an `int64` array `[T, slot]`.
        """
        if len(input_ids) != len(keys):
            raise ValueError(f"{len(input_ids)} rows of input_ids but {len(keys)} rows of word ids")
        spans = []
        for ids, row_keys in zip(input_ids, keys):
            if len(ids) != len(row_keys):
                raise ValueError(f"a row has {len(ids)} input ids but {len(row_keys)} word ids")
            spans.append(self.spans(ids, row_keys))
        self.word_units(list(dict.fromkeys(w for row in spans for _, _, w in row)))  # one batched g2p call
        out: dict[str, list[np.ndarray]] = {"phonetic": [], "morphological": []}
        for ids, row_spans in zip(input_ids, spans):
            ids_array = np.asarray(ids, dtype=np.int64).reshape(-1)
            rows = {stream: table[ids_array].copy() for stream, table in self.tables.items()}
            for start, end, word in row_spans:
                slots = self._word_slots(word)
                markers = np.minimum(np.arange(end - start), NUM_PIECE_MARKERS - 1)
                for stream in rows:
                    rows[stream][start:end] = slots[stream][markers]
            for stream in out:
                out[stream].append(rows[stream])
        return out
