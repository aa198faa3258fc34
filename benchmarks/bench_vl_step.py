"""Training step time of `trainers/run_captioning.py` on cached frozen EfficientNet-Lite0 features: MS-VED against
the `VisionEncoderDecoderModel` baseline (`--architecture ved`), and the encoder's forward pass, in one run.

Both models are built by the script's own `build_processor` / `build_model` from the same arguments: the converted
Lite0 encoder (frozen) and a GPT-2-shaped decoder from scratch (`--n_embd/--n_layer/--n_head`, default 256 / 4 / 4)
over a lower-cased byte-level BPE of ``--vocab_size`` (default 2,048) trained on the Flickr8k training captions and
the DAQUAR training questions and answers (the recipe of `trainers/experiments/vl_prepare.py`); MS-VED with streams
semantic + vision, DM-token at every block, `stream_hidden_size` 128 (the script's defaults otherwise); the
baseline's GPT-2 has cross-attention in every block.

* **train_step**: one optimiser step on a batch of ``--batch_size`` Flickr8k training captions (shuffled, seed 0;
  one caption per row) collated by the script's `CaptionCollator` with a `FeatureCache` holding the images' patch
  tokens (49 x 1280 float32; *random* values: the cost does not depend on them, and the real ones take minutes to
  compute): forward, backward, `clip_grad_norm_(1.0)` and `AdamW.step()`, as `Trainer` does. The two models are
  timed in alternation, ``--rounds`` rounds of ``--steps`` steps after a warm-up; the record holds every step's
  wall-clock and CPU time (`time.process_time`: on a shared machine the CPU time is what a core of its own would
  take), the medians and the MS-VED / baseline ratio (of the medians, and the median of the per-round ratios).
* **collate**: the collator's time per batch (tokenising the captions, stacking the cached tokens), which the
  Trainer adds to every step.
* **flops** / **ops**: floating-point operations of one forward + backward (`torch.utils.flop_counter`; matmuls,
  convolutions and attention only) and the number of aten operators that forward + backward and the whole step
  dispatch (each is at least one kernel launch on a GPU; on CPU `AdamW` updates parameter by parameter, on a GPU
  its `foreach` / `fused` forms launch far fewer).
* **encoder_forward**: Lite0 in eval mode under `torch.no_grad()` on ``--batch_size`` real Flickr8k photos at
  224 x 224 (``--encoder_repeats`` timed calls after a warm-up; 0 skips it), and its FLOPs.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_vl_step.py --out benchmarks/results/vl_step_time.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "trainers"))
SPECIALS = {"eos_token": "<|endoftext|>", "pad_token": "<|pad|>", "unk_token": "<|unk|>"}
ARCHITECTURES = ("msved", "ved")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n_embd", type=int, default=256)
    parser.add_argument("--n_layer", type=int, default=4)
    parser.add_argument("--n_head", type=int, default=4)
    parser.add_argument("--stream_hidden_size", type=int, default=128)
    parser.add_argument("--vocab_size", type=int, default=2048)
    parser.add_argument("--tokenizer", default=None, help="a tokenizer folder instead of training the BPE")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_target_length", type=int, default=40)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model and round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--encoder_repeats", type=int, default=3)
    parser.add_argument("--data_dir", default=None, help="folder holding captions-flickr8k/ and vqa-daquar/")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "vl_step_time.json"))
    return parser.parse_args()


def caption_tokenizer(data_dir: Path, vocab_size: int):
    """Lower-cased byte-level BPE on the training text only (Flickr8k captions, DAQUAR questions and answers)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from msnn_hf.data_vl import iter_daquar, iter_flickr8k

    lines = [
        c for row in iter_flickr8k(data_dir / "captions-flickr8k", split="train") for c in row["captions"]
    ]
    for row in iter_daquar(data_dir / "vqa-daquar", split="train"):
        lines += [row["question"], *(a.replace("_", " ") for a in row["answers"])]
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIALS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(lines, trainer=trainer, length=len(lines))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIALS["eos_token"], **SPECIALS)


def model_arguments(args, tokenizer_dir: str, architecture: str):
    from run_captioning import ModelArguments

    return ModelArguments(
        architecture=architecture, tokenizer_name=tokenizer_dir, n_embd=args.n_embd, n_layer=args.n_layer,
        n_head=args.n_head, stream_hidden_size=args.stream_hidden_size, streams="semantic,vision",
        integration_type="dm", alpha_granularity="token", freeze_encoder=True, cache_encoder_features=True,
    )  # fmt: skip


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def count_ops(fn) -> int:
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counter(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Counter.calls += 1
            return func(*args, **(kwargs or {}))

    with Counter():
        fn()
    return Counter.calls


# training split sizes: COCO 2017 captions (train2017), Conceptual Captions 3M (training split as released)
DATASETS = {
    "coco": {"images": 118_287, "captions": 591_753},
    "cc3m": {"images": 3_318_333, "captions": 3_318_333},
}


def projection(record: dict) -> dict:
    """Core-hours of one epoch over each dataset from this run's CPU times (one thread = one core): the decoder's
    steps (+ collation) per architecture, and the frozen encoder's forward (+ image processor) over every image,
    once (the cache) or per caption (online encoding, one image per training row)."""
    batch = record["args"]["batch_size"]
    collate = record["collate"]["cpu_median_s"]
    encoder = record["encoder_forward"]
    out = {}
    for name, size in DATASETS.items():
        steps = -(-size["captions"] // batch)
        entry = {"steps_per_epoch": steps, **size}
        for architecture, timing in record["train_step"].items():
            entry[f"decoder_epoch_{architecture}"] = round(
                steps * (timing["cpu_median_s"] + collate) / 3600, 2
            )
        if encoder is not None:
            per_image = 1 / encoder["images_per_cpu_s"] + 1 / encoder["image_processor_images_per_cpu_s"]
            entry["encode_every_image_once"] = round(size["images"] * per_image / 3600, 2)
            entry["encode_online_per_epoch"] = round(size["captions"] * per_image / 3600, 2)
        out[name] = entry
    return out


def main() -> None:
    args = parse_args()
    import torch
    import transformers
    from run_captioning import CaptionCollator, FeatureCache, build_model, build_processor, freeze_encoder

    from msnn_hf.data import default_data_dir
    from msnn_hf.data_vl import load_flickr8k

    load_at_start = os.getloadavg()
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    work = tempfile.TemporaryDirectory()
    tokenizer_dir = args.tokenizer
    if tokenizer_dir is None:
        tokenizer_dir = str(Path(work.name) / "tokenizer")
        caption_tokenizer(data_dir, args.vocab_size).save_pretrained(tokenizer_dir)
    processor = build_processor(model_arguments(args, tokenizer_dir, "msved"))

    rows = load_flickr8k(data_dir=data_dir / "captions-flickr8k", split="train", one_caption_per_row=True)
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    needed = args.batch_size * (2 + args.rounds * args.steps)
    picked = [rows[i] for i in (order * (needed // len(order) + 1))[:needed]]
    batches_rows = [picked[i : i + args.batch_size] for i in range(0, needed, args.batch_size)]

    torch.manual_seed(0)
    models, optimizers, collators = {}, {}, {}
    for architecture in ARCHITECTURES:
        model = build_model(model_arguments(args, tokenizer_dir, architecture), processor)
        freeze_encoder(model)
        model.train()
        cache = FeatureCache(model, processor)
        generator = torch.Generator().manual_seed(0)
        cache.features.update(
            {row["image"]: torch.randn(49, 1280, generator=generator) for row in picked}
        )  # the 49 x 1280 tokens of a frozen Lite0, as the cache would hold them
        models[architecture] = model
        optimizers[architecture] = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=5e-4
        )
        collators[architecture] = CaptionCollator(processor, args.max_target_length, cache)

    collate_times, collate_cpu, batches = [], [], []
    for chunk in batches_rows:
        start, cpu_start = time.perf_counter(), time.process_time()
        batches.append(collators["msved"](chunk))
        collate_times.append(time.perf_counter() - start)
        collate_cpu.append(time.process_time() - cpu_start)
    target_tokens = [int((b["labels"] != -100).sum()) for b in batches]

    def step(architecture: str, batch) -> None:
        model, optimizer = models[architecture], optimizers[architecture]
        optimizer.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()

    def forward_backward(architecture: str, batch) -> None:
        models[architecture](**batch).loss.backward()
        models[architecture].zero_grad(set_to_none=True)

    for architecture in ARCHITECTURES:  # warm-up: two steps each (allocations, AdamW state)
        for batch in batches[:2]:
            step(architecture, batch)
    times = {a: [] for a in ARCHITECTURES}
    cpu_times = {a: [] for a in ARCHITECTURES}  # this process's CPU time: what a core of its own would take
    per_round = {a: [] for a in ARCHITECTURES}
    position = 2
    for _ in range(args.rounds):
        chunk = batches[position : position + args.steps]
        position += args.steps
        for architecture in ARCHITECTURES:
            round_times = []
            for batch in chunk:
                start, cpu_start = time.perf_counter(), time.process_time()
                step(architecture, batch)
                round_times.append(time.perf_counter() - start)
                cpu_times[architecture].append(time.process_time() - cpu_start)
            times[architecture] += round_times
            per_round[architecture].append(statistics.median(round_times))
        print({a: round(per_round[a][-1], 3) for a in ARCHITECTURES}, flush=True)
    medians = {a: statistics.median(times[a]) for a in ARCHITECTURES}
    cpu_medians = {a: statistics.median(cpu_times[a]) for a in ARCHITECTURES}
    ratios = [m / v for m, v in zip(per_round["msved"], per_round["ved"])]

    flops = {a: count_flops(lambda a=a: forward_backward(a, batches[0])) for a in ARCHITECTURES}
    ops = {
        a: {"forward_backward": count_ops(lambda a=a: forward_backward(a, batches[0])),
            "whole_step": count_ops(lambda a=a: step(a, batches[0]))}
        for a in ARCHITECTURES
    }  # fmt: skip

    encoder_record = None
    if args.encoder_repeats > 0:
        encoder = models["msved"].encoder.eval()
        photos = sorted({row["image"] for row in picked})[: args.batch_size]
        start, cpu_start = time.perf_counter(), time.process_time()  # JPEG decode + resize + normalise
        pixel_values = processor.image_processor(photos, return_tensors="pt")["pixel_values"]
        processor_s, processor_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start

        def encode():
            with torch.no_grad():
                return encoder(pixel_values=pixel_values).last_hidden_state

        shape = list(encode().shape)  # warm-up
        encoder_times, encoder_cpu = [], []
        for _ in range(args.encoder_repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            encode()
            encoder_times.append(time.perf_counter() - start)
            encoder_cpu.append(time.process_time() - cpu_start)
        median, cpu_median = statistics.median(encoder_times), statistics.median(encoder_cpu)
        encoder_record = {
            "batch_size": len(photos), "output_shape": shape, "times_s": [round(t, 4) for t in encoder_times],
            "cpu_times_s": [round(t, 4) for t in encoder_cpu], "median_s": round(median, 4),
            "images_per_s": round(len(photos) / median, 2), "images_per_cpu_s": round(len(photos) / cpu_median, 2),
            "flops_per_image": count_flops(encode) // len(photos),
            "image_processor_images_per_cpu_s": round(len(photos) / processor_cpu_s, 1),
            "image_processor_images_per_s": round(len(photos) / processor_s, 1),
        }  # fmt: skip
        print("encoder", encoder_record["images_per_s"], "images/s", flush=True)

    record = {
        "benchmark": "vl_step_time",
        "command": "OMP_NUM_THREADS=1 python benchmarks/bench_vl_step.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": "cpu",
            "load_average_at_start": [round(v, 2) for v in load_at_start],
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        },
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "args": {k: v for k, v in vars(args).items() if k not in ("out", "data_dir")},
        "tokenizer": {"vocab_size": len(processor.tokenizer), "trained_here": args.tokenizer is None},
        "batch": {
            "captions": args.batch_size,
            "target_tokens_per_caption_mean": round(statistics.mean(target_tokens) / args.batch_size, 2),
            "decoder_input_length_median": statistics.median(
                b["decoder_input_ids"].shape[1] for b in batches
            ),
            "encoder_tokens": [49, 1280],
        },
        "parameters_trainable": {
            a: sum(p.numel() for p in m.parameters() if p.requires_grad) for a, m in models.items()
        },
        "train_step": {
            a: {
                "median_s": round(medians[a], 4),
                "captions_per_s": round(args.batch_size / medians[a], 1),
                "cpu_median_s": round(cpu_medians[a], 4),
                "round_medians_s": [round(t, 4) for t in per_round[a]],
                "times_s": [round(t, 4) for t in times[a]],
                "cpu_times_s": [round(t, 4) for t in cpu_times[a]],
                "flops_forward_backward": flops[a],
                "aten_ops": ops[a],
            }
            for a in ARCHITECTURES
        },
        "ratio_msved_over_ved": {
            "of_medians": round(medians["msved"] / medians["ved"], 3),
            "of_cpu_medians": round(cpu_medians["msved"] / cpu_medians["ved"], 3),
            "median_of_round_ratios": round(statistics.median(ratios), 3),
            "round_ratios": [round(r, 3) for r in ratios],
        },
        "collate": {
            "median_s": round(statistics.median(collate_times), 4),
            "cpu_median_s": round(statistics.median(collate_cpu), 4),
            "times_s": [round(t, 4) for t in collate_times],
        },
        "encoder_forward": encoder_record,
        "note": "train_step: forward + backward + clip_grad_norm_ + AdamW.step on cached (random-valued) 49 x 1280 "
        "patch tokens, encoder frozen and not run; one thread; collate is extra per step in the Trainer. "
        "flops_forward_backward counts matmuls / convolutions / attention of one forward + backward.",
    }
    record["projection_core_hours"] = projection(record)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(
        json.dumps({a: record["train_step"][a]["median_s"] for a in ARCHITECTURES}),
        record["ratio_msved_over_ved"],
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
