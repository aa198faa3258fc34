"""The vision + language experiment tools: the caption tokenizer, `--image_features_file` / `--blind` of
run_captioning.py, the α analysis (word classes, question types, α per generated word) and the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import ViTConfig, ViTImageProcessor, ViTModel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "trainers"))
sys.path.insert(0, str(REPO / "trainers" / "experiments"))

import report_vl  # noqa: E402
import run_captioning  # noqa: E402
import vl_alpha  # noqa: E402
import vl_prepare  # noqa: E402

from msnn_hf.configuration_multistream_gpt2 import MultiStreamGPT2Config  # noqa: E402
from msnn_hf.configuration_multistream_vision import MultiStreamVisionEncoderDecoderConfig  # noqa: E402
from msnn_hf.modeling_multistream_vision import (  # noqa: E402
    MultiStreamVisionEncoderDecoder,
    MultiStreamVisionGPT2LMHeadModel,
)
from msnn_hf.processing_multistream_vision import MultiStreamVisionProcessor  # noqa: E402

LINES = [
    "a black dog is running on the grass .",
    "two children are playing in the water .",
    "a man in a red shirt is climbing a rock .",
    "a brown dog runs through the snow .",
    "three people are sitting on a bench .",
] * 4


@pytest.fixture(scope="module")
def tokenizer():
    return vl_prepare.build_tokenizer(LINES, vocab_size=300)


def test_tokenizer_lowercases_and_round_trips(tokenizer):
    ids = tokenizer("A Black DOG is running")["input_ids"]
    assert tokenizer.decode(ids).strip() == "a black dog is running"
    assert (
        tokenizer.bos_token_id == tokenizer.eos_token_id and tokenizer.pad_token_id != tokenizer.eos_token_id
    )


def test_word_classes_and_question_types():
    assert [vl_alpha.word_class(w) for w in ("the", "red", "three", "running", "dog", "building", "7", ".")] == [
        "function", "colour", "number", "verb (-ing)", "other content", "other content", "number", "punctuation",
    ]  # fmt: skip
    assert vl_alpha.question_type("What color is the chair ?") == "what color"
    assert vl_alpha.question_type("how many lamps are there ?") == "how many"
    assert vl_alpha.question_type("what is on the table ?") == "what is on"
    assert vl_alpha.question_type("what is behind the sofa ?") == "other what is"
    assert vl_alpha.question_type("which object is red ?") == "other"


def test_words_of_groups_pieces_into_words(tokenizer):
    ids = tokenizer("a climbing dogs")["input_ids"]
    words = vl_alpha.words_of(tokenizer, ids)
    assert [w for _, w in words] == ["a", "climbing", "dogs"]
    assert words[0][0] == 0 and all(a < b for (a, _), (b, _) in zip(words, words[1:]))


@pytest.fixture(scope="module")
def vision_model(tokenizer, tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vit")
    vit = ViTModel(
        ViTConfig(image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=32)
    )  # fmt: skip
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    decoder = MultiStreamVisionGPT2LMHeadModel(
        MultiStreamGPT2Config(
            vocab_size=len(tokenizer), n_positions=48, n_embd=32, n_layer=2, n_head=2,
            streams=["semantic", "vision"], integration_type="dm", alpha_granularity="token",
            stream_hidden_size=16, stream_num_heads=2, stream_intermediate_size=32,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )  # fmt: skip
    config = MultiStreamVisionEncoderDecoderConfig.from_encoder_decoder_configs(
        vit.config, decoder.config, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model = MultiStreamVisionEncoderDecoder(config=config, encoder=vit, decoder=decoder).eval()
    from transformers import AutoImageProcessor

    processor = MultiStreamVisionProcessor(AutoImageProcessor.from_pretrained(folder), tokenizer)
    return model, processor


def test_alpha_rows_one_entry_per_word_and_one_end(vision_model):
    model, processor = vision_model
    # open the gates so that α depends on the inputs (a fresh model starts with them closed)
    for name, p in model.named_parameters():
        if name.endswith("blend"):
            torch.nn.init.constant_(p, 1.0)
    features = {"x.jpg": torch.randn(17, 24), "y.jpg": torch.randn(17, 24)}
    rows = [
        {"image": "x.jpg", "caption": "a black dog is running"},
        {"image": "y.jpg", "caption": "two children"},
    ]
    found = vl_alpha.alpha_rows(model, processor, features, rows, None, "caption")
    words = [(row, word) for row, word, _, _ in found]
    assert words == [(0, "a"), (0, "black"), (0, "dog"), (0, "is"), (0, "running"), (0, None),
                     (1, "two"), (1, "children"), (1, None)]  # fmt: skip
    share = torch.tensor([sh for _, _, sh, _ in found])
    mixing = torch.tensor([mx for _, _, _, mx in found])
    assert share.shape == mixing.shape == (9, 2)  # 2 integration points
    assert ((mixing > 0) & (mixing < 1)).all()  # DM-token's softmax weight of the vision stream
    # the share in z is the mixing weight scaled by the gate's mean opening, tanh(1) at every channel here
    assert torch.allclose(share, torch.tanh(torch.tensor(1.0)) * mixing, atol=1e-5)
    # read where the word is predicted: another image gives other weights
    other = vl_alpha.alpha_rows(model, processor, {"x.jpg": features["y.jpg"]}, rows[:1], None, "caption")
    assert not torch.allclose(mixing[:6], torch.tensor([mx for _, _, _, mx in other]))
    summary = vl_alpha.summarise([(w, sh, mx) for _, w, sh, mx in found])
    assert summary["count"] == 9 and 0 < summary["mixing"]["mean"] < 1
    assert len(summary["share"]["mean_per_point"]) == 2
    assert [g["mean_tanh"] for g in vl_alpha.gates(model)] == pytest.approx([0.7616, 0.7616], abs=1e-4)
    assert not any("mix" in vars(m) for m in model.modules())  # the capture is undone


def test_feature_cache_preloaded_and_blind(vision_model):
    model, processor = vision_model
    preloaded = {"a.jpg": torch.randn(17, 24), "b.jpg": torch.randn(17, 24)}
    cache = run_captioning.FeatureCache(model, processor, preloaded)
    assert torch.equal(cache(["b.jpg", "a.jpg"])[0], preloaded["b.jpg"]) and cache.computed == 0
    assert cache.preloaded == 2
    blind = run_captioning.FeatureCache(model, processor, preloaded, blind=True)
    out = blind(["a.jpg", "b.jpg"])
    assert out.shape == (2, 17, 24) and not out.any()


def test_image_features_file_is_checked_against_the_encoder(vision_model, tmp_path):
    from msnn_hf.features_vl import save_image_features

    model, _ = vision_model
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    save_image_features(good, ["a.jpg"], torch.randn(1, 17, 24))
    save_image_features(bad, ["a.jpg"], torch.randn(1, 17, 1280))
    margs = run_captioning.ModelArguments(image_features_file=str(good), cache_encoder_features=True)
    assert set(run_captioning.preloaded_features(margs, model)) == {"a.jpg"}
    margs.image_features_file = str(bad)
    with pytest.raises(run_captioning.UsageError, match="outputs width 24"):
        run_captioning.preloaded_features(margs, model)
    margs.image_features_file = str(tmp_path / "missing.safetensors")
    with pytest.raises(run_captioning.UsageError, match="no such file"):
        run_captioning.preloaded_features(margs, model)


def test_blind_and_features_file_need_the_cache():
    with pytest.raises(run_captioning.UsageError, match="--blind needs --cache_encoder_features"):
        run_captioning.main(["--tokenizer_name", "x", "--output_dir", "/tmp/never", "--blind"])
    with pytest.raises(run_captioning.UsageError, match="--image_features_file needs"):
        run_captioning.main(
            ["--tokenizer_name", "x", "--output_dir", "/tmp/never", "--image_features_file", "f"]
        )


def record(run: str, seed: int, cider: float, dataset: str = "flickr8k") -> dict:
    metrics = {f"test_{m}": cider / 2 for m in report_vl.CAPTION_METRICS}
    metrics.update(test_cider_d=cider, validation_cider_d=cider)
    if dataset == "daquar":
        metrics = {"test_exact_match": cider, "test_answer_f1": cider, "validation_exact_match": cider}
    captions = [{"image_id": f"i{k}", "caption": f"a dog {k % 3}"} for k in range(125)]
    return {
        "experiment": "vl", "run": run, "seed": seed, "metrics": metrics, "generated": {"test": captions},
        "training_args": {"max_steps": 600, "per_device_train_batch_size": 32, "learning_rate": 5e-4,
                          "generation_num_beams": 3},
    }  # fmt: skip


def test_report_states_the_comparison(tmp_path):
    results, docs = tmp_path / "results", tmp_path / "docs"
    results.mkdir()
    counts = {"ved": 1000, "li": 1010, "dm-token": 1015, "blind": 1000, "half-dm-token": 500}
    (results / "parameters.json").write_text(json.dumps({"trainable_parameters": counts}))
    for seed, (a, c) in zip((42, 43, 44), ((0.30, 0.40), (0.31, 0.41), (0.32, 0.42))):
        (results / f"ved-seed{seed}.json").write_text(json.dumps(record("ved", seed, a)))
        (results / f"dm-token-seed{seed}.json").write_text(json.dumps(record("dm-token", seed, c)))
        (results / f"li-seed{seed}.json").write_text(
            json.dumps(record("li", seed, a - 0.005 + 0.01 * (seed == 44)))
        )
    (results / "vqa-ved-seed42.json").write_text(json.dumps(record("vqa-ved", 42, 0.2, "daquar")))
    text = report_vl.build(results, docs, None)
    assert "| (a) VisionEncoderDecoderModel" in text and "0.310 ± 0.010" in text
    dm_line = next(line for line in text.splitlines() if line.startswith("* (c)"))
    assert "above (a)" in dm_line and "beyond the seed spread" in dm_line
    li_line = next(line for line in text.splitlines() if line.startswith("* (b)"))
    assert "within the seed spread" in li_line
    assert "Planned runs without a record" in text and "blind-seed42" in text
    assert "| (a) VisionEncoderDecoderModel, cross-attention in every block | 1 | 0.200" in text


def test_zero_image_evaluation_command_and_report_column(tmp_path):
    import vl

    args = vl.parse_args(["--results_dir", str(tmp_path / "r"), "--outputs_dir", str(tmp_path / "o")])
    inputs = {"tokenizer": "tok", "features": "f.safetensors"}
    cmd = vl.ablation_command(args, "ved", 43, inputs)
    assert cmd[cmd.index("--architecture") + 1] == "ved" and "--blind" in cmd and "--do_train" not in cmd
    assert cmd[cmd.index("--model_name_or_path") + 1] == str(vl.output_dir(args, "ved", 43))
    assert cmd[cmd.index("--results_file") + 1] == str(vl.ablation_path(args, "ved", 43))
    vqa = vl.ablation_command(args, "vqa-dm-token", 42, inputs)
    assert "--architecture" not in vqa and vqa[vqa.index("--dataset") + 1] == "daquar"
    # the report shows the zero-image score beside the real one
    results = tmp_path / "results"
    results.mkdir()
    (results / "parameters.json").write_text(json.dumps({"trainable_parameters": {"ved": 1000}}))
    (results / "ved-seed42.json").write_text(json.dumps(record("ved", 42, 0.3)))
    zero = {"experiment": "vl-zero-image", "run": "ved", "seed": 42, "metrics": {"test_cider_d": 0.05}}
    (results / "zero-image_ved-seed42.json").write_text(json.dumps(zero))
    text = report_vl.build(results, tmp_path / "docs", None)
    line = next(x for x in text.splitlines() if x.startswith("| (a)"))
    assert line.endswith("| 0.050 (1) |")
