"""Causal language modelling with the multi-stream GPT-2 family (HfArgumentParser + TrainingArguments + Trainer).

Trains from scratch (`--n_embd/--n_layer/...`), from a GPT-2 checkpoint (`--backbone gpt2`, its weights go into the
semantic stream) or continues a multi-stream checkpoint (`--model_name_or_path`). Data: local text files (one
sentence per line; PTB / WikiText layout) or a Hub dataset. The evaluation reports word-level perplexity, exactly
as documented in `trainers/lm_utils.py` (summed token NLL, with one real end-of-sentence token per line, divided by
the number of words counting one end-of-sentence per line), so numbers compare across tokenizers.

Example (PTB from scratch, option B with DM)::

    python trainers/run_clm.py --processor_name outputs/lm/processor --data_dir ../shared/data --dataset ptb \
        --integration_type dm --integration_layers all --n_embd 256 --n_layer 4 --n_head 4 \
        --output_dir outputs/clm/dm-B --max_steps 2000 --per_device_train_batch_size 16 --block_size 128

Writes ``<output_dir>/results.json`` (arguments, config, exact parameter count, tokens trained, wall time, git
commit, metrics).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import (
    AutoTokenizer,
    HfArgumentParser,
    TrainingArguments,
    set_seed,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lm_utils  # noqa: E402
from train_common import UsageError, cli, git_commit, parse_dataclasses, steps_before  # noqa: E402
from trainer_groups import MultiStreamTrainer  # noqa: E402

from msnn_hf.configuration_multistream_gpt2 import MultiStreamGPT2Config  # noqa: E402
from msnn_hf.modeling_multistream_gpt2 import MultiStreamGPT2LMHeadModel  # noqa: E402


@dataclass
class ModelArguments(lm_utils.IntegrationArguments):
    model_name_or_path: str | None = field(default=None, metadata={"help": "a multi-stream GPT-2 checkpoint"})
    backbone: str | None = field(
        default=None, metadata={"help": "GPT-2 checkpoint for the semantic stream (e.g. gpt2)"}
    )
    processor_name: str | None = field(
        default=None, metadata={"help": "MultiStreamProcessor folder (tokenizer + tables)"}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "tokenizer, when no processor is needed"}
    )
    n_embd: int = field(default=256)
    n_layer: int = field(default=4)
    n_head: int = field(default=4)
    n_inner: int | None = field(default=None)
    n_positions: int = field(default=256)
    dropout: float = field(default=0.1, metadata={"help": "resid/embd/attn dropout of the semantic stream"})
    blank_streams: bool = field(
        default=False,
        metadata={
            "help": "control experiment: all-padding stream tables, so that the non-semantic streams see positions "
            "only (same architecture and parameters, no phonetic / morphological content); new models only"
        },
    )


@dataclass
class DataArguments:
    data_dir: str | None = field(default=None, metadata={"help": "default: $MSNN_DATA_DIR or ../shared/data"})
    dataset: str | None = field(
        default="ptb", metadata={"help": f"local dataset under data_dir: {list(lm_utils.DATASETS)}"}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id (e.g. ptb_text_only)"})
    dataset_config_name: str | None = field(default=None)
    text_column: str = field(
        default="text", metadata={"help": "Hub datasets: the text column (ptb: sentence)"}
    )
    train_file: str | None = field(default=None)
    validation_file: str | None = field(default=None)
    test_file: str | None = field(default=None)
    extra_eval: str | None = field(
        default=None,
        metadata={"help": "extra word-level evaluations, name=path[,name=path] (e.g. wikitext2=...)"},
    )
    block_size: int = field(default=128)
    line_by_line: bool = field(
        default=False, metadata={"help": "one example per line (padded) instead of blocks"}
    )
    max_train_lines: int | None = field(default=None)
    max_eval_lines: int | None = field(default=None)
    eval_batch_size: int = field(default=16, metadata={"help": "batch size of the word-level evaluation"})
    eval_splits: str = field(
        default="validation,test", metadata={"help": "splits scored with word-level perplexity"}
    )
    results_file: str | None = field(default=None, metadata={"help": "default: <output_dir>/results.json"})


def load_splits(args: DataArguments) -> dict[str, list[str]]:
    """`{"train": lines, "validation": lines, "test": lines}` from local files or a Hub dataset."""
    splits: dict[str, list[str]] = {}
    if args.dataset_name:
        for split in ("train", "validation", "test"):
            splits[split] = lm_utils.load_hub_lines(
                args.dataset_name, args.dataset_config_name, split, args.text_column
            )
    else:
        data_dir = Path(args.data_dir) if args.data_dir else lm_utils.default_data_dir()
        files = {k: str(data_dir / v) for k, v in lm_utils.DATASETS.get(args.dataset or "", {}).items()}
        for split, given in (
            ("train", args.train_file),
            ("validation", args.validation_file),
            ("test", args.test_file),
        ):
            if given:
                files[split] = given
        splits = {split: lm_utils.read_lines(path) for split, path in files.items()}
    if args.max_train_lines and "train" in splits:
        splits["train"] = splits["train"][: args.max_train_lines]
    if args.max_eval_lines:
        splits.update({k: v[: args.max_eval_lines] for k, v in splits.items() if k != "train"})
    return splits


def build_model(margs: ModelArguments, processor: Any, tokenizer: Any) -> MultiStreamGPT2LMHeadModel:
    if margs.blank_streams and (margs.model_name_or_path or margs.backbone):
        raise ValueError(
            "--blank_streams builds a new model's tables; it does not apply to a loaded checkpoint"
        )
    if margs.model_name_or_path:
        model = MultiStreamGPT2LMHeadModel.from_pretrained(margs.model_name_or_path)
        margs.check_checkpoint(model.config, margs.model_name_or_path)
        return model
    overrides = margs.overrides()
    if margs.backbone:
        return MultiStreamGPT2LMHeadModel.from_backbone(margs.backbone, processor=processor, **overrides)
    sizes = {}
    if processor is not None:
        sizes = MultiStreamGPT2Config.processor_overrides(processor)
    config = MultiStreamGPT2Config(
        vocab_size=len(tokenizer),
        n_positions=margs.n_positions,
        n_embd=margs.n_embd,
        n_layer=margs.n_layer,
        n_head=margs.n_head,
        n_inner=margs.n_inner,
        resid_pdrop=margs.dropout,
        embd_pdrop=margs.dropout,
        attn_pdrop=margs.dropout,
        bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **sizes,
        **overrides,
    )
    model = MultiStreamGPT2LMHeadModel(config)
    if margs.blank_streams and not config.non_semantic_streams:
        raise ValueError("--blank_streams needs a model with non-semantic streams")
    if config.non_semantic_streams:
        if processor is None:
            raise ValueError("A multi-stream model needs --processor_name (the stream tables)")
        tables = processor.stream_tables
        if margs.blank_streams:  # every token's slots all padding: the streams carry positions only
            tables = {name: torch.zeros_like(torch.as_tensor(table)) for name, table in tables.items()}
        model.set_stream_tables(tables)
    return model


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    margs, dargs, targs = parse_dataclasses(parser, argv)
    finished = lm_utils.finished_record(margs, dargs, targs)
    if finished is not None:  # the same command again: nothing to train, nothing rewritten
        return finished
    set_seed(targs.seed)
    start = time.perf_counter()
    commit = git_commit()  # the code that runs, before the checkout can move on
    splits = load_splits(dargs)  # bad data fails before anything is loaded

    processor = None
    if margs.processor_name:
        from msnn_hf.processing_multistream import MultiStreamProcessor

        processor = MultiStreamProcessor.from_pretrained(margs.processor_name)
        tokenizer = processor.tokenizer
    elif margs.model_name_or_path or margs.tokenizer_name:
        tokenizer = AutoTokenizer.from_pretrained(margs.tokenizer_name or margs.model_name_or_path)
    else:
        raise UsageError("Give --processor_name or --tokenizer_name")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    model = build_model(margs, processor, tokenizer)
    if dargs.block_size > model.config.n_positions:
        raise ValueError(f"--block_size {dargs.block_size} exceeds n_positions {model.config.n_positions}")
    n_params = lm_utils.count_parameters(model)
    print(f"model: {model.config.integration_type} streams={model.config.streams} params={n_params:,}")

    train_ds = eval_ds = None
    if targs.do_train:
        lines = lm_utils.tokenize_lines(tokenizer, splits["train"])
        if dargs.line_by_line:
            train_ds = Dataset.from_dict({"input_ids": [ids[: dargs.block_size] for ids in lines]})
        else:
            train_ds = Dataset.from_dict({"input_ids": lm_utils.group_blocks(lines, dargs.block_size)})
    if targs.do_eval and "validation" in splits and "validation" in dargs.eval_splits:
        eval_ds = Dataset.from_dict(
            {
                "input_ids": lm_utils.group_blocks(
                    lm_utils.tokenize_lines(tokenizer, splits["validation"]), dargs.block_size
                )
            }
        )
    collator = lm_utils.CausalLMCollator(tokenizer.pad_token_id)
    trainer = MultiStreamTrainer(
        model=model,
        args=targs,
        gate_lr=margs.gate_lr,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=collator,
        processing_class=tokenizer,
    )
    metrics: dict[str, Any] = {}
    train_seconds, resumed_from = 0.0, None
    if targs.do_train:
        metrics, train_seconds, resumed_from = lm_utils.train_and_save(
            trainer, targs, processor, lm_utils.run_settings(margs, dargs, targs)
        )
    steps = trainer.state.global_step
    step_tokens = lm_utils.tokens_per_step(targs, dargs.block_size)
    tokens_trained = steps * step_tokens if not dargs.line_by_line else None

    if targs.do_eval:
        model.eval()
        wanted = [s.strip() for s in dargs.eval_splits.split(",") if s.strip()]
        evals = {k: splits[k] for k in wanted if k in splits}
        if dargs.extra_eval:
            for item in dargs.extra_eval.split(","):
                name, path = item.split("=", 1)
                evals[name] = lm_utils.read_lines(path, dargs.max_eval_lines)
        for name, lines in evals.items():
            ppl = lm_utils.word_level_perplexity(
                model, tokenizer, lines, dargs.block_size, dargs.eval_batch_size, desc=f"eval {name}"
            )
            metrics.update(ppl.as_dict(name))
            print(f"{name}: word ppl {ppl.word_perplexity:.2f}  token ppl {ppl.token_perplexity:.2f}")
        if eval_ds is not None and "validation" in wanted:
            metrics["validation_trainer_eval_loss"] = trainer.evaluate()["eval_loss"]

    return lm_utils.write_record(
        "clm", margs, dargs, targs, model, metrics, start, train_seconds, dargs.results_file, commit=commit,
        resumed_from=resumed_from, steps_before_resume=steps_before(resumed_from),
        num_parameters=n_params, global_steps=steps, tokens_per_step=step_tokens, tokens_trained=tokens_trained,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(cli(main, "run_clm.py"))
