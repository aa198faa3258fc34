"""Non-semantic streams: offline g2p (phonetic), Morfessor (morphological) and the per-vocabulary alignment tables."""

from .morphology import MorfessorSegmenter, build_morph_vocab, train_morfessor
from .phonetic import ARPABET_PHONEMES, OfflineG2p, build_phonetic_vocab
from .specials import NUM_SPECIAL_IDS, SPECIAL_TOKENS, StreamVocab
from .tables import STREAM_INPUT_KEYS, AlignmentTables, build_alignment_tables

__all__ = [
    "ARPABET_PHONEMES",
    "NUM_SPECIAL_IDS",
    "SPECIAL_TOKENS",
    "STREAM_INPUT_KEYS",
    "AlignmentTables",
    "MorfessorSegmenter",
    "OfflineG2p",
    "StreamVocab",
    "build_alignment_tables",
    "build_morph_vocab",
    "build_phonetic_vocab",
    "train_morfessor",
]
