#!/usr/bin/env python
"""α_vision of the trained DM-token MS-VED runs, by the class of the generated word and by DAQUAR question type.

For every finished DM-token run of `vl.py` (``results/vl/<run>-seed<k>.json`` + its model in
``outputs/vl/runs/<run>-seed<k>/``): the model's own generated test captions (answers, for DAQUAR) are fed back
teacher-forced with `output_stream_weights=True`, and each generated word gets the α_vision of the position that
*predicts* its first piece (the decoder input just before it), averaged over the integration points (every block);
the end of the caption (EOS) is a class of its own. α_vision + α_text = 1 at every token (DM-token's softmax).

Word classes (a fixed rule, no tagger: NLTK's tagger data is not available offline): function words (a closed list:
articles, prepositions, conjunctions, pronouns, auxiliaries), colours, numbers (number words and digits), verbs in
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
CLASSES = ("function", "colour", "number", "verb (-ing)", "other content", "end of caption")


def word_class(word: str) -> str:
    w = word.lower().strip(".,!?;:'\"")
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


@torch.no_grad()
def alpha_rows(model, processor, features, rows: list[dict], prompt_key: str | None, target_key: str):
    """Per generated word: (row index, word, α_vision per integration point)."""
    from transformers.modeling_outputs import BaseModelOutput

    out = []
    tokenizer = processor.tokenizer
    for start in range(0, len(rows), 32):
        chunk = rows[start : start + 32]
        prompts = [r[prompt_key] for r in chunk] if prompt_key else [""] * len(chunk)
        targets = [r[target_key] for r in chunk]
        batch = processor(text=prompts, targets=targets, truncation=True, max_length=40)
        patches = torch.stack([features[r["image"]] for r in chunk]).float()
        result = model(
            decoder_input_ids=batch["decoder_input_ids"], decoder_attention_mask=batch["decoder_attention_mask"],
            encoder_outputs=BaseModelOutput(last_hidden_state=patches), output_stream_weights=True,
        )  # fmt: skip
        vision = model.modality_weights(result.stream_weights)["vision"]  # (points, B, T)
        labels = batch["labels"]
        for b in range(len(chunk)):
            positions = (labels[b] != -100).nonzero().flatten().tolist()
            ids = [int(labels[b, p]) for p in positions]
            eos = tokenizer.eos_token_id
            body = [(p, t) for p, t in zip(positions, ids) if t != eos]
            for first, word in words_of(tokenizer, [t for _, t in body]):
                out.append((start + b, word, vision[:, b, body[first][0]].tolist()))
            ends = [p for p, t in zip(positions, ids) if t == eos]
            if ends:
                out.append((start + b, None, vision[:, b, ends[0]].tolist()))
    return out


def summarise(entries: list[tuple[str, list[float]]]) -> dict:
    if not entries:
        return {"count": 0}
    per_point = torch.tensor([a for _, a in entries])
    mean = per_point.mean(1)
    return {
        "count": len(entries),
        "mean": float(mean.mean()),
        "std": float(mean.std()) if len(entries) > 1 else 0.0,
        "mean_per_point": [round(float(v), 5) for v in per_point.mean(0)],
    }


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

        rows = load_daquar(data_dir=record["data_args"]["data_dir"], split="test")
        generated = record["generated"]["test"]
        items = [
            {"image": rows[i]["image"], "question": rows[i]["question"], "answer": g["answer"] or "?"}
            for i, g in enumerate(generated)
        ]
        found = alpha_rows(model, processor, features, items, "question", "answer")
        by_type: dict[str, list] = defaultdict(list)
        for row, word, alpha in found:
            by_type[question_type(items[row]["question"])].append((word, alpha))
        return {
            "run": record_path.stem, "task": "vqa", "definition": __doc__.split("\n\n")[1],
            "by_question_type": {k: summarise(v) for k, v in sorted(by_type.items())},
            "all_answer_tokens": summarise([(w, a) for _, w, a in found]),
        }  # fmt: skip
    from msnn_hf.data_vl import load_flickr8k

    rows = load_flickr8k(data_dir=record["data_args"]["data_dir"], split="test")
    generated = record["generated"]["test"]
    items = [{"image": rows[i]["image"], "caption": g["caption"]} for i, g in enumerate(generated)]
    found = alpha_rows(model, processor, features, items, None, "caption")
    by_class: dict[str, list] = defaultdict(list)
    by_word: dict[str, list] = defaultdict(list)
    for _, word, alpha in found:
        cls = "end of caption" if word is None else word_class(word)
        by_class[cls].append((word, alpha))
        if word is not None:
            by_word[word.lower()].append((word, alpha))
    words = {w: summarise(v) for w, v in by_word.items() if len(v) >= 5}
    ranked = sorted(words, key=lambda w: words[w]["mean"])
    return {
        "run": record_path.stem, "task": "captioning", "definition": __doc__.split("\n\n")[1],
        "by_class": {c: summarise(by_class[c]) for c in CLASSES},
        "all_words": summarise([(w, a) for _, w, a in found if w is not None]),
        "lowest_alpha_words": {w: round(words[w]["mean"], 5) for w in ranked[:10]},
        "highest_alpha_words": {w: round(words[w]["mean"], 5) for w in ranked[::-1][:10]},
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
        if path.name.startswith("alpha_"):
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
