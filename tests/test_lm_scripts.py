"""Smoke tests of the LM scripts (tiny configs, a few steps) and of the word-level perplexity arithmetic."""

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
from torch.nn import functional as F

TRAINERS = Path(__file__).resolve().parents[1] / "trainers"
sys.path.insert(0, str(TRAINERS))

import lm_utils  # noqa: E402
import run_clm  # noqa: E402
import run_mlm  # noqa: E402
import train_bpe_tokenizer  # noqa: E402

from msnn_hf.configuration_multistream_bert import MultiStreamBertConfig  # noqa: E402
from msnn_hf.configuration_multistream_gpt2 import MultiStreamGPT2Config  # noqa: E402
from msnn_hf.modeling_multistream_bert import MultiStreamBertForMaskedLM  # noqa: E402
from msnn_hf.modeling_multistream_gpt2 import MultiStreamGPT2LMHeadModel  # noqa: E402

LINES = [
    "the cat sat on the mat",
    "a dog ran after the cat",
    "",
    "the N dogs <unk> quickly",
    "mr. smith said the market fell",
] * 8


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    """A byte-level BPE (the experiments' tokenizer type) trained on LINES, with its processor."""
    out = tmp_path_factory.mktemp("bpe")
    train = out / "train.txt"
    train.write_text("\n".join(LINES) + "\n")
    train_bpe_tokenizer.main(["--train_file", str(train), "--output_dir", str(out), "--vocab_size", "300",
                              "--min_frequency", "1", "--morph_vocab_size", "64"])  # fmt: skip
    return out


def test_bad_text_files_are_named_with_their_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"a fine line\nna\xefve\n")
    with pytest.raises(ValueError, match=r"Text file .*train\.txt, line 2: not UTF-8 \(byte 0xef"):
        lm_utils.read_lines(path)
    path.write_text("\n\n")
    with pytest.raises(ValueError, match=r"train\.txt holds no text"):
        lm_utils.read_lines(path)
    path.write_text("one\r\n\ntwo")
    assert lm_utils.read_lines(path) == ["one", "", "two"]
    proc = subprocess.run(
        [sys.executable, str(TRAINERS / "run_clm.py"), "--tokenizer_name", "x", "--dataset", "",
         "--train_file", str(tmp_path / "missing.txt"), "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert (
        proc.stderr.strip().splitlines()[-1]
        == f"run_clm.py: error: Text file {tmp_path / 'missing.txt'} does not exist"
    )


def test_word_level_perplexity_matches_hand_computation(bpe):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bpe / "tokenizer")
    torch.manual_seed(0)
    config = MultiStreamGPT2Config(
        vocab_size=len(tok), n_positions=16, n_embd=16, n_layer=1, n_head=2, streams=["semantic"],
        integration_type="none", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    model = MultiStreamGPT2LMHeadModel(config).eval()
    lines = ["the cat sat", "", "a dog <unk>"]
    block = 4
    result = lm_utils.word_level_perplexity(model, tok, lines, block_size=block, batch_size=3)

    # by hand: stream = [eos] + tokens(line) + [eos] per line; token j (j >= 1) is scored in window (j - 1) // block
    stream = [tok.eos_token_id]
    for line in lines:
        stream += tok(line, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    total = 0.0
    with torch.no_grad():
        for j in range(1, len(stream)):
            start = (j - 1) // block * block
            context = torch.tensor([stream[start:j]])
            log_probs = F.log_softmax(model(context).logits[0, -1], dim=-1)
            total -= float(log_probs[stream[j]])
    assert result.words == (3 + 1) + (0 + 1) + (3 + 1)
    assert result.scored_tokens == len(stream) - 1
    assert result.total_nll == pytest.approx(total, rel=1e-5)
    assert result.word_perplexity == pytest.approx(math.exp(total / 9), rel=1e-5)
    assert result.token_perplexity == pytest.approx(math.exp(total / (len(stream) - 1)), rel=1e-5)
    assert result.words < result.scored_tokens  # byte-level BPE: words split into several tokens


def test_run_clm_smoke_and_results_json(bpe, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for split, lines in (("train", LINES), ("validation", LINES[:5]), ("test", LINES[5:10])):
        (data / f"{split}.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    record = run_clm.main([
        "--processor_name", str(bpe / "processor"), "--dataset", "", "--train_file", str(data / "train.txt"),
        "--validation_file", str(data / "validation.txt"), "--test_file", str(data / "test.txt"),
        "--integration_type", "dm", "--integration_layers", "all", "--n_embd", "16", "--n_layer", "2",
        "--n_head", "2", "--n_positions", "32", "--stream_hidden_size", "8", "--stream_num_heads", "2",
        "--stream_intermediate_size", "16", "--block_size", "16", "--per_device_train_batch_size", "2",
        "--max_steps", "3", "--output_dir", str(out), "--do_train", "--do_eval", "--report_to", "none",
        "--save_strategy", "no", "--use_cpu", "true", "--disable_tqdm", "true", "--gate_lr", "0.5",
    ])  # fmt: skip
    saved = json.loads((out / "results.json").read_text())
    assert saved["num_parameters"] == record["num_parameters"] > 0
    # --gate_lr: the gates (closed at the start) open at their own rate: one per integration point, all moved
    assert len(saved["gate_openness"]) == 2 and min(saved["gate_openness"]) > 0.1
    assert saved["model_args"]["gate_lr"] == 0.5
    assert saved["global_steps"] == 3 and saved["tokens_trained"] == 3 * 2 * 16
    assert saved["config"]["integration_type"] == "dm" and saved["git_commit"]
    m = saved["metrics"]
    test_lines = LINES[5:10]
    assert m["test_words"] == sum(len(line.split()) + 1 for line in test_lines)
    assert m["test_word_perplexity"] == pytest.approx(math.exp(m["test_total_nll"] / m["test_words"]))
    assert m["test_token_perplexity"] == pytest.approx(
        math.exp(m["test_total_nll"] / m["test_scored_tokens"])
    )
    assert "validation_word_perplexity" in m and "train_loss" in m
    assert (out / "model.safetensors").exists() and (out / "stream_tables.safetensors").exists()
    loaded = MultiStreamGPT2LMHeadModel.from_pretrained(out)
    assert loaded.config.integration_type == "dm"


def test_blank_streams_control_keeps_the_architecture_and_drops_the_stream_content(bpe):
    """`--blank_streams` (the `dm-A-blank` control): same config and parameters as the real model, stream tables
    all padding (the streams see positions only); refused where it cannot mean anything."""
    from msnn_hf.processing_multistream import MultiStreamProcessor

    processor = MultiStreamProcessor.from_pretrained(bpe / "processor")
    common = ["--integration_type", "dm", "--integration_layers", "last", "--n_embd", "16", "--n_layer", "2",
              "--n_head", "2", "--n_positions", "32", "--stream_hidden_size", "8", "--stream_num_heads", "2",
              "--stream_intermediate_size", "16"]  # fmt: skip

    def build(extra):
        parser = run_clm.HfArgumentParser(run_clm.ModelArguments)
        (margs,) = parser.parse_args_into_dataclasses(common + extra)
        torch.manual_seed(0)
        return run_clm.build_model(margs, processor, processor.tokenizer)

    real, blank = build([]), build(["--blank_streams", "true"])
    assert blank.config.to_dict() == real.config.to_dict()
    assert lm_utils.count_parameters(blank) == lm_utils.count_parameters(real)
    tables = blank.transformer.stream_tables
    assert not tables.phonetic.any() and not tables.morphological.any()
    assert real.transformer.stream_tables.phonetic.any()
    ids = processor.tokenizer("the cat sat on the mat", return_tensors="pt")["input_ids"]
    with torch.no_grad():  # the streams still run: the same model, only their input carries no unit content
        assert torch.isfinite(blank(ids).logits).all()
    with pytest.raises(ValueError, match="non-semantic streams"):
        build(["--blank_streams", "true", "--streams", "semantic", "--integration_type", "none"])
    with pytest.raises(ValueError, match="loaded checkpoint"):
        build(["--blank_streams", "true", "--model_name_or_path", str(bpe)])


def test_run_clm_resumes_an_interrupted_run_to_the_same_weights(bpe, tmp_path):
    """A run whose output folder holds a mid-way checkpoint continues from it (no flag needed) and ends with the
    weights of the uninterrupted run; resuming with another budget is refused."""
    from safetensors.torch import load_file

    data = tmp_path / "train.txt"
    data.write_text("\n".join(LINES) + "\n")

    def argv(out, max_steps=4):
        return [
            "--processor_name", str(bpe / "processor"), "--dataset", "", "--train_file", str(data),
            "--integration_type", "li", "--integration_layers", "all", "--n_embd", "16", "--n_layer", "2",
            "--n_head", "2", "--n_positions", "32", "--stream_hidden_size", "8", "--stream_num_heads", "2",
            "--stream_intermediate_size", "16", "--block_size", "16", "--per_device_train_batch_size", "2",
            "--max_steps", str(max_steps), "--output_dir", str(out), "--do_train", "--report_to", "none",
            "--save_strategy", "steps", "--save_steps", "2", "--save_total_limit", "2", "--use_cpu", "true",
            "--disable_tqdm", "true", "--seed", "3",
        ]  # fmt: skip

    full = tmp_path / "full"
    record = run_clm.main(argv(full))
    assert record["resumed_from"] is None and record["steps_before_resume"] == 0
    assert sorted(p.name for p in full.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    # "interrupted" after step 2: only the step-2 checkpoint is there
    cut = tmp_path / "cut"
    shutil.copytree(full / "checkpoint-2", cut / "checkpoint-2")
    shutil.copy(full / "run_settings.json", cut)
    with pytest.raises(ValueError, match=r"training.max_steps: 4 -> 6.*delete the folder"):
        run_clm.main(argv(cut, max_steps=6))
    resumed = run_clm.main(argv(cut))
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["steps_before_resume"] == 2
    assert resumed["global_steps"] == 4 and resumed["tokens_trained"] == record["tokens_trained"]
    a, b = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_run_clm_rerun_of_a_finished_run_trains_nothing_and_eval_only_keeps_its_record(bpe, tmp_path):
    """The same command again is a no-op (no fifth step, checkpoint-4 stays); a run killed after its last
    checkpoint is evaluated, not trained further; `--do_train False` never replaces the trained run's record."""
    data = tmp_path / "train.txt"
    data.write_text("\n".join(LINES) + "\n")
    out = tmp_path / "run"
    argv = [
        "--processor_name", str(bpe / "processor"), "--dataset", "", "--train_file", str(data),
        "--integration_type", "li", "--n_embd", "16", "--n_layer", "2", "--n_head", "2", "--n_positions", "32",
        "--stream_hidden_size", "8", "--stream_num_heads", "2", "--stream_intermediate_size", "16",
        "--block_size", "16", "--per_device_train_batch_size", "2", "--max_steps", "4", "--output_dir", str(out),
        "--do_train", "--report_to", "none", "--save_strategy", "steps", "--save_steps", "2",
        "--save_total_limit", "2", "--use_cpu", "true", "--disable_tqdm", "true", "--seed", "3",
    ]  # fmt: skip
    first = run_clm.main(argv)
    files = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    again = run_clm.main(argv)
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == files
    assert again["global_steps"] == 4 and again["metrics"] == json.loads(json.dumps(first["metrics"]))
    with pytest.raises(ValueError, match=r"results.json holds the record of a trained run"):
        run_clm.main([*argv, "--do_train", "False", "--model_name_or_path", str(out)])
    assert json.loads((out / "results.json").read_text())["global_steps"] == 4
    (out / "results.json").rename(tmp_path / "results.json")
    with pytest.raises(ValueError, match=r"holds a finished run, but its record .*results.json is gone"):
        run_clm.main(argv)
    (tmp_path / "results.json").rename(out / "results.json")
    # killed after checkpoint-4 was saved, before the final save and record
    for name in ("run_finished.json", "results.json", "model.safetensors"):
        (out / name).unlink()
    restored = run_clm.main(argv)
    assert restored["global_steps"] == 4 and restored["resumed_from"].endswith("checkpoint-4")
    assert json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4
    assert (out / "checkpoint-2").is_dir() and (out / "model.safetensors").is_file()


def tiny_bert_config(processor, **overrides) -> MultiStreamBertConfig:
    values = dict(
        vocab_size=len(processor.tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, stream_hidden_size=8, stream_num_heads=2, stream_intermediate_size=16,
        stream_dropout=0.0, phonetic_vocab_size=processor.stream_vocab_sizes["phonetic"],
        morph_vocab_size=processor.stream_vocab_sizes["morphological"],
        phonetic_slot_size=processor.slot_sizes["phonetic"], morph_slot_size=processor.slot_sizes["morphological"],
    )  # fmt: skip
    values.update(overrides)
    return MultiStreamBertConfig(**values)


def tiny_mlm_backbone_and_data(tiny_processor, tiny_corpus, tmp_path) -> tuple[Path, Path]:
    """A random tiny BERT backbone with the tiny tokenizer, and train / test text files: `(backbone, data)`."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    backbone = tmp_path / "bert"
    cfg = tiny_bert_config(tiny_processor)
    BertModel(
        BertConfig(**{k: v for k, v in cfg.semantic_config().to_dict().items() if k != "model_type"})
    ).save_pretrained(backbone)
    tiny_processor.tokenizer.save_pretrained(backbone)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text("\n".join(tiny_corpus[:40]) + "\n")
    (data / "test.txt").write_text("\n".join(tiny_corpus[40:60]) + "\n")
    return backbone, data


def test_run_mlm_smoke(tiny_processor, tiny_processor_dir, tiny_corpus, tmp_path):
    backbone, data = tiny_mlm_backbone_and_data(tiny_processor, tiny_corpus, tmp_path)
    out = tmp_path / "run"
    run_mlm.main([
        "--backbone", str(backbone), "--processor_name", tiny_processor_dir, "--dataset", "",
        "--train_file", str(data / "train.txt"), "--test_file", str(data / "test.txt"), "--integration_type", "dm",
        "--stream_hidden_size", "8", "--stream_num_heads", "2", "--stream_intermediate_size", "16",
        "--max_seq_length", "24", "--whole_word_mask", "true", "--per_device_train_batch_size", "4",
        "--max_steps", "2", "--output_dir", str(out), "--do_train", "--do_eval", "--report_to", "none",
        "--save_strategy", "no", "--use_cpu", "true", "--disable_tqdm", "true",
    ])  # fmt: skip
    saved = json.loads((out / "results.json").read_text())
    m = saved["metrics"]
    assert saved["global_steps"] == 2 and saved["config"]["integration_type"] == "dm"
    assert m["test_masked_tokens"] > 0
    assert m["test_masked_token_perplexity"] == pytest.approx(
        math.exp(m["test_masked_nll"] / m["test_masked_tokens"])
    )
    # by word category: every categorised token is one of the masked tokens; "other" and the rest partition them
    counts = {
        k.removeprefix("test_masked_tokens_"): v for k, v in m.items() if k.startswith("test_masked_tokens_")
    }
    assert set(counts) == {"rare", "not_in_cmudict", "derived_compound", "other"}
    assert all(0 <= v <= m["test_masked_tokens"] for v in counts.values()) and sum(counts.values()) > 0
    for name, count in counts.items():
        assert (m[f"test_masked_ppl_{name}"] is None) == (count == 0)


def test_word_categories_and_the_nll_by_category_add_up(tiny_processor):
    categories = lm_utils.WordCategories(["the dog ran home"] * 30 + ["a zebra"], rare_below=20)
    assert categories("dog") == ("other",)
    assert categories("zebra") == ("rare",)  # once in training, in CMUdict, one morph
    assert "not in CMUdict" in categories("xqzvbl") and "rare" in categories("xqzvbl")
    assert "derived / compound" in categories("well-known")
    assert "derived / compound" in categories("unhappiness")
    assert categories("unk") == () and categories("N") == () and categories(",") == ()
    tok = tiny_processor.tokenizer
    rows = []
    for index, text in enumerate(["the dog walked home", "a zebra ran", "the unhappiness of it"]):
        enc = tok(text, return_special_tokens_mask=True)
        rows.append({"input_ids": enc["input_ids"], "word_ids": [-1 if w is None else w for w in enc.word_ids()],
                     "special_tokens_mask": enc["special_tokens_mask"], "index": index})  # fmt: skip
    masker = lm_utils.FixedSeedMasker(
        tok, 0.5, whole_word=True, seed=1, replace_probabilities=(1.0, 0.0, 0.0)
    )
    collator = run_mlm.FixedMaskCollator(tok, masker)
    torch.manual_seed(0)
    model = MultiStreamBertForMaskedLM(tiny_bert_config(tiny_processor, integration_type="li")).eval()
    model.set_stream_tables(tiny_processor.stream_tables)
    total, count = lm_utils.masked_lm_nll(model, rows, collator, batch_size=2)
    by = lm_utils.masked_lm_nll_by_category(model, rows, collator, tok, categories, batch_size=2)
    assert by["all"][0] == pytest.approx(total, rel=1e-5) and by["all"][1] == count
    assert by["other"][1] + by["rare"][1] <= count
    assert set(lm_utils.masked_lm_nll_by_category(model, rows, collator, tok, None)) == {"all"}


def test_fixed_seed_masks_and_no_leakage_through_streams(tiny_processor):
    """Same index + seed -> same mask; differing original words under the mask give identical logits."""
    tok = tiny_processor.tokenizer
    single = [
        w
        for w in sorted(tok.get_vocab())
        if w.isalpha() and len(tok(w, add_special_tokens=False)["input_ids"]) == 1
    ]
    text_a, text_b = f"the {single[0]} walked home", f"the {single[1]} walked home"
    ids_a = tok(text_a, return_special_tokens_mask=True)
    ids_b = tok(text_b, return_special_tokens_mask=True)
    assert len(ids_a["input_ids"]) == len(ids_b["input_ids"]) and ids_a["input_ids"] != ids_b["input_ids"]
    diff = [i for i, (a, b) in enumerate(zip(ids_a["input_ids"], ids_b["input_ids"])) if a != b]
    masker = lm_utils.FixedSeedMasker(
        tok, 0.3, whole_word=True, seed=3, replace_probabilities=(1.0, 0.0, 0.0)
    )
    collator = run_mlm.FixedMaskCollator(tok, masker)

    def feature(enc, index):
        return {"input_ids": enc["input_ids"], "word_ids": [-1 if w is None else w for w in enc.word_ids()],
                "special_tokens_mask": enc["special_tokens_mask"], "index": index}  # fmt: skip

    index = next(
        i for i in range(200) if all(collator([feature(ids_a, i)])["labels"][0, d] != -100 for d in diff)
    )
    batch_a = collator([feature(ids_a, index)])
    batch_b = collator([feature(ids_b, index)])
    assert torch.equal(batch_a["input_ids"], batch_b["input_ids"])  # nothing of the hidden word in the input
    assert not torch.equal(batch_a["labels"], batch_b["labels"])
    assert torch.equal(collator([feature(ids_a, index)])["input_ids"], batch_a["input_ids"])  # deterministic
    torch.manual_seed(0)
    model = MultiStreamBertForMaskedLM(tiny_bert_config(tiny_processor, integration_type="li")).eval()
    model.set_stream_tables(tiny_processor.stream_tables)
    with torch.no_grad():
        logits_a = model(input_ids=batch_a["input_ids"], attention_mask=batch_a["attention_mask"]).logits
        logits_b = model(input_ids=batch_b["input_ids"], attention_mask=batch_b["attention_mask"]).logits
    assert torch.equal(logits_a, logits_b)


# ------------------------------------------------------------------------------------------ the experiment runner
def _lm_runner():
    sys.path.insert(0, str(TRAINERS / "experiments"))
    import lm  # noqa: PLC0415

    return lm


def test_lm_runner_records_a_run_and_fails_loudly(tmp_path):
    lm = _lm_runner()
    run_dir, out_json = tmp_path / "run", tmp_path / "results" / "li-A-seed0.json"
    writer = (
        "import json, pathlib, sys; pathlib.Path(sys.argv[1]).write_text(json.dumps("
        "{'num_parameters': 1100, 'metrics': {'test_word_perplexity': 123.4}}))"
    )
    run_dir.mkdir()
    cmd = [sys.executable, "-c", writer, str(run_dir / "results.json")]
    record = lm.run_and_record(cmd, {}, run_dir, out_json, variant="li-A", seed=0, baseline_parameters=1000)
    saved = json.loads(out_json.read_text())
    assert saved == record
    assert saved["variant"] == "li-A" and saved["metrics"]["test_word_perplexity"] == 123.4
    assert saved["parameter_ratio_to_baseline"] == pytest.approx(1.1)
    assert saved["runner_wall_seconds"] >= 0 and "runner_git_commit" in saved
    with pytest.raises(RuntimeError, match="exit 3.*log.txt"):
        lm.run_and_record(
            [sys.executable, "-c", "raise SystemExit(3)"], {}, tmp_path / "bad", tmp_path / "b.json"
        )
    assert not (tmp_path / "b.json").exists()


def test_lm_runner_skips_finished_locked_and_resumes_or_forces(tmp_path, capsys):
    from safetensors.torch import save_file

    lm = _lm_runner()
    args = lm.argparse.Namespace(
        preset="cpu", output_root=str(tmp_path / "outputs"), results_dir=str(tmp_path / "results"),
        force=False, dry_run=False,
    )  # fmt: skip
    name = "gpt2-seed0"
    run_dir = lm.run_dir_of(args, name)
    writer = (
        "import json, pathlib, sys; pathlib.Path(sys.argv[1]).write_text(json.dumps("
        "{'num_parameters': 5, 'metrics': {'test_word_perplexity': 99.0}}))"
    )
    cmd = [sys.executable, "-c", writer, str(run_dir / "results.json")]
    assert lm.status_of(args, name) == "todo"
    (run_dir / "checkpoint-50").mkdir(parents=True)
    assert lm.status_of(args, name) == "todo"  # an empty (cut short) checkpoint is nothing to resume
    save_file({"w": torch.zeros(1)}, str(run_dir / "checkpoint-50" / "model.safetensors"))
    (run_dir / "checkpoint-50" / "trainer_state.json").write_text(json.dumps({"global_step": 50}))
    assert lm.status_of(args, name) == "resume (checkpoint-50)"
    # dry run: lists, runs nothing
    assert lm.execute(lm.argparse.Namespace(**{**vars(args), "dry_run": True}), name, cmd, {}) is None
    assert "gpt2-seed0: resume (checkpoint-50)" in capsys.readouterr().out
    assert not lm.result_of(args, name).exists()
    # another live runner holds it
    lock = lm.lock_of(args, name)
    lock.write_text(str(os.getppid()))
    assert lm.status_of(args, name).startswith("running") and lm.execute(args, name, cmd, {}) is None
    lock.unlink()
    record = lm.execute(args, name, cmd, {}, variant="gpt2", seed=0)
    assert record["metrics"]["test_word_perplexity"] == 99.0 and (run_dir / "checkpoint-50").is_dir()
    assert json.loads(lm.result_of(args, name).read_text()) == record and not lock.exists()
    assert lm.status_of(args, name) == "done" and lm.execute(args, name, cmd, {}) is None
    # --force: the output folder (and its checkpoints) is deleted and the run trained again
    forced = lm.argparse.Namespace(**{**vars(args), "force": True})
    assert lm.execute(forced, name, cmd, {}, variant="gpt2", seed=0) is not None
    assert not (run_dir / "checkpoint-50").exists()
    assert lm.save_args({"save_steps": None}) == ["--save_strategy", "no"]
    assert lm.save_args({"save_steps": 50})[:4] == ["--save_strategy", "steps", "--save_steps", "50"]


def test_lm_report_is_generated_from_the_committed_results(tmp_path):
    lm = _lm_runner()
    results = Path(__file__).resolve().parents[1] / "results" / "lm"  # msnn_hf 0.1's runs
    current = results.with_name("lm-v0.2")
    text = lm.report(current, tmp_path / "results_lm.md", results)
    assert (tmp_path / "results_lm.md").read_text() == text
    paths = sorted(results.glob("*/*.json"))
    assert paths, "no committed LM results"
    new_paths = sorted(current.glob("*/*.json"))
    head, old_part = text.split("### msnn_hf 0.1", 1)  # the 0.2 section first, 0.1's after it
    assert "### msnn_hf 0.2" in head and ("No runs at this version yet" in head) == (not new_paths)
    for part, found in ((head, new_paths), (old_part, paths)):
        for path in found:
            record = json.loads(path.read_text())
            assert f"#### Budget `{record['preset']}`" in part
            assert f"{record['variant']} (seed {record['seed']})" in part
            ppl = record["metrics"].get("test_word_perplexity")
            if ppl is not None:
                assert lm.fmt(ppl) in part
            if record.get("resumed_from") and record.get(
                "steps_before_resume"
            ):  # its train s is only the last part
                assert f" (resumed at step {record['steps_before_resume']}) |" in part
    bench = json.loads((results.parents[1] / "benchmarks" / "results" / "gpt2_bench.json").read_text())
    for variant, r in bench["results"].items():
        for key in ("generate_tokens_per_s_ratio", "generate_tokens_per_cpu_s_ratio"):
            if key in r:
                verdict = "met" if r[key] >= 0.7 else "missed"
                assert f"| {variant} | " in text and f"{r[key]:.3f} ({verdict})" in text


def test_gpt2_speed_benchmark_records_wall_and_cpu_ratios_and_the_report_shows_them(tmp_path, monkeypatch):
    """`benchmarks/bench_gpt2.py` on a tiny shape: both clocks' ratios recorded (consistent with their own
    numerators and denominators) and the report's speed table shows the CPU-time verdict too."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_gpt2

    out = tmp_path / "gpt2_bench_tiny.json"
    monkeypatch.setattr(sys, "argv", ["bench_gpt2.py", "--variants", "dm-scalar-B", "--vocab_size", "256",
                                      "--n_embd", "32", "--n_layer", "2", "--n_head", "2", "--stream_hidden_size",
                                      "16", "--repeats", "1", "--new_tokens", "3", "--train_batch", "2",
                                      "--block_size", "16", "--threads", "1", "--out", str(out)])  # fmt: skip
    bench_gpt2.main()
    r = json.loads(out.read_text())["results"]["dm-scalar-B"]
    for clock in ("", "cpu_"):
        ratio = r[f"generate_tokens_per_{clock}s_ratio"]
        assert ratio == pytest.approx(
            r[f"generate_tokens_per_{clock}s_multi"] / r[f"generate_tokens_per_{clock}s_plain"]
        )
        assert r[f"train_step_{clock}time_ratio"] == pytest.approx(
            r[f"train_step_{clock}s_multi"] / r[f"train_step_{clock}s_plain"]
        )
        # one repeat: the median of the per-repeat ratios is that repeat's ratio, its range that one value
        assert r[f"generate_tokens_per_{clock}s_ratio_paired_median"] == pytest.approx(ratio)
        assert r[f"generate_tokens_per_{clock}s_ratio_paired_range"] == pytest.approx([ratio, ratio])
        assert r[f"train_step_{clock}time_ratio_paired_median"] == pytest.approx(
            r[f"train_step_{clock}time_ratio"]
        )
    text = "\n".join(_lm_runner().speed_section(tmp_path))
    paired = r["generate_tokens_per_s_ratio_paired_median"]
    assert f"{paired:.3f} ({'met' if paired >= 0.7 else 'missed'}) [{paired:.2f}–{paired:.2f}]" in text
    verdict = "met" if r["generate_tokens_per_cpu_s_ratio"] >= 0.7 else "missed"
    assert f"{r['generate_tokens_per_cpu_s_ratio']:.3f} ({verdict})" in text and "same, CPU time" in text


def test_lm_report_lists_the_runs_a_budget_still_lacks(tmp_path):
    lm = _lm_runner()
    committed = Path(__file__).resolve().parents[1] / "results" / "lm" / "cpu-tiny" / "gpt2-seed0.json"
    (tmp_path / "cpu-tiny").mkdir()
    shutil.copy(committed, tmp_path / "cpu-tiny")
    text = lm.report(tmp_path, tmp_path / "out.md")
    assert "| gpt2 (seed 0) |" in text
    assert (
        "Not run yet at this budget: li-A, li-B, dm-A, dm-B, mlm-single, mlm-dm-B, mlm-dm-B-word, mlm-dm-B-gate1e-2, "
        "mlm-dm-B-word-gate1e-2 (" in text
    )


def test_causal_collator_trains_on_eos_that_doubles_as_pad():
    eos = 7  # GPT-2 style: pad token = eos token
    batch = lm_utils.CausalLMCollator(pad_token_id=eos)([{"input_ids": [3, 4, eos]}, {"input_ids": [5, eos]}])
    assert batch["input_ids"].tolist() == [[3, 4, eos], [5, eos, eos]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[3, 4, eos], [5, eos, -100]]  # real eos kept, padding ignored
    with pytest.raises(ValueError, match="pad token"):
        lm_utils.CausalLMCollator(None)


def test_continuing_an_lm_checkpoint_refuses_a_different_architecture():
    config = MultiStreamGPT2Config(
        vocab_size=50, n_embd=16, n_layer=2, n_head=2, integration_type="li", integration_layers="last",
        stream_hidden_size=8, stream_num_heads=2, stream_intermediate_size=16,
    )  # fmt: skip
    args = lm_utils.IntegrationArguments
    args().check_checkpoint(config, "ckpt")  # all defaults: nothing asked
    args(integration_type="li", integration_layers="last").check_checkpoint(config, "ckpt")
    with pytest.raises(ValueError, match=r"integration_layers: checkpoint \[1\], asked \[0, 1\]"):
        args(integration_type="li", integration_layers="0,1").check_checkpoint(config, "ckpt")
    with pytest.raises(ValueError, match="stream_hidden_size: checkpoint 8, asked 32"):
        args(stream_hidden_size=32, integration_layers="last").check_checkpoint(config, "ckpt")


# --------------------------------------------------------------------------- MLM over word-aligned streams
@pytest.fixture(scope="module")
def word_tiny_processor(tiny_tokenizer_dir, tiny_corpus):
    from msnn_hf.processing_multistream import MultiStreamProcessor

    return MultiStreamProcessor.from_tokenizer(
        tiny_tokenizer_dir, corpus=tiny_corpus, morph_vocab_size=64, alignment="word", show_progress=False
    )


def _mlm_feature(tok, text, index):
    enc = tok(text, return_special_tokens_mask=True)
    return {"input_ids": enc["input_ids"], "word_ids": [-1 if w is None else w for w in enc.word_ids()],
            "special_tokens_mask": enc["special_tokens_mask"], "index": index}  # fmt: skip


def test_word_aligned_mlm_collator_leaks_nothing_about_masked_words(word_tiny_processor, tiny_corpus):
    """run_mlm's collator over word-aligned streams: two sentences that differ only in a masked (multi-piece) word
    give identical inputs, streams and logits; a masked word shows [MASK]'s streams at each of its pieces, unmasked
    words keep their whole-word streams."""
    proc = word_tiny_processor
    tok = proc.tokenizer
    words = sorted({w for line in tiny_corpus for w in line.split() if w.isalpha()})
    two_piece = [w for w in words if len(tok(w, add_special_tokens=False)["input_ids"]) == 2]
    assert len(two_piece) >= 2, "the tiny corpus should have two-piece words"
    a, b = two_piece[:2]
    text_a, text_b = f"the {a} walked home", f"the {b} walked home"
    fa, fb = _mlm_feature(tok, text_a, 0), _mlm_feature(tok, text_b, 0)
    assert len(fa["input_ids"]) == len(fb["input_ids"]) and fa["word_ids"] == fb["word_ids"]
    diff = [i for i, (x, y) in enumerate(zip(fa["input_ids"], fb["input_ids"])) if x != y]
    masker = lm_utils.FixedSeedMasker(
        tok, 0.3, whole_word=True, seed=3, replace_probabilities=(1.0, 0.0, 0.0)
    )
    collator = run_mlm.FixedMaskCollator(tok, masker, proc)
    index = next(
        i for i in range(500) if all(collator([{**fa, "index": i}])["labels"][0, d] != -100 for d in diff)
    )
    batch_a = collator([{**fa, "index": index}])
    batch_b = collator([{**fb, "index": index}])
    assert set(batch_a) == {"input_ids", "attention_mask", "labels", "phonetic_ids", "morph_ids"}
    for key in ("input_ids", "attention_mask", "phonetic_ids", "morph_ids"):
        assert torch.equal(batch_a[key], batch_b[key]), key
    assert not torch.equal(batch_a["labels"], batch_b["labels"])
    masked = batch_a["labels"] != -100
    for key, stream in (("phonetic_ids", "phonetic"), ("morph_ids", "morphological")):
        assert (batch_a[key][masked] == proc.stream_tables[stream][tok.mask_token_id]).all()
    plain = proc(text_a, return_tensors="pt")
    keep = ~masked
    assert torch.equal(batch_a["morph_ids"][keep], plain["morph_ids"][keep])
    # the test has teeth: the unmasked text's word-aligned streams at the word differ from its pieces' own rows
    # and between the two words, so streams computed from the original text would tell a from b
    plain_b = proc(text_b, return_tensors="pt")
    assert not torch.equal(plain["morph_ids"][0, diff], plain_b["morph_ids"][0, diff])
    assert not torch.equal(
        plain["morph_ids"][0, diff], proc.stream_tables["morphological"][plain["input_ids"][0, diff]]
    )
    torch.manual_seed(0)
    config = tiny_bert_config(proc, integration_type="dm", stream_alignment="word")
    model = MultiStreamBertForMaskedLM(config).eval()
    with torch.no_grad():
        logits_a = model(**{k: v for k, v in batch_a.items() if k != "labels"}).logits
        logits_b = model(**{k: v for k, v in batch_b.items() if k != "labels"}).logits
    assert torch.equal(logits_a, logits_b)
    with pytest.raises(ValueError, match="whole-word masking"):
        run_mlm.FixedMaskCollator(tok, lm_utils.FixedSeedMasker(tok, 0.3, whole_word=False), proc)


def test_run_mlm_word_aligned_smoke_and_refusals(
    word_tiny_processor, tiny_processor, tiny_processor_dir, tiny_corpus, tmp_path
):
    backbone, data = tiny_mlm_backbone_and_data(tiny_processor, tiny_corpus, tmp_path)
    word_dir = tmp_path / "word-processor"
    word_tiny_processor.save_pretrained(word_dir)

    def args(processor, out, *extra):
        return [
            "--backbone", str(backbone), "--processor_name", str(processor), "--dataset", "",
            "--train_file", str(data / "train.txt"), "--test_file", str(data / "test.txt"),
            "--integration_type", "dm", "--stream_hidden_size", "8", "--stream_num_heads", "2",
            "--stream_intermediate_size", "16", "--max_seq_length", "24", "--per_device_train_batch_size", "4",
            "--max_steps", "2", "--output_dir", str(tmp_path / out), "--do_train", "--do_eval",
            "--report_to", "none", "--save_strategy", "no", "--use_cpu", "true", "--disable_tqdm", "true", *extra,
        ]  # fmt: skip

    run_mlm.main(args(word_dir, "run", "--whole_word_mask", "true", "--stream_alignment", "word"))
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["config"]["stream_alignment"] == "word" and saved["global_steps"] == 2
    assert saved["metrics"]["test_masked_tokens"] > 0 and math.isfinite(
        saved["metrics"]["test_masked_token_perplexity"]
    )
    with pytest.raises(ValueError, match="needs --whole_word_mask true"):
        run_mlm.main(args(word_dir, "bad1", "--stream_alignment", "word"))
    with pytest.raises(ValueError, match="alignment='piece', but --stream_alignment is 'word'"):
        run_mlm.main(
            args(tiny_processor_dir, "bad2", "--whole_word_mask", "true", "--stream_alignment", "word")
        )
    with pytest.raises(ValueError, match="alignment='word', but --stream_alignment is 'piece'"):
        run_mlm.main(args(word_dir, "bad3", "--whole_word_mask", "true"))


def test_lm_seed_summaries_pair_seeds_and_judge_beyond_the_spread():
    """The over-seeds tables: paired differences to the single-stream model of the same seed, per word category for
    MLM, and a verdict that needs 3 paired seeds, every one lower, and a gap above the spread and 2 SE."""
    lm = _lm_runner()

    def mlm(variant, seed, ppl, rare, gates=None):
        metrics = {
            "test_masked_token_perplexity": ppl,
            "test_masked_ppl_rare": rare,
            "test_masked_tokens_rare": 10,
        }
        return {"variant": variant, "seed": seed, "metrics": metrics, "gate_openness": gates}

    records = [mlm("mlm-single", k, 100.0 + k, 1000.0 + k) for k in range(3)]
    records += [mlm("mlm-dm-B-gate1e-2", k, 90.0 + k, 900.0 + 2 * k, gates=[0.1, 0.3]) for k in range(3)]
    records += [mlm("mlm-dm-B", k, 100.5 + k, 1000.0) for k in range(2)]
    text = "\n".join(lm.mlm_seed_summary(records))
    assert (
        "| mlm-single | 0, 1, 2 | - | 101.00 ± 1.00 (n=3) | - | 1,001.00 ± 1.00 (n=3) | - | - | - |" in text
    )
    assert (
        "| mlm-dm-B-gate1e-2 | 0, 1, 2 | 0.200 | 91.00 ± 1.00 (n=3) | -10.00 ± 0.00 (n=3) | -99.00 ± 1.00 (n=3) |"
        in text
    )
    assert (
        "- **mlm-dm-B-gate1e-2** beat mlm-single beyond the seed spread: -10.00 masked-token ppl over 3"
        in text
    )
    assert (
        "- **mlm-dm-B** vs mlm-single: 2 paired seed(s), +0.50 masked-token ppl; too few seeds to judge"
        in text
    )
    worse = lm.paired_verdict("mlm-dm-B", "mlm-single", [5.0, 6.0, 4.0], 2.0, "masked-token ppl")
    assert worse.startswith(
        "**mlm-dm-B** was worse than mlm-single beyond the seed spread: +5.00 masked-token ppl"
    )

    def clm(variant, seed, test):
        return {"variant": variant, "seed": seed, "metrics": {"test_word_perplexity": test}}

    records = [clm("gpt2", k, 380.0 + 3 * k) for k in range(3)] + [
        clm("dm-A", k, 379.0 + 3 * k) for k in range(3)
    ]
    text = "\n".join(lm.seed_summary(records))
    assert "| dm-A | 0, 1, 2 | - | 382.00 ± 3.00 (n=3) | -1.00 ± 0.00 (n=3) | 3 of 3 |" in text
    assert "gates" not in text  # no record has gates: no column
    # lower on every seed, but by less than the seeds' spread (3.00): not beyond it
    assert (
        "- **dm-A** did not beat gpt2 beyond the seed spread: -1.00 PTB test word ppl over 3 paired seeds"
        in text
    )
    # the strong criterion: a half-size model "matches" unless it is worse beyond the spread
    half = [{**clm("dm-A-mix-half", k, 381.0 + 3 * k), "parameter_ratio_to_baseline": 0.5} for k in range(3)]
    text = "\n".join(lm.seed_summary(records + half))
    assert (
        "- Strong criterion, **dm-A-mix-half** at 50% of gpt2's parameters: matches the full-size gpt2 "
        "(+1.00 PTB test word ppl over 3 paired seeds; not worse beyond the seed spread" in text
    )
    assert "Strong criterion, **dm-A**" not in text  # full-size variants are not judged by it
    far = [{**clm("dm-A-half", k, 420.0 + k), "parameter_ratio_to_baseline": 0.5} for k in range(3)]
    assert "at 50% of gpt2's parameters: does not match the full-size gpt2" in "\n".join(
        lm.seed_summary(records + far)
    )
    two = [{**clm("dm-A-half", k, 420.0), "parameter_ratio_to_baseline": 0.5} for k in range(2)]
    assert "dm-A-half** at 50% of gpt2's parameters: 2 paired seed(s)" in "\n".join(
        lm.seed_summary(records + two)
    )


def test_lm_report_puts_both_versions_side_by_side(tmp_path):
    lm = _lm_runner()
    new, old = tmp_path / "lm-v0.2", tmp_path / "lm"
    for root, runs in (
        (new, {"gpt2": [380.0, 384.0], "dm-A": [394.5]}),
        (old, {"gpt2": [388.0], "dm-B": [378.0]}),
    ):
        (root / "cpu").mkdir(parents=True)
        for variant, values in runs.items():
            for seed, value in enumerate(values):
                record = {
                    "variant": variant,
                    "seed": seed,
                    "preset": "cpu",
                    "metrics": {"test_word_perplexity": value},
                }
                (root / "cpu" / f"{variant}-seed{seed}.json").write_text(json.dumps(record))
    text = "\n".join(lm.side_by_side(new, old))
    assert "#### Both versions side by side, budget `cpu`" in text
    assert "| gpt2 | 388.00 (n=1) | 382.00 ± 2.83 (n=2) |" in text
    assert "| dm-A | - | 394.50 (n=1) |" in text and "| dm-B | 378.00 (n=1) | - |" in text
