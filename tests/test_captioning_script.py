"""Smoke test of `trainers/run_captioning.py` on real Flickr8k photos (a tiny ViT, a tiny GPT-2, a few steps).

Slow: two DDP processes (`accelerate launch`, gloo on CPU) train and evaluate through the script.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, ViTConfig, ViTImageProcessor, ViTModel

from msnn_hf.data import default_data_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAINERS = REPO_ROOT / "trainers"
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


# ------------------------------------------------------------------------------------------- two DDP processes
DDP_IMAGES, DDP_EVAL_IMAGES, DDP_BATCH = 8, 5, 4  # 40 captions: 5 steps of 2 x 4 per pass; 5 images: uneven


@pytest.fixture(scope="module")
def caption_bpe(tmp_path_factory) -> tuple[str, int]:
    """A byte-level BPE (as the experiments use) trained on the captions of the DDP test's training images."""
    from train_bpe_tokenizer import train_tokenizer

    from msnn_hf.data_vl import load_flickr8k

    rows = load_flickr8k(data_dir=FLICKR, split="train").select(range(DDP_IMAGES))
    tokenizer = train_tokenizer([c for captions in rows["captions"] for c in captions], vocab_size=512)
    folder = tmp_path_factory.mktemp("caption_bpe")
    tokenizer.save_pretrained(folder)
    return str(folder), len(tokenizer)


def ddp_arguments(vit: str, tokenizer: str, output_dir: Path, *extra: str) -> list[str]:
    """A GPT-2 decoder from scratch over the BPE, gates open from the start (`mix`: the image matters at once),
    the frozen ViT's features cached; evaluation one image per process and step, so that the five validation
    images leave the last step uneven (accelerate repeats an image to fill it); greedy captions (two beams of
    this tiny model mostly end at once: empty captions)."""
    return [
        "--encoder_name_or_path", vit, "--tokenizer_name", tokenizer, "--data_dir", str(FLICKR),
        "--n_embd", "32", "--n_layer", "2", "--n_head", "2", "--n_positions", "48", "--integration_init", "mix",
        "--stream_hidden_size", "16", "--stream_num_heads", "2", "--stream_intermediate_size", "32",
        "--freeze_encoder", "--cache_encoder_features", "--max_target_length", "32",
        "--max_train_images", str(DDP_IMAGES), "--max_eval_images", str(DDP_EVAL_IMAGES),
        "--output_dir", str(output_dir), "--per_device_train_batch_size", str(DDP_BATCH),
        "--per_device_eval_batch_size", "1", "--learning_rate", "3e-3", "--do_eval", "--predict_with_generate",
        "--generation_num_beams", "1", "--generation_max_length", "12", "--report_to", "none", "--use_cpu",
        "--logging_steps", "1", "--seed", "0", *extra,
    ]  # fmt: skip


def accelerate_launch(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "the accelerate CLI is part of the test environment"
    # as in test_classification: torchrun-style DDP on CPU is `--multi_gpu` + the script's `--use_cpu` (gloo)
    launcher = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launcher += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    path = os.pathsep.join(p for p in (str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    return subprocess.run(
        [*launcher, str(TRAINERS / "run_captioning.py"), *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("streaming", [False, True], ids=["dataset", "stream"])
def test_accelerate_launch_two_cpu_processes(parts, caption_bpe, tmp_path, streaming):
    """Two DDP processes train one captioner and evaluate it by generation, through the script.

    Deterministic checks (a seeded run): the script sees world size 2; the two processes split the training
    captions (a pass over the 40 captions takes 5 steps of 2 x 4, not 10: read as a map-style dataset or as a
    stream); the loss starts at chance (ln of the vocabulary: a decoder from scratch) and falls; the main process
    alone writes results.json; the gathered captions are one per validation image, none repeated or missing: the
    same captions and the same loss as one process evaluating the saved model on its own (the mean of five
    per-image losses: a repeated or missing image changes it). After 30 steps this tiny model writes much the
    same caption for every image, so the order of the gathered captions is accelerate's (whole batches dealt
    to the processes in turn and gathered back in turn), not something these captions can show."""
    vit, _ = parts
    tokenizer, vocab = caption_bpe
    out, steps = tmp_path / "ddp", 30
    extra = ["--do_train", "--max_steps", str(steps), "--save_strategy", "steps", "--save_steps", str(steps)]
    if streaming:
        extra.append("--streaming")
    result = accelerate_launch(ddp_arguments(vit, tokenizer, out, *extra))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((out / "results.json").read_text())
    assert record["world_size"] == 2 and record["global_steps"] == steps
    wrote = f"wrote {out / 'results.json'}"
    assert (result.stdout + result.stderr).count(wrote) == 1  # the main process writes it, rank 1 does not

    log = json.loads((out / f"checkpoint-{steps}" / "trainer_state.json").read_text())["log_history"]
    losses, epochs = [h["loss"] for h in log if "loss" in h], [h["epoch"] for h in log if "loss" in h]
    assert len(losses) == steps
    assert int(epochs[4 - 1]) == 0 and int(epochs[6 - 1]) == 1, epochs  # step 6 starts the second pass
    assert losses[0] == pytest.approx(math.log(vocab), abs=0.1), losses
    assert sum(losses[-5:]) / 5 < losses[0] - 0.8, losses

    generated = record["generated"]["validation"]
    assert len(generated) == DDP_EVAL_IMAGES and record["metrics"]["validation_cider_d"] is not None
    alone = ["--model_name_or_path", str(out), "--do_train", "False"]  # the saved model, one process
    single = run_captioning.main(ddp_arguments(vit, tokenizer, tmp_path / "single", *alone))
    assert single["world_size"] == 1
    assert [g["image_id"] for g in generated] == [g["image_id"] for g in single["generated"]["validation"]]
    assert generated == single["generated"]["validation"]
    for key in ("validation_loss", "validation_bleu_1", "validation_rouge_l", "validation_cider_d"):
        assert record["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-5), key
