"""Wall time of the README's main job (`bash main.sh`) on a fresh clone, end to end.

Clones this repository's committed HEAD into a new folder (no venv, no processor cache, no outputs: what a new
user has), runs ``bash main.sh`` there with the same data folder, and records:

* ``total_seconds``: everything `main.sh` does (venv, `pip install`, processor build, 2 training epochs,
  validation/test evaluation, the pipeline check);
* ``run_seconds``: `run_classification.py`'s own wall time (processor build + training + evaluation), from its
  result record; ``setup_seconds`` = total - run (venv + install + the pipeline check);
* the accuracy, macro-F1 and step count it printed/recorded, the machine (CPUs, load average before the start)
  and the commit.

pip's download cache is whatever this machine has (a new machine downloads the wheels once more).

Usage::

    python benchmarks/time_main_job.py --out benchmarks/results/main_job.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The data folder `main.sh` would read in this checkout (`$MSNN_DATA_DIR`, else ../shared/data)."""
    return Path(os.environ.get("MSNN_DATA_DIR") or REPO.parent / "shared" / "data").resolve()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/main_job.json")
    parser.add_argument("--workdir", default=None, help="where to clone (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the clone (venv, outputs) afterwards")
    args = parser.parse_args(argv)

    data = data_dir()
    if not (data / "sst5").is_dir():
        raise SystemExit(f"no SST-5 under {data}: set MSNN_DATA_DIR")
    commit = subprocess.check_output(["git", "-C", str(REPO), "rev-parse", "HEAD"], text=True).strip()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="msnn-main-job-"))
    clone = work / "msnn_hf"
    if clone.exists():
        raise SystemExit(f"{clone} exists: pass an empty --workdir")
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", commit], check=True)

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "MSNN_VENV", "PYTHONPATH"))
    }
    env["MSNN_DATA_DIR"] = str(data)
    record_path = work / "main_job_record.json"  # main.sh's result record, wherever its default puts it
    env["RESULT"] = str(record_path)
    load_before = os.getloadavg()
    log = work / "main_job.log"
    print(f"bash main.sh in {clone} (log: {log})", flush=True)
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(["bash", "main.sh"], cwd=clone, env=env, stdout=f, stderr=subprocess.STDOUT)
    total = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"main.sh failed (exit {proc.returncode}) after {total:.0f}s; see {log}")
    record = json.loads(record_path.read_text())
    result = {
        "command": "python benchmarks/time_main_job.py --out " + args.out,
        "git_commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in load_before],
        },
        "total_seconds": round(total, 1),
        "total_minutes": round(total / 60, 1),
        "run_seconds": round(record["wall_time_s"], 1),
        "setup_seconds": round(total - record["wall_time_s"], 1),
        "train_runtime_s": record.get("train_runtime_s"),
        "train_steps": record.get("train_steps"),
        "validation_accuracy": record["validation"]["accuracy"],
        "test_accuracy": record["test"]["accuracy"],
        "test_macro_f1": record["test"]["macro_f1"],
        "gate_lr": record["hyperparameters"].get("gate_lr"),
        "gate_openness": record.get("gate_openness"),
        "log_tail": log.read_text().splitlines()[-12:],
    }
    out = REPO / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "log_tail"}, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
