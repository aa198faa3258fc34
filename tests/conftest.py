"""Shared test fixtures: offline guard, a tiny WordPiece tokenizer and a tiny MultiStreamProcessor.

Fixtures other test files can reuse:

- `tiny_corpus` (session): ~300 deterministic English sentences.
- `tiny_tokenizer_dir` (session): folder of a WordPiece tokenizer (vocab ~300) trained on `tiny_corpus`, loadable
  with `AutoTokenizer.from_pretrained`.
- `tiny_tokenizer` (session): that tokenizer, loaded.
- `tiny_processor` (session): a `MultiStreamProcessor` built from it (Morfessor trained on `tiny_corpus`).
- `tiny_processor_dir` (session): `tiny_processor` saved with `save_pretrained`.
- `tiny_backbone_dir` (session): a random 2-layer, hidden-32 `BertModel` saved with the tiny tokenizer.
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# --------------------------------------------------------------------------- network guard
class NetworkAccessError(RuntimeError):
    """Raised when a test opens a non-loopback network connection."""


def _is_loopback(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path (or abstract socket)
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:  # a host name other than localhost
        return False


_ATTEMPTS: list[str] = []


def _check_address(address) -> None:
    if not _is_loopback(address):
        _ATTEMPTS.append(repr(address))
        raise NetworkAccessError(f"tests must not open network connections; tried {address!r}")


@pytest.fixture(scope="session", autouse=True)
def _network_guard_session():
    """Install the guard for the whole session, session fixtures included."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection
    unix = getattr(socket, "AF_UNIX", None)

    def connect(self, address):
        if self.family != unix:
            _check_address(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family != unix:
            _check_address(address)
        return real_connect_ex(self, address)

    def create_connection(address, *args, **kwargs):
        _check_address(address)
        return real_create_connection(address, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket.socket, "connect_ex", connect_ex)
        mp.setattr(socket, "create_connection", create_connection)
        yield


@pytest.fixture(autouse=True)
def _no_network(_network_guard_session):
    """Fail any test that opened (or tried to open) a non-loopback connection, even if the error was swallowed."""
    yield _ATTEMPTS  # attempts made while session fixtures were set up are reported by the first test too
    if _ATTEMPTS:
        attempts = list(_ATTEMPTS)
        _ATTEMPTS.clear()
        pytest.fail(
            f"network connection attempted (only 127.0.0.0/8, ::1 and unix sockets are allowed): {attempts}"
        )


# --------------------------------------------------------------------------- tiny data
_SUBJECTS = [
    "the actor", "a director", "the critics", "my friend", "the audience", "this teacher", "the players",
    "a writer", "the children", "an engineer", "the farmer", "her brother",
]  # fmt: skip
_VERBS = [
    "walked", "walks", "walking", "played", "plays", "playing", "enjoyed", "enjoys", "enjoying", "watched",
    "watches", "watching", "loved", "loves", "hated", "hates", "painted", "paints", "jumped", "jumps", "talked",
    "talks", "helped", "helps", "helping", "reworked", "rewrites", "rethinking", "unlocked", "unpacked",
]  # fmt: skip
_OBJECTS = [
    "the movie", "a song", "the garden", "the new film", "a happy ending", "an unhappy story", "the kindness",
    "the darkness", "the careful plan", "a careless joke", "the beautiful painting", "the useless machine",
    "the wonderful music", "a strange dream", "the quickly moving train", "an unbelievable performance",
    "the teachers' books", "the unexpected result", "a powerful speech", "the endless road",
]  # fmt: skip
_ENDINGS = [
    "",
    " yesterday",
    " again",
    " today",
    " slowly",
    " happily",
    " quickly",
    " in 1999",
    " for $5",
    " !",
]


def make_tiny_corpus(n: int = 320, seed: int = 0) -> list[str]:
    """Deterministic English sentences with productive morphology (walk/walked/walking, un-, -ness, -ful...)."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        sentence = (
            f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_ENDINGS)}."
        )
        sentences.append(sentence[0].upper() + sentence[1:])
    return sentences


@pytest.fixture(scope="session")
def tiny_corpus() -> list[str]:
    return make_tiny_corpus()


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory, tiny_corpus) -> str:
    """A BERT-style WordPiece tokenizer (lowercasing, `##` continuations, vocab ~300) saved to a folder."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=specials, continuing_subword_prefix="##", show_progress=False
    )
    tok.train_from_iterator(tiny_corpus, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],  # as BERT's tokenizer
    )
    out = tmp_path_factory.mktemp("tiny_tokenizer")
    fast.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_processor(tiny_tokenizer_dir, tiny_corpus):
    """A MultiStreamProcessor over the tiny tokenizer (P=8, M=4, morph vocab 64, Morfessor on `tiny_corpus`)."""
    from msnn_hf.processing_multistream import MultiStreamProcessor

    return MultiStreamProcessor.from_tokenizer(
        tiny_tokenizer_dir, corpus=tiny_corpus, morph_vocab_size=64, show_progress=False
    )


@pytest.fixture(scope="session")
def tiny_processor_dir(tiny_processor, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("tiny_processor")
    tiny_processor.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory, tiny_tokenizer_dir) -> str:
    """A random 2-layer, hidden-32 `BertModel` with the tiny tokenizer: the 'pretrained' backbone of the tests."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
    )
    out = tmp_path_factory.mktemp("tiny_backbone")
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)
