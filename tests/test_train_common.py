"""trainers/train_common.py: resumable output folders, the checkpoint-architecture check, atomic JSON, locks."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainers"))

import train_common  # noqa: E402

from msnn_hf.configuration_multistream_gpt2 import MultiStreamGPT2Config  # noqa: E402


def args(output_dir, resume=None, do_train=True):
    return SimpleNamespace(
        output_dir=str(output_dir), resume_from_checkpoint=resume, do_train=do_train, process_index=0
    )


def fake_checkpoint(folder: Path, step: int, max_steps: int = 10) -> Path:
    """A folder with what a complete Trainer checkpoint has for `checkpoint_problem`: weights and state."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(2, 3)}, str(folder / "model.safetensors"))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps}))
    return folder


def test_resume_settings_check_and_steps_before(tmp_path):
    settings = {
        "model": {"variant": "li"},
        "data": {"max_seq_length": 64},
        "training": {"num_train_epochs": 2.0},
    }
    train_common.check_resume_settings(str(tmp_path), settings)  # nothing recorded: nothing to compare
    (tmp_path / train_common.RUN_SETTINGS_FILE).write_text(json.dumps(settings))
    train_common.check_resume_settings(str(tmp_path), settings)
    changed = {**settings, "training": {"num_train_epochs": 4.0}}
    with pytest.raises(ValueError, match=r"training.num_train_epochs: 2.0 -> 4.0.*delete the folder"):
        train_common.check_resume_settings(str(tmp_path), changed)
    assert train_common.steps_before(None) == 0
    checkpoint = tmp_path / "checkpoint-267"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 267}))
    assert train_common.steps_before(str(checkpoint)) == 267


def test_settings_added_later_read_as_their_old_value(tmp_path):
    """A run_settings.json written before `train_granularity` / `train_sampling_strategy` were recorded still
    resumes with the values every run had then, and refuses others."""
    old = {"data": {"max_seq_length": 64}, "training": {"num_train_epochs": 2.0}}
    (tmp_path / train_common.RUN_SETTINGS_FILE).write_text(json.dumps(old))
    same = {
        "data": {"max_seq_length": 64, "train_granularity": "sentences"},
        "training": {"num_train_epochs": 2.0, "train_sampling_strategy": "random"},
    }
    train_common.check_resume_settings(str(tmp_path), same)
    phrases = {**same, "data": {**same["data"], "train_granularity": "phrases"}}
    with pytest.raises(ValueError, match=r"data\.train_granularity: 'sentences' -> 'phrases'"):
        train_common.check_resume_settings(str(tmp_path), phrases)
    grouped = {**same, "training": {**same["training"], "train_sampling_strategy": "group_by_length"}}
    with pytest.raises(ValueError, match=r"training\.train_sampling_strategy: 'random' -> 'group_by_length'"):
        train_common.check_resume_settings(str(tmp_path), grouped)


def test_resume_checkpoint_finds_the_last_checkpoint_and_records_settings(tmp_path):
    settings = {"training": {"max_steps": 10}}
    assert train_common.resume_checkpoint(args(tmp_path), settings) is None  # fresh run
    assert json.loads((tmp_path / train_common.RUN_SETTINGS_FILE).read_text()) == settings
    for step in (2, 10, 4):
        fake_checkpoint(tmp_path / f"checkpoint-{step}", step, max_steps=10)
    assert train_common.resume_checkpoint(args(tmp_path), settings) == str(tmp_path / "checkpoint-10")
    explicit = str(tmp_path / "checkpoint-4")
    assert train_common.resume_checkpoint(args(tmp_path, resume=explicit), settings) == explicit
    with pytest.raises(ValueError, match=r"training.max_steps: 10 -> 20"):
        train_common.resume_checkpoint(args(tmp_path), {"training": {"max_steps": 20}})
    # not training: nothing is resumed and nothing written
    other = tmp_path / "eval-only"
    assert train_common.resume_checkpoint(args(other, do_train=False), settings) is None
    assert not other.exists()


def test_incomplete_checkpoints_are_skipped_named_and_kept_aside(tmp_path, caplog):
    fake_checkpoint(tmp_path / "checkpoint-2", 2)
    cut = fake_checkpoint(tmp_path / "checkpoint-4", 4)
    (cut / "trainer_state.json").unlink()  # killed before the Trainer wrote its state
    truncated = fake_checkpoint(tmp_path / "checkpoint-6", 6)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])  # killed while writing the weights
    (tmp_path / "checkpoint-8").mkdir()
    (tmp_path / "checkpoint-8" / "modeling.py").write_text("# only the code made it\n")
    assert train_common.last_checkpoint_in(tmp_path) == str(tmp_path / "checkpoint-2")
    for step, why in (
        (8, "no readable trainer_state.json"),
        (6, "model.safetensors is not a complete"),
        (4, "no readable"),
    ):
        assert f"Skipping {tmp_path / f'checkpoint-{step}'}: {why}" in caplog.text
    assert (tmp_path / "checkpoint-8").is_dir()  # not renamed unless asked (the main process asks)
    assert train_common.resume_checkpoint(args(tmp_path), {}) == str(tmp_path / "checkpoint-2")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "checkpoint-2", "incomplete-checkpoint-4", "incomplete-checkpoint-6", "incomplete-checkpoint-8"
    ]  # fmt: skip
    with pytest.raises(
        ValueError, match=r"incomplete-checkpoint-6 is not a complete checkpoint: model.safetensors"
    ):
        train_common.last_checkpoint(args(tmp_path, resume=str(tmp_path / "incomplete-checkpoint-6")))
    assert not train_common.training_complete(str(tmp_path / "checkpoint-2"))
    assert train_common.training_complete(str(fake_checkpoint(tmp_path / "checkpoint-10", 10, max_steps=10)))


def test_finished_runs_and_trained_records(tmp_path):
    settings = {"training": {"max_steps": 10}}
    assert train_common.finished_run(args(tmp_path), settings) is None
    (tmp_path / train_common.RUN_SETTINGS_FILE).write_text(json.dumps(settings))
    train_common.mark_finished(tmp_path, 10, ["results.json"])
    assert train_common.finished_run(args(tmp_path), settings)["global_step"] == 10
    assert train_common.finished_run(args(tmp_path, do_train=False), settings) is None
    with pytest.raises(ValueError, match=r"training.max_steps: 10 -> 12"):
        train_common.finished_run(args(tmp_path), {"training": {"max_steps": 12}})
    for content, trained in (
        ({"train_steps": 4}, True),
        ({"record": {"train_steps": 4}}, True),
        ({"train": {"train_loss": 0.3}}, True),
        ({"global_steps": 3, "task": "clm"}, True),
        ({"train_steps": 0, "evaluation_only": True}, False),
        ({"global_steps": 0}, False),
        ([], False),
    ):
        (tmp_path / "r.json").write_text(json.dumps(content))
        assert train_common.holds_trained_record(tmp_path / "r.json") is trained, content
    (tmp_path / "r.json").write_text("{ half")
    assert not train_common.holds_trained_record(tmp_path / "r.json")
    assert not train_common.holds_trained_record(tmp_path / "absent.json")


def test_check_checkpoint_architecture_compares_normalised_values():
    config = MultiStreamGPT2Config(n_layer=3, integration_type="dm", integration_layers="last")
    train_common.check_checkpoint_architecture(config, {}, "ckpt", "hint")
    train_common.check_checkpoint_architecture(
        config, {"integration_layers": [2]}, "ckpt", "hint"
    )  # = "last"
    with pytest.raises(ValueError, match=r"ckpt is a multi-stream checkpoint.*integration_type: checkpoint 'dm', "
                       r"asked 'li'.*Drop them"):  # fmt: skip
        train_common.check_checkpoint_architecture(config, {"integration_type": "li"}, "ckpt", "Drop them.")


def test_write_json_atomic_leaves_no_staging_file(tmp_path):
    path = tmp_path / "sub" / "result.json"
    train_common.write_json_atomic(path, {"a": 1, "path": Path("x")})
    assert json.loads(path.read_text()) == {"a": 1, "path": "x"}
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]


def test_locks_are_exclusive_and_stale_locks_are_taken_over(tmp_path):
    lock = tmp_path / "run.lock"
    assert train_common.acquire_lock(lock) and lock.read_text() == str(os.getpid())
    assert train_common.lock_holder(lock) is None  # our own lock is not "another runner"
    lock.write_text(str(os.getppid()))  # a live process (the test runner's parent) holds it
    assert train_common.lock_holder(lock) == os.getppid()
    assert not train_common.acquire_lock(lock)
    lock.write_text("999999999")  # no such process: stale
    assert train_common.lock_holder(lock) is None and train_common.acquire_lock(lock)


def test_git_commit_names_this_checkout():
    commit = train_common.git_commit()
    assert commit is None or len(commit.removesuffix("-dirty")) == 40


def test_named_labels_are_the_data_modules():
    from msnn_hf.data import SST5_LABELS

    assert train_common.NAMED_LABELS["sst5"] == list(SST5_LABELS)
