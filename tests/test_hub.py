"""Model cards and Hub publishing (`msnn_hf.hub`), against a local fake Hub server (tests/fake_hub.py).

Card tests use synthetic result JSONs written to tmp_path: the real cards are rendered only from the real
`results/sst5/*.json` (and rendering fails clearly while those do not exist).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fake_hub import FakeHub
from tiny_checkpoint import build_tiny_checkpoint, reference_logits, synthetic_result

from msnn_hf import hub

ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "msnn/li-bert-sst5"
TEXTS = ["The actor loved the wonderful music.", "A careless joke, unbelievable!"]


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_processor, tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tiny_processor, tmp_path_factory.mktemp("tiny_ckpt") / "li-seed42")


@pytest.fixture
def checkpoint(tiny_checkpoint, tmp_path) -> Path:
    """A fresh copy of the tiny checkpoint that a test may change."""
    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "ckpt"))


def _hub_env(hub_server: FakeHub, home: Path) -> dict[str, str]:
    """Environment of a process that talks to the fake Hub with an empty cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=hub_server.endpoint,
        HF_TOKEN="hf_fake_token",
        HF_HOME=str(home),
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def _run(code: str, env: dict[str, str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"subprocess failed:\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-6000:]}"
    )
    return proc


# ------------------------------------------------------------------------------------------------ results / cards
def test_hub_re_exports_the_role_modules():
    """`msnn_hf.hub` is the three role modules under one name: the same objects, nothing of its own."""
    from msnn_hf import cards, publishing, records

    for module in (records, cards, publishing):
        for name in module.__all__:
            assert getattr(hub, name) is getattr(module, name), name
    assert hub.main is publishing.main


def test_card_metadata_comes_from_the_result_file(tmp_path):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    path = synthetic_result(tmp_path / "li-seed42.json", model_name_or_path="someone/other-bert")
    result = json.loads(path.read_text())
    card = hub.render_card("li-bert-sst5", path, out_dir=tmp_path)

    parsed = ModelCard(str(card))
    data = parsed.data.to_dict()
    assert data["library_name"] == "transformers"
    assert data["license"] == "apache-2.0"
    assert data["base_model"] == "someone/other-bert"  # read from the result, not typed in
    assert data["datasets"] == ["SetFit/sst5"]
    assert data["pipeline_tag"] == "text-classification"
    assert set(data["metrics"]) == {"accuracy", "f1"}
    name, evals = model_index_to_eval_results(data["model-index"])
    assert name == "li-bert-sst5"
    values = {(e.metric_type, e.metric_config): e.metric_value for e in evals}
    assert values == {("accuracy", None): 0.4321, ("f1", "macro"): 0.4012}
    assert all(e.dataset_type == "SetFit/sst5" and e.dataset_split == "test" for e in evals)

    text = parsed.text
    command = (
        "python trainers/run_classification.py --variant li --seed 42 --output_dir outputs/sst5/li-seed42"
    )
    assert f"```bash\n{command}\n```" in text  # the exact training command
    assert "8,544 train / 1,101 validation / 2,210 test sentences" in text
    assert "(read from a local\ncopy with the same splits, `sst5`)" in text
    assert "| accuracy | 43.2 |" in text and "| macro F1 | 40.1 |" in text
    assert "| neutral | 22.0 |" in text  # per-class F1
    assert "| very negative | 10 | 5 | 1 | 0 | 0 |" in text  # confusion matrix
    assert "semantic 0.75, phonetic 0.16, morphological 0.09" in text  # alpha means over layers
    assert "![Integration weights per layer and stream](alpha.png)" in text
    assert (tmp_path / "alpha.png").stat().st_size > 1000
    assert "## Limitations" in text and "@inproceedings{socher2013recursive" in text
    hub.validate_card(str(card), result)


def test_dm_card_and_seed_table(tmp_path):
    spec = hub.load_card_spec("dm-bert-sst5")
    # the grid's run name (sst5.py writes it), msnn_hf 0.2's grid: the DM-token run whose gates opened
    assert spec.results == "results/sst5-v0.2/dm-token-gate1e-2-seed42.json"
    assert spec.seed_results == "results/sst5-v0.2/dm-token-gate1e-2-seed*.json"
    spec.root = tmp_path
    spec.figure = "docs/figures/none.png"
    (tmp_path / "results/sst5-v0.2").mkdir(parents=True)
    dm = {"integration_type": "dm", "alpha_granularity": "token"}
    for seed, acc in ((42, 0.40), (43, 0.42), (44, 0.44)):
        test = {"accuracy": acc, "macro_f1": acc - 0.02}
        synthetic_result(
            tmp_path / f"results/sst5-v0.2/dm-token-gate1e-2-seed{seed}.json",
            seed=seed,
            model_config=dm,
            test=test,
            gate_openness=[0.1, 0.25],
        )
    card = hub.render_card(spec)
    text = str(card)
    assert "Direct Mixing (DM) (α granularity: token)" in text and "Direct Mixing weights α_s" in text
    # msnn_hf 0.2 records (integration_init "backbone") report shares in z, and the card says so
    gated = {**dm, "integration_init": "backbone"}
    v02 = synthetic_result(tmp_path / "v02.json", model_config=gated)
    assert "streams' shares in the integrated state z (the Direct Mixing weights α_s inside the mix" in str(
        hub.render_card(spec, v02)
    )
    # how far the gates opened, from the record (0 = the backbone's function)
    assert "per integration layer: 0.100, 0.250 (mean 0.175)." in text and "nearly closed" not in text
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in text  # the local copy's Hub id
    assert "| mean ± std | 42.0 ± 2.0 | 40.0 ± 2.0 |" in text
    assert "| 43 | 42.0 | 40.0 |" in text


def test_missing_or_incomplete_results_fail_clearly(tmp_path, checkpoint):
    with pytest.raises(hub.ResultsError, match="does not exist"):
        hub.render_card("li-bert-sst5", tmp_path / "nope.json")
    broken = synthetic_result(tmp_path / "broken.json", test={"macro_f1": 0.4})
    with pytest.raises(hub.ResultsError, match="accuracy"):
        hub.render_card("li-bert-sst5", broken)
    no_command = synthetic_result(tmp_path / "nocmd.json", command=None)
    with pytest.raises(hub.ResultsError, match="command"):
        hub.prepare_checkpoint_for_hub(checkpoint, no_command, repo_id=REPO_ID)
    assert not (checkpoint / "README.md").exists()
    nan = synthetic_result(tmp_path / "nan.json", test={"accuracy": float("nan"), "macro_f1": 0.4})
    with pytest.raises(hub.ResultsError, match="finite"):
        hub.load_result(nan)
    local = synthetic_result(tmp_path / "local.json", model_name_or_path=str(tmp_path))
    with pytest.raises(hub.ResultsError, match="local path with no known Hub id"):
        hub.load_result(local)
    # local data that is not SST-5 (other split sizes) has no Hub id to put in the card: no guessing
    other_data = {"source": str(tmp_path), "sizes": {"train": 100, "validation": 10, "test": 10}}
    with pytest.raises(hub.ResultsError, match="local and not SST-5"):
        hub.render_card("li-bert-sst5", synthetic_result(tmp_path / "other.json", data=other_data))
    hub_data = {"source": "someone/reviews", "sizes": other_data["sizes"]}
    card = str(hub.render_card("li-bert-sst5", synthetic_result(tmp_path / "hub.json", data=hub_data)))
    assert "- someone/reviews" in card and "SetFit/sst5" not in card


def test_card_says_when_the_gates_stayed_closed(tmp_path):
    closed = synthetic_result(tmp_path / "li-seed42.json", gate_openness=[0.0012, 0.0009])
    text = str(hub.render_card("li-bert-sst5", closed))
    assert "0.001, 0.001 (mean 0.001). They stayed nearly closed" in text
    # a record without the field (older runs) renders without the sentence, never with an invented one
    assert "|tanh β| after training" not in str(
        hub.render_card("li-bert-sst5", synthetic_result(tmp_path / "a.json"))
    )
    with pytest.raises(hub.ResultsError, match=r"gate_openness must be numbers in \[0, 1\]"):
        hub.render_card("li-bert-sst5", synthetic_result(tmp_path / "b.json", gate_openness=[0.1, 1.5]))


@pytest.mark.parametrize("name", ["li-bert-sst5", "dm-bert-sst5"])
def test_released_card_specs(name):
    """Both released cards have a spec; they render from the real results once those exist, never before."""
    spec = hub.load_card_spec(name)
    assert spec.repo_id == f"msnn/{name}"
    assert spec.results.startswith("results/sst5-v0.2/")  # msnn_hf 0.2's grid, never 0.1's
    if not spec.path(spec.results).is_file():
        with pytest.raises(hub.ResultsError, match="does not exist"):
            hub.render_card(spec)
        return
    result = hub.load_result(spec.path(spec.results))
    text = str(hub.render_card(spec))
    hub.validate_card(text, result)
    # the released checkpoints are runs whose integration gates opened (a closed one would be its backbone)
    assert "nearly closed" not in text and "|tanh β| after training" in text


# ------------------------------------------------------------------------------------------------ checkpoints
def test_checkpoint_validation(checkpoint, tmp_path):
    files = hub.checkpoint_files(checkpoint)
    for needed in (
        "config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "integration.py",
    ):
        assert needed in files
    assert "modeling_multistream_common.py" in files  # a relative import of the modeling file
    auto_map = hub.plan_upload(checkpoint).config[
        "auto_map"
    ]  # what is uploaded; the folder's file is untouched
    assert {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"} <= set(auto_map)

    (checkpoint / "training_args.bin").write_bytes(b"\x80\x04pickle")  # Trainer state: skipped, not uploaded
    assert "training_args.bin" not in hub.checkpoint_files(checkpoint)
    (checkpoint / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(
        hub.CheckpointError, match=r"refusing to publish pickle files \['pytorch_model.bin'\]"
    ):
        hub.checkpoint_files(checkpoint)
    (checkpoint / "pytorch_model.bin").unlink()

    (checkpoint / "integration.py").rename(tmp_path / "integration.py")
    with pytest.raises(hub.CheckpointError, match="integration.py"):
        hub.checkpoint_files(checkpoint)
    (tmp_path / "integration.py").rename(checkpoint / "integration.py")

    (checkpoint / "phonetic_vocab.json").unlink()
    with pytest.raises(hub.CheckpointError, match="phonetic_vocab.json"):
        hub.checkpoint_files(checkpoint)


def test_corrupted_safetensors_is_refused(checkpoint):
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(hub.CheckpointError, match="not a readable safetensors file"):
        hub.checkpoint_files(checkpoint)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dry_run_changes_nothing_and_shows_where_it_rendered(checkpoint, tmp_path, capsys):
    """A dry run renders into a temporary folder and prints its path; the checkpoint folder keeps every byte
    (config.json included), also when validation fails; a README of the user's own is never replaced unasked."""
    results = synthetic_result(tmp_path / "li-seed42.json")
    config = json.loads((checkpoint / "config.json").read_text())
    config["auto_map"].pop("AutoModel", None)  # as save_pretrained writes it: only the task class mapped
    (checkpoint / "config.json").write_text(json.dumps(config))
    (checkpoint / "README.md").write_text("# My notes on this run\n")
    before = folder_bytes(checkpoint)
    argv = [str(checkpoint), "--repo_id", REPO_ID, "--results", str(results), "--dry_run"]
    assert hub.main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"msnn-push: error: {checkpoint / 'README.md'} is your own README; the upload would replace it on the Hub "
        "with the generated model card. Pass --overwrite_readme (overwrite_readme=True) to do so (the local file is "
        "never changed), or move it"
    ]
    assert folder_bytes(checkpoint) == before
    # validation that fails late (the card's dataset) leaves the folder as it was, config.json included
    other_data = synthetic_result(
        tmp_path / "other.json", data={"source": "/data/mine", "sizes": {"train": 3}}
    )
    assert hub.main([*argv[:4], str(other_data), "--dry_run", "--overwrite_readme"]) == 2
    assert "local and not SST-5" in capsys.readouterr().err and folder_bytes(checkpoint) == before

    assert hub.main([*argv, "--overwrite_readme"]) == 0
    out = capsys.readouterr().out
    assert folder_bytes(checkpoint) == before
    staging = Path(out.split("The upload is rendered in ")[1].split(":\n")[0])
    assert staging.is_dir() and not staging.is_relative_to(checkpoint)
    listed = out.split(":\n", 1)[1].split("Left out:")[0].split()
    assert sorted(p.name for p in staging.iterdir()) == listed
    assert "Generated by `msnn-push`" in (staging / "README.md").read_text()
    assert "AutoModel" in json.loads((staging / "config.json").read_text())["auto_map"]
    assert "README.md: replaced by the generated model card" in out
    # a card that msnn-push generated earlier is not the user's own: replaced without the flag
    shutil.copy(staging / "README.md", checkpoint / "README.md")
    assert hub.main(argv) == 0


def test_what_is_uploaded_is_decided_by_content(checkpoint, tmp_path):
    import pickle

    payload = pickle.dumps({"a": 1}, protocol=4)
    for name in ("x.safetensors", "evil.model", "notes.txt"):
        (checkpoint / name).write_bytes(payload)
        with pytest.raises(hub.CheckpointError, match=rf"refusing to publish pickle files \['{name}'\]"):
            hub.plan_upload(checkpoint)
        (checkpoint / name).unlink()
    zipped = tmp_path / "weights.zip"
    import torch

    torch.save({"w": torch.zeros(1)}, zipped)  # torch.save's zip archive holds a pickle
    shutil.copy(zipped, checkpoint / "extra.safetensors")
    with pytest.raises(
        hub.CheckpointError, match=r"refusing to publish pickle files \['extra.safetensors'\]"
    ):
        hub.plan_upload(checkpoint)
    (checkpoint / "extra.safetensors").unlink()

    (checkpoint / "link.txt").symlink_to("/etc/passwd")
    (checkpoint / "inside.txt").symlink_to(checkpoint / "stream_tables.json")
    (checkpoint / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    (checkpoint / "broken.json").write_text("{ half")
    (checkpoint / "fake.png").write_text("not an image")
    (checkpoint / "data.parquet").write_bytes(b"PAR1")
    (checkpoint / "notes.md").write_text("What I tried.\n")
    plan = hub.plan_upload(checkpoint)
    left_out = dict(plan.left_out)
    assert left_out["link.txt"] == "a symlink to /etc/passwd, outside the checkpoint folder"
    assert left_out["junk.safetensors"].startswith("not a readable safetensors file")
    assert left_out["broken.json"].startswith("not valid JSON")
    assert left_out["fake.png"] == "not a PNG image"
    assert left_out["data.parquet"].startswith("not a file type a checkpoint needs")
    assert {"notes.md", "inside.txt", "model.safetensors", "config.json"} <= set(plan.files)
    assert not set(left_out) & set(plan.files)
    # a needed file that is not what its name says is an error, not a silent omission
    (checkpoint / "phonetic_vocab.json").write_text("[1, 2")
    with pytest.raises(
        hub.CheckpointError, match=r"phonetic_vocab.json is needed but cannot be uploaded: not valid JSON"
    ):
        hub.plan_upload(checkpoint)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("config_not_json", r"config.json: not valid JSON \(Expecting property name"),
        ("processor_config_list", r"processor_config.json: must hold a JSON object, not a JSON list"),
        ("index_list", r"model.safetensors.index.json: must hold a JSON object, not a JSON list"),
        ("index_not_json", r"model.safetensors.index.json: not valid JSON"),
        ("offline", r"HF_HUB_OFFLINE=1 is set: publishing needs the Hub"),
        ("refused", r"Could not reach the Hub at http://127.0.0.1:\d+: .*"),
        ("repo_id", r"Invalid --repo_id 'not a/valid/id'"),
    ],
)
def test_publishing_failures_are_one_line(checkpoint, tmp_path, capsys, monkeypatch, case, message):
    from huggingface_hub import constants

    results = synthetic_result(tmp_path / "li-seed42.json")
    repo_id = REPO_ID
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", case == "offline")
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token")
    if case == "config_not_json":
        (checkpoint / "config.json").write_text("{not json")
    elif case == "processor_config_list":
        (checkpoint / "processor_config.json").write_text("[]")
    elif case.startswith("index"):
        (checkpoint / "model.safetensors.index.json").write_text("[]" if case == "index_list" else "{")
    elif case == "repo_id":
        repo_id = "not a/valid/id"
    before = folder_bytes(checkpoint)
    assert (
        hub.main([str(checkpoint), "--repo_id", repo_id, "--results", str(results), "--card", "li-bert-sst5"])
        == 2
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("msnn-push: error: "), lines
    assert re.search(message, lines[0]), lines[0]
    assert folder_bytes(checkpoint) == before


# ------------------------------------------------------------------------------------------------ publishing
def test_push_then_load_from_the_hub(checkpoint, tmp_path):
    """msnn-push to the fake Hub; every needed file arrives; users load it in fresh processes, with and without
    msnn_hf (remote code), and get the logits of the local checkpoint."""
    (checkpoint / "training_args.bin").write_bytes(b"\x80\x04pickle")
    (checkpoint / "checkpoint-10").mkdir()
    (checkpoint / "checkpoint-10" / "optimizer.pt").write_bytes(b"\x80\x04pickle")
    results = synthetic_result(tmp_path / "li-seed42.json")
    expected_logits = reference_logits(checkpoint, TEXTS)
    workdir = tmp_path / "work"
    workdir.mkdir()

    with FakeHub(token="hf_fake_token") as server:
        env = _hub_env(server, tmp_path / "pusher-home")
        push = subprocess.run(
            [
                sys.executable,
                "-m",
                "msnn_hf.publishing",  # the msnn-push entry point (pyproject: msnn_hf.publishing:main)
                str(checkpoint),
                "--repo_id",
                REPO_ID,
                "--results",
                str(results),
            ],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert push.returncode == 0, push.stderr[-4000:]
        assert f"{server.endpoint}/{REPO_ID}/commit/" in push.stdout

        uploaded = set(server.files(REPO_ID))
        needed = set(hub.checkpoint_files(checkpoint)) | {"README.md", "alpha.png"}
        assert needed <= uploaded, f"missing on the Hub: {sorted(needed - uploaded)}"
        assert not {"training_args.bin", "checkpoint-10/optimizer.pt"} & uploaded
        assert not [f for f in uploaded if f.endswith(hub.PICKLE_SUFFIXES)]
        for name in needed - {"README.md", "alpha.png", "config.json"}:
            assert server.files(REPO_ID)[name] == (checkpoint / name).read_bytes(), name
        assert json.loads(server.files(REPO_ID)["config.json"]) == hub.plan_upload(checkpoint).config
        assert not (checkpoint / "README.md").exists() and not (checkpoint / "alpha.png").exists()
        readme = server.files(REPO_ID)["README.md"].decode()
        hub.validate_card(readme, hub.load_result(results))

        # the user's side, with msnn_hf installed (registered Auto classes, no remote code)
        with_pkg = _run(
            f"""
            import json, torch
            import msnn_hf
            from transformers import AutoModel, AutoModelForSequenceClassification, AutoProcessor
            processor = AutoProcessor.from_pretrained({REPO_ID!r})
            clf = AutoModelForSequenceClassification.from_pretrained({REPO_ID!r}).eval()
            base = AutoModel.from_pretrained({REPO_ID!r}).eval()
            inputs = processor({TEXTS!r}, padding=True, return_tensors="pt")
            with torch.no_grad():
                logits = clf(**inputs).logits
                weights = base(**inputs, output_stream_weights=True).stream_weights
            print(json.dumps({{"logits": logits.tolist(), "clf": type(clf).__module__, "base": type(base).__name__,
                              "weights": list(weights.shape), "processor": type(processor).__name__}}))
            """,
            _hub_env(server, tmp_path / "user-home-1"),
            workdir,
        )
        got = json.loads(with_pkg.stdout.strip().splitlines()[-1])
        assert got["clf"] == "msnn_hf.modeling_multistream_bert" and got["base"] == "MultiStreamBertModel"
        assert got["processor"] == "MultiStreamProcessor"
        layers, batch, _tokens, streams = got["weights"]
        assert (layers, batch, streams) == (2, len(TEXTS), 3)
        np.testing.assert_allclose(got["logits"], expected_logits, atol=1e-5)

        # ... and without msnn_hf: the import is blocked; the code comes from the repo (trust_remote_code=True)
        without_pkg = _run(
            f"""
            import sys
            class BlockMsnn:
                def find_spec(self, name, path=None, target=None):
                    if name == "msnn_hf" or name.startswith("msnn_hf."):
                        raise ImportError(f"{{name}} is blocked in this test")
            sys.meta_path.insert(0, BlockMsnn())
            try:
                import msnn_hf
                raise SystemExit("msnn_hf should not be importable here")
            except ImportError:
                pass
            import json, torch
            from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
            tokenizer = AutoTokenizer.from_pretrained({REPO_ID!r}, trust_remote_code=True)
            clf = AutoModelForSequenceClassification.from_pretrained({REPO_ID!r}, trust_remote_code=True).eval()
            base = AutoModel.from_pretrained({REPO_ID!r}, trust_remote_code=True).eval()
            inputs = tokenizer({TEXTS!r}, padding=True, return_tensors="pt")
            with torch.no_grad():
                logits = clf(**inputs).logits
                weights = base(**inputs, output_stream_weights=True).stream_weights
            assert not [m for m in sys.modules if m.startswith("msnn_hf")]
            print(json.dumps({{"logits": logits.tolist(), "clf": type(clf).__module__, "base": type(base).__name__,
                              "weights": list(weights.shape)}}))
            """,
            _hub_env(server, tmp_path / "user-home-2"),
            workdir,
        )
        got = json.loads(without_pkg.stdout.strip().splitlines()[-1])
        assert got["clf"].startswith("transformers_modules.") and got["base"] == "MultiStreamBertModel"
        np.testing.assert_allclose(got["logits"], expected_logits, atol=1e-5)

        # the card's metadata merges with huggingface_hub's own metadata_update (same model-index: no conflict)
        _run(
            f"""
            from huggingface_hub import ModelCard, metadata_update
            card = ModelCard.load({REPO_ID!r})
            metadata_update({REPO_ID!r}, {{"model-index": card.data.to_dict()["model-index"], "widget": [{{"text": "A fine film."}}]}})
            again = ModelCard.load({REPO_ID!r})
            assert again.data.widget == [{{"text": "A fine film."}}]
            assert again.data.eval_results == card.data.eval_results and again.data.tags == card.data.tags
            """,
            _hub_env(server, tmp_path / "user-home-3"),
            workdir,
        )


def test_push_cli_errors_are_one_line(checkpoint, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "msnn_hf.hub",
            str(checkpoint),
            "--repo_id",
            REPO_ID,
            "--results",
            "missing.json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "msnn-push: error: Result file missing.json does not exist. Model cards are filled from measured results "
        "only: run the trainer first (it writes results/<task>/<variant>-seed<k>.json), or pass --results PATH."
    ]
    assert "Traceback" not in proc.stderr
