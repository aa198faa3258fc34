"""The multi-stream vision encoder-decoder on tiny random configurations (ViT 32x32 / 8x8 patches, a 2-block GPT-2
decoder, and one EfficientNet-Lite encoder): the shared checklist where it applies, causality, generation (cache,
beams, left padding, the encoder once), the start as the pretrained decoder, the DM-token weights, the processor and
the pipeline."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from model_checklist import ModelChecklist, assert_same_outputs, open_gates
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    GPT2Config,
    GPT2LMHeadModel,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
)

from msnn_hf import (
    EfficientNetLiteConfig,
    MultiStreamGPT2Config,
    MultiStreamGPT2LMHeadModel,
    MultiStreamVisionEncoderDecoder,
    MultiStreamVisionEncoderDecoderConfig,
    MultiStreamVisionProcessor,
)
from msnn_hf.modeling_multistream_common import batched_stream_weights

VOCAB, PAD, BOS, EOS = 60, 0, 1, 2
IMAGE = 32
# the ViT's pooler is built by `AutoModel` but not read by the model (the decoder reads `last_hidden_state`)
UNUSED_BY_DESIGN = ("encoder.pooler.",)
VARIANTS: dict[str, dict[str, Any]] = {
    "dm-token": dict(streams=["semantic", "vision"], integration_type="dm", alpha_granularity="token"),
    "li-last": dict(streams=["semantic", "vision"], integration_type="li", integration_layers="last"),
    "dm-scalar-text-streams": dict(
        streams=["semantic", "phonetic", "morphological", "vision"], integration_type="dm"
    ),
    "concat": dict(streams=["semantic", "vision"], integration_type="concat"),
}


def tiny_encoder_config(**overrides) -> ViTConfig:
    values = dict(
        image_size=IMAGE, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return ViTConfig(**{**values, **overrides})


def tiny_decoder_config(**overrides) -> MultiStreamGPT2Config:
    values = dict(
        vocab_size=VOCAB, n_positions=32, n_embd=24, n_layer=2, n_head=2, n_inner=48,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, stream_dropout=0.0,
        stream_hidden_size=16, stream_num_heads=2, stream_intermediate_size=32,
        phonetic_vocab_size=20, morph_vocab_size=25, phonetic_slot_size=4, morph_slot_size=3,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, streams=["semantic", "vision"],
    )  # fmt: skip
    return MultiStreamGPT2Config(**{**values, **overrides})


def tiny_config(encoder=None, **decoder_overrides) -> MultiStreamVisionEncoderDecoderConfig:
    return MultiStreamVisionEncoderDecoderConfig.from_encoder_decoder_configs(
        encoder if encoder is not None else tiny_encoder_config(), tiny_decoder_config(**decoder_overrides)
    )


def random_tables(config: MultiStreamGPT2Config, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tables = {}
    for name, slot in config.slot_sizes.items():
        table = torch.randint(9, config.stream_vocab_sizes[name], (config.vocab_size, slot), generator=g)
        table[PAD] = 0
        tables[name] = table
    return tables


def make_model(variant: str = "dm-token", seed: int = 0, gates_open: bool = True, **overrides):
    torch.manual_seed(seed)
    model = MultiStreamVisionEncoderDecoder(tiny_config(**{**VARIANTS[variant], **overrides}))
    if model.config.decoder.slot_sizes:
        model.decoder.set_stream_tables(random_tables(model.config.decoder, seed))
    return (open_gates(model, seed) if gates_open else model).eval()


def images(batch: int, seed: int = 0, size: int = IMAGE) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def token_ids(batch: int, length: int, seed: int = 0) -> torch.LongTensor:
    ids = torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = BOS
    return ids


# ------------------------------------------------------------------------------------------ the shared checklist
class TestVisionChecklist(ModelChecklist):
    FAMILY = "multistream_vision"
    VARIANTS = VARIANTS
    HEAD_CLASSES = (MultiStreamVisionEncoderDecoder,)
    AUTO_CLASSES = {MultiStreamVisionEncoderDecoder: AutoModelForImageTextToText}
    PADDING_SIDE = "left"
    MAX_POSITIONS = 32

    def tiny_config(self, **overrides):
        return tiny_config(**overrides)

    def prepare_model(self, model, seed=0):
        if model.config.decoder.slot_sizes:
            model.decoder.set_stream_tables(random_tables(model.config.decoder, seed))
        return model

    def make_inputs(self, config, batch, length, seed=0):
        return {"pixel_values": images(batch, seed), "decoder_input_ids": token_ids(batch, length, seed)}

    def stream_names(self, config):
        return [s for s in config.decoder.streams if s in self.STREAM_ID_KEYS]

    def pad_like(self, short, long):
        """``short`` left-padded to the length of ``long`` (pad positions carry ``long``'s ids, masked out)."""
        length, n = long["decoder_input_ids"].shape[1], short["decoder_input_ids"].shape[1]
        ids = long["decoder_input_ids"].clone()
        ids[:, length - n :] = short["decoder_input_ids"]
        mask = torch.zeros_like(ids)
        mask[:, length - n :] = 1
        return {
            "pixel_values": short["pixel_values"],
            "decoder_input_ids": ids,
            "decoder_attention_mask": mask,
        }

    def test_gradient_reaches_every_parameter(self, variant):
        model = self.build(variant, gates_open=False).train()
        inputs = self.make_inputs(model.config, batch=2, length=6, seed=4)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        used = [(n, p) for n, p in model.named_parameters() if not n.startswith(UNUSED_BY_DESIGN)]
        for step in range(2):
            optimizer.zero_grad()
            self.loss_of(model(**inputs)).backward()
            dead = [n for n, p in used if p.grad is None or not p.grad.abs().sum() > 0]
            if step == 0:
                assert not [n for n in dead if n.endswith(".blend")], dead
                # the vision stream reaches the output only through the closed gates (concat: its zero block)
                vision = [n for n, _ in used if ".streams.vision." in n]
                assert vision and all(n in dead for n in vision)
            else:
                assert not dead, f"no gradient reaches {dead} after one step"
            optimizer.step()
        still = [n for n, p in used if torch.equal(p.detach(), before[n])]
        assert not still, f"not moved after two steps: {still}"

    def test_explicit_stream_ids_win(self, variant):
        model = self.build(variant)
        names = self.stream_names(model.config)
        inputs = self.make_inputs(model.config, batch=2, length=6)
        reference = self.main_output(self.run(model, inputs))
        if not names:  # no slot streams: no tables either
            assert model.decoder.transformer.stream_tables is None
            return
        derived = model.decoder.transformer.stream_tables(inputs["decoder_input_ids"])
        explicit = {self.STREAM_ID_KEYS[s]: derived[s] for s in names}
        assert_same_outputs(self.main_output(self.run(model, inputs, **explicit)), reference, "explicit")
        other = {self.STREAM_ID_KEYS[names[0]]: torch.roll(derived[names[0]], 1, dims=1)}
        assert not torch.allclose(self.main_output(self.run(model, inputs, **other)), reference)

    def test_stream_weights_shape(self, variant):
        model = self.build(variant)
        decoder = model.config.decoder
        inputs = self.make_inputs(model.config, batch=2, length=6)
        weights = self.run(model, inputs, output_stream_weights=True).stream_weights
        if decoder.integration_type == "concat":  # no integration, no weights
            assert weights is None
            return
        assert tuple(weights.shape) == (len(decoder.integration_layers), 2, 6, len(decoder.streams))
        assert torch.isfinite(weights).all() and self.run(model, inputs).stream_weights is None

    def test_bad_inputs_raise_value_errors(self, variant):
        model = self.build(variant)
        inputs = self.make_inputs(model.config, batch=2, length=6)
        with pytest.raises(ValueError, match="pixel_values"):
            self.run(model, {"decoder_input_ids": inputs["decoder_input_ids"]})
        with pytest.raises(ValueError, match="input_ids"):
            self.run(model, {**inputs, "decoder_input_ids": inputs["decoder_input_ids"].clone().fill_(VOCAB)})
        with pytest.raises(ValueError, match="exceeds"):
            self.run(model, self.make_inputs(model.config, batch=1, length=self.MAX_POSITIONS + 1))
        with pytest.raises(ValueError, match="encoder_hidden_states"):  # patch tokens of another batch
            with torch.no_grad():
                model.decoder(inputs["decoder_input_ids"], encoder_hidden_states=torch.zeros(3, 16, 24))


# ------------------------------------------------------------------------------------------------ configuration
def test_config_nests_like_vision_encoder_decoder(tmp_path):
    config = tiny_config(integration_type="li")
    assert type(config.encoder) is ViTConfig and type(config.decoder) is MultiStreamGPT2Config
    assert config.is_encoder_decoder and config.decoder_start_token_id == BOS and config.pad_token_id == PAD
    assert MultiStreamVisionEncoderDecoderConfig.sub_configs == {
        "encoder": AutoConfig, "decoder": MultiStreamGPT2Config
    }  # fmt: skip
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is MultiStreamVisionEncoderDecoderConfig
    assert loaded.decoder.to_dict() == config.decoder.to_dict()
    assert loaded.encoder.to_dict() == config.encoder.to_dict()
    for bad, message in (
        (dict(streams=["semantic", "phonetic"]), "must contain 'vision'"),
        (dict(integration_type="early"), "integrated by one of"),
        (dict(streams=["vision"], integration_type="none"), "plain GPT-2"),
    ):
        with pytest.raises(ValueError, match=message):
            tiny_config(**bad)


def test_text_family_refuses_the_vision_stream_and_is_unchanged():
    config = tiny_decoder_config(integration_type="dm")  # "vision" is a known stream name
    assert config.streams == ["semantic", "vision"] and config.slot_sizes == {}
    for build in (MultiStreamGPT2LMHeadModel, AutoModelForCausalLM.from_config):
        with pytest.raises(
            ValueError, match="'vision' \\(kind 'patches'\\).*MultiStreamVisionEncoderDecoder"
        ):
            build(config)
    # the text family's defaults do not include it
    assert MultiStreamGPT2Config().streams == ["semantic", "phonetic", "morphological"]


# --------------------------------------------------------------------------------------------------- mechanics
def test_state_dict_layout_and_tied_head():
    model = make_model("dm-scalar-text-streams")
    keys = model.state_dict()
    assert "decoder.transformer.streams.vision.layers.1.kv_proj.weight" in keys
    assert "decoder.transformer.streams.phonetic.layers.1.attn.qkv_proj.weight" in keys
    assert "decoder.transformer.integration.1.blend" in keys and "enc_to_dec_proj.weight" in keys
    assert model.decoder.lm_head.weight is model.decoder.transformer.semantic.wte.weight
    # the text streams' layers still run as one batched layer next to the vision stream
    assert model.decoder.transformer.context_streams() == ["vision"]
    groups = model.decoder.transformer.stream_layer_groups()
    assert len(groups) == 2 and len(groups[0]) == 2 and batched_stream_weights(groups) is not None


@pytest.mark.parametrize("variant", ["dm-token", "dm-scalar-text-streams"])
def test_decoder_is_causal(variant):
    model = make_model(variant)
    pixel_values, ids = images(2), token_ids(2, 8, seed=1)
    changed = ids.clone()
    changed[:, 5:] = torch.randint(3, VOCAB, (2, 3), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        first = model(pixel_values=pixel_values, decoder_input_ids=ids).logits
        second = model(pixel_values=pixel_values, decoder_input_ids=changed).logits
    assert_same_outputs(second[:, :5], first[:, :5], "earlier positions")
    assert not torch.allclose(second[:, 5:], first[:, 5:])


def test_the_image_matters_once_the_gates_open():
    model = make_model("dm-token", gates_open=False)
    ids = token_ids(2, 5)
    with torch.no_grad():
        closed = [model(pixel_values=images(2, seed=s), decoder_input_ids=ids).logits for s in (0, 1)]
        open_gates(model)
        opened = [model(pixel_values=images(2, seed=s), decoder_input_ids=ids).logits for s in (0, 1)]
    assert torch.equal(closed[0], closed[1])  # gates at zero: the decoder alone
    assert not torch.allclose(opened[0], opened[1])


@pytest.mark.parametrize("variant", ["dm-token", "li-last", "dm-scalar-text-streams"])
def test_generate_with_cache_equals_without_and_batched_left_padding(variant):
    model = make_model(variant)
    pixel_values = images(3, seed=2)
    prompts = [[BOS, 7, 8, 9], [BOS, 10], [BOS, 11, 12]]
    width = max(map(len, prompts))
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    common = dict(max_new_tokens=6, do_sample=False)
    with torch.no_grad():
        for beams in (1, 3):
            cached = model.generate(
                pixel_values, decoder_input_ids=ids, decoder_attention_mask=mask, num_beams=beams, **common
            )
            uncached = model.generate(
                pixel_values, decoder_input_ids=ids, decoder_attention_mask=mask, num_beams=beams,
                use_cache=False, **common,
            )  # fmt: skip
            assert torch.equal(cached, uncached), beams
            for row, prompt in enumerate(prompts):
                single = model.generate(
                    pixel_values[row : row + 1],
                    decoder_input_ids=torch.tensor([prompt]),
                    num_beams=beams,
                    **common,
                )
                new, alone = cached[row, width:], single[0, len(prompt) :]
                assert torch.equal(new[: len(alone)], alone), (beams, row)


def test_generate_runs_the_encoder_and_the_projection_once():
    model = make_model("dm-token")
    encoder_calls, projection_calls = [], []
    model.encoder.register_forward_hook(lambda m, a, out: encoder_calls.append(out.last_hidden_state.shape))
    model.enc_to_dec_proj.register_forward_hook(lambda m, a, out: projection_calls.append(out.shape))
    pixel_values = images(2, seed=3)
    with torch.no_grad():
        out = model.generate(pixel_values, max_new_tokens=5, min_new_tokens=5, num_beams=3, do_sample=False)
    assert out.shape == (2, 6)
    assert encoder_calls == [(2, 17, 32)]  # once, before the beams are expanded (16 patches + CLS)
    assert projection_calls == [
        (6, 17, 24)
    ]  # once: the cache then holds the vision layers' patch keys / values
    encoder_calls.clear()
    with torch.no_grad():
        model.generate(pixel_values, max_new_tokens=5, min_new_tokens=5, do_sample=False, use_cache=False)
    assert len(encoder_calls) == 1  # without a cache the encoder still runs once (its outputs are reused)


def test_generate_leaves_given_encoder_outputs_as_they_are():
    from transformers.modeling_outputs import BaseModelOutput

    model = make_model("dm-token")
    with torch.no_grad():
        features = model.encoder(pixel_values=images(2, seed=11)).last_hidden_state
        given = BaseModelOutput(last_hidden_state=features)
        beams = model.generate(encoder_outputs=given, max_new_tokens=4, num_beams=3, do_sample=False)
        assert given.last_hidden_state is features  # not expanded to the 6 beams in place
        assert torch.equal(
            beams, model.generate(images(2, seed=11), max_new_tokens=4, num_beams=3, do_sample=False)
        )


def test_cache_holds_the_patch_keys_and_values():
    model = make_model("dm-token")
    pixel_values, ids = images(2, seed=4), token_ids(2, 5, seed=4)
    with torch.no_grad():
        full = model(pixel_values=pixel_values, decoder_input_ids=ids).logits
        first = model(pixel_values=pixel_values, decoder_input_ids=ids[:, :3], use_cache=True)
        cross = first.cache.cross_attention_cache
        assert [tuple(cross.layers[k].keys.shape) for k in range(2)] == [(2, 2, 17, 8)] * 2
        encoder_outputs = (first.encoder_last_hidden_state,)
        step = model(encoder_outputs=encoder_outputs, decoder_input_ids=ids[:, 3:], cache=first.cache)
    assert_same_outputs(step.logits, full[:, 3:], "cached continuation")


def test_dm_token_reports_alpha_vision_and_alpha_text_per_token():
    model = make_model("dm-token", gates_open=False)
    pixel_values, ids = images(2), token_ids(2, 6)
    with torch.no_grad():
        weights = model(
            pixel_values=pixel_values, decoder_input_ids=ids, output_stream_weights=True
        ).stream_weights
        assert weights.shape == (2, 2, 6, 2)  # (points, batch, tokens, [semantic, vision])
        alpha = model.modality_weights(weights)
        assert torch.equal(alpha["vision"], torch.zeros(2, 2, 6))  # closed gates: the decoder alone
        for point in model.decoder.transformer.integration.values():
            point.blend.fill_(1.0)  # half open (tanh(1) = 0.76) at every unit
        alpha = model.modality_weights(
            model(pixel_values=pixel_values, decoder_input_ids=ids, output_stream_weights=True).stream_weights
        )
    torch.testing.assert_close(alpha["vision"] + alpha["text"], torch.ones(2, 2, 6))
    assert bool(((alpha["vision"] > 0) & (alpha["vision"] < 1)).all())
    assert alpha["vision"].std() > 0  # per token, not one number


def test_freeze_encoder_trains_everything_else():
    model = make_model("dm-token")
    model.freeze_encoder()
    model.train()
    assert not model.encoder.training and model.decoder.training
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    labels = token_ids(2, 5, seed=5)
    model(pixel_values=images(2), labels=labels).loss.backward()
    optimizer.step()
    moved = {n.split(".")[0] for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == {"decoder", "enc_to_dec_proj"}


def test_loss_matches_the_labels_convention():
    model = make_model("dm-token")
    labels = token_ids(2, 5, seed=6)
    labels[1, 3:] = -100
    out = model(pixel_values=images(2), labels=labels)
    shifted = torch.cat([torch.full((2, 1), BOS), labels[:, :-1].clamp_min(0)], 1)
    shifted[1, 4] = PAD  # -100 becomes the pad token
    logits = model(pixel_values=images(2), decoder_input_ids=shifted).logits
    expected = torch.nn.functional.cross_entropy(
        logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100
    )
    torch.testing.assert_close(out.loss, expected)


# ------------------------------------------------------------------------------- starting as the pretrained decoder
@pytest.fixture(scope="module")
def pretrained_parts(tmp_path_factory):
    torch.manual_seed(0)
    encoder_dir = tmp_path_factory.mktemp("vit")
    ViTModel(tiny_encoder_config()).save_pretrained(encoder_dir)
    decoder_dir = tmp_path_factory.mktemp("gpt2")
    gpt2 = GPT2Config(
        vocab_size=VOCAB, n_positions=32, n_embd=24, n_layer=2, n_head=2, n_inner=48, resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
    )  # fmt: skip
    GPT2LMHeadModel(gpt2).save_pretrained(decoder_dir)
    return str(encoder_dir), str(decoder_dir)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(decoder_integration_type="dm", decoder_alpha_granularity="token"),
        dict(decoder_integration_type="li", decoder_integration_layers="last"),
        dict(decoder_integration_type="concat"),
    ],
    ids=["dm-token", "li-last", "concat"],
)
def test_from_encoder_decoder_pretrained_starts_as_the_decoder(pretrained_parts, overrides):
    encoder_dir, decoder_dir = pretrained_parts
    model = MultiStreamVisionEncoderDecoder.from_encoder_decoder_pretrained(
        encoder_dir, decoder_dir, decoder_stream_hidden_size=16, decoder_stream_num_heads=2,
        decoder_stream_intermediate_size=32, **overrides,
    ).eval()  # fmt: skip
    gpt2 = GPT2LMHeadModel.from_pretrained(decoder_dir).eval()
    vit = ViTModel.from_pretrained(encoder_dir).eval()
    ids = torch.tensor([[PAD, PAD, BOS, 7, 8], [BOS, 9, 10, 11, 12]])
    mask = (torch.arange(5) >= torch.tensor([[2], [0]])).long()
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    pixel_values = images(2, seed=7)
    with torch.no_grad():
        out = model(pixel_values=pixel_values, decoder_input_ids=ids, decoder_attention_mask=mask)
        expected = gpt2(ids, attention_mask=mask, position_ids=positions).logits
        real = mask.bool()
        torch.testing.assert_close(out.logits[real], expected[real], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out.encoder_last_hidden_state, vit(pixel_values).last_hidden_state)
        ours = model.generate(pixel_values, max_new_tokens=6, do_sample=False)
        theirs = gpt2.generate(torch.full((2, 1), BOS), max_new_tokens=6, do_sample=False, pad_token_id=PAD)
    assert torch.equal(ours, theirs)
    assert model.config.decoder.streams == ["semantic", "vision"]


# ------------------------------------------------------------------------------------------- EfficientNet-Lite
def test_efficientnet_lite_encoder(tmp_path):
    encoder = EfficientNetLiteConfig(
        stem_channels=8, kernel_sizes=[3, 3], strides=[2, 2], expand_ratios=[1, 4],
        out_channels=[8, 16], num_block_repeats=[1, 2], hidden_size=48,
    )  # fmt: skip
    torch.manual_seed(0)
    model = open_gates(
        MultiStreamVisionEncoderDecoder(tiny_config(encoder=encoder, integration_type="dm"))
    ).eval()
    calls = []
    model.encoder.register_forward_hook(lambda m, a, out: calls.append(out.last_hidden_state.shape))
    pixel_values = images(2, seed=8)
    with torch.no_grad():
        out = model.generate(pixel_values, max_new_tokens=4, num_beams=2, do_sample=False)
        assert calls == [(2, 16, 48)] and out.shape[0] == 2  # 32 / 8 = 4 x 4 patches
        model.save_pretrained(tmp_path)
        loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
        assert torch.equal(loaded.generate(pixel_values, max_new_tokens=4, num_beams=2, do_sample=False), out)
    assert model.enc_to_dec_proj.in_features == 48


def test_auto_model_loads_the_composite(tmp_path):
    model = make_model("li-last")
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is MultiStreamVisionEncoderDecoder
    assert loaded.decoder.lm_head.weight is loaded.decoder.transformer.semantic.wte.weight  # still tied
    inputs = dict(pixel_values=images(1), decoder_input_ids=token_ids(1, 4))
    with torch.no_grad():
        assert_same_outputs(loaded(**inputs).logits, model(**inputs).logits, "AutoModel")


# ---------------------------------------------------------------------------------------- processor and pipeline
@pytest.fixture(scope="module")
def vision_processor(tiny_processor):
    image_processor = ViTImageProcessor(size={"height": IMAGE, "width": IMAGE})
    return MultiStreamVisionProcessor(image_processor, tiny_processor)


def pil_images(count: int, seed: int = 0):
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    return [
        Image.fromarray(torch.randint(0, 255, (40, 48, 3), generator=g).byte().numpy()) for _ in range(count)
    ]


def test_processor_outputs_and_round_trip(vision_processor, tmp_path):
    processor = vision_processor
    tokenizer = processor.tokenizer
    batch = processor(
        images=pil_images(2), text=["what color is it?", "how many?"], targets=["red", "two dogs"]
    )
    assert batch["pixel_values"].shape == (2, 3, IMAGE, IMAGE)
    ids, labels, mask = batch["decoder_input_ids"], batch["labels"], batch["decoder_attention_mask"]
    assert ids.shape == labels.shape == mask.shape and bool((ids[:, 0] == processor.bos_token_id).all())
    for row, (question, answer) in enumerate((("what color is it?", "red"), ("how many?", "two dogs"))):
        q = tokenizer(question, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"]
        n = 1 + len(q) + len(a)
        assert ids[row, :n].tolist() == [processor.bos_token_id, *q, *a] and mask[row, :n].all()
        assert labels[row, :n].tolist() == [-100] * len(q) + [*a, processor.eos_token_id]
        assert not mask[row, n:].any() and bool((labels[row, n:] == -100).all())  # right padding
    generation = processor(images=pil_images(2), text=["what color is it?", "how many?"])
    assert "labels" not in generation and generation["decoder_attention_mask"][:, -1].all()  # left padding
    assert not generation["decoder_attention_mask"][1, 0]
    processor.save_pretrained(tmp_path)
    for loaded in (
        MultiStreamVisionProcessor.from_pretrained(tmp_path),
        AutoProcessor.from_pretrained(tmp_path),
    ):
        assert type(loaded) is MultiStreamVisionProcessor
        again = loaded(
            images=pil_images(2), text=["what color is it?", "how many?"], targets=["red", "two dogs"]
        )
        for key in batch:
            assert torch.equal(again[key], batch[key]), key


def test_processor_batch_trains_and_pipeline_generates(vision_processor):
    from transformers import pipeline

    processor = vision_processor
    vocab = len(processor.tokenizer)
    torch.manual_seed(0)
    config = tiny_config(
        vocab_size=vocab, streams=["semantic", "phonetic", "morphological", "vision"],
        phonetic_vocab_size=processor.text_processor.stream_vocab_sizes["phonetic"],
        morph_vocab_size=processor.text_processor.stream_vocab_sizes["morphological"],
        phonetic_slot_size=processor.text_processor.slot_sizes["phonetic"],
        morph_slot_size=processor.text_processor.slot_sizes["morphological"],
        bos_token_id=processor.bos_token_id, eos_token_id=processor.eos_token_id, pad_token_id=processor.pad_token_id,
    )  # fmt: skip
    model = MultiStreamVisionEncoderDecoder(config)
    model.decoder.set_stream_tables(processor.text_processor.stream_tables)
    batch = processor(
        images=pil_images(2, seed=1), text=["what is it?", ""], targets=["a dog", "a cat on a mat"]
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    model.eval()
    pipe = pipeline("image-text-to-text", model=model, processor=processor)
    result = pipe(
        images=pil_images(1, seed=1)[0], text="", generate_kwargs=dict(max_new_tokens=6, do_sample=False)
    )
    expected = model.generate(**processor(images=pil_images(1, seed=1)), max_new_tokens=6, do_sample=False)
    assert result[0]["generated_text"] == processor.batch_decode(expected, skip_special_tokens=True)[0]


def test_a_full_clip_checkpoint_gives_its_vision_tower(tmp_path, pretrained_parts):
    from transformers import CLIPConfig, CLIPModel, CLIPVisionModel

    torch.manual_seed(0)
    clip = CLIPModel(
        CLIPConfig(
            text_config=dict(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                             num_attention_heads=2, max_position_embeddings=16),
            vision_config=dict(image_size=IMAGE, patch_size=8, hidden_size=32, intermediate_size=64,
                               num_hidden_layers=1, num_attention_heads=2),
            projection_dim=16,
        )
    ).eval()  # fmt: skip
    clip.save_pretrained(tmp_path)
    model = MultiStreamVisionEncoderDecoder.from_encoder_decoder_pretrained(
        str(tmp_path), pretrained_parts[1], decoder_stream_hidden_size=16, decoder_stream_num_heads=2
    ).eval()
    assert type(model.encoder) is CLIPVisionModel and model.config.encoder.model_type == "clip_vision_model"
    pixel_values = images(2, seed=9)
    with torch.no_grad():
        torch.testing.assert_close(
            model(pixel_values=pixel_values, decoder_input_ids=token_ids(2, 3)).encoder_last_hidden_state,
            clip.vision_model(pixel_values).last_hidden_state,
        )


def test_efficientnet_lite_checkpoint_loads_as_remote_code_without_msnn_hf(tmp_path):
    """The EfficientNet-Lite encoder's code travels with the checkpoint (sibling modules), like the decoder's."""
    import json
    import os
    import subprocess
    import sys
    import textwrap

    encoder = EfficientNetLiteConfig(
        stem_channels=8, kernel_sizes=[3], strides=[2], expand_ratios=[1], out_channels=[8],
        num_block_repeats=[1], hidden_size=16,
    )  # fmt: skip
    torch.manual_seed(0)
    model = open_gates(
        MultiStreamVisionEncoderDecoder(tiny_config(encoder=encoder, integration_type="li"))
    ).eval()
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "modeling_efficientnet_lite.py").is_file()
    inputs = dict(pixel_values=images(2, seed=10), decoder_input_ids=token_ids(2, 4))
    with torch.no_grad():
        torch.save({"inputs": inputs, "expected": model(**inputs).logits}, tmp_path / "expected.pt")
    script = textwrap.dedent(
        """
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "msnn_hf" or name.startswith("msnn_hf."):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import torch, transformers
        folder = sys.argv[1]
        model = transformers.AutoModelForImageTextToText.from_pretrained(folder + "/ckpt", trust_remote_code=True)
        saved = torch.load(folder + "/expected.pt")
        with torch.no_grad():
            out = model.eval()(**saved["inputs"])
        torch.testing.assert_close(out.logits, saved["expected"], atol=1e-5, rtol=1e-4)
        print("remote-ok", type(model.encoder).__name__, type(model).__module__.startswith("msnn_hf"))
        """
    )
    env = {
        **os.environ,
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "PYTHONPATH": "",
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote-ok EfficientNetLiteModel False" in result.stdout, result.stdout
    assert (
        json.loads((tmp_path / "ckpt" / "config.json").read_text())["encoder"]["model_type"]
        == "msnn_efficientnet_lite"
    )


def test_one_model_serves_concurrent_calls():
    """The vision stream's inputs travel as arguments, not as state on the module: threads sharing one model (a
    Space's request handlers) each get the output of their own image."""
    import threading

    model = make_model("dm-token").eval()
    ids = token_ids(1, 6)
    pixels = [images(1, seed=s) for s in range(4)]
    with torch.no_grad():
        expected = [model(pixel_values=p, decoder_input_ids=ids).logits for p in pixels]
    errors: list[str] = []

    def worker(index: int) -> None:
        for _ in range(15):
            with torch.no_grad():
                logits = model(pixel_values=pixels[index], decoder_input_ids=ids).logits
            if not torch.allclose(logits, expected[index], atol=1e-5):
                errors.append(f"thread {index} got another image's logits")
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert not torch.allclose(expected[0], expected[1])  # the images do differ in the output


def test_trainer_scales_the_loss_itself(tmp_path):
    """The model's loss is a batch mean that ignores `num_items_in_batch`: the Trainer must not assume otherwise
    (it would skip dividing by the gradient-accumulation steps / multiply by the processes)."""
    from transformers import Trainer, TrainingArguments

    trainer = Trainer(
        model=make_model("dm-token"),
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True),
    )
    assert trainer.model_accepts_loss_kwargs is False
