"""Non-semantic streams: offline g2p (phonetic), Morfessor (morphological), the per-vocabulary alignment tables and
word-level alignment.

Names are imported lazily, so `import msnn_hf.streams.phonetic` does not pull in torch.
"""

import importlib

_EXPORTS = {
    "MorfessorSegmenter": "morphology",
    "backoff_split": "morphology",
    "build_morph_vocab": "morphology",
    "morph_ids": "morphology",
    "train_default_segmenter": "morphology",
    "train_morfessor": "morphology",
    "ARPABET_PHONEMES": "phonetic",
    "OfflineG2p": "phonetic",
    "build_phonetic_vocab": "phonetic",
    "NUM_SPECIAL_IDS": "specials",
    "SPECIAL_TOKENS": "specials",
    "StreamVocab": "specials",
    "STREAM_INPUT_KEYS": "tables",
    "AlignmentTables": "tables",
    "build_alignment_tables": "tables",
    "ALIGNMENTS": "word_alignment",
    "WordStreamBuilder": "word_alignment",
    "piece_markers": "word_alignment",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
