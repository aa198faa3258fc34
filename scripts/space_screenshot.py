"""Render the alpha-viz Space's screenshots for the docs: start spaces/alpha-viz/app.py on a free loopback port with
the given checkpoints, drive it with tests/e2e/space_e2e.js in headless Chromium (Debian's /usr/bin/chromium and
playwright-core: scripts/install_browser.sh) and copy the screenshot.

    python scripts/space_screenshot.py --vision_model outputs/vl/runs/dm-token-seed42 --out docs/space_image.png
    python scripts/space_screenshot.py --model outputs/sst5/li-seed42 --scenario happy --out docs/space.png

The image tab's upload is a picture drawn here (`write_upload_files`; no dataset photo: Flickr8k's photographs stay
under their owners' terms) and the examples are off (no data folder), so the screenshot holds nothing but the app
and the model's output. tests/test_space.py uploads the same files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "spaces" / "alpha-viz"
E2E = ROOT / "tests" / "e2e" / "space_e2e.js"
QUESTION = "what is the man doing?"
PHOTO_SIZE = (256, 192)


def write_upload_files(folder: str | os.PathLike, question: str = QUESTION) -> Path:
    """Write what the image scenario of space_e2e.js uploads: ``photo.png`` (a drawn scene: sky, sun, grass and a
    figure, `PHOTO_SIZE`), ``rgba.png`` (half transparent), ``not_an_image.jpg`` (text), ``truncated.jpg`` (the
    photo as a JPEG cut in half) and ``question.txt``."""
    from PIL import Image, ImageDraw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = PHOTO_SIZE
    photo = Image.new("RGB", PHOTO_SIZE)
    draw = ImageDraw.Draw(photo)
    horizon = int(height * 0.62)
    for y in range(horizon):  # sky: light blue to white
        shade = int(120 + 120 * y / horizon)
        draw.line([(0, y), (width, y)], fill=(shade - 60, shade - 20, 255))
    draw.rectangle([0, horizon, width, height], fill=(70, 150, 60))  # grass
    draw.ellipse([width - 70, 18, width - 30, 58], fill=(255, 220, 80))  # sun
    x = width // 3  # a figure: head, body, legs, arms
    draw.ellipse([x - 9, horizon - 70, x + 9, horizon - 52], fill=(230, 180, 140))
    draw.rectangle([x - 10, horizon - 52, x + 10, horizon - 20], fill=(200, 40, 40))
    draw.line([(x - 6, horizon - 20), (x - 12, horizon + 10)], fill=(40, 40, 120), width=6)
    draw.line([(x + 6, horizon - 20), (x + 12, horizon + 10)], fill=(40, 40, 120), width=6)
    draw.line([(x - 10, horizon - 48), (x - 28, horizon - 30)], fill=(230, 180, 140), width=5)
    draw.line([(x + 10, horizon - 48), (x + 30, horizon - 62)], fill=(230, 180, 140), width=5)
    draw.ellipse([x + 34, horizon - 8, x + 50, horizon + 8], fill=(250, 250, 250))  # a ball
    photo.save(folder / "photo.png")
    photo.save(folder / "photo.jpg", quality=90)
    Image.new("RGBA", (40, 30), (200, 30, 30, 120)).save(folder / "rgba.png")
    (folder / "not_an_image.jpg").write_text("this is text, not a JPEG\n")
    data = (folder / "photo.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])  # cut inside the scan data
    (folder / "question.txt").write_text(question + "\n")
    return folder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="none", help="sentence classifier for the text tab (default: none)"
    )
    parser.add_argument("--vision_model", default=None, help="vision encoder-decoder for the image tab")
    parser.add_argument("--scenario", choices=["image", "happy"], default="image")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--out", required=True, help="where the screenshot goes (e.g. docs/space_image.png)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the app to start")
    args = parser.parse_args(argv)
    if args.scenario == "image" and not args.vision_model:
        parser.error("the image scenario needs --vision_model")
    work = Path(tempfile.mkdtemp(prefix="space-screenshot-"))
    uploads = write_upload_files(work / "uploads", args.question)
    port = _free_port()
    command = [sys.executable, str(SPACE / "app.py"), "--port", str(port), "--data_dir="]
    for option, source in (("--model", args.model), ("--vision_model", args.vision_model)):
        if source:  # local folders as absolute paths (the app runs in spaces/alpha-viz), Hub ids as they are
            command += [option, str(Path(source).resolve()) if Path(source).exists() else source]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADIO_")}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    log = (work / "app.log").open("w")
    app = subprocess.Popen(command, cwd=SPACE, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + args.timeout
        while True:
            if app.poll() is not None or time.monotonic() > deadline:
                print((work / "app.log").read_text()[-3000:], file=sys.stderr)
                return 1
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                time.sleep(1.0)
        shots = work / "shots"
        run = subprocess.run(["node", str(E2E), url, str(shots), args.scenario, str(uploads)], text=True)
        if run.returncode:
            return run.returncode
        name = "space_image.png" if args.scenario == "image" else "space.png"
        shutil.copyfile(shots / name, args.out)
        print(f"wrote {args.out}")
        return 0
    finally:
        app.terminate()
        app.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
