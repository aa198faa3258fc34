"""Correctness tests of the multi-stream GPT-2 family on tiny random configurations (CPU, seconds each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from model_checklist import open_gates
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from msnn_hf.configuration_multistream_gpt2 import MultiStreamGPT2Config
from msnn_hf.modeling_multistream_gpt2 import (
    MultiStreamGPT2LMHeadModel,
    MultiStreamGPT2Model,
    register,
)

VOCAB, PAD, BOS, EOS = 60, 0, 1, 2
VARIANTS = {
    "none": dict(streams=["semantic"], integration_type="none"),
    "li-all": dict(integration_type="li", integration_layers="all"),
    "li-last": dict(integration_type="li", integration_layers="last"),
    "dm-scalar": dict(integration_type="dm", alpha_granularity="scalar"),
    "dm-token-last": dict(integration_type="dm", alpha_granularity="token", integration_layers="last"),
    "dm-channel-phonetic": dict(
        integration_type="dm", alpha_granularity="channel", streams=["semantic", "phonetic"]
    ),
    "early": dict(integration_type="early"),
    "concat-last": dict(integration_type="concat", integration_layers="last"),
}
MULTI = [v for v in VARIANTS if v != "none"]


def tiny_config(**overrides) -> MultiStreamGPT2Config:
    values = dict(
        vocab_size=VOCAB, n_positions=48, n_embd=32, n_layer=2, n_head=2, n_inner=64,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, stream_dropout=0.0,
        stream_hidden_size=16, stream_num_heads=2, stream_intermediate_size=32,
        phonetic_vocab_size=20, morph_vocab_size=25, phonetic_slot_size=4, morph_slot_size=3,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
    )  # fmt: skip
    values.update(overrides)
    return MultiStreamGPT2Config(**values)


def random_tables(config: MultiStreamGPT2Config, seed: int = 0) -> dict[str, torch.Tensor]:
    """Stream tables as the processor builds them: every real token has >= 1 unit, the pad token none."""
    g = torch.Generator().manual_seed(seed)
    tables = {}
    for name in config.non_semantic_streams:
        slot, vocab = config.slot_sizes[name], config.stream_vocab_sizes[name]
        table = torch.randint(9, vocab, (config.vocab_size, slot), generator=g)
        lengths = torch.randint(1, slot + 1, (config.vocab_size, 1), generator=g)
        table = table.masked_fill(torch.arange(slot)[None] >= lengths, 0)
        table[PAD] = 0
        tables[name] = table
    return tables


def make_model(
    variant: str = "li-all", seed: int = 0, gates_open: bool = True, **overrides
) -> MultiStreamGPT2LMHeadModel:
    """A tiny random model; ``gates_open``: its zero-initialised paths given random values (see `open_gates`)."""
    torch.manual_seed(seed)
    config = tiny_config(**{**VARIANTS[variant], **overrides})
    model = MultiStreamGPT2LMHeadModel(config)
    if config.non_semantic_streams:
        model.set_stream_tables(random_tables(config, seed))
    return (open_gates(model, seed) if gates_open else model).eval()


def ids(batch: int, length: int, seed: int = 0) -> torch.LongTensor:
    return torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------- configuration
def test_config_options_and_validation():
    assert tiny_config(integration_layers="last").integration_layers == [1]
    assert tiny_config(integration_layers="all").integration_layers == [0, 1]
    assert tiny_config(streams=["phonetic", "semantic"]).streams == ["semantic", "phonetic"]
    for bad, message in (
        (dict(integration_type="sum"), r"integration_type.*\['li', 'dm', 'none', 'early', 'concat'\]"),
        # must contain the last block: the head reads the last integrated state
        (dict(integration_layers=[0]), r"misses the last layer.*contains 1"),
        (dict(integration_layers=[0, 5]), r"invalid layer indices \[5\]"),
        (dict(streams=["phonetic", "morphological"]), "must contain 'semantic'"),
        (dict(integration_type="none"), r"plain GPT-2.*\['semantic'\]"),
        (dict(streams=["semantic"], integration_type="li"), "at least 2"),
        (dict(stream_hidden_size=10, stream_num_heads=4), "stream_num_heads"),
        (dict(phonetic_slot_size=0), "phonetic_slot_size"),
        (dict(alpha_granularity="vector"), "alpha_granularity"),
        (dict(stream_dropout=1.0), "stream_dropout"),
    ):
        with pytest.raises(ValueError, match=message):
            tiny_config(**bad)
    # the GPT-2 field names drive the derived sizes
    config = tiny_config()
    assert config.stream_widths == {"semantic": 32, "phonetic": 16, "morphological": 16}
    assert config.semantic_config().n_embd == 32 and config.semantic_config().model_type == "gpt2"
    assert "streams" not in config.semantic_config().to_dict()


def test_config_and_state_dict_keys_snapshot():
    model = make_model("li-all")
    keys = {
        k.split(".")[0] + "." + k.split(".")[1] for k in model.state_dict() if k.startswith("transformer.")
    }
    assert keys == {
        "transformer.semantic", "transformer.streams", "transformer.integration", "transformer.stream_tables",
    }  # fmt: skip
    assert "transformer.streams.phonetic.layers.1.attn.qkv_proj.weight" in model.state_dict()
    assert "transformer.integration.0.stream_proj.semantic.weight" in model.state_dict()
    saved = model.config.to_dict()
    for field in ("n_embd", "n_layer", "n_head", "n_positions", "streams", "integration_type", "alpha_granularity",
                  "integration_layers", "stream_hidden_size", "phonetic_vocab_size", "morph_slot_size"):  # fmt: skip
        assert field in saved
    assert saved["model_type"] == "multistream_gpt2"


def test_none_variant_is_plain_gpt2():
    model = make_model("none")
    plain = GPT2LMHeadModel(GPT2Config(**model.config.semantic_config().to_dict())).eval()
    plain.transformer.load_state_dict(model.transformer.semantic.state_dict())
    x = ids(2, 9)
    torch.testing.assert_close(model(x).logits, plain(x).logits)


def test_li_starts_from_semantic_identity():
    model = make_model("li-all")
    proj = model.transformer.integration["0"].stream_proj["semantic"].weight
    torch.testing.assert_close(proj, torch.eye(32))


# ----------------------------------------------------------------------------------------------- causality / cache
@pytest.mark.parametrize("variant", ["li-all", "dm-token-last", "dm-scalar"])
def test_causal_end_to_end(variant):
    """Logits at positions <= t do not change when any later token changes (streams derived from the tables)."""
    model = make_model(variant)
    x = ids(1, 12, seed=1)
    base = model(x).logits
    for t in (0, 5, 10):
        changed = x.clone()
        changed[0, t + 1 :] = ids(1, 11 - t, seed=t + 7)[0]
        assert not torch.equal(changed, x)
        out = model(changed).logits
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1])
        assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])


def test_explicit_stream_ids_equal_derived():
    model = make_model("li-all")
    x = ids(2, 7)
    tables = model.transformer.stream_tables(x)
    explicit = model(x, phonetic_ids=tables["phonetic"], morph_ids=tables["morphological"]).logits
    torch.testing.assert_close(explicit, model(x).logits)
    with pytest.raises(ValueError, match="phonetic"):
        model(x, phonetic_ids=tables["phonetic"][..., :2])


def test_generate_with_explicit_stream_ids():
    """Explicit ids describe the prompt (e.g. `generate(**processor(text, return_tensors="pt"))`); the generated
    tokens' ids come from the tables. Same tokens as a cache-free greedy loop that does exactly that."""
    model = make_model("li-all")
    x = ids(2, 5)
    tables = model.transformer.stream_tables(x)
    greedy = dict(max_new_tokens=5, do_sample=False, pad_token_id=PAD)
    plain = model.generate(x, **greedy)
    explicit = model.generate(x, phonetic_ids=tables["phonetic"], morph_ids=tables["morphological"], **greedy)
    torch.testing.assert_close(explicit, plain)
    other = torch.randint(1, 20, tables["phonetic"].shape, generator=torch.Generator().manual_seed(5))
    out = model.generate(x, phonetic_ids=other, **greedy)
    seq = x
    with torch.no_grad():
        for _ in range(5):
            phonetic = torch.cat([other, model.transformer.stream_tables(seq[:, 5:])["phonetic"]], dim=1)
            logits = model(seq, phonetic_ids=phonetic, use_cache=False).logits
            seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    torch.testing.assert_close(out, seq)
    beams = model.generate(x, phonetic_ids=other, num_beams=2, max_new_tokens=3, pad_token_id=PAD)
    assert beams.shape == (2, 8)


def test_resize_token_embeddings_resizes_the_stream_tables(tmp_path):
    model = make_model("li-all")
    old = model.transformer.stream_tables.phonetic.clone()
    model.resize_token_embeddings(VOCAB + 3)
    tables = model.transformer.stream_tables
    assert model.config.vocab_size == VOCAB + 3 and tables.phonetic.shape == (VOCAB + 3, 4)
    assert torch.equal(tables.phonetic[:VOCAB], old) and not tables.phonetic[VOCAB:].any()
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    x = torch.tensor([[BOS, VOCAB + 2, 7]])
    with torch.no_grad():
        logits = model(x).logits
    assert logits.shape == (1, 3, VOCAB + 3)
    model.save_pretrained(tmp_path)
    reloaded = MultiStreamGPT2LMHeadModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).logits, logits)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_generate_with_cache_equals_without(variant):
    model = make_model(variant)
    lengths = []
    hook = model.transformer.register_forward_pre_hook(
        lambda _m, args, kwargs: lengths.append((args[0] if args else kwargs["input_ids"]).shape[1]),
        with_kwargs=True,
    )
    prompt = ids(2, 5, seed=3)
    cached = model.generate(prompt, max_new_tokens=8, do_sample=False, min_new_tokens=8)
    assert lengths[0] == 5 and set(lengths[1:]) == {1}  # the cache was really used
    hook.remove()
    uncached = model.generate(prompt, max_new_tokens=8, do_sample=False, min_new_tokens=8, use_cache=False)
    assert torch.equal(cached, uncached)
    # the cache covers every stream layer
    out = model(prompt, use_cache=True)
    assert len(out.cache.layers) == model.transformer.num_cache_layers


def test_cache_incremental_logits_match_full_forward():
    model = make_model("dm-scalar")
    x = ids(2, 10, seed=5)
    full = model(x).logits
    out = model(x[:, :6], use_cache=True)
    step = model(x[:, 6:], cache=out.cache, use_cache=True).logits
    torch.testing.assert_close(step, full[:, 6:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["li-all", "dm-token-last"])
def test_batched_left_padded_generation_equals_one_by_one(variant):
    model = make_model(variant)
    prompts = [ids(1, 6, seed=11)[0], ids(1, 3, seed=12)[0], ids(1, 5, seed=13)[0]]
    width = max(len(p) for p in prompts)
    batch = torch.full((len(prompts), width), PAD)
    mask = torch.zeros_like(batch)
    for i, p in enumerate(prompts):
        batch[i, width - len(p) :] = p
        mask[i, width - len(p) :] = 1
    kwargs = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=PAD)
    batched = model.generate(batch, attention_mask=mask, **kwargs)
    for i, p in enumerate(prompts):
        single = model.generate(p[None], attention_mask=torch.ones_like(p[None]), **kwargs)
        assert torch.equal(batched[i, width:], single[0, len(p) :])


def test_beam_search_and_sampling_run():
    model = make_model("dm-scalar")
    prompt = ids(2, 4)
    beams = model.generate(prompt, max_new_tokens=5, num_beams=3, num_return_sequences=2, do_sample=False)
    assert beams.shape == (4, 9)
    # beam search reorders the cache (the streams' batched slots too): the same beams as without a cache
    uncached = model.generate(
        prompt, max_new_tokens=5, num_beams=3, num_return_sequences=2, do_sample=False, use_cache=False
    )
    assert torch.equal(beams, uncached)
    torch.manual_seed(0)
    sampled = model.generate(
        prompt, max_new_tokens=5, min_new_tokens=5, do_sample=True, top_k=10, temperature=0.9
    )
    assert sampled.shape == (2, 9)


# ----------------------------------------------------------------------------------------------- padding / weights
@pytest.mark.parametrize("variant", ["li-all", "dm-token-last", "none"])
def test_padding_invariance(variant):
    model = make_model(variant)
    x = ids(1, 6)
    padded = torch.cat([x, torch.full((1, 3), PAD)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 3])
    torch.testing.assert_close(model(padded, attention_mask=mask).logits[:, :6], model(x).logits)


@pytest.mark.parametrize("variant", MULTI)
def test_gradient_reaches_every_parameter(variant):
    model = make_model(variant).train()
    x = ids(2, 8)
    model(x, labels=x).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    assert model.lm_head.weight is model.transformer.semantic.wte.weight  # tied


def test_gradient_checkpointing_equals_normal():
    model = make_model("li-all").train()
    x = ids(2, 8)
    loss = model(x, labels=x).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.activation_checkpointing_enable()
    loss_ckpt = model(x, labels=x).loss
    loss_ckpt.backward()
    torch.testing.assert_close(loss_ckpt, loss)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], msg=n)


def test_stream_weights_output():
    model = make_model("dm-token-last")
    out = model(ids(2, 5), output_stream_weights=True, output_hidden_states=True)
    assert out.stream_weights.shape == (1, 2, 5, 3)
    torch.testing.assert_close(out.stream_weights.sum(-1), torch.ones(1, 2, 5))
    assert len(out.hidden_states) == 3


# ----------------------------------------------------------------------------------------------- batched stream layers
def one_by_one(groups, store=None):
    """`batched_stream_weights` refusing every group: the model then runs every stream's layer on its own."""
    return None


@pytest.mark.parametrize("variant", ["li-all", "dm-token-last"])
def test_batched_stream_layers_equal_one_by_one(variant, monkeypatch):
    """The streams' layers run as one batched layer: same logits, gradients and generations as one by one."""
    import msnn_hf.modeling_multistream_stack as gpt2_module

    model = make_model(variant)
    x, prompt = ids(2, 9, seed=4), ids(2, 4, seed=6)
    model.train()
    loss = model(x, labels=x).loss
    grads = torch.autograd.grad(loss, list(model.parameters()))
    model.eval()
    with torch.no_grad():
        logits = model(x).logits
    generated = model.generate(prompt, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    monkeypatch.setattr(gpt2_module, "batched_stream_weights", one_by_one)
    model.train()
    loss_ref = model(x, labels=x).loss
    grads_ref = torch.autograd.grad(loss_ref, list(model.parameters()))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x).logits)
    torch.testing.assert_close(loss, loss_ref)
    for (name, _), grad, ref in zip(model.named_parameters(), grads, grads_ref):
        torch.testing.assert_close(grad, ref, msg=name)
    assert torch.equal(generated, model.generate(prompt, max_new_tokens=6, min_new_tokens=6, do_sample=False))


def test_batched_stream_layers_follow_parameter_updates(monkeypatch):
    """Without gradients the stacked stream weights (and the integrations' derived weights) are kept within one
    generation; an optimizer step, a `load_state_dict` or an edit through `.data` (which bumps no version counter)
    must be seen by the next call."""
    import msnn_hf.modeling_multistream_stack as gpt2_module

    for variant in ("dm-scalar", "li-all"):
        model, other = make_model(variant), make_model(variant, seed=1)
        x = ids(2, 7, seed=2)

        def uncached(model=model, x=x):  # with gradients nothing is kept: every derived weight is rebuilt
            with torch.enable_grad():
                return model(x).logits.detach()

        with torch.no_grad():
            before = model(x).logits
        assert model.transformer._stacked_stream_weights._entries, "no-grad calls keep the stacked weights"
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        model(x, labels=x).loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            after_step = model(x).logits
        torch.testing.assert_close(after_step, uncached())
        assert not torch.allclose(before, after_step)
        with torch.no_grad():
            model.load_state_dict(other.state_dict())
            after_load = model(x).logits
            torch.testing.assert_close(after_load, other(x).logits)
        torch.testing.assert_close(after_load, uncached())
        with torch.no_grad():
            for name, param in model.named_parameters():
                if ".streams." in name or ".integration." in name:
                    param.data.mul_(1.5)  # what peft's merge does: no version bump
            after_data_edit = model(x).logits
        assert not torch.allclose(after_data_edit, after_load)
        torch.testing.assert_close(after_data_edit, uncached())
        with monkeypatch.context() as patch, torch.no_grad():
            patch.setattr(gpt2_module, "batched_stream_weights", one_by_one)
            torch.testing.assert_close(after_data_edit, model(x).logits)


def test_parameter_cache_reuses_within_its_scope_only():
    """`ParameterCache`: no reuse outside a scope or with gradients; within a scope, reuse until a parameter's
    version, storage or identity changes; a fresh scope, another owner or a dead owner drops what was kept."""
    from msnn_hf.modeling_multistream_common import ParameterCache

    class Owner:  # stands for a generation's KV cache
        pass

    store, param, builds = ParameterCache(), nn.Parameter(torch.ones(3)), []

    def build():
        builds.append(1)
        return param * 2

    def get():
        return store.get("doubled", [param], build)

    with torch.no_grad():
        get(), get()
        assert len(builds) == 2, "outside a scope every call builds"
        owner = Owner()
        store.scope(owner, fresh=True)
        first = get()
        assert get() is first and len(builds) == 3, "reused within the scope"
        store.scope(owner)  # the next step of the same generation
        assert get() is first
        param.add_(1.0)  # an in-place edit bumps the version counter
        assert torch.equal(get(), torch.full((3,), 4.0)) and len(builds) == 4
        param.data.add_(1.0)  # no version bump: not seen within the scope (documented) ...
        assert torch.equal(get(), torch.full((3,), 4.0))
        store.scope(owner, fresh=True)  # ... but by the next generation
        assert torch.equal(get(), torch.full((3,), 6.0)) and len(builds) == 5
        store.scope(Owner())  # another owner (this one dies at once): nothing is reused, nothing is held
        get(), get()
        assert len(builds) == 7 and not store._entries
        store.scope(owner)
        get(), get()
        assert len(builds) == 8
    with torch.enable_grad():
        get(), get()
        assert len(builds) == 10, "with gradients every call builds"


def test_batched_stream_layers_give_way_to_hooks_and_adapters(monkeypatch):
    """The batched layer calls no module: a forward hook on a stream layer's part, or a part replaced by another
    kind of module (an adapter, e.g. LoRA), makes the model run the streams' layers one by one, so that the hook runs
    and the adapter counts."""
    import msnn_hf.modeling_multistream_stack as gpt2_module

    model, x = make_model("li-all"), ids(2, 6, seed=3)
    layer = model.transformer.streams["phonetic"].layers[0]
    with torch.no_grad():
        before = model(x).logits
    calls = []
    handle = layer.mlp.fc_in.register_forward_hook(lambda module, args, output: calls.append(output.shape))
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, before)
    assert calls == [(2, 6, 32)], "the hook ran once, in a one-by-one layer"
    handle.remove()

    class Adapter(nn.Module):  # a LoRA-like wrapper: the base projection plus a low-rank update
        def __init__(self, base: nn.Linear) -> None:
            super().__init__()
            self.base, self.down, self.up = (
                base,
                nn.Linear(base.in_features, 2, bias=False),
                nn.Linear(2, base.out_features, bias=False),
            )
            nn.init.normal_(self.up.weight)

        @property
        def weight(self) -> torch.Tensor:  # like peft's layers: the base weight shows through
            return self.base.weight

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            return self.base(h) + self.up(self.down(h))

    layer.attn.qkv_proj = Adapter(layer.attn.qkv_proj)
    with torch.no_grad():
        adapted = model(x).logits
        assert not torch.allclose(adapted, before), "the adapter changes the output"
        monkeypatch.setattr(gpt2_module, "batched_stream_weights", one_by_one)
        torch.testing.assert_close(adapted, model(x).logits)


# peft 0.21 still reads `model.is_gradient_checkpointing`, deprecated in transformers 5.2x (not our code)
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_on_the_stream_layers_counts():
    """LoRA (peft) on the streams' own projections: the adapted layers run one by one, so the adapter shapes the
    output, which equals that of the merged model (plain `nn.Linear`s again, batched)."""
    peft = pytest.importorskip("peft")
    model, x = make_model("dm-scalar"), ids(2, 6, seed=7)
    with torch.no_grad():
        base = model(x).logits
    lora = peft.LoraConfig(target_modules=["qkv_proj", "fc_in"], r=2, lora_alpha=4, init_lora_weights=False)
    adapted = peft.get_peft_model(model, lora).eval()
    assert any("streams.phonetic.layers.0.attn.qkv_proj.lora_A" in n for n, _ in adapted.named_parameters())
    with torch.no_grad():
        tuned = adapted(input_ids=x).logits
        assert not torch.allclose(tuned, base), "the adapter changes the output"
        merged = adapted.merge_and_unload().eval()
        assert type(merged.transformer.streams["phonetic"].layers[0].attn.qkv_proj) is nn.Linear
        torch.testing.assert_close(merged(x).logits, tuned)


def test_gathered_stream_ids_are_range_checked_through_their_table():
    """Gathered stream ids are checked through their table (its check kept per table version, not redone on the
    gathered ids at every step): a table holding an id outside the stream vocabulary is refused, naming it, also
    after an in-place edit of a table that had passed."""
    model, x = make_model("dm-scalar"), ids(2, 5)
    tables = model.transformer.stream_tables
    with torch.no_grad():
        model(x)
        tables.phonetic[7, 0] = model.config.phonetic_vocab_size  # one past the end
    with pytest.raises(
        ValueError, match="Stream table 'phonetic' holds ids in .*outside the phonetic vocabulary"
    ):
        model(x)
    with torch.no_grad():
        tables.phonetic[7, 0] = 1
    model(x)


def test_stream_layers_of_different_shapes_run_one_by_one():
    from msnn_hf.modeling_multistream_common import StreamLayer, batched_stream_weights

    torch.manual_seed(0)
    layers = [StreamLayer(16, 2, 32, dropout=0.0), StreamLayer(8, 2, 16, dropout=0.0)]
    assert batched_stream_weights([layers]) is None  # the stack then runs them one by one
    assert batched_stream_weights([[StreamLayer(16, 2, 32), StreamLayer(16, 2, 32)]]) is not None


# ----------------------------------------------------------------------------------------------- save / load / hub
def test_save_load_round_trip_and_auto_classes(tmp_path):
    register()
    register()  # idempotent
    model = make_model("dm-token-last")
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"].endswith("MultiStreamGPT2LMHeadModel")
    assert (tmp_path / "model.safetensors").exists()
    x = ids(2, 6)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, MultiStreamGPT2LMHeadModel)
    torch.testing.assert_close(loaded(x).logits, model(x).logits)
    assert torch.equal(loaded.transformer.stream_tables.phonetic, model.transformer.stream_tables.phonetic)
    assert loaded.lm_head.weight is loaded.transformer.semantic.wte.weight
    assert isinstance(AutoModel.from_pretrained(tmp_path), MultiStreamGPT2Model)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), MultiStreamGPT2Config)


def test_remote_code_loading_without_msnn_hf(tmp_path):
    register()
    model = make_model("li-last")
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    x = ids(2, 6)
    torch.save({"x": x, "logits": model(x).logits}, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "msnn_hf" or name.startswith("msnn_hf."):
                    raise ImportError("msnn_hf is blocked")
        sys.meta_path.insert(0, Block())
        import torch
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained({str(ckpt)!r}, trust_remote_code=True).eval()
        assert not any(m.startswith("msnn_hf") for m in sys.modules)
        expected = torch.load({str(tmp_path / "expected.pt")!r})
        torch.testing.assert_close(model(expected["x"]).logits, expected["logits"])
        out = model.generate(expected["x"], max_new_tokens=3, do_sample=False)
        print("OK", type(model).__name__, tuple(out.shape))
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK MultiStreamGPT2LMHeadModel (2, 9)" in result.stdout


def test_from_backbone_loads_gpt2_weights(tmp_path):
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=VOCAB - 2,
            n_positions=48,
            n_embd=32,
            n_layer=2,
            n_head=2,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=BOS,
            eos_token_id=EOS,
        )  # fmt: skip
    ).eval()
    gpt2.save_pretrained(tmp_path / "gpt2")
    x = ids(2, 7) % (VOCAB - 2)

    plain = MultiStreamGPT2LMHeadModel.from_backbone(
        str(tmp_path / "gpt2"), streams=["semantic"], integration_type="none"
    ).eval()
    torch.testing.assert_close(plain(x).logits, gpt2(x).logits)

    class Processor:  # the part of MultiStreamProcessor that from_backbone reads
        tokenizer = list(range(VOCAB))  # len() = vocabulary incl. added tokens
        stream_vocab_sizes = {"phonetic": 20, "morphological": 25}
        slot_sizes = {"phonetic": 4, "morphological": 3}
        stream_tables = random_tables(tiny_config())

    multi = MultiStreamGPT2LMHeadModel.from_backbone(
        str(tmp_path / "gpt2"), processor=Processor(), integration_type="li"
    )
    assert multi.config.vocab_size == VOCAB and multi.config.integration_type == "li"
    sem = multi.transformer.semantic
    torch.testing.assert_close(sem.h[1].mlp.c_fc.weight, gpt2.transformer.h[1].mlp.c_fc.weight)
    torch.testing.assert_close(sem.wte.weight[: VOCAB - 2], gpt2.transformer.wte.weight)
    assert torch.equal(
        multi.transformer.stream_tables.morphological, Processor.stream_tables["morphological"]
    )
    assert multi.lm_head.weight is sem.wte.weight

    class Smaller(Processor):
        tokenizer = list(range(VOCAB - 3))  # fewer entries than the backbone's vocabulary: not its tokenizer

    with pytest.raises(ValueError, match="fewer than the 58"):
        MultiStreamGPT2LMHeadModel.from_backbone(
            str(tmp_path / "gpt2"), processor=Smaller(), integration_type="li"
        )


def test_from_backbone_refuses_a_processor_built_for_another_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    def tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
        model = models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>")
        raw = Tokenizer(model)
        raw.pre_tokenizer = pre_tokenizers.Whitespace()
        return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>")

    words = ["<unk>", "<pad>", "<eos>"] + [f"w{i}" for i in range(VOCAB - 5)]
    backbone = tmp_path / "gpt2"
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(words), n_positions=48, n_embd=32, n_layer=2, n_head=2)
    ).save_pretrained(backbone)
    tokenizer(words).save_pretrained(backbone)

    class Processor:
        tokenizer = None
        stream_vocab_sizes = {"phonetic": 20, "morphological": 25}
        slot_sizes = {"phonetic": 4, "morphological": 3}
        stream_tables = random_tables(tiny_config(vocab_size=len(words) + 1))

    ok = Processor()
    ok.tokenizer = tokenizer(words + ["added"])  # the backbone's tokenizer plus one added token
    model = MultiStreamGPT2LMHeadModel.from_backbone(str(backbone), processor=ok, integration_type="li")
    assert model.config.vocab_size == len(words) + 1
    other = Processor()
    other.tokenizer = tokenizer(words[:3] + list(reversed(words[3:])) + ["added"])  # same words, other ids
    with pytest.raises(ValueError, match=r"numbers tokens differently.*entries differ"):
        MultiStreamGPT2LMHeadModel.from_backbone(str(backbone), processor=other, integration_type="li")


# ------------------------------------------------------------------------------------- start as the backbone
@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    torch.manual_seed(2)
    config = tiny_config().semantic_config()
    GPT2LMHeadModel(GPT2Config(**config.to_dict())).save_pretrained(folder)
    return folder


FUNCTION_PRESERVING = {
    "li-A": dict(integration_type="li", integration_layers="last"),
    "li-B": dict(integration_type="li"),
    "dm-scalar-B": dict(integration_type="dm", alpha_granularity="scalar"),
    "dm-channel-B": dict(integration_type="dm", alpha_granularity="channel"),
    "dm-token-A": dict(integration_type="dm", alpha_granularity="token", integration_layers="last"),
    "dm-token-B": dict(integration_type="dm", alpha_granularity="token"),
    "early": dict(integration_type="early"),
    "concat": dict(integration_type="concat"),
}


@pytest.mark.parametrize("variant", list(FUNCTION_PRESERVING))
def test_from_backbone_computes_the_backbone(variant, gpt2_dir):
    """Before training, a model built from a GPT-2 checkpoint gives the plain `GPT2LMHeadModel`'s logits (1e-4) and
    last hidden state (1e-5) on a left-padded batch, also decoding with the cache; ``integration_init="mix"`` does
    not."""

    class Processor:
        tokenizer = None
        stream_vocab_sizes = {"phonetic": 20, "morphological": 25}
        slot_sizes = {"phonetic": 4, "morphological": 3}
        stream_tables = random_tables(tiny_config(), seed=3)

    plain = GPT2LMHeadModel.from_pretrained(gpt2_dir).eval()
    model = MultiStreamGPT2LMHeadModel.from_backbone(
        str(gpt2_dir), **FUNCTION_PRESERVING[variant], stream_hidden_size=16, stream_num_heads=2,
        stream_intermediate_size=32, phonetic_vocab_size=20, morph_vocab_size=25, phonetic_slot_size=4,
        morph_slot_size=3,
    ).eval()  # fmt: skip
    model.set_stream_tables(Processor.stream_tables)
    x = ids(3, 8, seed=4)
    mask = torch.tensor([[1] * 8, [0] * 3 + [1] * 5, [0] * 6 + [1] * 2])
    with torch.no_grad():
        theirs = plain(x, attention_mask=mask, output_hidden_states=True)
        ours = model(x, attention_mask=mask, output_hidden_states=True)
        real = mask.bool()
        torch.testing.assert_close(ours.logits[real], theirs.logits[real], atol=1e-4, rtol=0)
        torch.testing.assert_close(
            ours.hidden_states[-1][real], theirs.hidden_states[-1][real], atol=1e-5, rtol=0
        )
        generated = model.generate(
            x, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=PAD
        )
        expected = plain.generate(x, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=PAD)
        assert torch.equal(generated, expected)
        if variant != "early":
            old = MultiStreamGPT2LMHeadModel(
                model.config.__class__(**{**model.config.to_dict(), "integration_init": "mix"})
            )
            old.transformer.semantic.load_state_dict(model.transformer.semantic.state_dict())
            old.set_stream_tables(Processor.stream_tables)
            assert (old.eval()(x).logits - plain(x).logits).abs().max() > 1e-3


# ----------------------------------------------------------------------------------------------- shared checklist
from model_checklist import ModelChecklist  # noqa: E402


class TestMultiStreamGPT2Checklist(ModelChecklist):
    FAMILY = "multistream_gpt2"
    VARIANTS = {
        "li": dict(integration_type="li"),
        "dm-scalar": dict(integration_type="dm", alpha_granularity="scalar"),
        "dm-token-last": dict(integration_type="dm", alpha_granularity="token", integration_layers="last"),
    }
    BASELINE_VARIANTS = {
        "none": dict(streams=["semantic"], integration_type="none"),
        "early": dict(integration_type="early"),
        "concat": dict(integration_type="concat"),
        "dm-channel": dict(integration_type="dm", alpha_granularity="channel"),
        "li-mix": dict(integration_type="li", integration_init="mix"),
    }
    HEAD_CLASSES = (MultiStreamGPT2LMHeadModel, MultiStreamGPT2Model)
    AUTO_CLASSES = {MultiStreamGPT2LMHeadModel: AutoModelForCausalLM, MultiStreamGPT2Model: AutoModel}
    PADDING_SIDE = "left"
    MAX_POSITIONS = 48

    def tiny_config(self, **overrides):
        return tiny_config(**overrides)

    def prepare_model(self, model, seed: int = 0):
        if model.config.non_semantic_streams:
            model.set_stream_tables(random_tables(model.config, seed))
        return model

    def make_inputs(self, config, batch: int, length: int, seed: int = 0):
        # position ids travel with the tokens, so left padding keeps every real token's position
        return {
            "input_ids": ids(batch, length, seed),
            "attention_mask": torch.ones(batch, length, dtype=torch.long),
            "position_ids": torch.arange(length).expand(batch, length).clone(),
        }

    def main_output(self, output):
        return output.logits if "logits" in output else output.last_hidden_state


def test_loading_a_bert_checkpoint_with_the_gpt2_class_is_a_clear_error(tmp_path):
    from msnn_hf import MultiStreamBertConfig, MultiStreamBertModel

    MultiStreamBertModel(MultiStreamBertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                               intermediate_size=64, stream_hidden_size=16)).save_pretrained(tmp_path)  # fmt: skip
    with pytest.raises(ValueError, match=r"model_type 'multistream_bert', not 'multistream_gpt2'"):
        MultiStreamGPT2LMHeadModel.from_pretrained(tmp_path)


def test_past_key_values_is_accepted_with_a_warning():
    model = make_model("li-all")
    x = ids(1, 6)
    with torch.no_grad():
        first = model(x[:, :4], use_cache=True)
        with pytest.warns(FutureWarning, match="past_key_values"):
            step = model(x[:, 4:], past_key_values=first.cache, use_cache=True)
        torch.testing.assert_close(step.logits, model(x).logits[:, 4:], atol=1e-5, rtol=1e-4)


def test_output_attentions_and_hidden_states_conventions():
    model = make_model("dm-scalar")
    with pytest.raises(ValueError, match="output_attentions=True is not supported"):
        model(ids(1, 4), output_attentions=True)
    with pytest.raises(ValueError, match="output_attentions=True is not supported"):
        model.generate(ids(1, 4), max_new_tokens=2, output_attentions=True, return_dict_in_generate=True)
    model.config.output_hidden_states = True
    out = model(ids(1, 4))
    assert out.hidden_states is not None and len(out.hidden_states) == 3
    torch.testing.assert_close(out.hidden_states[-1], model.transformer(ids(1, 4)).last_hidden_state)


def test_missing_and_meta_initialised_weights_get_gpt2_initialisation():
    config = tiny_config(n_layer=2)
    model = MultiStreamGPT2LMHeadModel.from_pretrained(None, config=config, state_dict={})
    assert not model.transformer.stream_tables.phonetic.any()  # empty tables, not torch.empty garbage
    assert torch.isfinite(model(ids(1, 4)).logits).all()
    with torch.device("meta"):
        meta = MultiStreamGPT2LMHeadModel(config)
    meta.to_empty(device="cpu")
    meta.init_weights()
    assert torch.isfinite(meta(ids(1, 4)).logits).all()
    assert not meta.transformer.stream_tables.phonetic.any()
    for built in (
        MultiStreamGPT2LMHeadModel(config),
        meta,
    ):  # GPT-2's residual projections: std 0.02 / sqrt(2 n_layer)
        c_proj = built.transformer.semantic.h[0].attn.c_proj.weight
        assert abs(c_proj.std().item() - 0.02 / (2 * 2) ** 0.5) < 0.003


def test_output_hidden_states_selects_by_index():
    model = make_model("li-all")
    x = ids(1, 5)
    every = model(x, output_hidden_states=True).hidden_states
    assert len(every) == 3
    picked = model(x, output_hidden_states=[0, -1]).hidden_states
    assert len(picked) == 2 and torch.equal(picked[0], every[0]) and torch.equal(picked[1], every[-1])
    assert torch.equal(model(x, output_hidden_states=1).hidden_states[0], every[1])
    with pytest.raises(ValueError, match="outside the 3 hidden states"):
        model(x, output_hidden_states=[5])


def test_word_alignment_is_refused_by_the_causal_family():
    with pytest.raises(ValueError, match="stream_alignment='word'.*causal model"):
        tiny_config(stream_alignment="word")
