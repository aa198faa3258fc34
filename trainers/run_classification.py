#!/usr/bin/env python
"""Fine-tune a multi-stream BERT (LI-BERT, DM-BERT and the baselines) for text classification.

In the style of transformers' `examples/pytorch/text-classification/run_glue.py`: `HfArgumentParser` over
`ModelArguments`, `DataArguments` and `TrainingArguments`, then `Trainer`. Any single-label dataset: a Hub id
(`--dataset_name SetFit/sst5`), a local folder of `{train,validation,test}.{jsonl,csv}` (`--data_dir`) or explicit
files; every variant of the BERT family through `--variant` (see `VARIANTS`).

SST-5 phrase-level training (`--train_granularity phrases`, the recipe of Munikar et al. 2019): the training set
becomes every labelled node of the training parse trees (`<data_dir>/ptb_trees/train.txt`), one example per
distinct phrase text, none equal to a validation or test sentence; validation and test stay the full sentences.
Pair it with `--train_sampling_strategy group_by_length` (batches of phrases of similar length; see
docs/sst5_phrases.md for what an epoch costs).

Defaults (overridable on the command line): train, evaluate each epoch on validation, keep the best checkpoint by
validation macro-F1 (`load_best_model_at_end`), evaluate the test split ONCE at the end. The output folder holds
the final model + processor (loadable with `AutoModelForSequenceClassification.from_pretrained(dir)` and
`pipeline("text-classification", model=dir)`), `all_results.json` and, with `--results_file`, a self-contained
result record (config, hyper-parameters, metrics, alpha summary, parameter count, wall time, git commit, device).

    python trainers/run_classification.py --model_name_or_path <bert folder or id> --data_dir ../shared/data/sst5 \
        --variant li --output_dir outputs/sst5/li-seed42 --num_train_epochs 4 --learning_rate 5e-5 \
        --per_device_train_batch_size 32 --max_seq_length 64 --warmup_steps 0.1 --weight_decay 0.01

An existing output folder with checkpoints is resumed from its newest complete checkpoint (a save cut short by a
kill is skipped and renamed `incomplete-checkpoint-<step>`; `--resume_from_checkpoint <dir>` picks one); the same
command on a finished run does nothing and says so; delete the folder to start over. `--do_train False` evaluates
a trained model (`--model_name_or_path`, else the one saved in `--output_dir`) and never replaces a trained run's
records (its evaluation goes to `evaluation.json`). Bad data fails before training, naming file, split and line;
user errors end as one line and exit status 2. Runs unchanged under `accelerate launch` / `torchrun`; DDP on CPU
(gloo): `accelerate launch --multi_gpu --num_processes 2 trainers/run_classification.py ... --use_cpu True`
(accelerate's own `--cpu` flag selects its single-process launcher).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import random
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
import transformers
from transformers import (
    AutoModel,
    DataCollatorWithPadding,
    HfArgumentParser,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

import msnn_hf
from msnn_hf.callbacks import (
    StreamWeightsCallback,
    format_stream_weights_table,
    mean_stream_weights,
)
from msnn_hf.data import (
    TRAIN_GRANULARITIES,
    VALIDATION_SPLIT_SEED,
    DataValidationError,
    carve_validation_split,
    check_trees_match_sentences,
    classification_files,
    load_classification_splits,
    phrase_training_rows,
    read_sentiment_trees,
    sst_tree_file,
    validate_classification_splits,
)
from msnn_hf.metrics import build_compute_metrics, load_classification_metric
from msnn_hf.metrics.sst_metrics.sst_metrics import classification_scores

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import (  # noqa: E402
    DEFAULT_VARIANT,
    NAMED_LABELS,
    VARIANTS,
    UsageError,
    check_checkpoint_architecture,
    cli,
    finished_message,
    finished_run,
    git_commit,
    holds_trained_record,
    last_checkpoint,
    mark_finished,
    portable_paths,
    resolve_data_dir,
    restore_completed_training,
    resume_checkpoint,
    scores_record,
    steps_before,
    training_complete,
    training_settings,
    write_json_atomic,
)
from trainer_groups import MultiStreamTrainer, gate_openness, is_gate  # noqa: E402,F401

DEBUG_SIGKILL_ENV = "MSNN_DEBUG_SIGKILL_AT_STEP"  # tests: SIGKILL this process at the end of that step


@dataclass
class ModelArguments:
    """Which model to fine-tune and how the multi-stream parts are configured."""

    model_name_or_path: str = field(
        metadata={
            "help": "The semantic backbone (a BERT checkpoint: Hub id or local folder) or a multi-stream checkpoint."
        }
    )
    variant: str | None = field(
        default=None,
        metadata={
            "help": f"Model variant, one of {list(VARIANTS)} (default: 'li' for a backbone; a multi-stream "
            "checkpoint keeps its own, and a different one is an error)."
        },
    )
    streams: str | None = field(
        default=None, metadata={"help": "Comma-separated stream subset overriding the variant's (ablations)."}
    )
    integration_layers: str | None = field(
        default=None, metadata={"help": "'all', 'last' or comma-separated 0-based layer indices."}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "JSON dict of extra MultiStreamBertConfig fields, e.g. '{\"stream_hidden_size\": 64}'."
        },
    )
    processor_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A saved MultiStreamProcessor. If absent one is built from the backbone tokenizer with the "
            "training texts as Morfessor corpus, and cached."
        },
    )
    processor_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where built processors are cached (default: <output_dir>/processor-cache)."},
    )
    processor_kwargs: str | None = field(
        default=None, metadata={"help": "JSON dict of options for MultiStreamProcessor.from_tokenizer."}
    )
    new_params_lr: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the parameters not loaded from the backbone (streams, integration, head); "
            "default: --learning_rate."
        },
    )
    gate_lr: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the integration gates (`integration.<k>.blend`, zero at the start: the model "
            "starts as its backbone), without weight decay (which would pull them shut); default: the rate of the "
            "other new parameters. An Adam step moves a gate by about its learning rate, so at 5e-5 a gate opens at "
            "most ~0.03 in 600 steps."
        },
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Cache folder for Hub downloads."})


@dataclass
class DataArguments:
    """Which data to train and evaluate on."""

    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset id (e.g. SetFit/sst5)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset configuration."})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "A folder of {train,validation,test}.{jsonl,json,csv}; a bare name (e.g. 'sst5') is looked up "
            "under $MSNN_DATA_DIR (default ../shared/data)."
        },
    )
    train_file: str | None = field(default=None, metadata={"help": "Training file (JSON Lines or CSV)."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation file."})
    test_file: str | None = field(default=None, metadata={"help": "Test file."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    text_pair_column: str | None = field(
        default=None, metadata={"help": "Optional second text column (pairs)."}
    )
    label_column: str = field(default="label", metadata={"help": "Column holding the label."})
    class_names: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated label names in id order, or a known set ('sst5'). Default: the dataset's "
            "ClassLabel names or its distinct training labels."
        },
    )
    max_seq_length: int = field(
        default=64, metadata={"help": "Maximum tokens per example (longer is truncated)."}
    )
    train_granularity: str = field(
        default="sentences",
        metadata={
            "help": "'sentences': train on the training split as given. 'phrases' (SST only): train on every "
            "labelled node of the training parse trees (<data_dir>/ptb_trees/train.txt), one example per distinct "
            "phrase, none equal to a validation or test sentence; validation and test stay sentences.",
            "choices": list(TRAIN_GRANULARITIES),
        },
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={
            "help": "Train on a seeded random subset of this many training rows (seed: --data_seed, else --seed; "
            "not the first rows: SST-5's train file is ordered by polarity). With phrases: of the phrase set."
        },
    )
    validation_split_percentage: float | None = field(
        default=None,
        metadata={
            "help": "For data without a validation split: this percentage of the training rows becomes the "
            f"validation split (the same rows on every run: a permutation drawn from seed {VALIDATION_SPLIT_SEED}, "
            "whatever --seed is)."
        },
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the validation set."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Truncate the test set."})
    probe_size: int = field(
        default=32,
        metadata={"help": "Validation examples in the alpha probe batch logged at each evaluation."},
    )
    results_file: str | None = field(
        default=None, metadata={"help": "Also write a self-contained result record (JSON) to this path."}
    )


def training_defaults() -> dict:
    """Defaults for `TrainingArguments` that differ from transformers' (every one can be overridden)."""
    defaults = {
        "do_train": True,
        "do_eval": True,
        "do_predict": True,
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "logging_strategy": "steps",
        "logging_steps": 50,
        "load_best_model_at_end": True,
        "metric_for_best_model": "macro_f1",
        "save_total_limit": 2,
        "per_device_train_batch_size": 32,
        "per_device_eval_batch_size": 64,
        "learning_rate": 5e-5,
        "num_train_epochs": 4.0,
        "warmup_steps": 0.1,
        "weight_decay": 0.01,
        "dataloader_pin_memory": torch.cuda.is_available(),
    }
    try:
        import tensorboard  # noqa: F401

        defaults["report_to"] = ["tensorboard"]
    except ImportError:
        pass
    return defaults


def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    if argv is None and len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(sys.argv[1]))
    parser.set_defaults(**training_defaults())
    try:
        return parser.parse_args_into_dataclasses(args=argv)
    except ValueError as err:  # HfArgumentParser's "Some specified arguments are not used" and value checks
        raise UsageError(str(err)) from err


# --------------------------------------------------------------------------------------------------- model setup
def parse_layers(value: str | None):
    if value is None:
        return None
    if value in ("all", "last"):
        return value
    return [int(v) for v in value.split(",") if v.strip()]


def config_overrides_for(model_args: ModelArguments) -> dict:
    """MultiStreamBertConfig overrides of the chosen variant + `--streams`, `--integration_layers`, JSON extras."""
    variant = model_args.variant or DEFAULT_VARIANT
    if variant not in VARIANTS:
        raise UsageError(f"Unknown --variant {variant!r}; valid: {list(VARIANTS)}")
    overrides = json.loads(json.dumps(VARIANTS[variant]))
    if model_args.streams:
        overrides["streams"] = [s.strip() for s in model_args.streams.split(",") if s.strip()]
    layers = parse_layers(model_args.integration_layers)
    if layers is not None:
        overrides["integration_layers"] = layers
    if model_args.config_overrides:
        overrides.update(json.loads(model_args.config_overrides))
    return overrides


def processor_cache_key(backbone: str, texts: list[str], kwargs: dict) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    source = os.path.abspath(backbone) if os.path.isdir(backbone) else backbone
    payload = {
        "backbone": source,
        "corpus": digest.hexdigest(),
        "kwargs": kwargs,
        "msnn_hf": msnn_hf.__version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def load_or_build_processor(model_args: ModelArguments, training_args: TrainingArguments, corpus: list[str]):
    """The processor: `--processor_name_or_path`, a saved one next to a multi-stream checkpoint, or one built from the
    backbone tokenizer (corpus = training texts) and cached under a key of (backbone, corpus, options)."""
    from msnn_hf import MultiStreamProcessor

    if model_args.processor_name_or_path:
        return MultiStreamProcessor.from_pretrained(model_args.processor_name_or_path)
    path = model_args.model_name_or_path
    if os.path.isfile(os.path.join(path, "processor_config.json")):
        return MultiStreamProcessor.from_pretrained(path)
    kwargs = json.loads(model_args.processor_kwargs) if model_args.processor_kwargs else {}
    cache_root = Path(
        model_args.processor_cache_dir or os.path.join(training_args.output_dir, "processor-cache")
    )
    cached = cache_root / processor_cache_key(path, corpus, kwargs)
    with training_args.main_process_first(desc="building the multi-stream processor"):
        if (cached / "DONE").is_file():
            logger.info("Loading cached processor from %s", cached)
            return MultiStreamProcessor.from_pretrained(str(cached))
        logger.info(
            "Building the processor from %s (%d corpus texts); cached at %s", path, len(corpus), cached
        )
        processor = MultiStreamProcessor.from_tokenizer(path, corpus=corpus, **kwargs)
        if training_args.process_index == 0:
            staging = cached.with_name(cached.name + f".tmp{os.getpid()}")
            processor.save_pretrained(str(staging))
            (staging / "DONE").write_text("ok\n")
            try:
                staging.rename(cached)
            except OSError:  # another run finished first: keep theirs
                pass
    return processor


def training_subset(dataset, size: int, seed: int):
    """`size` rows of `dataset` drawn at random with `seed` (kept in file order), or all of them if it has no more.
    Not the first rows: a file sorted by label (SST-5's train is ordered by polarity) would lose classes."""
    if size >= len(dataset):
        return dataset
    indices = sorted(random.Random(seed).sample(range(len(dataset)), size))
    logger.info(
        "--max_train_samples %d: a random subset of the %d training rows (seed %d)", size, len(dataset), seed
    )
    return dataset.select(indices)


def is_multistream_checkpoint(path: str | os.PathLike) -> bool:
    """Whether `path` is a local folder holding a saved multi-stream BERT (its `config.json` says so)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == "multistream_bert"


def load_model(model_args: ModelArguments, processor, labels, overrides: dict):
    """A fresh multi-stream model around the backbone, or a saved multi-stream checkpoint."""
    from msnn_hf import MultiStreamBertForSequenceClassification

    label_kwargs = {"num_labels": labels.num_labels, "id2label": labels.id2label, "label2id": labels.label2id}
    if is_multistream_checkpoint(model_args.model_name_or_path):
        model = MultiStreamBertForSequenceClassification.from_pretrained(
            model_args.model_name_or_path, **label_kwargs
        )
        check_checkpoint_settings(model_args, model.config)
        return model
    return MultiStreamBertForSequenceClassification.from_backbone(
        model_args.model_name_or_path, processor=processor, **overrides, **label_kwargs
    )


def variant_of(config) -> str | None:
    """The `VARIANTS` name whose integration settings `config` has (any stream subset), or None."""
    for name, values in VARIANTS.items():
        fields = {k: v for k, v in values.items() if k != "streams"}
        if all(getattr(config, k) == v for k, v in fields.items()) and (
            config.integration_type != "none" or list(config.streams) == values["streams"]
        ):
            return name
    return None


def check_checkpoint_settings(model_args: ModelArguments, config) -> None:
    """A multi-stream checkpoint brings its own architecture: `--variant`, `--streams`, `--integration_layers` or
    `--config_overrides` that disagree with it are an error (they would be silently ignored)."""
    explicit = (
        model_args.variant
        or model_args.streams
        or model_args.integration_layers
        or model_args.config_overrides
    )
    if not explicit:
        return
    wanted = config_overrides_for(model_args)
    if model_args.variant is None:  # only what was given on the command line
        wanted = {k: v for k, v in wanted.items() if k not in VARIANTS[DEFAULT_VARIANT] or k == "streams"}
        if not model_args.streams:
            wanted.pop("streams", None)
    check_checkpoint_architecture(
        config,
        wanted,
        model_args.model_name_or_path,
        "Drop those options to continue training it, or start from a backbone to train another variant.",
    )


def backbone_parameter_names(model, backbone: str) -> set[str]:
    """Names of `model`'s parameters loaded from the backbone: the semantic stream, and the pooler when the
    backbone checkpoint has pooler weights that `from_backbone` copied (same width). Everything else (streams,
    integration, head, a pooler initialised from scratch) is new and gets `--new_params_lr`."""
    config = model.config
    if (
        "semantic" not in config.streams
    ):  # phonetic-only / morphological-only: nothing comes from the backbone
        return set()
    _, info = AutoModel.from_pretrained(backbone, output_loading_info=True)
    has_pooler = not any(k.startswith("pooler.") for k in info["missing_keys"])
    pooler_loaded = has_pooler and config.output_hidden_size == config.hidden_size
    return {
        name
        for name, _ in model.named_parameters()
        if "streams.semantic." in name or (pooler_loaded and ".pooler." in f".{name}")
    }


class SigkillAtStepCallback(TrainerCallback):
    """Test hook: kill this process with SIGKILL at the end of a given global step (simulates a crash)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------------------------------- bookkeeping
def device_description(training_args: TrainingArguments) -> str:
    device = training_args.device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs, {torch.get_num_threads()} threads)"
    return f"{device.type}: {name} x{training_args.world_size}"


# --------------------------------------------------------------------------------------------------------- main
RECORD_FILE = "result_record.json"  # this run's result record, next to its checkpoint
RUN_DATA_FIELDS = (
    "dataset_name", "dataset_config_name", "data_dir", "train_file", "validation_file", "text_column",
    "label_column", "class_names", "max_seq_length", "max_train_samples", "validation_split_percentage",
    "train_granularity",
)  # fmt: skip


def run_settings(
    model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments
) -> dict:
    """What a run's result depends on (model variant and budget); stored in the output folder so that resuming it
    with other settings fails instead of silently mixing two budgets."""
    return {
        "model": {
            k: v for k, v in asdict(model_args).items() if k not in ("cache_dir", "processor_cache_dir")
        },
        "data": {k: getattr(data_args, k) for k in RUN_DATA_FIELDS if hasattr(data_args, k)},
        # the order the training examples are drawn in (group_by_length batches phrases of similar length)
        "training": {
            **training_settings(training_args),
            "train_sampling_strategy": training_args.train_sampling_strategy,
        },
    }


def check_phrase_options(data_args: DataArguments) -> None:
    """`--train_granularity phrases` reads the SST parse trees of a local SST folder; refuse what cannot have
    them, before anything is loaded.

    Raises:
        UsageError: a Hub dataset, a pair column or a carved validation split (whose sentences' phrases would stay
            in training) with phrases.
    """
    if data_args.train_granularity != "phrases":
        return
    if data_args.dataset_name:
        raise UsageError(
            f"--train_granularity phrases trains on the labelled phrases of the SST parse trees, read from a local "
            f"SST folder (--data_dir sst5, holding ptb_trees/train.txt); the Hub dataset {data_args.dataset_name} "
            "has no trees"
        )
    if data_args.text_pair_column:
        raise UsageError("--train_granularity phrases is for single texts (SST): drop --text_pair_column")
    if data_args.validation_split_percentage is not None:
        raise UsageError(
            "--train_granularity phrases keeps SST's own validation split: a split carved from the training "
            "sentences would leave their phrases in training (drop --validation_split_percentage)"
        )


def phrase_training_split(raw, data_args: DataArguments, data_dir: str | None, labels) -> tuple:
    """The phrase-level training split (a `datasets.Dataset` with the text and label columns) and its counts.

    The trees are `<data_dir>/ptb_trees/train.txt`; they must be the training split's sentences, row for row (text
    and label). Left out: every phrase equal to a validation or test sentence (`phrase_training_rows`), compared with
    the splits as loaded, before `--max_eval_samples` / `--max_predict_samples`.

    Raises:
        UsageError: no trees (the data is not SST).
        DataValidationError: a malformed tree, trees that are not the training split's, a label outside the label
            set.
    """
    path = sst_tree_file(data_dir, "train") if data_dir else None
    if path is None or not path.is_file():
        where = f"{path} does not exist" if path else "no --data_dir was given"
        raise UsageError(
            f"--train_granularity phrases needs the SST parse trees of the training split ({where}); only an SST "
            "folder such as $MSNN_DATA_DIR/sst5 has them. Train on sentences (--train_granularity sentences)."
        )
    trees = read_sentiment_trees(path)
    text_column, label_column = data_args.text_column, data_args.label_column
    for number, tree in enumerate(trees, start=1):
        for text, label in tree.labelled_phrases():
            if label not in labels.value_to_id:
                raise DataValidationError(
                    f"tree file {path}, tree {number}: the phrase {text!r} has label {label}, outside the label "
                    f"set {labels.names}"
                )
    check_trees_match_sentences(
        trees,
        raw["train"][text_column],
        [labels.value_to_id[v] for v in raw["train"][label_column]],
        path,
    )
    held_out = [text for split in ("validation", "test") if split in raw for text in raw[split][text_column]]
    rows, stats = phrase_training_rows(trees, held_out, text_column=text_column, label_column=label_column)
    stats = {"trees_file": str(path), "sentences": len(raw["train"]), **stats}
    return datasets.Dataset.from_list(rows), stats


def training_data_line(data_args: DataArguments, sizes: dict, phrase_stats: dict | None) -> str:
    """One line for the summary: what the model was trained on (`sizes`: examples per split)."""
    if phrase_stats is None:
        return f"training data: {data_args.train_granularity} ({sizes.get('train', 0)} examples)"
    return (
        f"training data: phrases ({sizes.get('train', 0)} examples: the distinct labelled phrases of "
        f"{phrase_stats['trees']} training trees, {phrase_stats['held_out_excluded']} equal to a validation/test "
        "sentence left out); validation and test: sentences"
    )


def hub_repo_id(training_args: TrainingArguments) -> str:
    """`--hub_model_id`, else the output folder's name (as `Trainer.push_to_hub` would use)."""
    return training_args.hub_model_id or os.path.basename(os.path.abspath(training_args.output_dir))


# where an evaluation-only run writes when its output folder holds a trained run's records
EVALUATION_FILE = "evaluation.json"


def prepare_evaluation_only(
    model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments
) -> None:
    """`--do_train False` evaluates a trained model and never replaces a trained run's record.

    The model is `--model_name_or_path` when it is a multi-stream checkpoint, else the trained model saved in
    `--output_dir` (a backbone alone would be evaluated with an untrained classification head).

    Raises:
        UsageError: no trained model to evaluate, or `--results_file` holds a trained run's record.
    """
    if data_args.results_file and holds_trained_record(data_args.results_file):
        raise UsageError(
            f"--results_file {data_args.results_file} holds the record of a trained run; an evaluation-only run "
            "(--do_train False) does not replace it: pass another --results_file"
        )
    if is_multistream_checkpoint(model_args.model_name_or_path):
        return
    if is_multistream_checkpoint(training_args.output_dir):
        logger.warning(
            "--do_train False: evaluating the trained model saved in %s (--model_name_or_path %s is not a "
            "multi-stream checkpoint)",
            training_args.output_dir,
            model_args.model_name_or_path,
        )
        model_args.model_name_or_path = training_args.output_dir
        return
    raise UsageError(
        f"--do_train False evaluates a trained model, but --model_name_or_path {model_args.model_name_or_path} is "
        f"not a multi-stream checkpoint and --output_dir {training_args.output_dir} holds none (a backbone would "
        "be evaluated with an untrained classification head): pass a trained run's folder as --model_name_or_path"
    )


def main(argv: list[str] | None = None) -> dict:
    started = time.time()
    commit = git_commit()  # the code that runs, before the checkout can move on
    model_args, data_args, training_args = parse_args(argv)

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    logger.warning(
        "Process rank: %s, device: %s, n_gpu: %s, distributed: %s",
        training_args.local_process_index,
        training_args.device,
        training_args.n_gpu,
        training_args.parallel_mode.value == "distributed",
    )

    # ---- a finished run stays finished: the same command again trains nothing and rewrites nothing
    finished = finished_run(training_args, run_settings(model_args, data_args, training_args))
    if finished is not None:
        logger.warning(finished_message(training_args.output_dir, finished))
        record = os.path.join(training_args.output_dir, RECORD_FILE)
        if data_args.results_file and not os.path.exists(data_args.results_file) and os.path.isfile(record):
            # a deleted copy of the record comes back, unchanged
            shutil.copyfile(record, data_args.results_file)
            logger.warning("Restored --results_file %s from %s", data_args.results_file, record)
        saved = os.path.join(training_args.output_dir, "all_results.json")
        return json.loads(Path(saved).read_text()) if os.path.isfile(saved) else {}
    if not training_args.do_train:
        prepare_evaluation_only(model_args, data_args, training_args)
    if training_args.push_to_hub and training_args.do_train:
        # a push that cannot happen fails before training, not after it
        from msnn_hf.publishing import check_push_target

        check_push_target(hub_repo_id(training_args))

    # ---- resume: an explicit checkpoint, else the newest complete one in output_dir
    checkpoint = last_checkpoint(training_args)
    if checkpoint is not None:
        logger.info("Resuming training from %s (delete the output folder to start over).", checkpoint)

    # ---- data: load and validate every row before anything expensive happens
    check_phrase_options(data_args)
    data_dir = resolve_data_dir(data_args.data_dir)
    files = (
        {}
        if data_args.dataset_name
        else classification_files(
            data_dir, data_args.train_file, data_args.validation_file, data_args.test_file
        )
    )
    raw = load_classification_splits(
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        data_dir=data_dir,
        train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        test_file=data_args.test_file,
        cache_dir=model_args.cache_dir,
    )
    label_names = data_args.class_names
    label_names = NAMED_LABELS.get(label_names, label_names.split(",") if label_names else None)
    test_labelled = (  # Hub test splits are often unlabelled (label -1): predict only
        "test" in raw
        and data_args.label_column in raw["test"].column_names
        and any(v not in (None, -1) for v in raw["test"][data_args.label_column])
    )
    labels = validate_classification_splits(
        raw,
        data_args.text_column,
        data_args.label_column,
        label_names=label_names,
        text_pair_column=data_args.text_pair_column,
        require_labels=("train", "validation") + (("test",) if test_labelled else ()),
        files=files,
    )
    if data_args.validation_split_percentage is not None:
        raw = carve_validation_split(raw, data_args.validation_split_percentage)
    phrase_stats = sentences = None
    if data_args.train_granularity == "phrases" and training_args.do_train and "train" in raw:
        sentences = list(raw["train"][data_args.text_column])  # the processor's corpus stays the sentences
        raw["train"], phrase_stats = phrase_training_split(raw, data_args, data_dir, labels)
        logger.info("Phrase-level training: %s", phrase_stats)
    for split, needed in (
        ("train", training_args.do_train),
        ("validation", training_args.do_eval),
        ("test", training_args.do_predict),
    ):
        if needed and split not in raw:
            raise UsageError(
                f"--do_{'eval' if split == 'validation' else 'predict' if split == 'test' else split} "
                f"needs a {split} split; found {list(raw)}"
                + (
                    " (--validation_split_percentage P carves one from train)"
                    if split == "validation" and "train" in raw
                    else ""
                )
            )
    if data_args.max_train_samples and "train" in raw:
        subset_seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
        raw["train"] = training_subset(raw["train"], data_args.max_train_samples, subset_seed)
    if data_args.max_eval_samples and "validation" in raw:
        raw["validation"] = raw["validation"].select(
            range(min(data_args.max_eval_samples, len(raw["validation"])))
        )
    if data_args.max_predict_samples and "test" in raw:
        raw["test"] = raw["test"].select(range(min(data_args.max_predict_samples, len(raw["test"]))))
    logger.info("Data: %s; labels: %s", {k: len(v) for k, v in raw.items()}, labels.names)

    # ---- processor and model
    set_seed(training_args.seed)
    if sentences is not None:  # phrases would repeat each sentence's words once per node they are in
        corpus = sentences
    else:
        corpus = list(raw["train"][data_args.text_column]) if "train" in raw else []
    processor = load_or_build_processor(model_args, training_args, corpus)
    tokenizer = getattr(processor, "tokenizer", processor)
    overrides = config_overrides_for(model_args)
    model = load_model(model_args, processor, labels, overrides)
    num_parameters = sum(p.numel() for p in model.parameters())
    backbone_names = (
        backbone_parameter_names(model, model_args.model_name_or_path)
        if model_args.new_params_lr is not None
        else None
    )

    # ---- tokenize: backbone tokens only; the model derives its phonetic/morph streams from input_ids (stream
    # tables) -- except with word-aligned streams (a piece carries its whole word's units), which only the processor
    # can compute from the text: then the rows carry `phonetic_ids` / `morph_ids` and a collator pads them
    word_aligned = getattr(processor, "alignment", "piece") == "word" and getattr(
        model.config, "non_semantic_streams", None
    )

    def preprocess(batch):
        texts = (batch[data_args.text_column],)
        if data_args.text_pair_column:
            texts += (batch[data_args.text_pair_column],)
        encode = processor if word_aligned else tokenizer
        encoded = encode(*texts, truncation=True, max_length=data_args.max_seq_length)
        if data_args.label_column in batch:
            encoded["labels"] = [
                labels.value_to_id.get(v, -1) if v is not None else -1 for v in batch[data_args.label_column]
            ]
        return encoded

    with training_args.main_process_first(desc="tokenizing"):
        tokenized = raw.map(
            preprocess,
            batched=True,
            remove_columns=raw["train" if "train" in raw else next(iter(raw))].column_names,
            desc="Tokenizing",
        )
    train_dataset = tokenized.get("train")
    eval_dataset = tokenized.get("validation")
    predict_dataset = tokenized.get("test")
    multiple = 8 if training_args.fp16 or training_args.bf16 else None
    if word_aligned:
        from msnn_hf.collators import StreamPaddingCollator

        collator = StreamPaddingCollator(processor, pad_to_multiple_of=multiple)
    else:
        collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple)

    metric = load_classification_metric()
    # Publishing is msnn_hf's own (`push_checkpoint`, after the final evaluation): the Trainer's push would upload
    # every checkpoint, the pickled training_args.bin included, and before the card's numbers exist.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    trainer = MultiStreamTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset if training_args.do_train else None,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        processing_class=processor,
        data_collator=collator,
        compute_metrics=build_compute_metrics(
            labels.num_labels, labels.id2label, metric=metric, confusion=False
        ),
        new_params_lr=model_args.new_params_lr,
        backbone_names=backbone_names,
        gate_lr=model_args.gate_lr,
    )
    if eval_dataset is not None and data_args.probe_size > 0:
        probe = collator([eval_dataset[i] for i in range(min(data_args.probe_size, len(eval_dataset)))])
        StreamWeightsCallback.attach(trainer, probe)
    if os.environ.get(DEBUG_SIGKILL_ENV):
        trainer.add_callback(SigkillAtStepCallback(int(os.environ[DEBUG_SIGKILL_ENV])))

    results: dict = {}
    if training_args.do_train:
        checkpoint = resume_checkpoint(
            training_args,
            run_settings(model_args, data_args, training_args),
            trainer.is_world_process_zero(),
        )
        if training_complete(checkpoint):  # killed after its last checkpoint: evaluate, never train further
            restore_completed_training(trainer, checkpoint)
            trainer.save_model()
            trainer.save_state()
        else:
            train_result = trainer.train(resume_from_checkpoint=checkpoint)
            trainer.save_model()  # model + processor (processing_class) in output_dir
            metrics = dict(train_result.metrics)
            metrics["train_samples"] = len(train_dataset)
            trainer.log_metrics("train", metrics)
            trainer.save_metrics("train", metrics)
            trainer.save_state()
            results["train"] = metrics

    def evaluate_split(dataset, prefix: str) -> dict:
        output = trainer.predict(dataset, metric_key_prefix=prefix)
        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        predictions = np.argmax(logits, axis=-1)
        scores = classification_scores(predictions, output.label_ids, num_labels=labels.num_labels)
        record = scores_record(scores, labels.id2label, output.metrics.get(f"{prefix}_loss"))
        flat = dict(output.metrics)  # already prefixed: eval_loss, eval_accuracy, eval_f1_<label>, ...
        trainer.log_metrics(prefix, {k: v for k, v in flat.items() if np.isscalar(v)})
        return record

    if training_args.do_eval:  # the selected (best-on-validation) model
        results["validation"] = evaluate_split(eval_dataset, "eval")
    if training_args.do_predict:  # the test split, evaluated once
        if test_labelled:
            results["test"] = evaluate_split(predict_dataset, "test")
        else:
            output = trainer.predict(
                predict_dataset.remove_columns([c for c in ("labels",) if c in predict_dataset.column_names])
            )
            logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
            results["test_predictions"] = [labels.id2label[int(i)] for i in np.argmax(logits, axis=-1)]

    stream_weights = None
    if training_args.do_eval and trainer.is_world_process_zero():
        loader = torch.utils.data.DataLoader(
            eval_dataset, batch_size=training_args.per_device_eval_batch_size, collate_fn=collator
        )
        stream_weights = mean_stream_weights(trainer.model, loader)
    results["stream_weights"] = stream_weights

    if trainer.is_world_process_zero():
        train_metrics = results.get("train", {})
        record = {
            "variant": model_args.variant or variant_of(model.config),
            "streams": list(model.config.streams),
            "seed": training_args.seed,
            "model_name_or_path": model_args.model_name_or_path,
            "config_overrides": overrides,
            "model_config": model.config.to_dict(),
            "gate_openness": gate_openness(model),
            "labels": labels.names,
            "hyperparameters": {
                "learning_rate": training_args.learning_rate,
                "new_params_lr": model_args.new_params_lr,
                **({"gate_lr": model_args.gate_lr} if model_args.gate_lr is not None else {}),
                "num_train_epochs": training_args.num_train_epochs,
                "max_steps": training_args.max_steps,
                "per_device_train_batch_size": training_args.per_device_train_batch_size,
                "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
                "world_size": training_args.world_size,
                "max_seq_length": data_args.max_seq_length,
                "warmup_steps": training_args.warmup_steps,
                "weight_decay": training_args.weight_decay,
                "lr_scheduler_type": str(training_args.lr_scheduler_type.value),
                "optim": str(training_args.optim.value),
                "metric_for_best_model": training_args.metric_for_best_model,
                "max_train_samples": data_args.max_train_samples,
                # the seed of that random subset (`training_subset`)
                "max_train_samples_seed": (
                    (training_args.data_seed if training_args.data_seed is not None else training_args.seed)
                    if data_args.max_train_samples
                    else None
                ),
            },
            "data": {
                "source": data_args.dataset_name
                or resolve_data_dir(data_args.data_dir)
                or data_args.train_file,
                "sizes": {k: len(v) for k, v in raw.items()},
                "train_granularity": data_args.train_granularity,
                "train_sampling_strategy": training_args.train_sampling_strategy,
                "phrases": phrase_stats,
            },
            "validation": results.get("validation"),
            "test": results.get("test"),
            "stream_weights": stream_weights,
            "num_parameters": num_parameters,
            "train_runtime_s": train_metrics.get("train_runtime"),
            "train_steps": trainer.state.global_step,
            # this process's training time over the steps it did (a resumed run did the others earlier)
            "step_time_s": (
                train_metrics["train_runtime"]
                / max(
                    trainer.state.global_step - steps_before(checkpoint),
                    1,
                )
            )
            if train_metrics
            else None,
            "resumed_from": checkpoint,
            "best_model_checkpoint": trainer.state.best_model_checkpoint,
            "eval_history": [
                h for h in trainer.state.log_history if "eval_macro_f1" in h or "eval_loss" in h
            ],
            "wall_time_s": time.time() - started,
            "git_commit": commit,
            "device": device_description(training_args),
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "msnn_hf": msnn_hf.__version__,
            },
            "command": [sys.executable, *(sys.argv if argv is None else [__file__, *argv])],
            "output_dir": os.path.abspath(training_args.output_dir),
            "evaluation_only": not training_args.do_train,
        }
        out = training_args.output_dir
        if not training_args.do_train and any(
            holds_trained_record(os.path.join(out, name)) for name in ("all_results.json", RECORD_FILE)
        ):  # the folder of a trained run: its records stay, this evaluation goes beside them
            write_json_atomic(
                os.path.join(out, EVALUATION_FILE), {**results, "record": portable_paths(record)}
            )
            logger.warning(
                "%s holds a trained run's records, which stay as they are; this evaluation is in %s",
                out,
                os.path.join(out, EVALUATION_FILE),
            )
        else:
            write_json_atomic(os.path.join(out, "all_results.json"), {**results, "record": record})
            # the record travels with the checkpoint too: `--push_to_hub` fills the card from this run's numbers
            write_json_atomic(os.path.join(out, RECORD_FILE), portable_paths(record))
        if data_args.results_file:
            write_json_atomic(data_args.results_file, portable_paths(record))
        if training_args.do_train:
            outputs = [
                "all_results.json",
                RECORD_FILE,
                *([data_args.results_file] if data_args.results_file else []),
            ]
            mark_finished(out, trainer.state.global_step, outputs)
        print_summary(
            results,
            stream_weights,
            training_data_line(data_args, {k: len(v) for k, v in raw.items()}, phrase_stats)
            if training_args.do_train
            else None,
        )

    if push_to_hub and training_args.do_train and trainer.is_world_process_zero():
        # msnn_hf's own publishing path: safetensors only (no training_args.bin pickle), the full auto_map
        # (AutoModel included) and our model card filled from the result record.
        from msnn_hf.publishing import CheckpointError, PublishError, push_checkpoint
        from msnn_hf.records import ResultsError

        # this run's record, never a committed result of another run that a card spec would name
        record_path = data_args.results_file or os.path.join(training_args.output_dir, RECORD_FILE)
        try:
            push_checkpoint(
                training_args.output_dir,
                hub_repo_id(training_args),
                results=record_path,
                private=bool(training_args.hub_private_repo),
                token=training_args.hub_token,
            )
        except (CheckpointError, PublishError, ResultsError) as err:
            raise UsageError(
                f"{err} -- the trained model and its record are saved; publish them with: msnn-push "
                f"{training_args.output_dir} --repo_id {hub_repo_id(training_args)} --results {record_path}"
            ) from err
    return results


def print_summary(results: dict, stream_weights: dict | None, training_data: str | None = None) -> None:
    lines = ["", "=" * 72, *([training_data] if training_data else [])]
    for split in ("validation", "test"):
        if results.get(split):
            r = results[split]
            lines.append(
                f"{split:<10}  accuracy {r['accuracy']:.4f}   macro-F1 {r['macro_f1']:.4f}   (n={r['num_examples']})"
            )
    lines.append("mean integration weight per layer and stream (validation, real tokens):")
    lines.append(format_stream_weights_table(stream_weights))
    lines.append("=" * 72)
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    raise SystemExit(cli(main, "run_classification.py"))
