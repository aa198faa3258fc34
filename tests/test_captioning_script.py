"""Smoke test of `trainers/run_captioning.py` on real Flickr8k photos (a tiny ViT, a tiny GPT-2, a few steps)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, ViTConfig, ViTImageProcessor, ViTModel

from msnn_hf.data import default_data_dir

TRAINERS = Path(__file__).resolve().parents[1] / "trainers"
sys.path.insert(0, str(TRAINERS))

import run_captioning  # noqa: E402

FLICKR = default_data_dir() / "captions-flickr8k"
pytestmark = pytest.mark.skipif(not (FLICKR / "captions.jsonl").is_file(), reason="no Flickr8k subset here")


@pytest.fixture(scope="module")
def parts(tmp_path_factory, tiny_tokenizer):
    torch.manual_seed(0)
    vit = tmp_path_factory.mktemp("vit")
    ViTModel(
        ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=64)
    ).save_pretrained(vit)  # fmt: skip
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(vit)
    gpt2 = tmp_path_factory.mktemp("gpt2")
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tiny_tokenizer), n_positions=32, n_embd=32, n_layer=2, n_head=2)
    ).save_pretrained(gpt2)
    tiny_tokenizer.save_pretrained(gpt2)
    return str(vit), str(gpt2)


def arguments(parts, output_dir, *extra):
    vit, gpt2 = parts
    return [
        "--encoder_name_or_path", vit, "--decoder_name_or_path", gpt2, "--data_dir", str(FLICKR),
        "--stream_hidden_size", "16", "--stream_num_heads", "2", "--stream_intermediate_size", "32",
        "--max_target_length", "20", "--max_train_images", "3", "--max_eval_images", "2",
        "--output_dir", str(output_dir), "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "2",
        "--learning_rate", "1e-3", "--do_train", "--do_eval", "--predict_with_generate",
        "--generation_num_beams", "2", "--generation_max_length", "8", "--report_to", "none", "--use_cpu",
        "--save_steps", "2", "--logging_steps", "1", *extra,
    ]  # fmt: skip


def test_trains_with_cached_features_scores_and_is_resumable(parts, tmp_path):
    args = arguments(
        parts, tmp_path / "run", "--freeze_encoder", "--cache_encoder_features", "--max_steps", "3"
    )
    record = run_captioning.main(args)
    assert record["global_steps"] == 3 and record["task"] == "captioning"
    assert record["encoder_features_computed"] == 3 + 2  # every image once: 3 training, 2 validation
    metrics = record["metrics"]
    for key in (
        "validation_bleu_4",
        "validation_rouge_l",
        "validation_cider_d",
        "validation_loss",
        "train_loss",
    ):
        assert key in metrics and metrics[key] is not None, key
    assert len(record["generated"]["validation"]) == 2
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["metrics"] == metrics and saved["config"]["decoder"]["streams"] == ["semantic", "vision"]
    assert (tmp_path / "run" / "processor_config.json").is_file()
    assert run_captioning.main(args) == saved  # the same finished command: nothing trained, nothing rewritten
    with pytest.raises(run_captioning.UsageError, match="freeze_encoder"):
        run_captioning.main(
            arguments(parts, tmp_path / "other", "--cache_encoder_features", "--max_steps", "1")
        )


def test_streams_the_training_split_through_the_encoder(parts, tmp_path):
    args = arguments(parts, tmp_path / "stream", "--streaming", "--max_steps", "2", "--eval_splits", "test")
    record = run_captioning.main(args)
    assert record["global_steps"] == 2 and record["encoder_features_computed"] is None
    assert "test_cider_d" in record["metrics"] and len(record["generated"]["test"]) == 2
    assert record["config"]["decoder"]["integration_type"] == "dm"


DAQUAR = default_data_dir() / "vqa-daquar"


@pytest.mark.skipif(not (DAQUAR / "qa.jsonl").is_file(), reason="no DAQUAR sample here")
def test_vqa_on_daquar_answers_after_the_question(parts, tmp_path):
    args = arguments(parts, tmp_path / "vqa", "--freeze_encoder", "--cache_encoder_features", "--max_steps", "2",
                     "--eval_splits", "test")  # fmt: skip
    args[args.index("--data_dir") + 1] = str(DAQUAR)
    record = run_captioning.main([*args, "--dataset", "daquar"])
    metrics = record["metrics"]
    assert record["global_steps"] == 2 and {"test_exact_match", "test_answer_f1", "test_loss"} <= set(metrics)
    assert 0.0 <= metrics["test_exact_match"] <= 1.0 and metrics["test_num_examples"] == 2
    rows = record["generated"]["test"]
    assert len(rows) == 2 and all(row["question"].endswith("?") for row in rows)
    assert all(
        not row["answer"].startswith(row["question"][:10]) for row in rows
    )  # the question is not echoed


def test_the_vision_encoder_decoder_baseline_runs_through_the_same_script(parts, tmp_path):
    args = arguments(parts, tmp_path / "ved", "--architecture", "ved", "--freeze_encoder", "--cache_encoder_features",
                     "--max_steps", "2")  # fmt: skip
    record = run_captioning.main(args)
    assert record["config"]["model_type"] == "vision-encoder-decoder" and record["global_steps"] == 2
    assert "validation_cider_d" in record["metrics"] and len(record["generated"]["validation"]) == 2
    with pytest.raises(run_captioning.UsageError, match="cache_encoder_features"):
        run_captioning.main(arguments(parts, tmp_path / "ved2", "--architecture", "ved", "--freeze_encoder"))
