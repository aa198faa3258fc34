"""Shared helpers of `run_clm.py` / `run_mlm.py`: local datasets, text loading, block grouping, word-level perplexity,
masking, parameter counts.

Word-level perplexity (causal LM), exactly:

* every line of a split is one sentence; it is tokenized as ``tokenizer(line.strip())`` (no special tokens) and
  the end-of-sentence token (``tokenizer.eos_token``) is appended, a real token that the model must predict;
* the lines are concatenated into one stream ``S = [eos] + line_1 + [eos] + line_2 + [eos] + ...``; the leading
  ``eos`` is context only (it is not scored), every other token is scored exactly once;
* the stream is cut into consecutive windows of ``block_size`` predictions: window ``k`` feeds
  ``S[k*B : k*B + B]`` and scores ``S[k*B + 1 : k*B + B + 1]`` (the context of a token is the tokens before it in
  its window: no overlap, as in the usual non-overlapping evaluation);
* ``total_nll = sum over all scored tokens of -log p(token | window context)`` (natural log, summed, not averaged);
* ``words = sum over lines of (len(line.split()) + 1)``: every whitespace-separated word plus one end-of-sentence
  per line (the PTB / WikiText convention, blank lines count one);
* ``word_perplexity = exp(total_nll / words)``, ``token_perplexity = exp(total_nll / scored_tokens)``.

With a byte-level BPE every word is one or more tokens, so ``total_nll`` is the NLL of the whole text (all its
bytes plus the line ends) and the word-level number compares across tokenizers.

Masked LM: ``masked_token_perplexity = exp(sum of NLL over the masked tokens / number of masked tokens)``, masks
drawn by `FixedSeedMasker` (a function of the seed and the example index only, so every model sees the same masks).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm
from train_common import (
    UsageError,
    check_checkpoint_architecture,
    finished_message,
    finished_run,
    holds_trained_record,
    mark_finished,
    restore_completed_training,
    resume_checkpoint,
    training_complete,
    training_settings,
)
from trainer_groups import gate_openness

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = {  # local layout under --data_dir: split -> file
    "ptb": {"train": "ptb/train.txt", "validation": "ptb/validation.txt", "test": "ptb/test.txt"},
    "wikitext-2": {"validation": "wikitext-2/validation.txt", "test": "wikitext-2/test.txt"},
}


def default_data_dir() -> Path:
    """`$MSNN_DATA_DIR`, else `../shared/data` relative to the repository root."""
    return Path(os.environ.get("MSNN_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def read_lines(path: str | os.PathLike, max_lines: int | None = None) -> list[str]:
    """The lines of a text file (newline stripped, blank lines kept: they count as one end-of-sentence).

    Raises:
        UsageError: the file is missing, not UTF-8 (naming the line) or holds no text.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"Text file {path} does not exist")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UsageError(
            f"Text file {path}, line {line}: not UTF-8 (byte {data[err.start]:#04x} at offset {err.start})"
        ) from None
    if not text.strip():
        raise UsageError(f"Text file {path} holds no text")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start another
    lines = [line.rstrip("\r") for line in lines]
    return lines[:max_lines] if max_lines else lines


def load_hub_lines(dataset_name: str, config_name: str | None, split: str, column: str = "text") -> list[str]:
    """Lines of a Hub dataset split (for users with Hub access, e.g. `ptb_text_only`, `wikitext`)."""
    from datasets import load_dataset

    data = load_dataset(dataset_name, config_name, split=split)
    if column not in data.column_names:
        column = data.column_names[0]
    return [str(t) for t in data[column]]


def count_words(lines: Iterable[str]) -> int:
    """Words of a split, counting one end-of-sentence per line: ``sum(len(line.split()) + 1)``."""
    return sum(len(line.split()) + 1 for line in lines)


def tokenize_lines(tokenizer: Any, lines: Sequence[str], batch_size: int = 1000) -> list[list[int]]:
    """Token ids of every line (``line.strip()``, no special tokens) followed by the eos id."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("The tokenizer needs an eos token (the end-of-sentence appended to every line)")
    out: list[list[int]] = []
    for start in range(0, len(lines), batch_size):
        chunk = [line.strip() for line in lines[start : start + batch_size]]
        encoded = tokenizer(chunk, add_special_tokens=False)["input_ids"]
        out.extend(ids + [eos] for ids in encoded)
    return out


def token_stream(tokenized_lines: Iterable[list[int]], eos_id: int) -> list[int]:
    """``[eos] + line_1 + line_2 + ...`` (each line already ends with eos)."""
    stream = [eos_id]
    for ids in tokenized_lines:
        stream.extend(ids)
    return stream


def group_blocks(tokenized_lines: Iterable[list[int]], block_size: int) -> list[list[int]]:
    """Concatenate and cut into training blocks of exactly `block_size` tokens (the remainder is dropped)."""
    flat = [t for ids in tokenized_lines for t in ids]
    usable = len(flat) // block_size * block_size
    return [flat[i : i + block_size] for i in range(0, usable, block_size)]


class CausalLMCollator:
    """Right-pads a batch of token-id lists for causal LM training. Labels are the input ids, with -100 only at the
    padded *positions*: unlike `DataCollatorForLanguageModeling(mlm=False)`, which ignores every token equal to the
    pad id, an end-of-sentence token that doubles as the pad token (GPT-2's tokenizer) is still trained on."""

    def __init__(self, pad_token_id: int) -> None:
        if pad_token_id is None:
            raise ValueError("CausalLMCollator needs a pad token id")
        self.pad_token_id = int(pad_token_id)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = [list(f["input_ids"]) for f in features]
        length = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        labels = torch.full((len(rows), length), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, : len(row)] = 1
            labels[i, : len(row)] = input_ids[i, : len(row)]
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@dataclass
class IntegrationArguments:
    """The multi-stream fields both LM scripts expose (their `ModelArguments` extend this); see
    `MultiStreamBertConfig` / `MultiStreamGPT2Config` for what each one means and which values the family takes."""

    streams: str = field(default="semantic,phonetic,morphological", metadata={"help": "comma-separated"})
    integration_type: str = field(
        default="dm", metadata={"help": "li | dm | none (GPT-2); li | dm | none | early | concat (BERT)"}
    )
    alpha_granularity: str = field(default="scalar", metadata={"help": "DM: scalar | channel | token"})
    integration_layers: str = field(
        default="all", metadata={"help": "all | last | comma-separated 0-based layer indices"}
    )
    integration_activation: str = field(default="gelu")
    integration_recurrent: bool = field(default=True)
    dm_alpha_init: float = field(default=0.1)
    integration_init: str = field(
        default="backbone",
        metadata={
            "help": "backbone: closed gates, the model starts as its single-stream model (default); mix: msnn_hf "
            "0.1's start, the integration's mix from the first step (nothing to preserve in a model trained from "
            "scratch)"
        },
    )
    stream_hidden_size: int = field(default=128)
    gate_lr: float | None = field(
        default=None,
        metadata={
            "help": "learning rate of the integration gates (closed at the start), no weight decay; default: "
            "--learning_rate (trainer_groups.py: at small rates the gates barely open)"
        },
    )
    stream_num_heads: int = field(default=4)
    stream_intermediate_size: int = field(default=256)
    stream_dropout: float = field(default=0.1)

    def check_checkpoint(self, config: Any, checkpoint: str) -> None:
        """Continuing a multi-stream checkpoint keeps its architecture: options set away from their defaults that
        disagree with `config` are an error (they would be silently ignored)."""
        defaults = IntegrationArguments().overrides()
        asked = {k: v for k, v in self.overrides().items() if v != defaults[k]}
        if not asked:
            return
        check_checkpoint_architecture(
            config, asked, checkpoint, "Drop those options to continue training it."
        )

    def overrides(self) -> dict[str, Any]:
        """The multi-stream config fields given on the command line."""
        layers: Any = self.integration_layers
        if layers not in ("all", "last"):
            try:
                layers = [int(i) for i in layers.split(",")]
            except ValueError:
                raise ValueError(
                    f"--integration_layers must be 'all', 'last' or comma-separated integers; got {layers!r}"
                ) from None
        return dict(
            streams=[s.strip() for s in self.streams.split(",") if s.strip()],
            integration_type=self.integration_type,
            alpha_granularity=self.alpha_granularity,
            integration_layers=layers,
            integration_activation=self.integration_activation,
            integration_recurrent=self.integration_recurrent,
            dm_alpha_init=self.dm_alpha_init,
            integration_init=self.integration_init,
            stream_hidden_size=self.stream_hidden_size,
            stream_num_heads=self.stream_num_heads,
            stream_intermediate_size=self.stream_intermediate_size,
            stream_dropout=self.stream_dropout,
        )


@dataclass
class PerplexityResult:
    total_nll: float
    scored_tokens: int
    words: int

    @property
    def word_perplexity(self) -> float:
        return math.exp(self.total_nll / self.words)

    @property
    def token_perplexity(self) -> float:
        return math.exp(self.total_nll / self.scored_tokens)

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_word_perplexity": self.word_perplexity,
            f"{prefix}_token_perplexity": self.token_perplexity,
            f"{prefix}_total_nll": self.total_nll,
            f"{prefix}_scored_tokens": self.scored_tokens,
            f"{prefix}_words": self.words,
        }


@torch.no_grad()
def causal_lm_nll(
    model: torch.nn.Module,
    stream: Sequence[int],
    block_size: int,
    batch_size: int = 8,
    desc: str = "eval",
) -> tuple[float, int]:
    """Summed NLL (nats) of ``stream[1:]`` under non-overlapping windows of `block_size` predictions.

    Returns `(total_nll, scored_tokens)`; see the module docstring for the exact windows.
    """
    model.eval()
    device = next(model.parameters()).device
    data = torch.tensor(stream, dtype=torch.long)
    n_pred = len(stream) - 1
    starts = list(range(0, n_pred, block_size))
    total, scored = 0.0, 0
    for i in tqdm(range(0, len(starts), batch_size), desc=desc, leave=False):
        chunk = starts[i : i + batch_size]
        inputs = torch.zeros(len(chunk), block_size, dtype=torch.long)
        targets = torch.full((len(chunk), block_size), -100, dtype=torch.long)
        mask = torch.zeros(len(chunk), block_size, dtype=torch.long)
        for row, s in enumerate(chunk):
            n = min(block_size, n_pred - s)
            inputs[row, :n] = data[s : s + n]
            targets[row, :n] = data[s + 1 : s + n + 1]
            mask[row, :n] = 1
        logits = model(
            input_ids=inputs.to(device), attention_mask=mask.to(device), use_cache=False
        ).logits  # (b, B, V)
        nll = F.cross_entropy(
            logits.float().flatten(0, 1), targets.to(device).flatten(), ignore_index=-100, reduction="sum"
        )
        total += float(nll)
        scored += int((targets != -100).sum())
    assert scored == n_pred
    return total, scored


def word_level_perplexity(
    model: torch.nn.Module,
    tokenizer: Any,
    lines: Sequence[str],
    block_size: int,
    batch_size: int = 8,
    desc: str = "eval",
) -> PerplexityResult:
    """Word-level perplexity of `lines` (module docstring): exp(summed token NLL / words incl. one eos per line)."""
    stream = token_stream(tokenize_lines(tokenizer, lines), tokenizer.eos_token_id)
    total, scored = causal_lm_nll(model, stream, block_size, batch_size, desc)
    return PerplexityResult(total_nll=total, scored_tokens=scored, words=count_words(lines))


# ----------------------------------------------------------------------------------------------------- masking
class FixedSeedMasker:
    """Masks that depend only on ``(seed, example index)``: every model sees exactly the same masked inputs.

    Args:
        tokenizer: a fast tokenizer (for `mask_token_id`, special tokens and vocabulary size).
        mlm_probability: share of the (non-special) units to mask.
        whole_word: mask whole words (all tokens sharing a `word_id`) instead of single tokens.
        seed: base seed.
        replace_probabilities: `(mask, random, keep)` shares of the masked positions (BERT: 0.8, 0.1, 0.1; the
            evaluation uses `(1, 0, 0)` so that a masked token is never visible).
    """

    def __init__(
        self,
        tokenizer: Any,
        mlm_probability: float = 0.15,
        whole_word: bool = False,
        seed: int = 0,
        replace_probabilities: tuple[float, float, float] = (0.8, 0.1, 0.1),
    ) -> None:
        if tokenizer.mask_token_id is None:
            raise ValueError("The tokenizer has no mask token")
        self.tokenizer = tokenizer
        self.mlm_probability = mlm_probability
        self.whole_word = whole_word
        self.seed = seed
        self.replace = replace_probabilities

    def __call__(
        self, input_ids: list[int], word_ids: list[int | None], special_mask: list[int], index: int
    ) -> tuple[list[int], list[int]]:
        """`(masked input_ids, labels)` of one example; labels are -100 at unmasked positions."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        ids = torch.tensor(input_ids)
        candidates = torch.tensor(special_mask) == 0
        if self.whole_word:
            words = sorted({w for w, c in zip(word_ids, candidates.tolist()) if w is not None and c})
            chosen_words = {
                w
                for w, r in zip(words, torch.rand(len(words), generator=g).tolist())
                if r < self.mlm_probability
            }
            if words and not chosen_words:
                chosen_words = {words[int(torch.randint(len(words), (1,), generator=g))]}
            masked = torch.tensor([w in chosen_words for w in word_ids]) & candidates
        else:
            masked = (torch.rand(len(ids), generator=g) < self.mlm_probability) & candidates
            if candidates.any() and not masked.any():
                masked[candidates.nonzero()[int(torch.randint(int(candidates.sum()), (1,), generator=g))]] = (
                    True
                )
        labels = torch.where(masked, ids, torch.full_like(ids, -100))
        roll = torch.rand(len(ids), generator=g)
        p_mask, p_random, _ = self.replace
        to_mask = masked & (roll < p_mask)
        to_random = masked & (roll >= p_mask) & (roll < p_mask + p_random)
        out = ids.clone()
        out[to_mask] = self.tokenizer.mask_token_id
        out[to_random] = torch.randint(len(self.tokenizer), (int(to_random.sum()),), generator=g)
        return out.tolist(), labels.tolist()


@torch.no_grad()
def masked_lm_nll(
    model: torch.nn.Module, dataset: Any, collator: Any, batch_size: int = 16
) -> tuple[float, int]:
    """Summed NLL (nats) over the masked tokens of a pre-masked dataset, and the number of masked tokens."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in tqdm(range(0, len(dataset), batch_size), desc="mlm eval", leave=False):
        batch = collator([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        labels = batch.pop("labels").to(device)
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        total += float(
            F.cross_entropy(
                logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum"
            )
        )
        count += int((labels != -100).sum())
    return total, count


class WordCategories:
    """The word categories of the roadmap's step-2 question ("phonetic for rare words, morphological for novel
    compounds"), decided from the training text and the streams' own resources:

    * ``rare``: fewer than `rare_below` occurrences in the training lines (lower-cased, whitespace words);
    * ``not in CMUdict``: the phonetic stream has no dictionary pronunciation (it falls back to g2p_en's model);
    * ``derived / compound``: the default Morfessor model (`msnn_hf.streams.morphology.load_base_segmenter`) splits
      the word into two or more morphs, or the word has a hyphen;
    * ``other``: frequent, in CMUdict, one morph.

    Only alphabetic words (hyphens and apostrophes allowed) are categorised; PTB's ``<unk>`` and ``N`` and
    punctuation count in ``all`` only. A word can be in several of the first three categories.
    """

    NAMES = ("rare", "not in CMUdict", "derived / compound", "other")

    def __init__(self, train_lines: list[str], rare_below: int = 20) -> None:
        from collections import Counter

        from msnn_hf.streams.morphology import cmudict_words, load_base_segmenter

        self.counts = Counter(w.lower() for line in train_lines for w in line.split())
        self.rare_below = rare_below
        self.cmudict = {w.lower() for w in cmudict_words()}
        self.segmenter = load_base_segmenter()
        self._cache: dict[str, tuple[str, ...]] = {}

    def __call__(self, word: str) -> tuple[str, ...]:
        word = word.lower()
        if word in self._cache:
            return self._cache[word]
        found: tuple[str, ...] = ()
        if word not in ("unk", "n") and word.replace("-", "").replace("'", "").isalpha():
            cats = []
            if self.counts[word] < self.rare_below:
                cats.append("rare")
            if word not in self.cmudict:
                cats.append("not in CMUdict")
            if "-" in word or len(self.segmenter.segment(word)) >= 2:
                cats.append("derived / compound")
            found = tuple(cats) or ("other",)
        self._cache[word] = found
        return found


def _row_words(tokenizer: Any, row: dict) -> dict[int, str]:
    """`{word id: word}` of one encoded row (WordPiece pieces joined, "##" removed)."""
    pieces: dict[int, list[str]] = {}
    for token, word in zip(tokenizer.convert_ids_to_tokens(row["input_ids"]), row["word_ids"]):
        if word is not None and word >= 0:
            pieces.setdefault(word, []).append(token[2:] if token.startswith("##") else token)
    return {w: "".join(p) for w, p in pieces.items()}


@torch.no_grad()
def masked_lm_nll_by_category(
    model: torch.nn.Module,
    dataset: Any,
    collator: Any,
    tokenizer: Any,
    categories: WordCategories | None,
    batch_size: int = 16,
) -> dict[str, tuple[float, int]]:
    """`{category: (summed NLL, masked tokens)}` over the masked tokens of a pre-masked dataset, ``all`` included;
    a masked token belongs to its word's categories (`WordCategories`; None: ``all`` only)."""
    model.eval()
    device = next(model.parameters()).device
    names = ("all", *WordCategories.NAMES) if categories is not None else ("all",)
    totals: dict[str, list[float]] = {name: [0.0, 0] for name in names}
    for start in tqdm(range(0, len(dataset), batch_size), desc="mlm eval by category", leave=False):
        rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = collator(rows)
        labels = batch.pop("labels").to(device)
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        nll = F.cross_entropy(
            logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none"
        ).view(labels.shape)
        for b, row in enumerate(rows):
            words = _row_words(tokenizer, row)
            for position in (labels[b] != -100).nonzero().flatten().tolist():
                value = float(nll[b, position])
                word = row["word_ids"][position]
                known = categories is not None and word is not None and word >= 0
                for name in ("all", *(categories(words[word]) if known else ())):
                    totals[name][0] += value
                    totals[name][1] += 1
    return {name: (total, int(count)) for name, (total, count) in totals.items()}


# ------------------------------------------------------------------------------ the scripts' shared train / record
# data arguments that only decide what is evaluated and where results go: changing them does not change training
EVAL_ONLY_FIELDS = frozenset(
    {
        "extra_eval",
        "max_eval_lines",
        "eval_batch_size",
        "eval_splits",
        "results_file",
        "validation_file",
        "test_file",
    }
)


def run_settings(model_args: Any, data_args: Any, training_args: Any) -> dict[str, dict[str, Any]]:
    """What an LM run's training depends on: the model arguments, the data arguments but the evaluation-only
    ones, and the budget fields of the `TrainingArguments` (`train_common.RUN_TRAINING_FIELDS`)."""
    return {
        "model": asdict(model_args),
        "data": {k: v for k, v in asdict(data_args).items() if k not in EVAL_ONLY_FIELDS},
        "training": training_settings(training_args),
    }


def results_path(results_file: str | os.PathLike | None, training_args: Any) -> Path:
    """Where a run's record goes: `--results_file`, else `<output_dir>/results.json`."""
    return Path(results_file or Path(training_args.output_dir) / "results.json")


def finished_record(model_args: Any, data_args: Any, training_args: Any) -> dict[str, Any] | None:
    """Before anything is loaded: the saved record of a finished run in `output_dir` with the same settings (the
    same command run again does nothing and returns it), else None.

    Raises:
        UsageError: the folder's finished run had other settings, or an evaluation-only run (`--do_train False`)
            would replace the record of a trained run.
    """
    path = results_path(data_args.results_file, training_args)
    marker = finished_run(training_args, run_settings(model_args, data_args, training_args))
    if marker is not None:
        if not path.is_file():
            raise UsageError(
                f"{training_args.output_dir} holds a finished run, but its record {path} is gone; evaluate it again "
                f"with --do_train False --model_name_or_path {training_args.output_dir} --results_file {path} (and "
                "another --output_dir), or delete the folder to train again"
            )
        print(finished_message(training_args.output_dir, marker), flush=True)
        return json.loads(path.read_text())
    if not training_args.do_train and holds_trained_record(path):
        raise UsageError(
            f"{path} holds the record of a trained run; an evaluation-only run (--do_train False) does not "
            "replace it: pass --results_file (or --output_dir) for this evaluation"
        )
    return None


def train_and_save(
    trainer: Any, training_args: Any, processor: Any, settings: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], float, str | None]:
    """`trainer.train()`, then save the model and the processor next to it.

    Resumes from `--resume_from_checkpoint`, else from the newest complete checkpoint in `output_dir` (a run killed
    mid-way continues where its last `--save_steps` checkpoint left it), after checking that the folder's run was
    started with the same `settings` (`train_common.resume_checkpoint`). A checkpoint that already reached
    `max_steps` is restored and not trained further. Returns the training metrics (keys prefixed
    `train_`), this process's training wall time in seconds and the checkpoint it resumed from (or None)."""
    checkpoint = resume_checkpoint(training_args, settings, trainer.is_world_process_zero())
    metrics, seconds = {}, 0.0
    if training_complete(checkpoint):  # killed after its last checkpoint: never train past max_steps
        restore_completed_training(trainer, checkpoint)
    else:
        if checkpoint:
            print(f"resuming from {checkpoint}", flush=True)
        t0 = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=checkpoint)
        seconds = time.perf_counter() - t0
        metrics = {k if k.startswith("train") else f"train_{k}": v for k, v in result.metrics.items()}
    trainer.save_model()
    if processor is not None and trainer.is_world_process_zero():  # one writer under DDP, as save_model
        processor.save_pretrained(training_args.output_dir)
    return metrics, seconds, checkpoint


def tokens_per_step(training_args: Any, sequence_length: int) -> int:
    """Training tokens per optimiser step (all devices, gradient accumulation included)."""
    batch = (
        training_args.per_device_train_batch_size
        * max(1, training_args.n_gpu)
        * training_args.gradient_accumulation_steps
    )
    return batch * sequence_length


def write_record(
    task: str,
    model_args: Any,
    data_args: Any,
    training_args: Any,
    model: Any,
    metrics: dict[str, Any],
    started: float,
    train_seconds: float,
    results_file: str | os.PathLike | None = None,
    *,
    commit: str | None,
    **extra: Any,
) -> dict[str, Any]:
    """Write the run's record (arguments, config, parameter count, wall time, commit, metrics) as JSON to
    `results_file` (default `<output_dir>/results.json`) and return it. Non-finite floats become null.

    ``commit``: the code's git commit read when the run started (`git_commit()` at the start of `main`), not
    now: the checkout may have moved on while it trained. Required, so that no caller records the later one.

    With several processes (`accelerate launch`) every process returns the record and the main one (global rank 0)
    writes it; `world_size` says how many trained."""
    record = {
        "task": task,
        "model_args": asdict(model_args),
        "data_args": asdict(data_args),
        "training_args": {
            k: v
            for k, v in training_args.to_dict().items()
            if isinstance(v, (int, float, str, bool, type(None), list))
        },
        "config": model.config.to_dict(),
        "gate_openness": gate_openness(model),
        **extra,
        "train_seconds": round(train_seconds, 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "git_commit": commit,
        "torch_threads": torch.get_num_threads(),
        "world_size": training_args.world_size,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "metrics": {
            k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()
        },
    }
    if training_args.process_index != 0:
        return record
    path = results_path(results_file, training_args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print("wrote", path)
    if training_args.do_train:
        mark_finished(training_args.output_dir, int(extra.get("global_steps") or 0), [str(path)])
    return record


def count_parameters(model: torch.nn.Module) -> int:
    """Exact number of trainable parameters (tied weights counted once; stream-table buffers excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
