"""Speed of the multi-stream GPT-2 against a plain `GPT2LMHeadModel` with the same semantic configuration.

Measures, for every variant, two ratios (multi-stream / plain, so higher is better for generation and lower is
better for training):

* ``generate_tokens_per_s_ratio``: greedy `generate()` with the KV cache, new tokens per second;
* ``train_step_time_ratio``: one forward + backward + AdamW step on a `(batch, block)` batch.

Models are measured interleaved (plain, variant, plain, variant, ...) and the median of the repeats is kept, so
that load from other processes on the machine affects both sides alike; the median of the per-repeat ratios of
those pairs (``*_paired_median``, with the range over the repeats) is recorded too: it cancels slow drifts in the
machine's speed better than the ratio of the two medians. Every measurement is taken twice: wall
clock (what a user waits) and this process's CPU time (``*_cpu_*`` fields), which leaves out the time spent waiting
for a core but not the slowdown that other processes cause through shared caches and memory bandwidth (that slows
the plain model's large matrix products more than the multi-stream model's many small operators, so ratios measured
on a loaded machine come out higher: on this 2-core machine separate runs differ by up to about 0.1). With one torch
thread the two agree on an idle machine. Random weights; tables random.

Usage::

    python benchmarks/bench_gpt2.py --out benchmarks/results/gpt2_bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

from msnn_hf.configuration_multistream_gpt2 import MultiStreamGPT2Config
from msnn_hf.modeling_multistream_gpt2 import MultiStreamGPT2LMHeadModel

VARIANTS = {
    "li-A": dict(integration_type="li", integration_layers="last"),
    "li-B": dict(integration_type="li", integration_layers="all"),
    "dm-scalar-A": dict(integration_type="dm", alpha_granularity="scalar", integration_layers="last"),
    "dm-scalar-B": dict(integration_type="dm", alpha_granularity="scalar", integration_layers="all"),
    "dm-token-B": dict(integration_type="dm", alpha_granularity="token", integration_layers="all"),
}


def build(args: argparse.Namespace, variant: str | None) -> torch.nn.Module:
    torch.manual_seed(0)
    semantic = dict(
        vocab_size=args.vocab_size, n_positions=args.n_positions, n_embd=args.n_embd, n_layer=args.n_layer,
        n_head=args.n_head, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    if variant is None:
        return GPT2LMHeadModel(GPT2Config(**semantic)).eval()
    config = MultiStreamGPT2Config(
        **semantic,
        **VARIANTS[variant],
        stream_hidden_size=args.stream_hidden_size,
        stream_num_heads=args.stream_num_heads,
        stream_intermediate_size=2 * args.stream_hidden_size,
        phonetic_vocab_size=80,
        morph_vocab_size=2000,
    )
    model = MultiStreamGPT2LMHeadModel(config)
    g = torch.Generator().manual_seed(0)
    model.set_stream_tables(
        {
            name: torch.randint(1, config.stream_vocab_sizes[name], (config.vocab_size, slot), generator=g)
            for name, slot in config.slot_sizes.items()
        }
    )
    return model.eval()


@torch.no_grad()
def time_generate(model: torch.nn.Module, prompt: torch.Tensor, new_tokens: int) -> tuple[float, float]:
    """New tokens per second of wall clock and per second of this process's CPU time."""
    start, start_cpu = time.perf_counter(), time.process_time()
    out = model.generate(
        prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0
    )
    elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    assert out.shape[1] == prompt.shape[1] + new_tokens
    tokens = new_tokens * prompt.shape[0]
    return tokens / elapsed, tokens / elapsed_cpu


def time_train_step(
    model: torch.nn.Module, batch: torch.Tensor, optimizer: torch.optim.Optimizer
) -> tuple[float, float]:
    """Seconds of wall clock and of CPU time of one forward + backward + optimizer step."""
    model.train()
    start, start_cpu = time.perf_counter(), time.process_time()
    loss = model(batch, labels=batch, use_cache=False).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    model.eval()
    return elapsed, elapsed_cpu


def git_commit() -> str | None:
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--vocab_size", type=int, default=8192)
    parser.add_argument("--n_positions", type=int, default=256)
    parser.add_argument("--n_embd", type=int, default=256)
    parser.add_argument("--n_layer", type=int, default=4)
    parser.add_argument("--n_head", type=int, default=4)
    parser.add_argument("--stream_hidden_size", type=int, default=64)
    parser.add_argument("--stream_num_heads", type=int, default=2)
    parser.add_argument("--prompt_length", type=int, default=16)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--gen_batch", type=int, default=1)
    parser.add_argument("--train_batch", type=int, default=8)
    parser.add_argument("--block_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    parser.add_argument("--out", default="benchmarks/results/gpt2_bench.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # other processes on the machine: wall-clock ratios are noisier then
    load_at_start = list(os.getloadavg())

    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, args.vocab_size, (args.gen_batch, args.prompt_length), generator=g).to(device)
    batch = torch.randint(3, args.vocab_size, (args.train_batch, args.block_size), generator=g).to(device)
    plain = build(args, None).to(device)
    plain_opt = torch.optim.AdamW(plain.parameters(), lr=1e-4)
    results = {}
    for variant in args.variants:
        model = build(args, variant).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for m, o in ((plain, plain_opt), (model, opt)):  # warm-up
            time_generate(m, prompt, 4)
            time_train_step(m, batch, o)
        samples: dict[str, list[tuple[float, float]]] = {"gen_p": [], "gen_m": [], "step_p": [], "step_m": []}
        for _ in range(args.repeats):
            samples["gen_p"].append(time_generate(plain, prompt, args.new_tokens))
            samples["gen_m"].append(time_generate(model, prompt, args.new_tokens))
            samples["step_p"].append(time_train_step(plain, batch, plain_opt))
            samples["step_m"].append(time_train_step(model, batch, opt))
        results[variant] = {
            "params_plain": sum(p.numel() for p in plain.parameters()),
            "params_multi": sum(p.numel() for p in model.parameters()),
        }
        for index, clock in ((0, ""), (1, "cpu_")):  # wall clock, then CPU time ("*_cpu_*" fields)
            m = {k: statistics.median(v[index] for v in values) for k, values in samples.items()}
            results[variant].update({
                f"generate_tokens_per_{clock}s_plain": m["gen_p"],
                f"generate_tokens_per_{clock}s_multi": m["gen_m"],
                f"generate_tokens_per_{clock}s_ratio": m["gen_m"] / m["gen_p"],
                f"train_step_{clock}s_plain": m["step_p"],
                f"train_step_{clock}s_multi": m["step_m"],
                f"train_step_{clock}time_ratio": m["step_m"] / m["step_p"],
            })  # fmt: skip
            # the ratio of each interleaved pair (plain, then multi-stream), whose median cancels slow drifts in
            # the machine's speed better than the ratio of the two medians; with its range over the repeats
            gen = [m_[index] / p_[index] for p_, m_ in zip(samples["gen_p"], samples["gen_m"])]
            step = [m_[index] / p_[index] for p_, m_ in zip(samples["step_p"], samples["step_m"])]
            results[variant].update({
                f"generate_tokens_per_{clock}s_ratio_paired_median": statistics.median(gen),
                f"generate_tokens_per_{clock}s_ratio_paired_range": [min(gen), max(gen)],
                f"train_step_{clock}time_ratio_paired_median": statistics.median(step),
            })  # fmt: skip
        print(variant, json.dumps(results[variant], default=str), flush=True)

    record = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "args": vars(args),
        "device": device if device == "cpu" else torch.cuda.get_device_name(0),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "git_commit": git_commit(),
        "note": "ratios = multi-stream / plain GPT2LMHeadModel with the same semantic config; medians of interleaved "
        "repeats (*_ratio: of the medians; *_paired_median: median of the per-repeat ratios, with their range); wall "
        "clock and (*_cpu_*) this process's CPU time; target generate ratio >= 0.7",
        "load_average_at_start": load_at_start,
        "load_average_at_end": list(os.getloadavg()),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
