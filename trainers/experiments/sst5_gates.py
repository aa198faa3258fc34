#!/usr/bin/env python
"""Fill in `gate_openness` (mean |tanh(beta)| of each integration gate) for SST-5 records written before
`run_classification.py` recorded it, from the model the run saved (`<output_dir>/model.safetensors`, the checkpoint
selected on validation). Records that have it, or whose model folder is gone, are left as they are; a filled record
says where the numbers came from (`gate_openness_source`).

    python trainers/experiments/sst5_gates.py                      # results/sst5-v0.2/*.json
    python trainers/experiments/sst5_gates.py --results_dir results/sst5-v0.2 --dry_run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "trainers"))
from train_common import write_json_atomic  # noqa: E402


def openness_from_weights(path: Path) -> list[float] | None:
    """Mean |tanh(beta)| per gate (`integration.<k>.blend`, in point order) of a saved model; None without gates."""
    import torch
    from safetensors.torch import load_file

    state = load_file(str(path))
    keys = [k for k in state if k.endswith(".blend") and ".integration." in f".{k}"]

    def point(key: str) -> int:
        parts = key.split(".")
        return int(parts[parts.index("integration") + 1])

    keys.sort(key=point)
    return [float(torch.tanh(state[k].float()).abs().mean()) for k in keys] or None


def fill(results_dir: Path, dry_run: bool = False) -> list[str]:
    """The records filled (or that would be)."""
    done = []
    for path in sorted(results_dir.glob("*.json")):
        record = json.loads(path.read_text())
        if "gate_openness" in record or not record.get("output_dir"):
            continue
        weights = Path(record["output_dir"])
        weights = (weights if weights.is_absolute() else REPO_ROOT / weights) / "model.safetensors"
        if not weights.is_file():
            print(f"{path.name}: no {weights} (left as it is)")
            continue
        values = openness_from_weights(weights)
        print(f"{path.name}: {None if values is None else [round(v, 4) for v in values]}")
        if not dry_run:
            record["gate_openness"] = values
            record["gate_openness_source"] = (
                f"measured after the run from {record['output_dir']}/model.safetensors by "
                "trainers/experiments/sst5_gates.py"
            )
            write_json_atomic(path, record)
        done.append(path.name)
    return done


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results_dir", default=str(REPO_ROOT / "results" / "sst5-v0.2"))
    parser.add_argument("--dry_run", action="store_true")
    args = parser.parse_args(argv)
    return fill(Path(args.results_dir), args.dry_run)


if __name__ == "__main__":
    main()
