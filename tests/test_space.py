"""The alpha-viz Space (spaces/alpha-viz): its `analyse` function, its API and its page in headless Chromium.

The browser tests start the app on a free local port in a subprocess with a tiny random checkpoint and drive it
with playwright-core (tests/e2e/space_e2e.js) in Debian's Chromium. They are skipped only when
/usr/bin/chromium is absent. Screenshots go to the test's tmp_path and to tests/_artifacts/space/ (gitignored).

Browser setup (CI): `apt-get install -y chromium` and `npm ci --prefix tests/e2e`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tiny_checkpoint import SST5_LABELS, build_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "spaces" / "alpha-viz"
E2E = ROOT / "tests" / "e2e"
ARTIFACTS = ROOT / "tests" / "_artifacts" / "space"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
STARTUP_TIMEOUT_S = 300


def _load_app_module():
    spec = importlib.util.spec_from_file_location("alpha_viz_app", SPACE / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


app = _load_app_module()


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def space_checkpoint(tiny_processor, tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tiny_processor, tmp_path_factory.mktemp("space_ckpt") / "li-tiny")


@pytest.fixture(scope="module")
def loaded(space_checkpoint):
    return app.load_model(str(space_checkpoint))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_app(model: str, log: Path) -> tuple[subprocess.Popen, str]:
    """Start the app in a subprocess on a free loopback port; return it and its URL once it answers."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADIO_")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", MSNN_MODEL=model)
    handle = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, str(SPACE / "app.py"), "--port", str(port)],
        env=env,
        cwd=SPACE,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the app exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(1.0)
    proc.kill()
    pytest.fail(f"the app did not answer within {STARTUP_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def running_app(space_checkpoint, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("space_log") / "app.log"
    proc, url = _start_app(str(space_checkpoint), log)
    yield url, log
    _stop(proc)


def _node_e2e(url: str, out: Path, scenario: str) -> dict:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)")
    if shutil.which("node") is None or not (E2E / "node_modules" / "playwright-core").is_dir():
        pytest.fail("playwright-core is not installed: run `npm ci --prefix tests/e2e` (Node.js 20+)")
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["node", str(E2E / "space_e2e.js"), url, str(out), scenario],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "CHROMIUM_PATH": CHROMIUM},
    )
    lines = proc.stdout.strip().splitlines()
    seen = json.loads(lines[-1]) if lines else {}
    assert proc.returncode == 0, (
        f"browser check failed: {proc.stderr[-3000:]}\nseen: {json.dumps(seen)[:3000]}"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for png in out.glob("*.png"):
        shutil.copyfile(png, ARTIFACTS / png.name)
    return seen


# ------------------------------------------------------------------------------------------------ analyse()
def test_analyse_outputs(loaded):
    result = app.analyse("The actor loved the wonderful music.", [], loaded)
    assert result.ok and not result.notices
    assert list(result.probabilities) == SST5_LABELS
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.tokens[0] == "[CLS]" and "wonderful" in result.tokens
    layers, tokens, streams = result.weights.shape
    assert (layers, tokens, streams) == (2, len(result.tokens), 3) and result.layers == [0, 1]
    assert result.streams == ["semantic", "phonetic", "morphological"]
    row = result.rows[result.tokens.index("wonderful")]
    assert row[1] == "wonderful" and row[2] and row[3]  # phonemes and morphs next to the word piece
    assert len(row) == 4 + 3
    assert app.heatmap(result) is not None
    json.dumps(result.to_dict())  # the API payload is plain JSON


def test_dropping_a_stream_removes_its_term(loaded):
    """LI: with phonetic dropped, its contribution share is exactly zero at every layer and token, and the
    prediction is computed without it (the other streams' shares renormalise)."""
    processor, model = loaded.processor, loaded.model
    inputs = processor(["The careful plan helped."], return_tensors="pt")
    with torch.no_grad(), app.dropped(model, ["phonetic"]):
        out = model(**inputs, output_stream_weights=True)
    assert torch.all(out.stream_weights[..., 1] == 0)
    assert torch.all(out.stream_weights[..., 0] > 0)
    with torch.no_grad():
        again = model(**inputs, output_stream_weights=True)  # the hook is gone afterwards
    assert torch.all(again.stream_weights[..., 1] > 0)

    result = app.analyse("The careful plan helped.", ["phonetic", "morphological"], loaded)
    assert result.dropped == ["phonetic", "morphological"]
    assert list(result.dropped_probabilities) == SST5_LABELS
    assert result.dropped_probabilities != result.probabilities
    assert "Without phonetic, morphological" in app.notice_markdown(result)
    assert len(app.probability_table(result)) == len(SST5_LABELS)
    # API clients may send one name or "a,b" as a string: names, not characters
    assert app.analyse("The careful plan helped.", "phonetic", loaded).dropped == ["phonetic"]
    assert app.analyse("The plan.", "phonetic, morphological", loaded).dropped == [
        "phonetic",
        "morphological",
    ]


@pytest.mark.parametrize(
    ("text", "notice"),
    [
        ("", "Type a sentence"),
        ("   \n ", "Type a sentence"),
        (None, "Type a sentence"),
        ("a" * 50_000, "50,000 characters; only the first 512"),
        ("good " * 200, "only the first 128 (with special tokens)"),
    ],
)
def test_bad_or_long_input_gets_a_notice(loaded, text, notice):
    result = app.analyse(text, [], loaded)
    assert any(notice in n for n in result.notices), result.notices
    if result.ok:
        assert len(result.tokens) <= app.MAX_TOKENS


def test_non_latin_text_and_emoji(loaded):
    result = app.analyse("Привет мир 😀🎬 東京タワー", ["semantic"], loaded)
    assert result.ok and not result.notices
    assert "[UNK]" in result.tokens  # the tiny vocabulary has none of these; the streams say <unk>
    assert result.dropped_probabilities is not None


def test_unknown_stream_names_are_reported(loaded):
    result = app.analyse("A fine film.", ["visual", "phonetic"], loaded)
    assert result.ok and result.dropped == ["phonetic"]
    assert any("Cannot drop ['visual']" in n for n in result.notices)


def _broken(space_checkpoint: Path, tmp_path: Path, how: str) -> Path:
    broken = Path(shutil.copytree(space_checkpoint, tmp_path / f"broken-{how}"))
    if how == "missing":
        (broken / "model.safetensors").unlink()
    elif how == "corrupt":
        data = (broken / "model.safetensors").read_bytes()
        (broken / "model.safetensors").write_bytes(data[:64] + b"\x00" * 32)
    elif how == "missing-processor-file":
        (broken / "morph_vocab.json").unlink()
    elif how == "processor-config-list":
        (broken / "processor_config.json").write_text("[]")
    elif how == "config-list":
        (broken / "config.json").write_text("[]")
    elif how == "config-not-json":
        (broken / "config.json").write_text("{ half")
    return broken


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing", "no model.safetensors"),
        ("corrupt", "is not a readable safetensors file"),
        ("missing-processor-file", "missing processor files: morph_vocab.json"),
        ("processor-config-list", r"processor_config.json must hold a JSON object, not a JSON list"),
        ("config-list", r"config.json must hold a JSON object, not a JSON list"),
        ("config-not-json", r"config.json is not valid JSON"),
    ],
)
def test_broken_checkpoint_load_errors(space_checkpoint, tmp_path, how, message):
    folder = _broken(space_checkpoint, tmp_path, how)
    with pytest.raises(app.ModelLoadError, match=message) as err:
        app.load_model(str(folder))
    assert "Traceback" not in str(err.value) and "\n" not in str(err.value).strip()
    app.set_model(None, str(err.value))
    try:
        result = app.analyse("A fine film.", [])
    finally:
        app.set_model(None, None)
    assert not result.ok and result.notices == [str(err.value)]


@pytest.mark.parametrize("relative", [True, False])
def test_a_missing_local_folder_is_reported_as_missing(tmp_path, monkeypatch, relative):
    monkeypatch.chdir(tmp_path)
    source = "./outputs/sst5/li-seed42" if relative else str(tmp_path / "outputs" / "li-seed42")
    with pytest.raises(app.ModelLoadError, match=r"Checkpoint folder .*li-seed42 does not exist") as err:
        app.load_model(source)
    assert "Repo id must be" not in str(err.value)
    # a name that could be a Hub id and is no local folder either: the Hub's error, and that no folder exists
    with pytest.raises(app.ModelLoadError, match=r"there is no local folder outputs/li-seed42 either"):
        app.load_model("outputs/li-seed42")


def test_unknown_model_id_offline(monkeypatch):
    with pytest.raises(app.ModelLoadError, match="Could not load no-such-org/no-such-model"):
        app.load_model("no-such-org/no-such-model")


def test_space_metadata_and_requirements():
    import gradio
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(SPACE / "README.md")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert card.data.sdk_version == gradio.__version__  # the version the tests ran with
    assert card.data.license == "apache-2.0"
    assert card.data.models == ["msnn/li-bert-sst5", "msnn/dm-bert-sst5"]
    assert card.data.title
    requirements = (SPACE / "requirements.txt").read_text()
    assert "msnn_hf" in requirements and "gradio" in requirements


def test_app_defaults_are_safe(monkeypatch):
    for name in ("MSNN_HOST", "GRADIO_SERVER_NAME", "MSNN_MODEL", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    args = app.parse_args([])
    assert args.host == "127.0.0.1" and args.port == 7860 and args.model == app.DEFAULT_MODEL
    monkeypatch.setenv("MSNN_MODEL", "some/model")
    assert app.parse_args(["--host", "0.0.0.0"]).host == "0.0.0.0"
    assert app.parse_args([]).model == "some/model"
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert app.MAX_CHARS == 512 and app.MAX_TOKENS == 128 and app.CONCURRENCY_LIMIT == 1


# ------------------------------------------------------------------------------------------------ running app
def test_gradio_client_api(running_app):
    from gradio_client import Client

    url, log = running_app
    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    payload = client.predict("The actor loved the wonderful music.", ["morphological"], api_name="/predict")
    assert list(payload["probabilities"]) == SST5_LABELS
    assert sum(payload["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert payload["dropped"] == ["morphological"] and payload["dropped_probabilities"]
    assert len(payload["weights"]) == 2 and len(payload["weights"][0]) == len(payload["tokens"])
    notice, probs, *_ = client.predict("", [], api_name="/analyse")
    assert "Type a sentence" in notice
    notice, probs, *_ = client.predict("A careless joke.", [], api_name="/analyse")
    assert probs["label"] in SST5_LABELS
    assert "Running on local URL:  http://127.0.0.1:" in log.read_text()  # loopback only by default


def test_browser_happy_path_and_bad_input(running_app, tmp_path):
    url, _ = running_app
    seen = _node_e2e(url, tmp_path, "happy")
    assert "%" in seen["probs"] and "wonderful" in seen["tokens_table"]
    assert "Without phonetic" in seen["drop_notice"]
    assert "Type a sentence" in seen["empty"] and "50,000 characters" in seen["long"]
    assert not seen["console_errors"]
    assert (tmp_path / "space.png").stat().st_size > 10_000


def test_browser_broken_checkpoint(space_checkpoint, tmp_path):
    """A corrupted safetensors file: the page says so, submitting answers with the same message (no hung
    worker), no stack trace. (A missing file takes the same path; see test_broken_checkpoint_load_errors.)"""
    folder = _broken(space_checkpoint, tmp_path, "corrupt")
    proc, url = _start_app(str(folder), tmp_path / "app.log")
    try:
        seen = _node_e2e(url, tmp_path / "shots", "broken")
    finally:
        _stop(proc)
    expected = "not a readable safetensors file"
    assert expected in seen["load_error"] and expected in seen["notice"]
    assert "Traceback" not in seen["page_text"]
