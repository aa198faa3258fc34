"""The alpha-viz Space (spaces/alpha-viz): its `analyse` function, its API and its page in headless Chromium.

The browser tests start the app on a free local port in a subprocess with tiny random checkpoints (a sentence
classifier for the text tab, a vision encoder-decoder for the image tab) and drive it with playwright-core
(tests/e2e/space_e2e.js) in Debian's Chromium. They are skipped only when /usr/bin/chromium is absent. Screenshots
go to the test's tmp_path and to tests/_artifacts/space/ (gitignored).

Browser setup (CI): `apt-get install -y chromium` and `npm ci --prefix tests/e2e`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_checkpoint import SST5_LABELS, build_tiny_checkpoint, build_tiny_vision_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "spaces" / "alpha-viz"
E2E = ROOT / "tests" / "e2e"
ARTIFACTS = ROOT / "tests" / "_artifacts" / "space"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
STARTUP_TIMEOUT_S = 300


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _load_app_module():
    return _load_module("alpha_viz_app", SPACE / "app.py")


app = _load_app_module()
screenshots = _load_module("space_screenshot", ROOT / "scripts" / "space_screenshot.py")


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def space_checkpoint(tiny_processor, tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tiny_processor, tmp_path_factory.mktemp("space_ckpt") / "li-tiny")


@pytest.fixture(scope="module")
def loaded(space_checkpoint):
    return app.load_model(str(space_checkpoint))


@pytest.fixture(scope="module")
def vision_checkpoint(tiny_tokenizer, tmp_path_factory) -> Path:
    return build_tiny_vision_checkpoint(
        tiny_tokenizer, tmp_path_factory.mktemp("space_vision") / "dm-token-tiny"
    )


@pytest.fixture(scope="module")
def vision(vision_checkpoint):
    return app.load_vision_model(str(vision_checkpoint))


QUESTION = "what is the actor playing?"
PHOTO = "PNG 256×192"


@pytest.fixture(scope="module")
def image_files(tmp_path_factory) -> Path:
    """The uploads of scripts/space_screenshot.py (a drawn photo, RGBA, a text file named .jpg, a truncated JPEG)
    and more made here: what the unit tests and the browser test upload."""
    folder = screenshots.write_upload_files(tmp_path_factory.mktemp("space_images"), QUESTION)
    photo = Image.open(folder / "photo.png")
    photo.convert("L").save(folder / "grey.png")
    Image.new("L", (1, 1), 127).save(folder / "one_pixel.png")
    photo.convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    return folder


@pytest.fixture(scope="module")
def example_data_dir(image_files, tmp_path_factory) -> Path:
    """A data folder laid out like the shared one (one Flickr8k-style test photo, one DAQUAR-style question),
    with an image made here."""
    root = tmp_path_factory.mktemp("space_data")
    for folder, row in (
        ("captions-flickr8k", {"image": "images/a.jpg", "captions": ["x"], "split": "test"}),
        (
            "vqa-daquar",
            {"image": "images/b.jpg", "question": "what is it ?", "answers": ["x"], "split": "test"},
        ),
    ):
        (root / folder / "images").mkdir(parents=True)
        shutil.copyfile(image_files / "photo.jpg", root / folder / row["image"])
        index = "captions.jsonl" if folder == "captions-flickr8k" else "qa.jsonl"
        train = {**row, "split": "train"}
        (root / folder / index).write_text(json.dumps(train) + "\n" + json.dumps(row) + "\n")
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_app(
    model: str, log: Path, vision_model: str | None = None, data_dir: Path | None = None
) -> tuple[subprocess.Popen, str]:
    """Start the app in a subprocess on a free loopback port; return it and its URL once it answers."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADIO_", "MSNN_VISION_MODEL"))}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", MSNN_MODEL=model)
    if vision_model is not None:
        env["MSNN_VISION_MODEL"] = vision_model
    if data_dir is not None:
        env["MSNN_DATA_DIR"] = str(data_dir)
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
def running_app(
    space_checkpoint, vision_checkpoint, example_data_dir, tmp_path_factory
) -> Iterator[tuple[str, Path]]:
    """The app with both tabs: the tiny classifier and the tiny vision encoder-decoder."""
    log = tmp_path_factory.mktemp("space_log") / "app.log"
    proc, url = _start_app(str(space_checkpoint), log, str(vision_checkpoint), example_data_dir)
    yield url, log
    _stop(proc)


def _node_e2e(url: str, out: Path, scenario: str, *extra: str) -> dict:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)")
    if shutil.which("node") is None or not (E2E / "node_modules" / "playwright-core").is_dir():
        pytest.fail("playwright-core is not installed: run `npm ci --prefix tests/e2e` (Node.js 20+)")
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["node", str(E2E / "space_e2e.js"), url, str(out), scenario, *extra],
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
    for name in ("MSNN_HOST", "GRADIO_SERVER_NAME", "MSNN_MODEL", "GRADIO_SERVER_PORT", "MSNN_VISION_MODEL"):
        monkeypatch.delenv(name, raising=False)
    args = app.parse_args([])
    assert args.host == "127.0.0.1" and args.port == 7860 and args.model == app.DEFAULT_MODEL
    assert args.vision_model is None  # no image tab unless asked for
    monkeypatch.setenv("MSNN_MODEL", "some/model")
    assert app.parse_args(["--host", "0.0.0.0"]).host == "0.0.0.0"
    assert app.parse_args([]).model == "some/model"
    monkeypatch.setenv("MSNN_VISION_MODEL", "some/vision-model")
    assert app.parse_args([]).vision_model == "some/vision-model"
    assert app.parse_args(["--vision_model", "x", "--model", "none"]).vision_model == "x"
    assert app._no_model("none") and app._no_model("") and not app._no_model("some/model")
    assert app.MAX_NEW_TOKENS == 40 and app.MAX_QUESTION_TOKENS == 48 and app.MAX_IMAGE_PIXELS == 25_000_000
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert app.MAX_CHARS == 512 and app.MAX_TOKENS == 128 and app.CONCURRENCY_LIMIT == 1


# ------------------------------------------------------------------------------------------------ images
def _alpha_step_by_step(loaded, image_path: Path, question: str, steps: int) -> tuple[list[int], list[float]]:
    """Greedy generation one full forward per step (no cache): each step's last position predicts the next token,
    and its stream weights there give that token's α_vision (mean over integration points)."""
    model, processor = loaded.model, loaded.processor
    inputs = processor(images=[Image.open(image_path).convert("RGB")], text=[question] if question else None)
    ids = inputs["decoder_input_ids"]
    from msnn_hf.analysis import capture_mixing_weights

    tokens, alphas, mixing = [], [], []
    vision_index = model.config.decoder.streams.index("vision")
    with torch.no_grad():
        for _ in range(steps):
            with capture_mixing_weights(model) as captured:
                out = model(
                    pixel_values=inputs["pixel_values"], decoder_input_ids=ids, output_stream_weights=True
                )
            token = int(out.logits[0, -1].argmax())
            tokens.append(token)
            alphas.append(float(model.modality_weights(out.stream_weights)["vision"][:, 0, -1].mean()))
            mixing.append(float(torch.stack([c[0, -1, vision_index] for c in captured]).mean()))
            if token == processor.eos_token_id:
                break
            ids = torch.cat([ids, torch.tensor([[token]])], 1)
    return tokens, alphas, mixing


@pytest.mark.parametrize("question", [None, QUESTION], ids=["caption", "answer"])
def test_describe_image_alpha_per_generated_token(vision, image_files, question):
    """α_vision of a generated token is read at the position that predicts it: the same numbers as generating one
    full forward at a time and reading the last position's weights."""
    result = app.describe_image(str(image_files / "photo.png"), question, 12, vision)
    assert result.ok and not result.notices, result.notices
    assert result.task == ("caption" if question is None else "answer")
    assert result.prompt == (question or "")
    n = len(result.tokens)
    assert 1 <= n <= 12 and len(result.token_ids) == n
    assert result.alpha_by_point.shape == (2, n) and result.layers == [0, 1]
    alpha_vision, alpha_text = np.array(result.alpha_vision), np.array(result.alpha_text)
    np.testing.assert_allclose(alpha_vision, result.alpha_by_point.mean(0), rtol=1e-6)
    np.testing.assert_allclose(alpha_vision + alpha_text, 1.0, atol=1e-5)  # DM-token: the shares sum to 1
    assert ((alpha_vision > 0) & (alpha_vision < 1)).all() and alpha_vision.std() > 0
    tokens, alphas, mixing = _alpha_step_by_step(vision, image_files / "photo.png", question or "", 12)
    assert result.token_ids == tokens
    np.testing.assert_allclose(alpha_vision, alphas, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.mixing_vision, mixing, rtol=1e-4, atol=1e-6)  # the token gate's choice
    assert all(0 < m < 1 for m in result.mixing_vision)
    text = vision.processor.decode(tokens, skip_special_tokens=True).strip()
    assert result.text == text
    json.dumps(result.to_dict())  # plain JSON
    page = app.alpha_html(result)
    assert page.count('class="alpha-token"') == n and "linear-gradient" in page
    assert f">{result.mixing_vision[0]:.2f}<" in page  # the number next to the colour: the mixing weight
    assert f'data-alpha="{result.alpha_vision[0]:.6g}"' in page  # the share in z beside it
    assert result.pieces == [vision.processor.tokenizer.convert_tokens_to_string([t]) for t in result.tokens]
    rows = app.alpha_table(result)
    assert len(rows) == n and len(rows[0]) == 2 + 3 + 2  # #, token, mixing, α_vision, α_text, one per point
    assert [row[1] for row in rows] == [p.strip() or t for p, t in zip(result.pieces, result.tokens)]
    assert f"Image: photo.png: {PHOTO}, mode RGB" in app.image_notice_markdown(result)


@pytest.mark.parametrize(
    ("name", "mode"),
    [("rgba.png", "RGBA → RGB (transparency"), ("grey.png", "mode L → RGB"), ("one_pixel.png", "1×1, mode L"),
     ("palette.png", "mode P → RGB"), ("photo.jpg", "JPEG 256×192, mode RGB")],
)  # fmt: skip
def test_describe_image_converts_any_mode(vision, image_files, name, mode):
    result = app.describe_image(str(image_files / name), None, 4, vision)
    assert result.ok and not result.notices and mode in result.image_info, (result.image_info, result.notices)


def test_exif_orientation_is_applied(image_files, tmp_path):
    """A phone photo tagged "rotate 90° on display" (orientation 6) is captioned upright, as Gradio shows it."""
    photo = Image.open(image_files / "photo.png")
    exif = Image.Exif()
    exif[app.EXIF_ORIENTATION] = 6
    photo.save(tmp_path / "rotated.jpg", exif=exif)
    rgb, info = app.read_image(str(tmp_path / "rotated.jpg"))
    assert rgb.size == (192, 256) and info.endswith("JPEG 256×192, mode RGB, EXIF orientation 6 applied")
    rgb, info = app.read_image(str(image_files / "palette.png"))
    assert info.endswith("mode P → RGB")  # no transparency: nothing composited


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("not_an_image.jpg", "image file 'not_an_image.jpg' is not an image file PIL can identify"),
        ("truncated.jpg", "image file 'truncated.jpg' could not be decoded (truncated or corrupt?)"),
        ("missing.png", "image file 'missing.png' does not exist"),
        (None, "Upload an image or pick an example."),
        ({"url": "data:,"}, "Could not read the upload: the upload carried no file."),
    ],
    ids=["text-file-named-jpg", "truncated-jpeg", "missing", "none", "no-path"],
)
def test_bad_images_get_a_message(vision, image_files, image, message):
    if isinstance(image, str):  # what Gradio passes (the events run with preprocess=False)
        image = {"path": str(image_files / image), "orig_name": image}
    result = app.describe_image(image, None, 4, vision)
    assert not result.ok and len(result.notices) == 1 and result.notices[0].startswith(message)
    assert str(image_files) not in " ".join(result.notices)  # the page shows no server paths
    assert app.alpha_html(result) == "" and app.alpha_table(result) == []


def test_image_work_is_bounded(vision, image_files, monkeypatch):
    result = app.describe_image(str(image_files / "photo.png"), None, 10_000, vision)
    assert f"At most {app.MAX_NEW_TOKENS} new tokens" in result.notices[0]
    assert result.ok and len(result.tokens) <= app.MAX_NEW_TOKENS
    long = app.describe_image(str(image_files / "photo.png"), "the actor " * 100, 40, vision)
    notices = " ".join(long.notices)
    assert "999 characters; only the first 300" in notices  # stripped
    assert f"only the first {app.MAX_QUESTION_TOKENS} were used" in notices
    room = vision.max_positions - 1 - app.MAX_QUESTION_TOKENS  # 64 positions - BOS - 48 question tokens
    assert f"room for {room} more tokens" in notices and len(long.tokens) <= room
    assert len(long.prompt.split()) <= app.MAX_QUESTION_TOKENS
    assert app.describe_image(str(image_files / "photo.png"), "  ", 4, vision).notices == [
        "Type a question about the image."
    ]
    monkeypatch.setattr(app, "MAX_IMAGE_PIXELS", 256 * 192 - 1)  # checked on the header, before decoding
    too_large = app.describe_image(str(image_files / "photo.png"), None, 4, vision)
    assert (
        not too_large.ok
        and "256x192 = 49,152 pixels, more than max_image_pixels=49,151" in too_large.notices[0]
    )


def test_alpha_html_escapes_tokens_and_colours_both_signs():
    """α_vision includes the gate tanh(β), which training can make negative: red below 0, blue above, the scale
    from 0 to the largest |α|; the token's text (not its vocabulary entry) is shown, escaped."""
    analysis = app.ImageAnalysis(
        tokens=["<script>", "Ġman", "&"], pieces=["<script>", " man", "&"], token_ids=[5, 6, 7],
        alpha_vision=[0.002, -0.004, 0.0],
    )  # fmt: skip
    page = app.alpha_html(analysis)
    assert "<script>" not in page and "&lt;script&gt;" in page and "&amp;" in page
    assert '<span class="tok">man</span>' in page and 'title="Ġman: α_vision = -0.004"' in page
    colours = re.findall(r"background: rgb\((\d+), (\d+), (\d+)\)", page)
    (r0, _, b0), (r1, _, b1), (r2, g2, b2) = [tuple(map(int, c)) for c in colours[:3]]
    assert b0 > r0 and r1 > b1 and r2 == g2 == b2  # positive blue, negative red, zero neutral
    assert "α_vision: -0.004 <span" in page and "</span> 0.004</div>" in page
    assert app._colour(0.0) == ("rgb(247, 247, 247)", "#111") and app._colour(-1.0)[1] == "#fff"
    plain = app.alpha_html(app.ImageAnalysis(tokens=["a"], token_ids=[1]))
    assert "alpha-token plain" in plain and "alpha-legend" not in plain


@pytest.mark.parametrize(
    ("integration_type", "granularity", "notice"),
    [("li", "scalar", "Linear Integration (LI): it has no mixing weight α"), ("dm", "scalar", "scalar α")],
    ids=["li", "dm-scalar"],
)
def test_models_without_per_token_alpha_say_so(
    tiny_tokenizer, image_files, tmp_path, integration_type, granularity, notice
):
    folder = build_tiny_vision_checkpoint(tiny_tokenizer, tmp_path / "m", integration_type, granularity)
    loaded = app.load_vision_model(str(folder))
    assert loaded.alpha_kind == ("li" if integration_type == "li" else "constant")
    result = app.describe_image(str(image_files / "photo.png"), None, 5, loaded)
    assert result.ok and result.tokens and result.alpha_vision is None
    assert len(result.notices) == 1 and notice in result.notices[0]
    if integration_type == "dm":
        assert (
            0 < result.constant_alpha < 1 and f"α_vision = {result.constant_alpha:.4g}" in result.notices[0]
        )
    page = app.alpha_html(result)
    assert page.count("alpha-token plain") == len(result.tokens) and "linear-gradient" not in page
    assert all(len(row) == 2 for row in app.alpha_table(result))


def test_vision_load_errors(space_checkpoint, vision_checkpoint, tmp_path):
    with pytest.raises(app.ModelLoadError, match="not a multi-stream vision encoder-decoder"):
        app.load_vision_model(str(space_checkpoint))  # a sentence classifier
    with pytest.raises(app.ModelLoadError, match="give it with --vision_model"):
        app.load_model(str(vision_checkpoint))
    broken = Path(shutil.copytree(vision_checkpoint, tmp_path / "no-image-processor"))
    (broken / "preprocessor_config.json").unlink()
    with pytest.raises(app.ModelLoadError, match="missing preprocessor_config.json"):
        app.load_vision_model(str(broken))
    corrupt = Path(shutil.copytree(vision_checkpoint, tmp_path / "corrupt"))
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(app.ModelLoadError, match="not a readable safetensors file") as err:
        app.load_vision_model(str(corrupt))
    assert "\n" not in str(err.value).strip()
    app.set_vision_model(None, str(err.value))
    try:
        result = app.describe_image(str(vision_checkpoint / "config.json"), None)
    finally:
        app.set_vision_model(None, None)
    assert result.notices == [str(err.value)]
    with pytest.raises(app.ModelLoadError, match="Could not load no-such-org/no-such-vision-model"):
        app.load_vision_model("no-such-org/no-such-vision-model")  # offline: no Hub


def test_image_examples(example_data_dir, tmp_path):
    examples = app.image_examples(example_data_dir)
    assert examples == [
        [str(example_data_dir / "captions-flickr8k" / "images" / "a.jpg"), ""],
        [str(example_data_dir / "vqa-daquar" / "images" / "b.jpg"), "what is it ?"],
    ]  # test-split rows only, referenced in place
    assert app.image_examples(tmp_path / "absent") == [] and app.image_examples(None) == []


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


def test_gradio_client_image_api(running_app, image_files):
    from gradio_client import Client, handle_file

    url, _ = running_app
    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    notice, caption, tokens_html, table = client.predict(
        handle_file(str(image_files / "photo.png")), 6, api_name="/caption"
    )
    assert f"photo.png: {PHOTO}" in notice and 'class="alpha-token"' in tokens_html
    assert 1 <= len(table["data"]) <= 6 and table["headers"][:4] == [
        "#",
        "token",
        "α_vision (mixing)",
        "α_vision (share in z)",
    ]
    notice, answer, tokens_html, _ = client.predict(
        handle_file(str(image_files / "photo.png")), QUESTION, 6, api_name="/ask"
    )
    assert f"Question: {QUESTION}" in notice and 'class="alpha-token"' in tokens_html
    notice, *_ = client.predict(handle_file(str(image_files / "not_an_image.jpg")), 6, api_name="/caption")
    assert "is not an image file" in notice and "Traceback" not in notice


def test_browser_happy_path_and_bad_input(running_app, tmp_path):
    url, _ = running_app
    seen = _node_e2e(url, tmp_path, "happy")
    assert "%" in seen["probs"] and "wonderful" in seen["tokens_table"]
    assert "Without phonetic" in seen["drop_notice"]
    assert "Type a sentence" in seen["empty"] and "50,000 characters" in seen["long"]
    assert not seen["console_errors"]
    assert (tmp_path / "space.png").stat().st_size > 10_000


def test_browser_image_tab(running_app, image_files, tmp_path):
    """The image tab: upload, caption with coloured tokens, a question and its answer, an example, bad uploads."""
    url, _ = running_app
    seen = _node_e2e(url, tmp_path, "image", str(image_files))
    assert "dm-token" in seen["model_info"]
    for key in ("caption_tokens", "answer_tokens"):
        tokens = seen[key]
        assert tokens and all(0 < t["alpha"] < 1 and 0 < t["mixing"] < 1 for t in tokens), tokens
        # the number shown (and the colour) is the token gate's mixing weight; the share in z is data-alpha
        assert all(float(t["shown"]) == pytest.approx(t["mixing"], abs=0.006) for t in tokens), tokens
        assert len({t["background"] for t in tokens}) > 1  # a colour scale, not one colour
    assert f"Question: {QUESTION}" in seen["answer_notice"] and "α_vision" in seen["caption_table"]
    assert (
        seen["examples"] == 2 and "a.jpg: JPEG 256×192" in seen["example_notice"] and seen["example_tokens"]
    )
    assert "not_an_image.jpg' is not an image file" in seen["not_an_image"]
    assert "truncated.jpg' could not be decoded" in seen["truncated"] and "RGBA → RGB" in seen["rgba"]
    assert "Type a question" in seen["empty_question"] and "Upload an image" in seen["no_image"]
    assert not seen["console_errors"]
    assert (tmp_path / "space_image.png").stat().st_size > 10_000


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
