"""MultiStreamProcessor: a Hugging Face tokenizer plus the phonetic / morphological stream tables.

The processor tokenizes as the wrapped tokenizer does and adds `phonetic_ids` `[B, T, P]` and `morph_ids`
`[B, T, M]`, gathered from per-vocabulary tables with `input_ids` (see `msnn_hf.streams.tables`): slot `t` always
belongs to token `t`, and the streams of a token depend on that token only.

With `alignment="word"` (`MultiStreamProcessor.from_tokenizer(..., alignment="word")`, saved in
`processor_config.json`; default `"piece"`) every piece of a word carries the whole word's phonemes and morphs with a
piece-index marker (`msnn_hf.streams.word_alignment`); the processor then computes the stream ids from `input_ids` and
the word boundaries instead of gathering them. Word alignment is for bidirectional models only (never causal ones)
and, for masked LM, only with whole-word masking (`msnn_hf.collators.WholeWordMaskCollator`).

Files written by `save_pretrained` (all loadable without pickle):

| file | content |
| --- | --- |
| `processor_config.json` | processor class, slot sizes, stream vocab sizes, file names |
| tokenizer files | whatever `tokenizer.save_pretrained` writes (`tokenizer.json`, `tokenizer_config.json`, ...) |
| `stream_tables.safetensors` | `phonetic` `LongTensor[V, P]`, `morphological` `LongTensor[V, M]` |
| `stream_tables.json` | table metadata (tokenizer vocab size, slot sizes, special-token roles) |
| `phonetic_vocab.json`, `morph_vocab.json` | stream vocabularies (`itos`, the 9 specials first) |
| `morfessor_segmentation.txt` | the Morfessor Baseline model in Morfessor's segmentation text format |
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoProcessor, AutoTokenizer, BatchEncoding, PreTrainedTokenizerBase
from transformers.processing_utils import ProcessorMixin
from transformers.utils import cached_file

from .streams.morphology import (
    MORPH_LEXICONS,
    SEGMENTATION_FILE,
    MorfessorSegmenter,
    build_morph_vocab,
    train_default_segmenter,
    train_morfessor,
)
from .streams.phonetic import OfflineG2p, build_phonetic_vocab
from .streams.specials import StreamVocab
from .streams.tables import (
    STREAM_INPUT_KEYS,
    TABLES_FILE,
    TABLES_METADATA_FILE,
    AlignmentTables,
    build_alignment_tables,
    word_initial_entries,
)
from .streams.word_alignment import ALIGNMENTS, WordStreamBuilder, piece_markers, word_keys

__all__ = ["MultiStreamProcessor", "main", "register_processor"]

logger = logging.getLogger(__name__)

PROCESSOR_CONFIG_FILE = "processor_config.json"
PHONETIC_VOCAB_FILE = "phonetic_vocab.json"
MORPH_VOCAB_FILE = "morph_vocab.json"
#: Key under which the processor is registered with `AutoProcessor` when no model config class is given.
PROCESSOR_REGISTRY_KEY = "msnn_multistream"
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")
#: Default slot sizes per alignment: piece slots hold one piece's units; word slots hold the piece marker plus the
#: whole word's units, sized so that <= 1 % of SST-5 train words are truncated (benchmarks/results/morph_streams.json).
DEFAULT_SLOT_SIZES = {
    "piece": {"phonetic": 8, "morphological": 4},
    "word": {"phonetic": 14, "morphological": 5},
}
#: Default morph vocabulary size (the 9 specials included), per `morph_lexicon` (benchmarks/results/morph_streams.json).
DEFAULT_MORPH_VOCAB_SIZE = {"cmudict+vocab+corpus": 16384, "corpus": 2000}
#: `morfessor_kwargs` that the default word list applies without retraining the shipped CMUdict base from scratch.
_ONLINE_MORFESSOR_KWARGS = ("dampening", "seed")
_IGNORED_AUTO_KWARGS = (
    "_from_auto",
    "trust_remote_code",
    "_commit_hash",
    "code_revision",
    "return_unused_kwargs",
)


def _validate_texts(text: Any, name: str = "text", split_into_words: bool = False) -> None:
    """Raise a `TypeError` naming the first bad item (index and type), a `ValueError` for an empty batch."""
    if split_into_words:
        if not isinstance(text, (list, tuple)):
            raise TypeError(
                f"{name} must be a list of words (or a list of such lists), got {type(text).__name__}"
            )
        if not text:
            raise ValueError(f"{name} is an empty list: give at least one list of words")
        batch = text if isinstance(text[0], (list, tuple)) else [text]
        for i, words in enumerate(batch):
            if not isinstance(words, (list, tuple)):
                raise TypeError(f"{name}[{i}] must be a list of str, got {type(words).__name__}")
            for j, word in enumerate(words):
                if not isinstance(word, str):
                    raise TypeError(
                        f"{name}[{i}][{j}] must be a str, got {type(word).__name__}: {word!r:.50}"
                    )
        return
    if isinstance(text, str):
        return
    if not isinstance(text, (list, tuple)):
        raise TypeError(f"{name} must be a str or a list/tuple of str, got {type(text).__name__}")
    if not text:
        raise ValueError(f"{name} is an empty list: give at least one text")
    for i, item in enumerate(text):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(item).__name__}: {item!r:.50}")


def _surrogate_error(texts: dict[str, Any]) -> ValueError | None:
    """A `ValueError` naming the first text that holds a lone surrogate (not valid Unicode), or None."""
    for name, value in texts.items():
        items = (
            [(name, value)] if isinstance(value, str) else [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        )
        for label, item in items:
            words = item if isinstance(item, (list, tuple)) else [item]
            offset = 0
            for word in words:
                for j, char in enumerate(word):
                    if "\ud800" <= char <= "\udfff":
                        return ValueError(
                            f"{label} is not valid Unicode: a lone surrogate {char!r} at character {offset + j} "
                            "(text decoded with errors='surrogateescape' or cut inside a surrogate pair?); "
                            "clean it, e.g. text.encode('utf-8', 'replace').decode('utf-8')"
                        )
                offset += len(word)
    return None


def _is_no_padding(padding: Any) -> bool:
    return padding in (False, None) or str(getattr(padding, "value", padding)) == "do_not_pad"


class MultiStreamProcessor(ProcessorMixin):
    r"""
    Tokenizer + stream tables for multi-stream models: returns `input_ids`, `attention_mask` (and
    `token_type_ids` when the tokenizer gives them), `phonetic_ids` `[B, T, P]` and `morph_ids` `[B, T, M]`.

    Build one with [`MultiStreamProcessor.from_tokenizer`] (runs g2p and Morfessor over the vocabulary once), save it
    with [`~MultiStreamProcessor.save_pretrained`] and load it with [`~MultiStreamProcessor.from_pretrained`] or
    `AutoProcessor.from_pretrained` (after `register_processor()`, which `import msnn_hf` runs).

    Args:
        tokenizer ([`PreTrainedTokenizerBase`]): the backbone tokenizer (semantic stream). Public as
            `processor.tokenizer`.
        tables ([`~msnn_hf.streams.tables.AlignmentTables`]): phonetic and morph tables over the tokenizer's
            vocabulary (`len(tokenizer)` rows).
        phonetic_vocab ([`~msnn_hf.streams.specials.StreamVocab`]): phoneme vocabulary.
        morph_vocab ([`~msnn_hf.streams.specials.StreamVocab`]): morph vocabulary.
        segmenter ([`~msnn_hf.streams.morphology.MorfessorSegmenter`], *optional*): the Morfessor model, saved
            with the processor so the tables can be rebuilt (e.g. after adding tokens).
        alignment (`str`, *optional*, defaults to `"piece"`): `"piece"` (each token's own surface string, a table
            gather) or `"word"` (each piece carries its whole word's units and its piece-index marker, computed per
            call; needs a fast tokenizer, the segmenter and the marker units in both stream vocabularies). Public
            as `processor.alignment`.
        morph_backoff (`bool`, *optional*): back off out-of-vocabulary morphs to smaller known units when morphs
            are computed (word alignment, `rebuild_tables`); defaults to what the tables were built with
            (`tables.metadata["morph_backoff"]`, `False` for tables built before the back-off existed).
        g2p ([`~msnn_hf.streams.phonetic.OfflineG2p`], *optional*): g2p used by word alignment (default: a new
            `OfflineG2p(pos_tagger=None)`, loaded lazily).

    Example:

    ```python
    >>> from msnn_hf import MultiStreamProcessor
    >>> processor = MultiStreamProcessor.from_tokenizer("sentence-transformers/all-MiniLM-L6-v2")
    >>> batch = processor(["A gorgeously elaborate film."], padding=True, return_tensors="pt")
    >>> batch["input_ids"].shape, batch["phonetic_ids"].shape, batch["morph_ids"].shape
    (torch.Size([1, 8]), torch.Size([1, 8, 8]), torch.Size([1, 8, 4]))
    >>> print(processor.explain("gorgeously"))
    ```
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        tables: AlignmentTables,
        phonetic_vocab: StreamVocab,
        morph_vocab: StreamVocab,
        segmenter: MorfessorSegmenter | None = None,
        alignment: str = "piece",
        morph_backoff: bool | None = None,
        g2p: OfflineG2p | None = None,
    ) -> None:
        super().__init__(tokenizer)
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        if not isinstance(tables, AlignmentTables):
            raise TypeError(f"tables must be an AlignmentTables, got {type(tables).__name__}")
        if tables.vocab_size != len(tokenizer):
            raise ValueError(
                f"The stream tables have {tables.vocab_size} rows but the tokenizer has {len(tokenizer)} entries; "
                "rebuild them with MultiStreamProcessor.from_tokenizer(...) or processor.rebuild_tables()."
            )
        for name, vocab, table in (
            ("phonetic", phonetic_vocab, tables.phonetic),
            ("morphological", morph_vocab, tables.morphological),
        ):
            if table.numel() and int(table.max()) >= len(vocab):
                raise ValueError(f"the {name} table has ids >= its vocabulary size {len(vocab)}")
        self.tables = tables
        self.phonetic_vocab = phonetic_vocab
        self.morph_vocab = morph_vocab
        self.segmenter = segmenter
        self._numpy_tables = {k: v.numpy() for k, v in tables.as_dict().items()}
        self.alignment = alignment
        self.morph_backoff = bool(
            tables.metadata.get("morph_backoff", False) if morph_backoff is None else morph_backoff
        )
        self._g2p = g2p
        self._word_streams: WordStreamBuilder | None = None
        if alignment == "word":
            if not getattr(tokenizer, "is_fast", False):
                raise ValueError(
                    "alignment='word' needs word boundaries, which only fast tokenizers (PreTrainedTokenizerFast) give"
                )
            if segmenter is None:
                raise ValueError("alignment='word' needs the Morfessor segmenter (segmenter=...)")
            if min(tables.slot_sizes.values()) < 2:
                raise ValueError(
                    f"alignment='word' needs slots of at least 2 (the piece marker + units), got {tables.slot_sizes}"
                )
            self._word_stream_builder()  # checks the piece markers are in the vocabularies

    def _word_stream_builder(self) -> WordStreamBuilder:
        if self._word_streams is None:
            if self._g2p is None:
                self._g2p = OfflineG2p(pos_tagger=None)
            self._word_streams = WordStreamBuilder(
                self.tokenizer,
                self.tables,
                self._g2p,
                self.segmenter,
                self.phonetic_vocab,
                self.morph_vocab,
                morph_backoff=self.morph_backoff,
            )
        return self._word_streams

    # ------------------------------------------------------------------ properties
    @property
    def stream_tables(self) -> dict[str, torch.Tensor]:
        """`{"phonetic": LongTensor[vocab_size, P], "morphological": LongTensor[vocab_size, M]}`."""
        return self.tables.as_dict()

    @property
    def stream_vocab_sizes(self) -> dict[str, int]:
        """`{"phonetic": ..., "morphological": ...}`: embedding sizes the model config needs."""
        return {"phonetic": len(self.phonetic_vocab), "morphological": len(self.morph_vocab)}

    @property
    def slot_sizes(self) -> dict[str, int]:
        """`{"phonetic": P, "morphological": M}`."""
        return self.tables.slot_sizes

    @property
    def streams_are_causal(self) -> bool:
        """Whether the streams at position t depend on token t only (`alignment="piece"`): required by causal
        models. Word alignment (`False`) lets a word's first piece see its later pieces."""
        return self.alignment == "piece"

    @property
    def model_input_names(self) -> list[str]:
        return list(self.tokenizer.model_input_names) + list(STREAM_INPUT_KEYS.values())

    # ------------------------------------------------------------------ building
    @classmethod
    def from_tokenizer(
        cls,
        tokenizer_or_path: str | os.PathLike | PreTrainedTokenizerBase,
        corpus: Iterable[str] | dict[str, int] | None = None,
        phonetic_slot_size: int | None = None,
        morph_slot_size: int | None = None,
        morph_vocab_size: int | None = None,
        show_progress: bool = True,
        morfessor_kwargs: dict[str, Any] | None = None,
        g2p: OfflineG2p | None = None,
        alignment: str = "piece",
        morph_lexicon: str = "cmudict+vocab+corpus",
        morph_backoff: bool = True,
        segmenter: MorfessorSegmenter | None = None,
        **tokenizer_kwargs,
    ) -> MultiStreamProcessor:
        """
        Build a processor from a tokenizer: train Morfessor, run g2p and build the tables over the whole vocabulary.

        Args:
            tokenizer_or_path (`str`, `os.PathLike` or [`PreTrainedTokenizerBase`]):
                A tokenizer object, a Hub id or a local folder (loaded with `AutoTokenizer.from_pretrained`).
            corpus (`Iterable[str]` or `dict[str, int]`, *optional*):
                Texts (or a word-frequency mapping) whose words (with their counts) Morfessor is trained on, and
                whose digit/symbol units compete for the morph vocabulary.
            phonetic_slot_size (`int`, *optional*): P, phonemes per token slot; defaults to
                `DEFAULT_SLOT_SIZES[alignment]` (8 for pieces, 14 for words: the marker + 13 phonemes).
            morph_slot_size (`int`, *optional*): M, morphs per token slot; defaults to 4 (pieces) / 5 (words: the marker + 4 morphs).
            morph_vocab_size (`int`, *optional*): morph vocabulary size, the 9 specials (and the 4 piece markers of
                word alignment) included; defaults to 16384 with the default word list, 2000 with
                `morph_lexicon="corpus"`.
            show_progress (`bool`, *optional*, defaults to `True`): tqdm progress bars for the table build.
            morfessor_kwargs (`dict`, *optional*): extra arguments of
                [`~msnn_hf.streams.morphology.train_morfessor`] (`max_word_types`, `max_epochs`, `seed`, ...). With
                the default word list, only `dampening` and `seed` keep the shipped CMUdict base (extended online);
                any other option trains one model from scratch on the whole word list (60-100 s).
            g2p ([`~msnn_hf.streams.phonetic.OfflineG2p`], *optional*): a g2p instance to reuse (its cache too).
            alignment (`str`, *optional*, defaults to `"piece"`): `"piece"` or `"word"` (see the class docstring;
                never for causal models).
            morph_lexicon (`str`, *optional*, defaults to `"cmudict+vocab+corpus"`): the words Morfessor is trained
                on: `"cmudict+vocab+corpus"` (the shipped base model trained on CMUdict's 117k words, extended
                online with the tokenizer vocabulary's whole words and the corpus words with their counts, see
                [`~msnn_hf.streams.morphology.train_default_segmenter`]) or `"corpus"` (only the corpus, else the
                vocabulary's whole words: the behaviour of msnn_hf before the word list).
            morph_backoff (`bool`, *optional*, defaults to `True`): back an out-of-vocabulary morph off to smaller
                known units down to single characters (all characters of the training words are in the morph
                vocabulary) instead of `<unk>`. `False` (with `morph_lexicon="corpus"`, `morph_vocab_size=2000`)
                gives the tables of msnn_hf before the back-off.
            segmenter ([`~msnn_hf.streams.morphology.MorfessorSegmenter`], *optional*): a trained segmenter to use
                instead of training one (`corpus`, `morph_lexicon` and `morfessor_kwargs` then only feed the
                symbol counts, i.e. are ignored).
            tokenizer_kwargs: passed to `AutoTokenizer.from_pretrained` when a path / Hub id is given.

        Returns:
            [`MultiStreamProcessor`]
        """
        if isinstance(tokenizer_or_path, PreTrainedTokenizerBase):
            tokenizer = tokenizer_or_path
        elif isinstance(tokenizer_or_path, (str, os.PathLike)):
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_or_path, **tokenizer_kwargs)
        else:
            raise TypeError(
                f"tokenizer_or_path must be a tokenizer, a Hub id or a path, got {type(tokenizer_or_path).__name__}"
            )
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        if morph_lexicon not in MORPH_LEXICONS:
            raise ValueError(f"morph_lexicon must be one of {MORPH_LEXICONS}, got {morph_lexicon!r}")
        if alignment == "word" and not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                "alignment='word' needs word boundaries, which only fast tokenizers (PreTrainedTokenizerFast) give"
            )
        phonetic_slot_size = phonetic_slot_size or DEFAULT_SLOT_SIZES[alignment]["phonetic"]
        morph_slot_size = morph_slot_size or DEFAULT_SLOT_SIZES[alignment]["morphological"]
        morph_vocab_size = morph_vocab_size or DEFAULT_MORPH_VOCAB_SIZE[morph_lexicon]
        start = time.perf_counter()
        kwargs = dict(morfessor_kwargs or {})
        if segmenter is not None:
            pass
        elif morph_lexicon == "corpus":
            if corpus is None:
                corpus = dict.fromkeys(word_initial_entries(tokenizer), 1)
            segmenter = train_morfessor(corpus, show_progress=False, **kwargs)
        elif set(kwargs) <= set(_ONLINE_MORFESSOR_KWARGS):
            segmenter = train_default_segmenter(corpus, word_initial_entries(tokenizer), **kwargs)
        else:  # options of the batch training: one model from scratch on the whole word list
            from .streams.morphology import _split_counts, cmudict_words

            words, symbols = _split_counts(corpus) if corpus is not None else ({}, {})
            lexicon = dict.fromkeys(cmudict_words(), 1)
            for word in word_initial_entries(tokenizer):
                lexicon.setdefault(word, 1)
            for word, count in words.items():
                lexicon[word] = lexicon.get(word, 0) + count
            lexicon.update({k: v for k, v in symbols.items()})
            kwargs.setdefault("max_word_types", None)
            segmenter = train_morfessor(lexicon, show_progress=False, **kwargs)
        markers = piece_markers() if alignment == "word" else []
        morph_vocab = build_morph_vocab(
            segmenter, vocab_size=morph_vocab_size, include_characters=morph_backoff, extra_units=markers
        )
        phonetic_vocab = StreamVocab([*build_phonetic_vocab().units, *markers], name="phonetic")
        tables = build_alignment_tables(
            tokenizer,
            g2p if g2p is not None else OfflineG2p(pos_tagger=None),
            segmenter,
            phonetic_vocab,
            morph_vocab,
            phonetic_slot_size=phonetic_slot_size,
            morph_slot_size=morph_slot_size,
            show_progress=show_progress,
            morph_backoff=morph_backoff,
        )
        tables.metadata["morph_vocab_size_requested"] = morph_vocab_size
        tables.metadata["morph_lexicon"] = morph_lexicon
        tables.metadata["alignment"] = alignment
        logger.info(
            "Built stream tables for %d tokens in %.1fs", tables.vocab_size, time.perf_counter() - start
        )
        return cls(
            tokenizer,
            tables,
            phonetic_vocab,
            morph_vocab,
            segmenter=segmenter,
            alignment=alignment,
            morph_backoff=morph_backoff,
            g2p=g2p,
        )

    def rebuild_tables(self, show_progress: bool = True, g2p: OfflineG2p | None = None) -> None:
        """Rebuild the tables for the current tokenizer vocabulary (e.g. after `tokenizer.add_tokens`)."""
        if self.segmenter is None:
            raise ValueError(
                "rebuild_tables needs the Morfessor segmenter, which this processor does not have"
            )
        self.tables = build_alignment_tables(
            self.tokenizer,
            g2p if g2p is not None else OfflineG2p(pos_tagger=None),
            self.segmenter,
            self.phonetic_vocab,
            self.morph_vocab,
            phonetic_slot_size=self.slot_sizes["phonetic"],
            morph_slot_size=self.slot_sizes["morphological"],
            show_progress=show_progress,
            morph_backoff=self.morph_backoff,
        )
        self._numpy_tables = {k: v.numpy() for k, v in self.tables.as_dict().items()}
        self._word_streams = None

    # ------------------------------------------------------------------ processing
    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        text_pair: str | Sequence[str] | None = None,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        return_tensors: str | None = None,
        return_word_ids: bool = False,
        **tokenizer_kwargs,
    ) -> BatchEncoding:
        """
        Tokenize `text` and add the aligned stream ids.

        Args:
            text (`str` or `list[str]`): one text or a batch (or pre-split words with `is_split_into_words=True`).
            text_pair (`str` or `list[str]`, *optional*): second sequences, as for the tokenizer.
            padding, truncation, max_length: as for the tokenizer.
            return_tensors (`str`, *optional*): `"pt"`, `"np"` or `None` (Python lists).
            return_word_ids (`bool`, *optional*, defaults to `False`): also return `word_ids`, the word index of
                each position within its row (-1 outside words; the two texts of a pair get distinct indices),
                which [`~msnn_hf.collators.WholeWordMaskCollator`] and [`~MultiStreamProcessor.compute_stream_ids`]
                take. Needs a fast tokenizer. Not a model input: drop it before calling a model.
            tokenizer_kwargs: any other tokenizer argument (`add_special_tokens`, `return_offsets_mapping`, ...).

        Returns:
            [`BatchEncoding`]: the tokenizer's outputs plus `phonetic_ids` and `morph_ids`, with the shape of
            `input_ids` and a trailing slot dimension (`[B, T, P]` / `[B, T, M]`; `[T, P]` for a single text with
            `return_tensors=None`).

        Raises:
            TypeError: a text that is not a str (naming its index and type).
            ValueError: an empty batch; a `text_pair` batch of another length; a ragged batch with
                `return_tensors` and no padding; `max_length` that is not a positive int, or (with truncation) no
                larger than the special tokens the tokenizer adds; a text holding a lone surrogate (not valid
                Unicode), naming the text and the character.
        """
        if text is None:
            raise TypeError("text must be a str or a list of str, got None")
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        split = bool(tokenizer_kwargs.get("is_split_into_words", False))
        _validate_texts(text, "text", split)
        batch = not isinstance(text, str) and not (split and not isinstance(text[0], (list, tuple)))
        if text_pair is not None:
            _validate_texts(text_pair, "text_pair", split)
            if batch and len(text_pair) != len(text):
                raise ValueError(
                    f"text_pair has {len(text_pair)} items but text has {len(text)}: give one per text"
                )
        self._check_max_length(max_length, truncation, text_pair is not None, tokenizer_kwargs)
        if len(self.tokenizer) != self.tables.vocab_size:
            raise ValueError(
                f"The tokenizer now has {len(self.tokenizer)} entries but the stream tables {self.tables.vocab_size}: "
                "call processor.rebuild_tables() after adding tokens."
            )
        # without padding a batch can be ragged: tokenize to lists, check the lengths, then make the tensors
        ragged = batch and return_tensors is not None and _is_no_padding(padding)
        try:
            encoding = self.tokenizer(
                text,
                text_pair=text_pair,
                padding=padding,
                truncation=truncation,
                max_length=max_length,
                return_tensors=None if ragged else return_tensors,
                **tokenizer_kwargs,
            )
        except (TypeError, UnicodeEncodeError) as err:  # the Rust tokenizer's error for a lone surrogate
            found = _surrogate_error(
                {"text": text, **({"text_pair": text_pair} if text_pair is not None else {})}
            )
            if found is not None:
                raise found from err
            raise
        if ragged:
            lengths = sorted({len(row) for row in encoding["input_ids"]})
            if len(lengths) > 1:
                raise ValueError(
                    f"return_tensors={return_tensors!r} needs sequences of one length (got lengths {lengths}): pass "
                    "padding=True (or 'longest' / 'max_length'), or return_tensors=None for lists"
                )
            encoding.convert_to_tensors(return_tensors)
        input_ids = encoding["input_ids"]
        if self.alignment == "word" or return_word_ids:
            word_rows = self._encoding_word_ids(encoding)
        if self.alignment == "word":
            single = return_tensors is None and (not input_ids or isinstance(input_ids[0], int))
            rows = [input_ids] if single else input_ids
            streams = self.compute_stream_ids(rows, word_rows, return_tensors=return_tensors)
            for key, value in streams.items():
                encoding[key] = value[0] if single else value
        else:
            for stream, key in STREAM_INPUT_KEYS.items():
                encoding[key] = self._gather(stream, input_ids, return_tensors)
        if return_word_ids:
            single = return_tensors is None and (not input_ids or isinstance(input_ids[0], int))
            numbered = [[-1 if w is None else w for w in row] for row in word_rows]
            if return_tensors == "pt":
                encoding["word_ids"] = torch.tensor(numbered, dtype=torch.long)
            elif return_tensors == "np":
                encoding["word_ids"] = np.asarray(numbered, dtype=np.int64)
            else:
                encoding["word_ids"] = numbered[0] if single else numbered
        return encoding

    def _check_max_length(
        self, max_length: Any, truncation: Any, pair: bool, tokenizer_kwargs: dict[str, Any]
    ) -> None:
        """`max_length` must be a positive int, and with truncation leave room for one token of text besides the
        special tokens the tokenizer adds (the tokenizer itself would return the text untruncated)."""
        if max_length is None:
            return
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        if truncation in (None, False) or str(getattr(truncation, "value", truncation)) == "do_not_truncate":
            return
        specials = (
            self.tokenizer.num_special_tokens_to_add(pair=pair)
            if tokenizer_kwargs.get("add_special_tokens", True)
            else 0
        )
        if max_length <= specials:
            raise ValueError(
                f"max_length={max_length} leaves no room for text: the tokenizer adds {specials} special tokens "
                f"to each {'pair' if pair else 'sequence'}; use max_length >= {specials + 1} (or "
                "add_special_tokens=False)"
            )

    @staticmethod
    def _encoding_word_ids(encoding: BatchEncoding) -> list[list[int | None]]:
        """Per row, the index of each position's word (`(sequence_id, word_id)` runs numbered 0, 1, ...)."""
        n_rows = len(encoding.encodings) if getattr(encoding, "encodings", None) else 0
        if not n_rows:
            raise ValueError(
                "alignment='word' / return_word_ids need word boundaries, which only fast tokenizers give"
            )
        rows = []
        for i in range(n_rows):
            keys = word_keys(encoding, i)
            numbered, index, previous = [], -1, None
            for key in keys:
                if key is None:
                    numbered.append(None)
                    previous = None
                    continue
                if key != previous:
                    index += 1
                    previous = key
                numbered.append(index)
            rows.append(numbered)
        return rows

    def compute_stream_ids(
        self,
        input_ids: Any,
        word_ids: Sequence[Sequence[int | None]] | None = None,
        return_tensors: str | None = "pt",
    ) -> dict[str, Any]:
        """
        Stream ids of (possibly masked) `input_ids` `[B, T]`: the table gather for piece alignment; for word
        alignment, each word (a run of equal `word_ids`, `None` / -1 outside words) is joined from its pieces, and a
        word with a special piece (e.g. `[MASK]`) keeps per-piece rows (see `msnn_hf.streams.word_alignment`).

        Args:
            input_ids: `[B, T]` ids (tensor, array or nested lists; rows may differ in length for lists).
            word_ids: per row, the word index of each position (needed for word alignment).
            return_tensors (`str`, *optional*, defaults to `"pt"`): `"pt"`, `"np"` or `None` (lists).

        Returns:
            `{"phonetic_ids": ..., "morph_ids": ...}` shaped `[B, T, P]` / `[B, T, M]`.
        """
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        if isinstance(input_ids, (torch.Tensor, np.ndarray)):
            rows = [list(map(int, row)) for row in input_ids.tolist()]
        else:
            rows = [[int(i) for i in row] for row in input_ids]
        if self.alignment == "piece":
            if return_tensors is None:
                return {key: self._gather(stream, rows, None) for stream, key in STREAM_INPUT_KEYS.items()}
            if len({len(r) for r in rows}) > 1:
                raise ValueError(f"return_tensors={return_tensors!r} needs rows of equal length (pad first)")
            ids = np.asarray(rows, dtype=np.int64).reshape(len(rows), -1)
            ids = torch.from_numpy(ids) if return_tensors == "pt" else ids
            return {
                key: self._gather(stream, ids, return_tensors) for stream, key in STREAM_INPUT_KEYS.items()
            }
        if word_ids is None:
            raise ValueError("alignment='word' needs word_ids (processor(..., return_word_ids=True))")
        if isinstance(word_ids, (torch.Tensor, np.ndarray)):
            word_ids = word_ids.tolist()
        keys = [[None if w is None or int(w) < 0 else int(w) for w in row] for row in word_ids]
        streams = self._word_stream_builder()(rows, keys)
        out = {}
        for stream, key in STREAM_INPUT_KEYS.items():
            arrays = streams[stream]
            if return_tensors is None:
                out[key] = [a.tolist() for a in arrays]
            elif len({a.shape[0] for a in arrays}) > 1:
                raise ValueError(f"return_tensors={return_tensors!r} needs rows of equal length (pad first)")
            else:
                stacked = (
                    np.stack(arrays) if arrays else np.zeros((0, 0, self.slot_sizes[stream]), dtype=np.int64)
                )
                out[key] = torch.from_numpy(stacked) if return_tensors == "pt" else stacked
        return out

    def _gather(self, stream: str, input_ids: Any, return_tensors: str | None) -> Any:
        if return_tensors == "pt":
            return self.tables.as_dict()[stream][input_ids]
        table = self._numpy_tables[stream]
        if return_tensors == "np":
            return table[input_ids]
        if not input_ids or isinstance(input_ids[0], int):  # a single sequence
            return table[np.asarray(input_ids, dtype=np.int64)].tolist()
        lengths = [len(row) for row in input_ids]
        flat = table[np.fromiter((i for row in input_ids for i in row), dtype=np.int64, count=sum(lengths))]
        if len(set(lengths)) == 1:
            return flat.reshape(len(lengths), lengths[0], -1).tolist()
        rows = flat.tolist()
        out, start = [], 0
        for n in lengths:
            out.append(rows[start : start + n])
            start += n
        return out

    # ------------------------------------------------------------------ human view
    def explain(self, text: str, add_special_tokens: bool = True, as_table: bool = False) -> list[dict] | str:
        """
        Per-token view of the streams: one row per token with its id, token string, phonemes and morphs.

        Args:
            text (`str`): the text to explain.
            add_special_tokens (`bool`, *optional*, defaults to `True`): include the tokenizer's special tokens.
            as_table (`bool`, *optional*, defaults to `False`): return a formatted text table instead of rows.

        Returns:
            `list[dict]` (keys `position`, `token_id`, `token`, `phonemes`, `morphs`) or `str`.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        encoding = self(text, add_special_tokens=add_special_tokens)
        tokens = self.tokenizer.convert_ids_to_tokens(encoding["input_ids"])
        rows = [
            {
                "position": t,
                "token_id": token_id,
                "token": token,
                "phonemes": self.phonetic_vocab.tokens(p_ids),
                "morphs": self.morph_vocab.tokens(m_ids),
            }
            for t, (token_id, token, p_ids, m_ids) in enumerate(
                zip(encoding["input_ids"], tokens, encoding["phonetic_ids"], encoding["morph_ids"])
            )
        ]
        return self.format_explanation(rows) if as_table else rows

    @staticmethod
    def format_explanation(rows: list[dict]) -> str:
        """Format the rows of [`~MultiStreamProcessor.explain`] as an aligned text table."""
        header = ("pos", "id", "token", "phonemes", "morphs")
        lines = [
            (
                str(r["position"]),
                str(r["token_id"]),
                r["token"],
                " ".join(r["phonemes"]),
                " + ".join(r["morphs"]),
            )
            for r in rows
        ]
        widths = [
            max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)
        ]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*line) for line in lines]
        return "\n".join(s.rstrip() for s in out)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(\n"
            f"  tokenizer={type(self.tokenizer).__name__}(name_or_path={self.tokenizer.name_or_path!r}, "
            f"vocab_size={len(self.tokenizer)}),\n"
            f"  stream_vocab_sizes={self.stream_vocab_sizes},\n"
            f"  slot_sizes={self.slot_sizes},\n"
            f"  alignment={self.alignment!r},\n"
            f"  stream_input_keys={STREAM_INPUT_KEYS},\n"
            f"  morfessor={'yes' if self.segmenter is not None else 'no'}\n"
            ")"
        )

    # ------------------------------------------------------------------ save / load
    def to_dict(self) -> dict[str, Any]:
        """The content of `processor_config.json`."""
        return {
            "processor_class": type(self).__name__,
            "tokenizer_vocab_size": self.tables.vocab_size,
            "slot_sizes": self.slot_sizes,
            "stream_vocab_sizes": self.stream_vocab_sizes,
            "stream_input_keys": dict(STREAM_INPUT_KEYS),
            "alignment": self.alignment,
            "morph_backoff": self.morph_backoff,
            "files": {
                "tables": TABLES_FILE,
                "tables_metadata": TABLES_METADATA_FILE,
                "phonetic_vocab": PHONETIC_VOCAB_FILE,
                "morph_vocab": MORPH_VOCAB_FILE,
                "morfessor_segmentation": SEGMENTATION_FILE if self.segmenter is not None else None,
            },
            "morfessor": {"corpusweight": self.segmenter.corpusweight}
            if self.segmenter is not None
            else None,
        }

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(
        self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs
    ) -> list[str]:
        """
        Save the tokenizer, the tables (safetensors), the stream vocabularies (JSON), the Morfessor model (text
        segmentation format) and `processor_config.json` into `save_directory`.

        Returns:
            `list[str]`: the files written.
        """
        if push_to_hub:
            raise NotImplementedError(
                "push_to_hub: save locally, then upload the folder with huggingface_hub"
            )
        if os.path.isfile(save_directory):
            raise ValueError(f"save_directory {save_directory} is a file, not a directory")
        os.makedirs(save_directory, exist_ok=True)
        files = list(self.tokenizer.save_pretrained(save_directory, **kwargs))
        files += self.tables.save(save_directory)
        for vocab, name in ((self.phonetic_vocab, PHONETIC_VOCAB_FILE), (self.morph_vocab, MORPH_VOCAB_FILE)):
            vocab.save(os.path.join(save_directory, name))
            files.append(os.path.join(save_directory, name))
        if self.segmenter is not None:
            path = os.path.join(save_directory, SEGMENTATION_FILE)
            self.segmenter.save(path)
            files.append(path)
        config_path = os.path.join(save_directory, PROCESSOR_CONFIG_FILE)
        with open(config_path, "w", encoding="utf-8") as f:
            f.write(self.to_json_string())
        files.append(config_path)
        return [str(f) for f in files]

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs
    ) -> MultiStreamProcessor:
        """
        Load a processor saved with [`~MultiStreamProcessor.save_pretrained`] from a local folder or a Hub id.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): folder or Hub repository id.
            kwargs: Hub arguments (`cache_dir`, `force_download`, `local_files_only`, `token`, `revision`,
                `subfolder`, `proxies`); arguments added by `AutoProcessor` are accepted and ignored.
        """
        for key in _IGNORED_AUTO_KWARGS:
            kwargs.pop(key, None)
        unknown = set(kwargs) - set(_HUB_KWARGS)
        if unknown:
            raise TypeError(
                f"MultiStreamProcessor.from_pretrained got unexpected arguments {sorted(unknown)}"
            )
        hub_kwargs = {k: v for k, v in kwargs.items() if v is not None}
        path = str(pretrained_model_name_or_path)

        def fetch(filename: str, required: bool = True) -> str | None:
            resolved = cached_file(
                path,
                filename,
                _raise_exceptions_for_missing_entries=required,
                _raise_exceptions_for_connection_errors=required,
                **hub_kwargs,
            )
            return resolved

        with open(fetch(PROCESSOR_CONFIG_FILE), encoding="utf-8") as f:
            config = json.load(f)
        if config.get("processor_class") != cls.__name__:
            raise ValueError(
                f"{path}: processor_config.json is for {config.get('processor_class')!r}, not {cls.__name__}"
            )
        files = config["files"]
        tokenizer = AutoTokenizer.from_pretrained(path, **hub_kwargs)
        tables = AlignmentTables.load(fetch(files["tables"]), fetch(files["tables_metadata"]))
        phonetic_vocab = StreamVocab.load(fetch(files["phonetic_vocab"]))
        morph_vocab = StreamVocab.load(fetch(files["morph_vocab"]))
        segmenter = None
        if files.get("morfessor_segmentation"):
            corpusweight = (config.get("morfessor") or {}).get("corpusweight", 1.0)
            segmenter = MorfessorSegmenter.load(
                fetch(files["morfessor_segmentation"]), corpusweight=corpusweight
            )
        return cls(
            tokenizer,
            tables,
            phonetic_vocab,
            morph_vocab,
            segmenter=segmenter,
            alignment=config.get("alignment", "piece"),
            morph_backoff=config.get("morph_backoff"),
        )


def register_processor(config_classes: Iterable[type] = ()) -> None:
    """
    Register [`MultiStreamProcessor`] with `AutoProcessor` (idempotent).

    `AutoProcessor.from_pretrained(folder)` reads `"processor_class": "MultiStreamProcessor"` from
    `processor_config.json` and resolves the name among registered processors, so one registration under a string
    key is enough; pass model config classes to also map `AutoProcessor` lookups by config type.
    """
    AutoProcessor.register(PROCESSOR_REGISTRY_KEY, MultiStreamProcessor, exist_ok=True)
    for config_class in config_classes:
        AutoProcessor.register(config_class, MultiStreamProcessor, exist_ok=True)


def main(argv: list[str] | None = None) -> None:
    """CLI (`msnn-build-processor`): build a MultiStreamProcessor for a tokenizer and save it."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--tokenizer", required=True, help="Hub id or local folder of the backbone tokenizer")
    parser.add_argument("--corpus", default=None, help="text file (one text per line) to train Morfessor on")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--phonetic_slot_size", type=int, default=None, help="default: 8 (piece) / 14 (word)")
    parser.add_argument("--morph_slot_size", type=int, default=None, help="default: 4 (piece) / 5 (word)")
    parser.add_argument(
        "--morph_vocab_size", type=int, default=None, help="default: 16384 (2000 with --morph_lexicon corpus)"
    )
    parser.add_argument("--alignment", choices=ALIGNMENTS, default="piece")
    parser.add_argument("--morph_lexicon", choices=MORPH_LEXICONS, default="cmudict+vocab+corpus")
    parser.add_argument(
        "--no_morph_backoff", action="store_true", help="out-of-vocabulary morphs become <unk>"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    corpus = None
    if args.corpus is not None:
        with open(args.corpus, encoding="utf-8") as f:
            corpus = [line.rstrip("\n") for line in f]
    start = time.perf_counter()
    processor = MultiStreamProcessor.from_tokenizer(
        args.tokenizer,
        corpus=corpus,
        phonetic_slot_size=args.phonetic_slot_size,
        morph_slot_size=args.morph_slot_size,
        morph_vocab_size=args.morph_vocab_size,
        alignment=args.alignment,
        morph_lexicon=args.morph_lexicon,
        morph_backoff=not args.no_morph_backoff,
    )
    processor.save_pretrained(args.output_dir)
    print(f"{processor!r}\nbuilt in {time.perf_counter() - start:.1f}s, saved to {args.output_dir}")


if __name__ == "__main__":
    main()
