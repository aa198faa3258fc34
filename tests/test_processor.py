"""Tests of MultiStreamProcessor: alignment, specials, outputs, save/load, AutoProcessor, datasets, bad input."""

from __future__ import annotations

import json
import os
import pickle
import time

import numpy as np
import pytest
import torch

from msnn_hf.processing_multistream import MultiStreamProcessor, register_processor
from msnn_hf.processing_multistream import main as build_main
from msnn_hf.streams.morphology import morph_ids
from msnn_hf.streams.phonetic import OfflineG2p
from msnn_hf.streams.specials import CLS_ID, MASK_ID, PUNCT_ID, SEP_ID

TEXTS = [
    "The actor walked slowly.",
    "An unbelievable performance!",
    "a",
    "The careless farmer painted the garden.",
]


def _assert_aligned(processor, batch):
    """Slot t holds the table row of token t, for every stream and position."""
    ids = torch.as_tensor(batch["input_ids"])
    for stream, key in (("phonetic", "phonetic_ids"), ("morphological", "morph_ids")):
        table = processor.stream_tables[stream]
        out = torch.as_tensor(batch[key])
        assert out.shape == (*ids.shape, table.shape[1])
        assert out.dtype == torch.long
        assert torch.equal(out, table[ids])


def test_properties(tiny_processor, tiny_tokenizer):
    assert tiny_processor.tokenizer is not None
    assert tiny_processor.slot_sizes == {"phonetic": 8, "morphological": 4}
    assert tiny_processor.stream_vocab_sizes == {"phonetic": 79, "morphological": 64}
    tables = tiny_processor.stream_tables
    assert set(tables) == {"phonetic", "morphological"}
    assert tables["phonetic"].shape == (len(tiny_tokenizer), 8)
    assert tables["morphological"].dtype == torch.long
    assert tiny_processor.phonetic_vocab.itos[:9][-1] == "<punct>"
    assert len(tiny_processor.morph_vocab) == 64
    assert {"phonetic_ids", "morph_ids", "input_ids"} <= set(tiny_processor.model_input_names)
    text = repr(tiny_processor)
    assert "MultiStreamProcessor" in text and "slot_sizes" in text


def test_alignment_slot_belongs_to_token(tiny_processor):
    batch = tiny_processor(TEXTS, padding=True, return_tensors="pt")
    assert {"input_ids", "attention_mask", "token_type_ids", "phonetic_ids", "morph_ids"} <= set(batch)
    _assert_aligned(tiny_processor, batch)
    # independent derivation for real word tokens: g2p of the token's own surface string
    g2p = OfflineG2p(pos_tagger=None)
    tokens = tiny_processor.tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    checked = 0
    for t, token in enumerate(tokens):
        surface = token[2:] if token.startswith("##") else token
        if token.startswith("[") or not surface.isalpha():
            continue
        expected = tiny_processor.phonetic_vocab.ids(g2p.word(surface))[:8]
        assert batch["phonetic_ids"][0, t, : len(expected)].tolist() == expected, token
        morphs = morph_ids(  # morphs outside the vocabulary are backed off to smaller known units
            tiny_processor.segmenter.segment(surface), tiny_processor.morph_vocab, backoff=True
        )[:4]
        assert batch["morph_ids"][0, t, : len(morphs)].tolist() == morphs, token
        checked += 1
    assert checked >= 3


def test_special_tokens_and_padding(tiny_processor):
    tok = tiny_processor.tokenizer
    batch = tiny_processor(["walked", f"the {tok.mask_token} walked ."], padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    for key in ("phonetic_ids", "morph_ids"):
        out = batch[key]
        assert out[:, 0, 0].eq(CLS_ID).all() and out[:, 0, 1:].eq(0).all()
        assert out[ids == tok.sep_token_id][:, 0].eq(SEP_ID).all()
        masked = out[ids == tok.mask_token_id]
        assert masked.shape[0] == 1 and masked[0, 0] == MASK_ID and masked[0, 1:].eq(0).all()  # no leakage
        assert out[mask == 0].eq(0).all()  # padding: all-zero slots
        assert out[mask == 1].ne(0).any(-1).all()  # every real token has a non-zero id
    assert batch["phonetic_ids"][ids == tok.convert_tokens_to_ids(".")][:, 0].eq(PUNCT_ID).all()


def test_batch_vs_single_and_padding_invariance(tiny_processor):
    batch = tiny_processor(TEXTS, padding="max_length", max_length=24, truncation=True, return_tensors="pt")
    for i, text in enumerate(TEXTS):
        single = tiny_processor(text, return_tensors="pt")
        n = single["input_ids"].shape[1]
        for key in ("input_ids", "phonetic_ids", "morph_ids"):
            assert torch.equal(single[key][0], batch[key][i, :n])


def test_return_types(tiny_processor):
    lists = tiny_processor(TEXTS)
    assert isinstance(lists["phonetic_ids"], list) and isinstance(lists["phonetic_ids"][0][0], list)
    assert [len(r) for r in lists["phonetic_ids"]] == [len(r) for r in lists["input_ids"]]
    for row_ids, row_p in zip(lists["input_ids"], lists["phonetic_ids"]):
        assert row_p == tiny_processor.stream_tables["phonetic"][row_ids].tolist()
    padded = tiny_processor(TEXTS, padding=True)
    assert np.asarray(padded["morph_ids"]).shape == (4, len(padded["input_ids"][0]), 4)
    single = tiny_processor("walked")
    assert isinstance(single["input_ids"][0], int) and len(single["phonetic_ids"]) == len(single["input_ids"])
    assert len(single["phonetic_ids"][0]) == 8
    arrays = tiny_processor(TEXTS, padding=True, return_tensors="np")
    assert isinstance(arrays["morph_ids"], np.ndarray) and arrays["morph_ids"].shape[-1] == 4
    pairs = tiny_processor(["walked"], ["the garden"], return_tensors="pt")
    _assert_aligned(tiny_processor, pairs)
    assert pairs["token_type_ids"].sum() > 0
    words = tiny_processor(
        [["the", "actor"], ["walked"]], is_split_into_words=True, padding=True, return_tensors="pt"
    )
    _assert_aligned(tiny_processor, words)
    with pytest.raises(ValueError, match="return_tensors"):
        tiny_processor("a", return_tensors="tf")


def test_determinism(tiny_tokenizer_dir, tiny_corpus, tiny_processor):
    again = MultiStreamProcessor.from_tokenizer(
        tiny_tokenizer_dir, corpus=tiny_corpus, morph_vocab_size=64, show_progress=False
    )
    for stream in ("phonetic", "morphological"):
        assert torch.equal(again.stream_tables[stream], tiny_processor.stream_tables[stream])
    assert again.morph_vocab == tiny_processor.morph_vocab


def test_default_corpus_is_vocabulary(tiny_tokenizer):
    processor = (
        MultiStreamProcessor.from_tokenizer(  # the corpus-only word list: the vocabulary's whole words
            tiny_tokenizer,
            phonetic_slot_size=4,
            morph_slot_size=2,
            morph_vocab_size=40,
            show_progress=False,
            morph_lexicon="corpus",
        )
    )
    assert processor.slot_sizes == {"phonetic": 4, "morphological": 2}
    assert processor.stream_vocab_sizes["morphological"] <= 40
    _assert_aligned(processor, processor(TEXTS, padding=True, return_tensors="pt"))
    with pytest.raises(TypeError, match="tokenizer_or_path"):
        MultiStreamProcessor.from_tokenizer(123)


def test_save_load_round_trip(tiny_processor, tiny_processor_dir, monkeypatch):
    files = set(os.listdir(tiny_processor_dir))
    assert {
        "processor_config.json",
        "stream_tables.safetensors",
        "stream_tables.json",
        "phonetic_vocab.json",
        "morph_vocab.json",
        "morfessor_segmentation.txt",
        "tokenizer.json",
        "tokenizer_config.json",
    } <= files
    assert not [f for f in files if f.endswith((".pkl", ".bin", ".pickle"))]
    config = json.load(open(os.path.join(tiny_processor_dir, "processor_config.json")))
    assert config["processor_class"] == "MultiStreamProcessor"
    assert config["slot_sizes"] == {"phonetic": 8, "morphological": 4}

    def refuse(*a, **k):
        raise AssertionError("pickle loading is forbidden")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    loaded = MultiStreamProcessor.from_pretrained(tiny_processor_dir)
    a = tiny_processor(TEXTS, padding=True, return_tensors="pt")
    b = loaded(TEXTS, padding=True, return_tensors="pt")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert (
        loaded.phonetic_vocab == tiny_processor.phonetic_vocab
        and loaded.morph_vocab == tiny_processor.morph_vocab
    )
    for word in ("walking", "unwalkedness"):
        assert loaded.segmenter.segment(word) == tiny_processor.segmenter.segment(word)
    with pytest.raises(TypeError, match="unexpected arguments"):
        MultiStreamProcessor.from_pretrained(tiny_processor_dir, bogus=1)


def test_auto_processor(tiny_processor, tiny_processor_dir):
    from transformers import AutoProcessor

    register_processor()
    register_processor()  # idempotent
    loaded = AutoProcessor.from_pretrained(tiny_processor_dir)
    assert isinstance(loaded, MultiStreamProcessor)
    a, b = (
        tiny_processor(TEXTS, padding=True, return_tensors="pt"),
        loaded(TEXTS, padding=True, return_tensors="pt"),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_datasets_map_num_proc_2(tiny_processor):
    from datasets import Dataset

    ds = Dataset.from_dict({"text": TEXTS * 4})
    out = ds.map(
        lambda batch: tiny_processor(batch["text"], truncation=True, max_length=16),
        batched=True,
        batch_size=4,
        num_proc=2,
        remove_columns=["text"],
    )
    assert {"input_ids", "attention_mask", "phonetic_ids", "morph_ids"} <= set(out.column_names)
    for row, text in zip(out, TEXTS * 4):
        expected = tiny_processor(text, truncation=True, max_length=16)
        assert row["phonetic_ids"] == expected["phonetic_ids"] and row["morph_ids"] == expected["morph_ids"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \t\n ",
        "😀🎉 great",
        "中文字符 and 日本語",
        "Café déjà vu, naïve résumé",
        "It cost $1,250.99 or £3 in 1999, 42%",
        "see https://example.com/a?b=c&d=1 now",
        "walked" * 3,
    ],
)
def test_odd_inputs_give_well_formed_streams(tiny_processor, text):
    batch = tiny_processor(
        [text, "walked"], padding=True, truncation=True, max_length=32, return_tensors="pt"
    )
    _assert_aligned(tiny_processor, batch)
    mask = batch["attention_mask"]
    for key in ("phonetic_ids", "morph_ids"):
        assert batch[key][mask == 1].ne(0).any(-1).all() and batch[key][mask == 0].eq(0).all()
    rows = tiny_processor.explain(text)
    assert len(rows) == len(tiny_processor(text)["input_ids"])


def test_very_long_input_is_truncated_quickly(tiny_processor):
    text = ("An unbelievable performance, walked slowly! " * 2400)[:100_000]
    assert len(text) == 100_000
    start = time.perf_counter()
    batch = tiny_processor(text, truncation=True, max_length=64, return_tensors="pt")
    assert time.perf_counter() - start < 10
    assert batch["input_ids"].shape == (1, 64) and batch["phonetic_ids"].shape == (1, 64, 8)
    _assert_aligned(tiny_processor, batch)
    full = tiny_processor(text)  # untruncated: still a gather, bounded time
    assert len(full["morph_ids"]) == len(full["input_ids"]) > 64


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (None, "got None"),
        (123, "got int"),
        (["fine", None], r"text\[1\] must be a str, got NoneType"),
        (["fine", "ok", 3.5], r"text\[2\] must be a str, got float"),
        ([b"bytes"], r"text\[0\] must be a str, got bytes"),
    ],
)
def test_bad_inputs_raise_type_error(tiny_processor, text, match):
    with pytest.raises(TypeError, match=match):
        tiny_processor(text)


def test_explain(tiny_processor):
    rows = tiny_processor.explain("The actor walked.")
    assert rows[0]["token"] == "[CLS]" and rows[0]["phonemes"] == ["<cls>"] and rows[0]["morphs"] == ["<cls>"]
    assert all({"position", "token_id", "token", "phonemes", "morphs"} <= set(r) for r in rows)
    assert all(r["phonemes"] and r["morphs"] for r in rows)
    table = tiny_processor.explain("The actor walked.", as_table=True)
    assert table.splitlines()[0].split() == ["pos", "id", "token", "phonemes", "morphs"]
    assert len(table.splitlines()) == len(rows) + 2
    with pytest.raises(TypeError):
        tiny_processor.explain(None)


def test_added_tokens_need_rebuild(tiny_tokenizer_dir, tiny_corpus, tiny_processor):
    processor = MultiStreamProcessor.from_tokenizer(  # reuses the fixture's trained segmenter (fast)
        tiny_tokenizer_dir, morph_vocab_size=60, show_progress=False, segmenter=tiny_processor.segmenter
    )
    processor.tokenizer.add_tokens(["msnnification"])
    with pytest.raises(ValueError, match="rebuild_tables"):
        processor("msnnification")
    processor.rebuild_tables(show_progress=False)
    batch = processor("msnnification", return_tensors="pt")
    _assert_aligned(processor, batch)
    assert batch["phonetic_ids"][0, 1].ne(0).sum() >= 3  # the added word is spelled by g2p


def test_morfessor_options_survive_save_load(tiny_tokenizer_dir, tiny_corpus, tmp_path):
    processor = MultiStreamProcessor.from_tokenizer(
        tiny_tokenizer_dir,
        corpus=tiny_corpus,
        morph_vocab_size=50,
        show_progress=False,
        morph_lexicon="corpus",  # batch training on the corpus alone (the default word list would take ~80 s)
        morfessor_kwargs={"corpusweight": 0.3, "max_epochs": 1},
    )
    processor.save_pretrained(tmp_path)
    loaded = MultiStreamProcessor.from_pretrained(tmp_path)
    assert loaded.segmenter.corpusweight == 0.3
    for word in ("unwalkedness", "repaintings", "zzyzx"):
        assert loaded.segmenter.segment(word) == processor.segmenter.segment(word)


def test_build_processor_cli(tiny_tokenizer_dir, tiny_corpus, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_corpus), encoding="utf-8")
    out = tmp_path / "proc"
    args = ["--tokenizer", tiny_tokenizer_dir, "--corpus", str(corpus), "--output_dir", str(out)]
    build_main(args + ["--morph_vocab_size", "80", "--morph_lexicon", "corpus"])  # the fast word list
    loaded = MultiStreamProcessor.from_pretrained(out)
    assert loaded.stream_vocab_sizes["morphological"] == 80


# ------------------------------------------------------------------------------------------ edge inputs (issue 16)
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p: p([]), ValueError, r"text is an empty list: give at least one text"),
        (lambda p: p(["a"], text_pair=[]), ValueError, r"text_pair is an empty list"),
        (lambda p: p([], is_split_into_words=True), ValueError, r"text is an empty list"),
        (lambda p: p(["a", "b"], text_pair=["c"]), ValueError, r"text_pair has 1 items but text has 2"),
        (
            lambda p: p(["The actor walked.", "A song."], return_tensors="np"),
            ValueError,
            r"return_tensors='np' needs sequences of one length \(got lengths \[5, 7\]\): pass padding=True",
        ),
        (
            lambda p: p(["The actor walked.", "A song."], return_tensors="pt"),
            ValueError,
            r"return_tensors='pt' needs sequences of one length",
        ),
        (
            lambda p: p("A song.", truncation=True, max_length=-5),
            ValueError,
            r"max_length must be a positive int",
        ),
        (lambda p: p("A song.", max_length=2.5), ValueError, r"max_length must be a positive int, got 2.5"),
        (
            lambda p: p("A song.", truncation=True, max_length=1),
            ValueError,
            r"max_length=1 leaves no room for text: the tokenizer adds 2 special tokens",
        ),
        (
            lambda p: p("A song.", truncation=True, max_length=0),
            ValueError,
            r"max_length must be a positive int, got 0",
        ),
        (
            lambda p: p(["fine", "bad \ud800 text"]),
            ValueError,
            r"text\[1\] is not valid Unicode: a lone surrogate '\\ud800' at character 4",
        ),
        (lambda p: p("fine", text_pair="\udfff"), ValueError, r"text_pair is not valid Unicode"),
    ],
)
def test_edge_inputs_fail_clearly(tiny_processor, call, error, match):
    with pytest.raises(error, match=match):
        call(tiny_processor)


def test_edge_inputs_with_a_documented_result(tiny_processor):
    # the shortest max_length that holds text: the specials plus one token
    batch = tiny_processor("The actor walked slowly.", truncation=True, max_length=3, return_tensors="pt")
    assert batch["input_ids"].shape == (1, 3) and batch["phonetic_ids"].shape == (1, 3, 8)
    no_specials = tiny_processor("The actor walked.", truncation=True, max_length=1, add_special_tokens=False)
    assert len(no_specials["input_ids"]) == 1 and len(no_specials["phonetic_ids"]) == 1
    # equal lengths need no padding, for tensors too; ragged lists stay lists
    same = tiny_processor(["A song.", "A song."], return_tensors="np")
    assert same["input_ids"].shape == (2, 5) and same["morph_ids"].shape == (2, 5, 4)
    ragged = tiny_processor(["The actor walked.", "A song."])
    assert [len(r) for r in ragged["phonetic_ids"]] == [len(r) for r in ragged["input_ids"]]
