"""MultiStreamProcessor: a Hugging Face tokenizer plus the phonetic / morphological stream tables.

The processor tokenizes as the wrapped tokenizer does and adds `phonetic_ids` `[B, T, P]` and `morph_ids`
`[B, T, M]`, gathered from per-vocabulary tables with `input_ids` (see `msnn_hf.streams.tables`): slot `t` always
belongs to token `t`, and the streams of a token depend on that token only.

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

from .streams.morphology import SEGMENTATION_FILE, MorfessorSegmenter, build_morph_vocab, train_morfessor
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

__all__ = ["MultiStreamProcessor", "main", "register_processor"]

logger = logging.getLogger(__name__)

PROCESSOR_CONFIG_FILE = "processor_config.json"
PHONETIC_VOCAB_FILE = "phonetic_vocab.json"
MORPH_VOCAB_FILE = "morph_vocab.json"
#: Key under which the processor is registered with `AutoProcessor` when no model config class is given.
PROCESSOR_REGISTRY_KEY = "msnn_multistream"
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")
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
    ) -> None:
        super().__init__(tokenizer)
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
    def model_input_names(self) -> list[str]:
        return list(self.tokenizer.model_input_names) + list(STREAM_INPUT_KEYS.values())

    # ------------------------------------------------------------------ building
    @classmethod
    def from_tokenizer(
        cls,
        tokenizer_or_path: str | os.PathLike | PreTrainedTokenizerBase,
        corpus: Iterable[str] | dict[str, int] | None = None,
        phonetic_slot_size: int = 8,
        morph_slot_size: int = 4,
        morph_vocab_size: int = 2000,
        show_progress: bool = True,
        morfessor_kwargs: dict[str, Any] | None = None,
        g2p: OfflineG2p | None = None,
        **tokenizer_kwargs,
    ) -> MultiStreamProcessor:
        """
        Build a processor from a tokenizer: train Morfessor, run g2p and build the tables over the whole vocabulary.

        Args:
            tokenizer_or_path (`str`, `os.PathLike` or [`PreTrainedTokenizerBase`]):
                A tokenizer object, a Hub id or a local folder (loaded with `AutoTokenizer.from_pretrained`).
            corpus (`Iterable[str]` or `dict[str, int]`, *optional*):
                Texts (or a word-frequency mapping) to train Morfessor on. Defaults to the tokenizer vocabulary's
                whole-word entries (each counted once).
            phonetic_slot_size (`int`, *optional*, defaults to 8): P, phonemes per token slot.
            morph_slot_size (`int`, *optional*, defaults to 4): M, morphs per token slot.
            morph_vocab_size (`int`, *optional*, defaults to 2000): morph vocabulary size, the 9 specials included.
            show_progress (`bool`, *optional*, defaults to `True`): tqdm progress bars for the table build.
            morfessor_kwargs (`dict`, *optional*): extra arguments of
                [`~msnn_hf.streams.morphology.train_morfessor`] (`max_word_types`, `max_epochs`, `seed`, ...).
            g2p ([`~msnn_hf.streams.phonetic.OfflineG2p`], *optional*): a g2p instance to reuse (its cache too).
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
        start = time.perf_counter()
        if corpus is None:
            corpus = dict.fromkeys(word_initial_entries(tokenizer), 1)
        segmenter = train_morfessor(corpus, show_progress=False, **(morfessor_kwargs or {}))
        morph_vocab = build_morph_vocab(segmenter, vocab_size=morph_vocab_size)
        phonetic_vocab = build_phonetic_vocab()
        tables = build_alignment_tables(
            tokenizer,
            g2p if g2p is not None else OfflineG2p(pos_tagger=None),
            segmenter,
            phonetic_vocab,
            morph_vocab,
            phonetic_slot_size=phonetic_slot_size,
            morph_slot_size=morph_slot_size,
            show_progress=show_progress,
        )
        tables.metadata["morph_vocab_size_requested"] = morph_vocab_size
        logger.info(
            "Built stream tables for %d tokens in %.1fs", tables.vocab_size, time.perf_counter() - start
        )
        return cls(tokenizer, tables, phonetic_vocab, morph_vocab, segmenter=segmenter)

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
        )
        self._numpy_tables = {k: v.numpy() for k, v in self.tables.as_dict().items()}

    # ------------------------------------------------------------------ processing
    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        text_pair: str | Sequence[str] | None = None,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        return_tensors: str | None = None,
        **tokenizer_kwargs,
    ) -> BatchEncoding:
        """
        Tokenize `text` and add the aligned stream ids.

        Args:
            text (`str` or `list[str]`): one text or a batch (or pre-split words with `is_split_into_words=True`).
            text_pair (`str` or `list[str]`, *optional*): second sequences, as for the tokenizer.
            padding, truncation, max_length: as for the tokenizer.
            return_tensors (`str`, *optional*): `"pt"`, `"np"` or `None` (Python lists).
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
        for stream, key in STREAM_INPUT_KEYS.items():
            encoding[key] = self._gather(stream, input_ids, return_tensors)
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
        return cls(tokenizer, tables, phonetic_vocab, morph_vocab, segmenter=segmenter)


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
    parser.add_argument("--phonetic_slot_size", type=int, default=8)
    parser.add_argument("--morph_slot_size", type=int, default=4)
    parser.add_argument("--morph_vocab_size", type=int, default=2000)
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
    )
    processor.save_pretrained(args.output_dir)
    print(f"{processor!r}\nbuilt in {time.perf_counter() - start:.1f}s, saved to {args.output_dir}")


if __name__ == "__main__":
    main()
