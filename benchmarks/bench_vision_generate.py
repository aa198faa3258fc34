"""`generate()` speed of the multi-stream vision encoder-decoder (MS-VED) against transformers'
`VisionEncoderDecoderModel` baseline (`msnn_hf.baselines_vl`) at the same small dimensions.

Both models: the same random ViT encoder config and a GPT-2 decoder of the same shape (the baseline's GPT-2 has a
cross-attention block in every layer; MS-VED's decoder reads the patches through its vision stream, one narrow
cross-attention readout per integration point, integrated by LI / DM). Random weights, eval mode, no gradients.
Every generation is forced to ``--new_tokens`` tokens (``min_new_tokens``), so both decode the same number of
steps. The two models are timed in alternation, ``--repeats`` rounds after a warm-up; the record holds every time,
the medians, tokens/s (batch x new tokens / time) and the paired ratio MS-VED / baseline of the medians.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_vision_generate.py --out benchmarks/results/vision_generate.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch
from transformers import GPT2Config, ViTConfig

from msnn_hf import (
    MultiStreamGPT2Config,
    MultiStreamVisionEncoderDecoder,
    MultiStreamVisionEncoderDecoderConfig,
)
from msnn_hf.baselines_vl import build_captioning_baseline

REPO = Path(__file__).resolve().parents[1]
BOS, EOS, PAD = 1, 2, 0
VARIANTS = {
    "dm-token-all": dict(integration_type="dm", alpha_granularity="token", integration_layers="all"),
    "li-last": dict(integration_type="li", integration_layers="last"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--patch_size", type=int, default=8)
    parser.add_argument("--encoder_width", type=int, default=64)
    parser.add_argument("--encoder_layers", type=int, default=2)
    parser.add_argument("--n_embd", type=int, default=128)
    parser.add_argument("--n_layer", type=int, default=4)
    parser.add_argument("--n_head", type=int, default=4)
    parser.add_argument("--vocab_size", type=int, default=1000)
    parser.add_argument("--stream_hidden_size", type=int, default=64)
    parser.add_argument("--stream_num_heads", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--new_tokens", type=int, default=20)
    parser.add_argument("--num_beams", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "vision_generate.json"))
    return parser.parse_args()


def encoder_config(args) -> ViTConfig:
    return ViTConfig(
        image_size=args.image_size, patch_size=args.patch_size, hidden_size=args.encoder_width,
        num_hidden_layers=args.encoder_layers, num_attention_heads=2, intermediate_size=4 * args.encoder_width,
    )  # fmt: skip


def gpt2_fields(args) -> dict:
    return dict(
        vocab_size=args.vocab_size, n_positions=64, n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
    )  # fmt: skip


def build_msved(args, variant: str) -> MultiStreamVisionEncoderDecoder:
    decoder = MultiStreamGPT2Config(
        **gpt2_fields(args), streams=["semantic", "vision"], stream_hidden_size=args.stream_hidden_size,
        stream_num_heads=args.stream_num_heads, stream_intermediate_size=2 * args.stream_hidden_size,
        **VARIANTS[variant],
    )  # fmt: skip
    config = MultiStreamVisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder_config(args), decoder)
    model = MultiStreamVisionEncoderDecoder(config).eval()
    with torch.no_grad():  # open the gates, as after training (a closed gate skips nothing, but be fair)
        for name, p in model.named_parameters():
            if name.endswith(".blend"):
                p.fill_(0.5)
    return model


def build_baseline(args):
    decoder = GPT2Config(**gpt2_fields(args), add_cross_attention=True)
    return build_captioning_baseline(encoder_config(args), decoder, BOS, EOS, PAD).eval()


def generate(model, pixel_values, new_tokens: int, beams: int) -> torch.Tensor:
    with torch.no_grad():
        return model.generate(
            pixel_values,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            num_beams=beams,
            do_sample=False,
        )


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    models = {"baseline": build_baseline(args), **{f"msved-{v}": build_msved(args, v) for v in VARIANTS}}
    pixel_values = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    results = {}
    for beams in args.num_beams:
        times = {name: [] for name in models}
        for name, model in models.items():  # warm-up, and the shape check
            out = generate(model, pixel_values, args.new_tokens, beams)
            assert out.shape == (args.batch_size, 1 + args.new_tokens), (name, out.shape)
        for _ in range(args.repeats):
            for name, model in models.items():
                start = time.perf_counter()
                generate(model, pixel_values, args.new_tokens, beams)
                times[name].append(time.perf_counter() - start)
        tokens = args.batch_size * args.new_tokens
        medians = {name: statistics.median(t) for name, t in times.items()}
        results[f"beams={beams}"] = {
            name: {
                "times_s": times[name],
                "median_s": medians[name],
                "tokens_per_s": tokens / medians[name],
                "speed_vs_baseline": medians["baseline"] / medians[name],
            }
            for name in models
        }
        print(f"beams={beams}", json.dumps({n: round(tokens / m, 1) for n, m in medians.items()}), flush=True)
    record = {
        "benchmark": "vision_generate",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
        "args": vars(args),
        "parameters": {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()},
        "results": results,
        "note": "tokens_per_s = batch x new tokens / median time of one generate() call (encoder included); "
        "speed_vs_baseline = baseline median / this model's median (> 1: faster than the baseline)",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
