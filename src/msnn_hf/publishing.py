"""Publishing msnn_hf checkpoints on the Hugging Face Hub (the ``msnn-push`` command).

`prepare_checkpoint_for_hub` checks a checkpoint folder (safetensors weights only, a ``config.json`` whose
``auto_map`` code files and their relative imports are present, the processor files) and renders its card;
`push_checkpoint` then uploads exactly those files with ``HfApi.create_repo`` + ``HfApi.upload_folder``.

Example::

    msnn-push outputs/sst5/li-seed42 --repo_id msnn/li-bert-sst5 --results results/sst5/li-seed42.json
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .cards import FIGURE_NAME, CardSpec, load_card_spec, render_card, spec_for_repo
from .records import ResultsError, load_result

logger = logging.getLogger(__name__)

PROCESSOR_CONFIG = "processor_config.json"

# Files never uploaded: pickles can run code when loaded. Trainer state pickles are skipped with a notice;
# any other pickle in the folder (e.g. `pytorch_model.bin`) makes publishing fail.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
TRAINER_STATE_PICKLES = re.compile(
    r"^(training_args\.bin|optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state.*\.pth)$"
)
# What a user needs, by name pattern: weights, configs, code, processor / tokenizer files, card, figures.
UPLOAD_SUFFIXES = (".safetensors", ".json", ".py", ".txt", ".md", ".model", ".tsv", ".vocab", ".png", ".yaml")
NOT_FOR_USERS = re.compile(
    r"^(trainer_state\.json|all_results\.json|train_results\.json|eval_results\.json)$"
)


class CheckpointError(ValueError):
    """A checkpoint folder cannot be published as it is (missing files, pickle weights, ...)."""


# ------------------------------------------------------------------------------------------------ checkpoints
def _relative_imports(py_file: Path) -> set[str]:
    """Sibling modules imported relatively (``from .x import y`` / ``from . import x``) by a Python file."""
    tree = ast.parse(py_file.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def code_files(checkpoint: Path, config: dict) -> list[str]:
    """The Python files remote code needs: those named in ``auto_map`` and their relative imports."""
    auto_map = config.get("auto_map") or {}
    modules = set()
    for reference in auto_map.values():
        for ref in reference if isinstance(reference, list) else [reference]:
            if ref and "--" not in ref:  # "repo--module.Class" points at another repo
                modules.add(ref.rsplit(".", 1)[0])
    todo, seen = sorted(modules), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = checkpoint / f"{module}.py"
        if not path.is_file():
            raise CheckpointError(f"{checkpoint}: auto_map needs {module}.py, which is missing (remote code)")
        todo.extend(sorted(_relative_imports(path) - seen))
    return sorted(f"{m}.py" for m in seen)


def weight_files(checkpoint: Path) -> list[str]:
    """The safetensors weights of a checkpoint (single file or sharded with an index)."""
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [s for s in shards if not (checkpoint / s).is_file()]
        if missing:
            raise CheckpointError(f"{checkpoint}: shards {missing} listed in {index.name} are missing")
        return [index.name, *shards]
    if (checkpoint / "model.safetensors").is_file():
        return ["model.safetensors"]
    raise CheckpointError(
        f"{checkpoint}: no model.safetensors (msnn_hf checkpoints keep their weights in safetensors only; "
        "save the model with model.save_pretrained(folder))"
    )


def check_safetensors(path: Path) -> None:
    """Raise `CheckpointError` unless `path` opens as a safetensors file (header and tensor index)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err


def processor_files(checkpoint: Path) -> list[str]:
    """The processor files: ``processor_config.json``, the files it lists, and the tokenizer files.

    Raises:
        CheckpointError: no processor / tokenizer saved, or a file that ``processor_config.json`` names is missing.
    """
    names = {
        p.name
        for p in checkpoint.iterdir()
        if p.is_file()
        and p.name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "added_tokens"))
        and not p.name.endswith(PICKLE_SUFFIXES)
    }
    if not any(n.startswith(("tokenizer", "vocab")) for n in names):
        raise CheckpointError(
            f"{checkpoint}: no tokenizer files; save them with processor.save_pretrained(checkpoint)"
        )
    config_path = checkpoint / PROCESSOR_CONFIG
    if not config_path.is_file():
        raise CheckpointError(
            f"{checkpoint}: {PROCESSOR_CONFIG} is missing; save the processor with processor.save_pretrained(checkpoint)"
        )
    listed = [f for f in (json.loads(config_path.read_text()).get("files") or {}).values() if f]
    missing = [f for f in listed if not (checkpoint / f).is_file()]
    if missing:
        raise CheckpointError(f"{checkpoint}: files named in {PROCESSOR_CONFIG} are missing: {missing}")
    return sorted(names | {PROCESSOR_CONFIG, *listed})


def add_base_model_auto_map(checkpoint: Path) -> bool:
    """Add ``AutoModel`` to ``config.json``'s ``auto_map`` when only a task class is mapped.

    ``save_pretrained`` maps only the saved class (e.g. ``AutoModelForSequenceClassification``); with the base
    model class (``XModel`` beside ``XForSequenceClassification`` in the same modeling file) mapped too,
    ``AutoModel.from_pretrained(repo, trust_remote_code=True)`` works for users without msnn_hf.

    Returns:
        whether ``config.json`` was changed.
    """
    config_path = checkpoint / "config.json"
    config = json.loads(config_path.read_text())
    auto_map = config.get("auto_map") or {}
    if "AutoModel" in auto_map:
        return False
    for key, reference in auto_map.items():
        if not key.startswith("AutoModelFor") or not isinstance(reference, str) or "--" in reference:
            continue
        module, cls = reference.rsplit(".", 1)
        base = re.sub(r"For[A-Za-z]+$|LMHeadModel$", "Model", cls)
        path = checkpoint / f"{module}.py"
        if base != cls and path.is_file() and re.search(rf"^class {base}\b", path.read_text(), re.M):
            auto_map["AutoModel"] = f"{module}.{base}"
            config["auto_map"] = auto_map
            config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            return True
    return False


def checkpoint_files(checkpoint: str | Path) -> list[str]:
    """Validate a checkpoint folder and list the files to publish (relative names, sorted).

    Raises:
        CheckpointError: missing config / weights / code / processor files, unreadable safetensors, or
            pickle files other than the Trainer's own state (never uploaded either way).
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise CheckpointError(f"{checkpoint} is not a folder")
    pickles = sorted(p.name for p in checkpoint.iterdir() if p.is_file() and p.name.endswith(PICKLE_SUFFIXES))
    refused = [p for p in pickles if not TRAINER_STATE_PICKLES.match(p)]
    if refused:
        raise CheckpointError(
            f"{checkpoint}: refusing to publish pickle files {refused}: they can run code when loaded. "
            "Keep weights in safetensors only (remove or move these files)."
        )
    if pickles:
        logger.warning("Not uploading the Trainer's state files %s", pickles)
    config_path = checkpoint / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{checkpoint}: config.json is missing")
    config = json.loads(config_path.read_text())
    if not config.get("auto_map"):
        raise CheckpointError(
            f"{checkpoint}: config.json has no auto_map, so users without msnn_hf cannot load it "
            "(save the model with register_for_auto_class, as msnn_hf models do)"
        )
    if add_base_model_auto_map(checkpoint):
        logger.info("Added AutoModel to the auto_map of %s", config_path)
    weights = weight_files(checkpoint)
    for name in weights:
        if name.endswith(".safetensors"):
            check_safetensors(checkpoint / name)
    needed = {"config.json", *weights, *code_files(checkpoint, config), *processor_files(checkpoint)}
    extra = {
        p.name
        for p in checkpoint.iterdir()
        if p.is_file() and p.name.endswith(UPLOAD_SUFFIXES) and not NOT_FOR_USERS.match(p.name)
    }
    return sorted(needed | extra)


def prepare_checkpoint_for_hub(
    checkpoint: str | Path,
    results: str | Path | None = None,
    *,
    card: str | CardSpec | None = None,
    repo_id: str | None = None,
) -> list[str]:
    """Make a checkpoint folder publishable: validate it and write its model card (``README.md``).

    Trainers call this before uploading (instead of ``Trainer.push_to_hub``, whose generic card would replace
    ours and which uploads ``training_args.bin``, a pickle).

    Args:
        checkpoint: the folder written by ``model.save_pretrained`` + ``processor.save_pretrained``.
        results: the run's result JSON; default: the card spec's ``results``.
        card: card spec (name or `CardSpec`); default: the spec whose ``repo_id`` matches `repo_id`.
        repo_id: the Hub repository the card describes.

    Returns:
        the relative names of the files to upload (``README.md`` and the figure included).

    Raises:
        CheckpointError, ResultsError: what is wrong, in words.
    """
    checkpoint = Path(checkpoint)
    spec = card if isinstance(card, CardSpec) else None
    if isinstance(card, str):
        spec = load_card_spec(card)
    if spec is None and repo_id:
        spec = spec_for_repo(repo_id)
    if spec is None:
        raise ResultsError(
            f"No model card spec for {repo_id or checkpoint}: add model_cards/<name>.yaml with its repo_id, "
            "or pass card=... (--card NAME)"
        )
    if results is None and not spec.path(spec.results).is_file():
        raise ResultsError(
            f"Result file {spec.path(spec.results)} (from card spec {spec.name}) does not exist"
        )
    result = load_result(results or spec.path(spec.results))  # fail before touching the checkpoint
    files = checkpoint_files(checkpoint)
    model_card = render_card(spec, result, out_dir=checkpoint, repo_id=repo_id)
    model_card.save(checkpoint / "README.md")
    extra = ["README.md"] + ([FIGURE_NAME] if (checkpoint / FIGURE_NAME).is_file() else [])
    return sorted(set(files) | set(extra))


def push_checkpoint(
    checkpoint: str | Path,
    repo_id: str,
    results: str | Path | None = None,
    *,
    card: str | CardSpec | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload msnn_hf checkpoint",
    endpoint: str | None = None,
) -> Any:
    """Validate, write the card, create the repo and upload exactly the files a user needs.

    Returns:
        the ``huggingface_hub.CommitInfo`` of the upload.
    """
    from huggingface_hub import HfApi

    files = prepare_checkpoint_for_hub(checkpoint, results, card=card, repo_id=repo_id)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=str(checkpoint),
        allow_patterns=files,
        commit_message=commit_message,
        repo_type="model",
    )


# ------------------------------------------------------------------------------------------------ CLI
def main(argv: Iterable[str] | None = None) -> int:
    """``msnn-push CHECKPOINT_DIR --repo_id ORG/NAME [--results PATH] [--card NAME] [--private] [--dry_run]``."""
    parser = argparse.ArgumentParser(
        prog="msnn-push", description="Publish an msnn_hf checkpoint on the Hub."
    )
    parser.add_argument("checkpoint", help="checkpoint folder (model + processor saved with save_pretrained)")
    parser.add_argument("--repo_id", required=True, help="Hub repository, e.g. msnn/li-bert-sst5")
    parser.add_argument("--results", help="the run's result JSON (default: the card spec's)")
    parser.add_argument("--card", help="card spec name in model_cards/ (default: the one matching --repo_id)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one / HF_TOKEN)")
    parser.add_argument("--commit_message", default="Upload msnn_hf checkpoint")
    parser.add_argument("--dry_run", action="store_true", help="validate and write README.md, upload nothing")
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.dry_run:
            files = prepare_checkpoint_for_hub(
                args.checkpoint, args.results, card=args.card, repo_id=args.repo_id
            )
            print("\n".join(files))
            return 0
        info = push_checkpoint(
            args.checkpoint,
            args.repo_id,
            args.results,
            card=args.card,
            private=args.private,
            token=args.token,
            commit_message=args.commit_message,
        )
    except (CheckpointError, ResultsError, FileNotFoundError) as err:
        print(f"msnn-push: error: {err}", file=sys.stderr)
        return 2
    print(f"Uploaded to {info.commit_url}")
    return 0


__all__ = [
    "CheckpointError",
    "NOT_FOR_USERS",
    "PICKLE_SUFFIXES",
    "PROCESSOR_CONFIG",
    "TRAINER_STATE_PICKLES",
    "UPLOAD_SUFFIXES",
    "add_base_model_auto_map",
    "check_safetensors",
    "checkpoint_files",
    "code_files",
    "main",
    "prepare_checkpoint_for_hub",
    "processor_files",
    "push_checkpoint",
    "weight_files",
]


if __name__ == "__main__":
    raise SystemExit(main())
