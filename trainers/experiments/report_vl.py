#!/usr/bin/env python
"""docs/results_vl.md and its figures, generated from the records of `vl.py` and `vl_alpha.py` (results/vl/).

    python trainers/experiments/report_vl.py            # writes docs/results_vl.md, docs/figures/vl_*.png

Nothing here trains or evaluates a model; numbers come from the committed records only (the DAQUAR majority
answer is computed from the shared data's training split).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "trainers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from vl import DEFAULT_SEEDS, RUNS  # noqa: E402
from vl_alpha import CLASSES, DEFINITION  # noqa: E402

CAPTION_METRICS = ("bleu_4", "cider_d", "rouge_l", "meteor")
NAMES = {
    "ved": "(a) VisionEncoderDecoderModel, cross-attention in every block",
    "li": "(b) MS-VED, LI at every block",
    "dm-token": "(c) MS-VED, DM-token at every block",
    "dm-token-mix": '(c\') (c) without the gate (`integration_init="mix"`)',
    "blind": "(d) blind: (a) with all-zero patch tokens",
    "half-li": "(e) MS-VED LI, 160 wide",
    "half-dm-token": "(e) MS-VED DM-token, 160 wide",
}
QUESTION_TYPES = ("what color", "how many", "what is on", "what is in", "other what is", "other")


def load(results: Path) -> dict[str, dict[int, dict]]:
    runs: dict[str, dict[int, dict]] = {}
    for path in sorted(results.glob("*-seed*.json")):
        if path.name.startswith(("alpha_", "zero-image_")):
            continue
        record = json.loads(path.read_text())
        if record.get("experiment") != "vl":
            continue
        runs.setdefault(record["run"], {})[record["seed"]] = record
    return runs


def load_zero_image(results: Path) -> dict[str, dict[int, dict]]:
    """The zero-image evaluations (`vl.py --image_ablation`) by run and seed."""
    out: dict[str, dict[int, dict]] = {}
    for path in sorted(results.glob("zero-image_*-seed*.json")):
        record = json.loads(path.read_text())
        out.setdefault(record["run"], {})[record["seed"]] = record
    return out


def mean_sd(values: list[float], digits: int = 3) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def metric(records: dict[int, dict], key: str) -> list[float]:
    return [r["metrics"][key] for r in records.values() if key in r["metrics"]]


def distinct(records: dict[int, dict], split: str = "test") -> list[int]:
    return [len({g["caption"] for g in r["generated"][split]}) for r in records.values()]


def caption_table(runs: dict, counts: dict, human: dict, zero: dict | None = None) -> list[str]:
    zero = zero or {}
    lines = [
        "| model | trainable params | vs (a) | seeds | BLEU-4 | CIDEr-D | ROUGE-L | METEOR | val. CIDEr-D "
        "| distinct test captions / 125 | CIDEr-D, zero image |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in NAMES:
        records = runs.get(name)
        if not records:
            continue
        scores = [mean_sd(metric(records, f"test_{m}")) for m in CAPTION_METRICS]
        params = counts.get(name)
        ratio = f"{params / counts['ved']:.3f}" if params and counts.get("ved") else "–"
        lines.append(
            f"| {NAMES[name]} | {params:,} | {ratio} | {len(records)} | " + " | ".join(scores)
            + f" | {mean_sd(metric(records, 'validation_cider_d'))} | {mean_sd(distinct(records), 0)} | "
            + f"{zero_cell(zero.get(name, {}), 'test_cider_d')} |"
        )  # fmt: skip
    test = human["splits"]["test"]
    lines.append(
        "| human agreement (caption 1 vs the other 4) | – | – | – | "
        + " | ".join(f"{test[m]:.3f}" for m in CAPTION_METRICS)
        + f" | {human['splits']['validation']['cider_d']:.3f} | – | – |"
    )
    return lines


def zero_cell(records: dict[int, dict], key: str) -> str:
    """The zero-image score (mean over the seeds evaluated, their number in brackets)."""
    values = metric(records, key)
    return f"{mean_sd(values)} ({len(values)})" if values else "–"


def verdict(runs: dict, counts: dict) -> list[str]:
    """Plain statements: integration vs cross-attention at equal parameters, and the half-size model."""
    out = []
    base = metric(runs.get("ved", {}), "test_cider_d")
    if not base:
        return ["(a) has no finished run yet: no comparison."]
    for name in ("li", "dm-token", "dm-token-mix", "half-li", "half-dm-token"):
        ours = metric(runs.get(name, {}), "test_cider_d")
        if not ours:
            continue
        diff = statistics.mean(ours) - statistics.mean(base)
        separated = min(ours) > max(base) or max(ours) < min(base)
        spread = (
            "beyond the seed spread (the ranges do not overlap)" if separated else "within the seed spread"
        )
        if len(ours) < 2 or len(base) < 2:
            spread = "one seed on at least one side: no spread to compare with"
        word = "above" if diff > 0 else "below"
        out.append(
            f"* {NAMES[name]} ({counts.get(name, 0) / counts['ved']:.0%} of (a)'s parameters): test CIDEr-D "
            f"{statistics.mean(ours):.3f} vs {statistics.mean(base):.3f}, {abs(diff):.3f} {word} (a) "
            f"({100 * diff / statistics.mean(base):+.0f} %), {spread}; {len(ours)} vs {len(base)} seeds."
        )
    val = {n: metric(runs.get(n, {}), "validation_cider_d") for n in ("li", "dm-token")}
    if all(val.values()) and any(n in runs for n in ("half-li", "half-dm-token")):
        better = max(val, key=lambda n: statistics.mean(val[n]))
        out.append(
            f"* (e) is the better of (b) / (c) on validation CIDEr-D ({better}: "
            f"{statistics.mean(val[better]):.3f} vs {min(statistics.mean(v) for v in val.values()):.3f})."
        )
    blind = metric(runs.get("blind", {}), "test_cider_d")
    if blind:
        out.append(
            f"* The blind decoder (d) scores CIDEr-D {statistics.mean(blind):.3f}: the floor of the language prior."
        )
    return out


def image_use(runs: dict, zero: dict, key: str, names) -> list[str]:
    """How much of each model's score needs the image: its score minus the score with all-zero patch tokens, on the
    seeds that have both."""
    out = []
    for name in names:
        pairs = [
            (runs[name][seed]["metrics"][key], z["metrics"][key])
            for seed, z in zero.get(name, {}).items()
            if seed in runs.get(name, {}) and key in z["metrics"]
        ]
        if pairs:
            real, blank = statistics.mean(p[0] for p in pairs), statistics.mean(p[1] for p in pairs)
            label = NAMES.get(name.removeprefix("vqa-"), name)
            out.append(f"* {label}: {real:.3f} with the image, {blank:.3f} without ({len(pairs)} seed(s))")
    return out


def daquar_majority(data_dir: Path) -> dict:
    from msnn_hf.metrics.vqa_metrics.vqa_metrics import vqa_scores

    rows = [json.loads(line) for line in (data_dir / "qa.jsonl").read_text().splitlines()]
    answer = Counter(a for r in rows if r["split"] == "train" for a in r["answers"]).most_common(1)[0][0]
    test = [r for r in rows if r["split"] == "test"]
    return {"answer": answer, **vqa_scores([answer] * len(test), [r["answers"] for r in test])}


def vqa_table(runs: dict, majority: dict | None, zero: dict | None = None) -> list[str]:
    zero = zero or {}
    lines = [
        "| model | seeds | exact match | answer set-F1 | val. exact match | exact match, zero image |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    if majority:
        lines.append(
            f"| majority answer ({majority['answer']!r}) | – | {majority['exact_match']:.3f} | "
            f"{majority['answer_f1']:.3f} | – | – |"
        )
    for name in ("vqa-blind", "vqa-ved", "vqa-li", "vqa-dm-token"):
        records = runs.get(name)
        if not records:
            continue
        label = NAMES[name.removeprefix("vqa-")]
        lines.append(
            f"| {label} | {len(records)} | {mean_sd(metric(records, 'test_exact_match'))} | "
            f"{mean_sd(metric(records, 'test_answer_f1'))} | {mean_sd(metric(records, 'validation_exact_match'))} | "
            f"{zero_cell(zero.get(name, {}), 'test_exact_match')} |"
        )
    return lines


def alpha_records(results: Path, task: str) -> list[dict]:
    records = [json.loads(p.read_text()) for p in sorted(results.glob("alpha_*.json"))]
    return [r for r in records if r["task"] == task]


def alpha_table(records: list[dict], key: str, groups, kind: str = "mixing") -> list[str]:
    runs = [r["run"] for r in records]
    lines = [
        "| " + ("word class" if key == "by_class" else "question type") + " | " + " | ".join(runs)
        + " | mean over runs |",
        "| --- | " + " | ".join("---" for _ in runs) + " | --- |",
    ]  # fmt: skip
    digits = 3 if kind == "mixing" else 5
    for group in groups:
        cells, means = [], []
        for r in records:
            s = r[key].get(group, {"count": 0})
            if s["count"]:
                cells.append(f"{s[kind]['mean']:.{digits}f} (n={s['count']})")
                means.append(s[kind]["mean"])
            else:
                cells.append("–")
        lines.append(f"| {group} | " + " | ".join(cells) + f" | {mean_sd(means, digits)} |")
    return lines


def alpha_figure(records: list[dict], key: str, groups, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in groups if any(r[key].get(g, {}).get("count") for r in records)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / max(len(records), 1)
    for ax, kind, label in (
        (axes[0], "mixing", "α_vision (DM-token softmax weight)"),
        (axes[1], "share", "share_vision in the block output"),
    ):
        for i, r in enumerate(records):
            values = [r[key].get(g, {}).get(kind, {}).get("mean", 0.0) for g in groups]
            xs = [x + i * width for x in range(len(groups))]
            ax.bar(xs, values, width, label=r["run"])
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(groups))], groups, rotation=20, fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.axhline(0, color="black", linewidth=0.5)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def alpha_reading(records: list[dict]) -> list[str]:
    """What the α table says, checked run by run: do content and colour words get more α_vision (mixing) than
    function words, and the end of the caption less?"""

    def mean(r: dict, group: str) -> float | None:
        s = r["by_class"].get(group, {})
        return s["mixing"]["mean"] if s.get("count") else None

    checks = {
        "colour words > function words": ("colour", "function"),
        "other content words > function words": ("other content", "function"),
        "function words > end of caption": ("function", "end of caption"),
    }
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["run"].rsplit("-seed", 1)[0], []).append(r)
    lines = ["Read run by run (α_vision, mixing), per model:", ""]
    for label, (high, low) in checks.items():
        cells = []
        for model, rs in groups.items():
            held = [
                r for r in rs if None not in (mean(r, high), mean(r, low)) and mean(r, high) > mean(r, low)
            ]
            cells.append(f"{model} {len(held)} of {len(rs)}")
        lines.append(f"* {label}: " + "; ".join(cells))
    return lines


def gate_lines(records: list[dict]) -> list[str]:
    out = []
    for r in records:
        cells = ", ".join(f"{g['mean_tanh']:+.4f} / {g['mean_abs_tanh']:.4f}" for g in r.get("gates", []))
        out.append(f"* {r['run']}: mean tanh(β) / mean |tanh(β)| per block: {cells}")
    return out


def examples(runs: dict, n: int = 4) -> list[str]:
    names = [m for m in ("ved", "li", "dm-token", "blind") if m in runs]
    if not names:
        return []
    first = {m: runs[m][min(runs[m])]["generated"]["test"] for m in names}
    lines = ["| image | " + " | ".join(f"{m} (seed {min(runs[m])})" for m in names) + " |"]
    lines.append("| --- | " + " | ".join("---" for _ in names) + " |")
    for i in range(0, 125, 125 // n)[:n]:
        lines.append(
            f"| {first[names[0]][i]['image_id']} | "
            + " | ".join(first[m][i]["caption"] for m in names)
            + " |"
        )
    return lines


def build(results: Path, docs: Path, data_dir: Path | None) -> str:
    runs = load(results)
    zero = load_zero_image(results)
    counts = json.loads((results / "parameters.json").read_text())["trainable_parameters"]
    for name, records in runs.items():  # runs added after parameters.json: their records' own count
        counts.setdefault(name, next(iter(records.values())).get("num_parameters"))
    human = json.loads((REPO_ROOT / "results" / "vision" / "human_agreement_flickr8k.json").read_text())
    any_record = next((r for recs in runs.values() for r in recs.values()), None)
    targs = any_record["training_args"] if any_record else {}
    majority = (
        daquar_majority(data_dir / "vqa-daquar") if data_dir and (data_dir / "vqa-daquar").is_dir() else None
    )
    text = [
        "# Results: vision + language (roadmap step 4)",
        "",
        "Generated by `python trainers/experiments/report_vl.py` from `results/vl/*.json` (do not edit by hand).",
        "Runs: `python trainers/experiments/vl.py` (resumable; each record has its `reproduce` command), α:",
        "`python trainers/experiments/vl_alpha.py`.",
        "",
        "## Setup",
        "",
        "* Encoder: the converted ImageNet EfficientNet-Lite0, frozen; its 49 × 1280 patch tokens computed once per "
        "image (`trainers/experiments/vl_prepare.py`).",
        "* Decoder: GPT-2-shaped, trained from scratch (no GPT-2 weights are available offline), 4 blocks, 4 heads, "
        "256 wide ((e): 160), over a 2,048-piece lower-cased byte-level BPE trained on the training captions and "
        "DAQUAR training questions and answers.",
        f"* Same budget for every model: {targs.get('max_steps', '?')} steps of {targs.get('per_device_train_batch_size', '?')} "
        f"captions (Flickr8k: 762 training images × 5 captions, i.e. about 5 epochs), AdamW lr "
        f"{targs.get('learning_rate', '?')}, linear decay, 5 % warm-up, beam search "
        f"{targs.get('generation_num_beams', '?')}, at most 32 tokens; no selection on the test split (the last "
        "step is scored). One core of a shared 2-core CPU per run.",
        '* MS-VED starts with its gates closed (`integration_init="backbone"`, the library default): the vision '
        "stream reaches the text only as the gates open during training.",
        "* Scores: the 125 Flickr8k test images against their 5 human captions (pycocoevalcap: BLEU-4, CIDEr-D, "
        "ROUGE-L; METEOR with Java). Human agreement: caption 1 of each image scored against the other 4 "
        "(`results/vision/human_agreement_flickr8k.json`), an upper reference, not a ceiling.",
        "",
        "## Flickr8k captioning (test split)",
        "",
        *caption_table(runs, counts, human, zero),
        "",
        "Mean ± standard deviation over seeds (42, 43, 44 where three). Parameters: trainable, the encoder frozen "
        "(`results/vl/parameters.json`; (a)–(c) equal within 2 %, checked by `vl.py` before training). "
        "Zero image: the same trained models evaluated with all-zero patch tokens "
        "(`python trainers/experiments/vl.py --image_ablation`; seeds evaluated in brackets): what is left "
        "without the image.",
        "",
        "**Does integration beat cross-attention at equal parameters?**",
        "",
        *verdict(runs, counts),
        "",
        "Anchors, pretrained on far more data and not comparable: ClipCap (frozen CLIP + GPT-2) COCO CIDEr 113; "
        "BLIP-base COCO CIDEr 133.5; Show-Attend-Tell Flickr8k BLEU-4 19.5 (6,000 training images; ours has 762).",
        "",
        "**How much of each score needs the image** (test CIDEr-D; zero image: all-zero patch tokens):",
        "",
        *image_use(runs, zero, "test_cider_d", [n for n in NAMES if n != "blind"]),
        "",
        "Example test captions:",
        "",
        *examples(runs),
        "",
        "## DAQUAR (answer generation, test split: 442 QA pairs)",
        "",
        *vqa_table(runs, majority, zero),
        "",
        "Exact match: the generated answer set equals the reference set; set-F1 gives partial credit "
        "(`msnn_hf.metrics.vqa_metrics_path`). DAQUAR runs have one seed each (about 11 of the 1,463 question + "
        "answer pairs are longer than the 32-token budget and lose answer tokens, the same for every model). "
        "Exact match with and without the image:",
        "",
        *image_use(runs, zero, "test_exact_match", ["vqa-ved", "vqa-li", "vqa-dm-token"]),
        "",
        "Where the two agree, the model answers from the question alone: a model trained from scratch on 796 QA "
        "pairs of 100 indoor photos has not learned to read the image for DAQUAR, whatever its architecture.",
        "",
    ]
    caption_alpha = alpha_records(results, "captioning")
    if caption_alpha:
        figure = docs / "figures" / "vl_alpha_word_class.png"
        alpha_figure(
            caption_alpha,
            "by_class",
            CLASSES,
            figure,
            "DM-token MS-VED, Flickr8k test: by generated word class",
        )
        text += [
            "## α_vision by the class of the generated word",
            "",
            DEFINITION,
            "",
            *alpha_reading(caption_alpha),
            "",
            "α_vision (mixing), mean over the tokens of each class (n tokens):",
            "",
            *alpha_table(caption_alpha, "by_class", CLASSES),
            "",
            "share_vision (what reaches the text: the mixing weight times the gate's mean opening):",
            "",
            *alpha_table(caption_alpha, "by_class", CLASSES, kind="share"),
            "",
            f"![α_vision by word class](figures/{figure.name})",
            "",
            'The gates after training (`integration_init="backbone"` starts them at 0):',
            "",
            *gate_lines(caption_alpha),
            "",
            f"Words with the highest / lowest α_vision (mixing; generated ≥ 5 times), {caption_alpha[0]['run']}: "
            f"highest {caption_alpha[0]['highest_alpha_words']}; lowest {caption_alpha[0]['lowest_alpha_words']}.",
            "",
            "Per integration point (block 1 → 4), α_vision (mixing) over all words: "
            + "; ".join(f"{r['run']}: {r['all_words']['mixing']['mean_per_point']}" for r in caption_alpha),
            "",
        ]
    vqa_alpha = alpha_records(results, "vqa")
    if vqa_alpha:
        figure = docs / "figures" / "vl_alpha_question_type.png"
        alpha_figure(
            vqa_alpha, "by_question_type", QUESTION_TYPES, figure, "DAQUAR test: over the answer tokens"
        )
        text += [
            "## α_vision by DAQUAR question type",
            "",
            "The same two numbers over the tokens of the generated answer, grouped by the question's start "
            "(α_vision (mixing), then share_vision).",
            "",
            *alpha_table(vqa_alpha, "by_question_type", QUESTION_TYPES),
            "",
            *alpha_table(vqa_alpha, "by_question_type", QUESTION_TYPES, kind="share"),
            "",
            f"![α_vision by question type](figures/{figure.name})",
            "",
            *gate_lines(vqa_alpha),
            "",
        ]
    missing = [
        f"{n}-seed{s}" for n in ("ved", "li", "dm-token") for s in DEFAULT_SEEDS if s not in runs.get(n, {})
    ]
    missing += [f"{n}-seed{DEFAULT_SEEDS[0]}" for n in RUNS if not RUNS[n].multi_seed and n not in runs]
    if missing:
        text += ["## Not run yet", "", "Planned runs without a record: " + ", ".join(missing) + ".", ""]
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results_dir", default=str(REPO_ROOT / "results" / "vl"))
    parser.add_argument("--docs_dir", default=str(REPO_ROOT / "docs"))
    parser.add_argument("--data_dir", default=None, help="The folder holding vqa-daquar/ (majority answer).")
    args = parser.parse_args(argv)
    from msnn_hf.data import default_data_dir

    data_dir = Path(args.data_dir) if args.data_dir else Path(default_data_dir())
    text = build(Path(args.results_dir), Path(args.docs_dir), data_dir)
    out = Path(args.docs_dir) / "results_vl.md"
    out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
