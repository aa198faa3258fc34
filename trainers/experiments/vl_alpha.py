#!/usr/bin/env python
"""α_vision of the trained DM-token MS-VED runs, by the class of the generated word and by DAQUAR question type.

For every finished DM-token run of `vl.py` (``results/vl/<run>-seed<k>.json`` + its model in
``outputs/vl/runs/<run>-seed<k>/``): the model's own generated test captions (answers, for DAQUAR) are fed back
teacher-forced, and each generated word gets the weights of the position that *predicts* its first piece (the
decoder input just before it), averaged over the integration points (every block); the end of the caption (EOS) is a
class of its own. Two numbers per token:

* α_vision (mixing): DM-token's softmax weight of the vision stream in the mix ``ẑ = Σ_s α_s u_s`` (α_vision +
  α_text = 1 at every token) — what the token-level gate chose;
* share_vision: the vision stream's share of the block's output ``z = r_0 + tanh(β) ⊙ (ẑ − r_0)``, i.e.
  mean(tanh β) · α_vision (`output_stream_weights`, `modality_weights`): how much of it reaches the text, given
  how far the learned per-channel gate β has opened (its per-point mean and mean |tanh β| are recorded too).

Word classes (a fixed rule, no tagger: NLTK's tagger data is not available offline): function words (a closed list:
articles, prepositions, conjunctions, pronouns, auxiliaries), punctuation, colours, numbers (number words and digits), verbs in
-ing form (the captions' main verb form: "a dog is running"), other content words (mostly nouns and adjectives).
DAQUAR question types by the question's start: "what color", "how many", "what is on", "what is in", other "what
is", other.

Writes ``results/vl/alpha_<run>-seed<k>.json`` (skipped when present; ``--force`` recomputes).

    python trainers/experiments/vl_alpha.py
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "trainers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import write_json_atomic  # noqa: E402
from vl_prepare import data_dirs  # noqa: E402

FUNCTION_WORDS = frozenset(
    """a an the this that these those some each another other of in on at to from with by for into onto over under
    near behind beside between through across along around down up out off while as and or but is are was were be
    being been has have his her its their it he she they them him we us you i who which where there here than
    then""".split()
)
COLOURS = frozenset(
    "black white red blue green yellow brown orange pink purple grey gray silver gold tan blond blonde dark".split()
)
NUMBERS = frozenset("one two three four five six seven eight nine ten several many few".split())
NOT_VERBS = frozenset(
    "building clothing ceiling something nothing ring swing king thing wedding spring".split()
)
DEFINITION = "\n\n".join(__doc__.split("\n\n")[1:3])
CLASSES = ("function", "punctuation", "colour", "number", "verb (-ing)", "other content", "end of caption")


def word_class(word: str) -> str:
    w = word.lower().strip(".,!?;:'\"")
    if not any(c.isalnum() for c in w):
        return "punctuation"
    if w in FUNCTION_WORDS:
        return "function"
    if w in COLOURS or w.endswith("-colored") or w.endswith("-coloured"):
        return "colour"
    if w in NUMBERS or w.isdigit():
        return "number"
    if w.endswith("ing") and len(w) > 4 and w not in NOT_VERBS:
        return "verb (-ing)"
    return "other content"


def question_type(question: str) -> str:
    q = question.lower().strip()
    for prefix in ("what color", "how many", "what is on", "what is in"):
        if q.startswith(prefix):
            return prefix
    return "other what is" if q.startswith("what is") else "other"


def words_of(tokenizer, ids: list[int]) -> list[tuple[int, str]]:
    """(index of the word's first piece, word) for byte-level BPE pieces ("Ġ" starts a word)."""
    words: list[list] = []
    for i, piece in enumerate(tokenizer.convert_ids_to_tokens(ids)):
        if piece.startswith("Ġ") or not words:
            words.append([i, [ids[i]]])
        else:
            words[-1][1].append(ids[i])
    return [(start, tokenizer.decode(pieces).strip()) for start, pieces in words]


def gates(model) -> list[dict]:
    """Per integration point: mean tanh(β) and mean |tanh(β)| of the start-as-the-text gate."""
    out = []
    for name, p in model.named_parameters():
        if ".integration." in name and name.endswith(".blend"):
            t = torch.tanh(p.detach())
            out.append({"point": name, "mean_tanh": float(t.mean()), "mean_abs_tanh": float(t.abs().mean())})
    return out


@torch.no_grad()
def alpha_rows(model, processor, features, rows: list[dict], prompt_key: str | None, target_key: str):
    """Per generated word: (row index, word, share_vision per integration point, α_vision (mixing) per point)."""
    tokenizer = processor.tokenizer
    vision_index = model.config.decoder.streams.index("vision")
    from msnn_hf.analysis import capture_mixing_weights

    with capture_mixing_weights(model) as captured:
        return _alpha_rows(
            model, processor, features, rows, prompt_key, target_key, tokenizer, vision_index, captured
        )


def _alpha_rows(model, processor, features, rows, prompt_key, target_key, tokenizer, vision_index, captured):
    from transformers.modeling_outputs import BaseModelOutput

    out = []
    for start in range(0, len(rows), 32):
        chunk = rows[start : start + 32]
        prompts = [r[prompt_key] for r in chunk] if prompt_key else [""] * len(chunk)
        targets = [r[target_key] for r in chunk]
        batch = processor(text=prompts, targets=targets, truncation=True, max_length=40)
        patches = torch.stack([features[r["image"]] for r in chunk]).float()
        captured.clear()
        result = model(
            decoder_input_ids=batch["decoder_input_ids"], decoder_attention_mask=batch["decoder_attention_mask"],
            encoder_outputs=BaseModelOutput(last_hidden_state=patches), output_stream_weights=True,
        )  # fmt: skip
        share = model.modality_weights(result.stream_weights)["vision"]  # (points, B, T)
        mixing = (
            torch.stack([a[..., vision_index] for a in captured]) if captured else torch.full_like(share, -1)
        )
        labels = batch["labels"]
        for b in range(len(chunk)):
            positions = (labels[b] != -100).nonzero().flatten().tolist()
            ids = [int(labels[b, p]) for p in positions]
            eos = tokenizer.eos_token_id
            body = [(p, t) for p, t in zip(positions, ids) if t != eos]
            for first, word in words_of(tokenizer, [t for _, t in body]):
                p = body[first][0]
                out.append((start + b, word, share[:, b, p].tolist(), mixing[:, b, p].tolist()))
            ends = [p for p, t in zip(positions, ids) if t == eos]
            if ends:
                out.append((start + b, None, share[:, b, ends[0]].tolist(), mixing[:, b, ends[0]].tolist()))
    return out


def summarise(entries: list[tuple]) -> dict:
    """Mean (and std over tokens) of share_vision and of α_vision (mixing), overall and per integration point, of
    `(word, share per point, mixing per point)` entries."""
    if not entries:
        return {"count": 0}
    result: dict = {"count": len(entries)}
    for key, column in (("share", 1), ("mixing", 2)):
        per_point = torch.tensor([e[column] for e in entries])
        mean = per_point.mean(1)
        result[key] = {
            "mean": float(mean.mean()),
            "std": float(mean.std()) if len(entries) > 1 else 0.0,
            "mean_per_point": [round(float(v), 5) for v in per_point.mean(0)],
        }
    return result


def analyse(record_path: Path, outputs_dir: Path, features: dict) -> dict:
    from msnn_hf.modeling_multistream_vision import MultiStreamVisionEncoderDecoder
    from msnn_hf.processing_multistream_vision import MultiStreamVisionProcessor

    record = json.loads(record_path.read_text())
    folder = outputs_dir / "runs" / record_path.stem
    model = MultiStreamVisionEncoderDecoder.from_pretrained(folder).eval()
    processor = MultiStreamVisionProcessor.from_pretrained(folder)
    vqa = record["data_args"]["dataset"] == "daquar"
    if vqa:
        from msnn_hf.data_vl import load_daquar

        rows = load_daquar(data_dir=data_dirs(None)[1], split="test")
        generated = record["generated"]["test"]
        items = [
            {"image": rows[i]["image"], "question": rows[i]["question"], "answer": g["answer"] or "?"}
            for i, g in enumerate(generated)
        ]
        found = alpha_rows(model, processor, features, items, "question", "answer")
        by_type: dict[str, list] = defaultdict(list)
        for row, word, share, mixing in found:
            by_type[question_type(items[row]["question"])].append((word, share, mixing))
        return {
            "run": record_path.stem, "task": "vqa", "definition": DEFINITION,
            "by_question_type": {k: summarise(v) for k, v in sorted(by_type.items())},
            "all_answer_tokens": summarise([(w, sh, mx) for _, w, sh, mx in found]),
            "gates": gates(model),
        }  # fmt: skip
    from msnn_hf.data_vl import load_flickr8k

    rows = load_flickr8k(data_dir=data_dirs(None)[0], split="test")
    generated = record["generated"]["test"]
    items = [{"image": rows[i]["image"], "caption": g["caption"]} for i, g in enumerate(generated)]
    found = alpha_rows(model, processor, features, items, None, "caption")
    by_class: dict[str, list] = defaultdict(list)
    by_word: dict[str, list] = defaultdict(list)
    for _, word, share, mixing in found:
        cls = "end of caption" if word is None else word_class(word)
        by_class[cls].append((word, share, mixing))
        if word is not None:
            by_word[word.lower()].append((word, share, mixing))
    words = {w: summarise(v)["mixing"]["mean"] for w, v in by_word.items() if len(v) >= 5}
    ranked = sorted(words, key=words.get)
    return {
        "run": record_path.stem, "task": "captioning", "definition": DEFINITION,
        "by_class": {c: summarise(by_class[c]) for c in CLASSES},
        "all_words": summarise([(w, sh, mx) for _, w, sh, mx in found if w is not None]),
        "gates": gates(model),
        "lowest_alpha_words": {w: round(words[w], 5) for w in ranked[:10]},
        "highest_alpha_words": {w: round(words[w], 5) for w in ranked[::-1][:10]},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results_dir", default=str(REPO_ROOT / "results" / "vl"))
    parser.add_argument("--outputs_dir", default=str(REPO_ROOT / "outputs" / "vl"))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    from msnn_hf.features_vl import load_image_features

    results, outputs = Path(args.results_dir), Path(args.outputs_dir)
    features = None
    for path in sorted(results.glob("*dm-token*-seed*.json")):
        if path.name.startswith(("alpha_", "zero-image_")):
            continue
        target = results / f"alpha_{path.name}"
        if target.is_file() and not args.force:
            print(f"{path.stem}: done, skipped")
            continue
        if not (outputs / "runs" / path.stem / "config.json").is_file():
            print(f"{path.stem}: no trained model in {outputs / 'runs' / path.stem}, skipped")
            continue
        features = features or load_image_features(outputs / "lite0_features.safetensors")
        result = analyse(path, outputs, features)
        write_json_atomic(target, result)
        print(f"{path.stem} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
