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
    return SimpleNamespace(output_dir=str(output_dir), resume_from_checkpoint=resume, do_train=do_train)


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


def test_resume_checkpoint_finds_the_last_checkpoint_and_records_settings(tmp_path):
    settings = {"training": {"max_steps": 10}}
    assert train_common.resume_checkpoint(args(tmp_path), settings) is None  # fresh run
    assert json.loads((tmp_path / train_common.RUN_SETTINGS_FILE).read_text()) == settings
    for step in (2, 10, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
    assert train_common.resume_checkpoint(args(tmp_path), settings) == str(tmp_path / "checkpoint-10")
    explicit = str(tmp_path / "checkpoint-4")
    assert train_common.resume_checkpoint(args(tmp_path, resume=explicit), settings) == explicit
    with pytest.raises(ValueError, match=r"training.max_steps: 10 -> 20"):
        train_common.resume_checkpoint(args(tmp_path), {"training": {"max_steps": 20}})
    # not training: nothing is resumed and nothing written
    other = tmp_path / "eval-only"
    assert train_common.resume_checkpoint(args(other, do_train=False), settings) is None
    assert not other.exists()


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
