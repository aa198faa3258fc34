"""Image captioning (and VQA) with the multi-stream vision encoder-decoder (HfArgumentParser + Seq2SeqTrainer).

Builds `MultiStreamVisionEncoderDecoder` from an image encoder (`--encoder_name_or_path`, default the converted
EfficientNet-Lite0: `efficientnet-lite0`) and a plain GPT-2 (`--decoder_name_or_path`, through `from_backbone`, so
the model starts as that GPT-2), or a GPT-2 decoder from scratch (`--n_embd/--n_layer/--n_head`), or continues an
MS-VED checkpoint (`--model_name_or_path`). Trains on Flickr8k (one caption per row; `--streaming` reads the
training split as a `datasets.IterableDataset`, line by line) and evaluates with `predict_with_generate` on the
validation / test images, scored against all five human captions (BLEU-1..4, ROUGE-L, CIDEr-D, METEOR with Java:
`msnn_hf.metrics.caption_metrics_path`). `--dataset daquar` trains on DAQUAR instead: the question is the prompt,
the answer the target; the answers generated after each question are scored by exact match and set-F1
(`msnn_hf.metrics.vqa_metrics_path`).

`--freeze_encoder` keeps the encoder fixed; `--cache_encoder_features` (needs it) then computes each image's patch
tokens once and feeds the decoder from that cache (what makes CPU training affordable: the encoder is most of a
step's cost). Output folders are resumable like the other trainers (`train_common`): a run killed mid-way continues
from its last checkpoint, the same finished command again does nothing.

Example (CPU, frozen Lite0, a small GPT-2 from scratch over the MiniLM WordPiece vocabulary)::

    python trainers/run_captioning.py --tokenizer_name <minilm folder> --n_embd 256 --n_layer 4 --n_head 4 \
        --freeze_encoder --cache_encoder_features --integration_type dm --alpha_granularity token \
        --output_dir outputs/captioning/dm-token --max_steps 2000 --per_device_train_batch_size 32 \
        --learning_rate 5e-4 --do_train --do_eval --predict_with_generate --generation_num_beams 3

Writes ``<output_dir>/results.json`` (arguments, config, parameter count, wall time, git commit, metrics and, per
evaluated split, the generated captions).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    HfArgumentParser,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    set_seed,
)
from transformers.modeling_outputs import BaseModelOutput

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lm_utils  # noqa: E402
from train_common import UsageError, cli, git_commit, steps_before  # noqa: E402

from msnn_hf.configuration_multistream_gpt2 import MultiStreamGPT2Config  # noqa: E402
from msnn_hf.configuration_multistream_vision import MultiStreamVisionEncoderDecoderConfig  # noqa: E402
from msnn_hf.modeling_multistream_vision import (  # noqa: E402
    MultiStreamVisionEncoderDecoder,
    MultiStreamVisionGPT2LMHeadModel,
)
from msnn_hf.processing_multistream_vision import MultiStreamVisionProcessor  # noqa: E402

LITE0 = "efficientnet-lite0"


@dataclass
class ModelArguments:
    architecture: str = field(
        default="msved",
        metadata={
            "help": "msved, or ved: transformers' VisionEncoderDecoderModel baseline (msnn_hf.baselines_vl)"
        },
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "an MS-VED checkpoint to continue"}
    )
    encoder_name_or_path: str = field(
        default=LITE0,
        metadata={"help": "image encoder (Hub id / folder); 'efficientnet-lite0': the converted Lite0"},
    )
    decoder_name_or_path: str | None = field(
        default=None, metadata={"help": "a plain GPT-2 (Hub id / folder); none: a GPT-2 from scratch"}
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "tokenizer (default: the decoder's)"})
    processor_name: str | None = field(
        default=None, metadata={"help": "a MultiStreamProcessor folder (needed for phonetic / morphological)"}
    )
    streams: str = field(
        default="semantic,vision", metadata={"help": "the decoder's streams, comma-separated"}
    )
    integration_type: str = field(default="dm", metadata={"help": "li, dm or concat"})
    alpha_granularity: str = field(default="token")
    integration_layers: str = field(default="all", metadata={"help": "'all', 'last' or e.g. '1,3'"})
    integration_init: str = field(
        default="backbone",
        metadata={"help": "backbone (gates at zero: starts as the GPT-2) or mix (no gate)"},
    )
    stream_hidden_size: int = 128
    stream_num_heads: int = 4
    stream_intermediate_size: int = 256
    stream_dropout: float = 0.1
    n_embd: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_positions: int = 64
    freeze_encoder: bool = field(
        default=False, metadata={"help": "no gradient to the encoder (and eval mode)"}
    )
    cache_encoder_features: bool = field(
        default=False, metadata={"help": "compute each image's patch tokens once (needs --freeze_encoder)"}
    )
    blind: bool = field(
        default=False,
        metadata={
            "help": "feed all-zero patch tokens (no image information; the same parameters): the blind baseline, "
            "which learns the captions' language prior / answers from the question alone (needs "
            "--cache_encoder_features)"
        },
    )
    image_features_file: str | None = field(
        default=None,
        metadata={
            "help": "a safetensors file of patch tokens (msnn_hf.features_vl.save_image_features, keyed by image "
            "path) that fills the feature cache; images it lacks are encoded (needs --cache_encoder_features)"
        },
    )


@dataclass
class DataArguments:
    dataset: str = field(
        default="flickr8k", metadata={"help": "flickr8k (captions) or daquar (questions -> answers)"}
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "the dataset folder (default: $MSNN_DATA_DIR/<captions-flickr8k|vqa-daquar>)"},
    )
    streaming: bool = field(default=False, metadata={"help": "read the training split as an IterableDataset"})
    max_train_images: int | None = field(
        default=None,
        metadata={"help": "the first N training images (Flickr8k, 5 captions each) or QA pairs (DAQUAR)"},
    )
    max_eval_images: int | None = field(
        default=None,
        metadata={"help": "evaluate the first N images (Flickr8k) or QA pairs (DAQUAR) per split"},
    )
    eval_splits: str = "validation"
    max_target_length: int = 40
    results_file: str | None = None


def integration_layers(value: str) -> str | list[int]:
    return value if value in ("all", "last") else [int(v) for v in value.split(",")]


def decoder_overrides(margs: ModelArguments) -> dict[str, Any]:
    return dict(
        streams=[s.strip() for s in margs.streams.split(",") if s.strip()],
        integration_type=margs.integration_type, alpha_granularity=margs.alpha_granularity,
        integration_layers=integration_layers(margs.integration_layers), integration_init=margs.integration_init,
        stream_hidden_size=margs.stream_hidden_size, stream_num_heads=margs.stream_num_heads,
        stream_intermediate_size=margs.stream_intermediate_size, stream_dropout=margs.stream_dropout,
    )  # fmt: skip


def encoder_path(margs: ModelArguments) -> str:
    if margs.encoder_name_or_path == LITE0:
        from msnn_hf.pretrained import efficientnet_lite0_path

        return efficientnet_lite0_path()
    return margs.encoder_name_or_path


def build_processor(margs: ModelArguments) -> MultiStreamVisionProcessor:
    if margs.model_name_or_path:
        return MultiStreamVisionProcessor.from_pretrained(margs.model_name_or_path)
    image_processor = AutoImageProcessor.from_pretrained(encoder_path(margs))
    if margs.processor_name:
        from msnn_hf.processing_multistream import MultiStreamProcessor

        text = MultiStreamProcessor.from_pretrained(margs.processor_name)
    elif margs.tokenizer_name or margs.decoder_name_or_path:
        text = AutoTokenizer.from_pretrained(margs.tokenizer_name or margs.decoder_name_or_path)
    else:
        raise UsageError(
            "Give --tokenizer_name, --processor_name, --decoder_name_or_path or --model_name_or_path"
        )
    return MultiStreamVisionProcessor(image_processor, text)


def build_model(
    margs: ModelArguments, processor: MultiStreamVisionProcessor
) -> MultiStreamVisionEncoderDecoder:
    if margs.model_name_or_path:
        if margs.architecture == "ved":
            from transformers import VisionEncoderDecoderModel

            return VisionEncoderDecoderModel.from_pretrained(margs.model_name_or_path)
        return MultiStreamVisionEncoderDecoder.from_pretrained(margs.model_name_or_path)
    if margs.architecture == "ved":
        return build_baseline(margs, processor)
    text = processor.text_processor
    slot_processor = text if hasattr(text, "stream_tables") else None
    tokens = dict(
        bos_token_id=processor.bos_token_id,
        eos_token_id=processor.eos_token_id,
        pad_token_id=processor.pad_token_id,
    )
    overrides = decoder_overrides(margs)
    if margs.decoder_name_or_path:
        return MultiStreamVisionEncoderDecoder.from_encoder_decoder_pretrained(
            encoder_path(margs), margs.decoder_name_or_path, processor=slot_processor,
            **{f"decoder_{k}": v for k, v in overrides.items()}, **tokens,
        )  # fmt: skip
    from transformers import AutoModel

    if margs.integration_init == "backbone":
        print(
            "note: the decoder is trained from scratch, so --integration_init backbone (the default: gates closed, "
            "the model starts as its decoder) preserves nothing; on Flickr8k the closed gates cost most of MS-VED's "
            "gap to cross-attention and --integration_init mix trained better (docs/results_vl.md)",
            flush=True,
        )
    if slot_processor is not None:
        overrides.update(MultiStreamGPT2Config.processor_overrides(slot_processor))
    decoder_config = MultiStreamGPT2Config(
        vocab_size=len(processor.tokenizer), n_positions=margs.n_positions, n_embd=margs.n_embd,
        n_layer=margs.n_layer, n_head=margs.n_head, **tokens, **overrides,
    )  # fmt: skip
    decoder = MultiStreamVisionGPT2LMHeadModel(decoder_config)
    if slot_processor is not None and decoder_config.slot_sizes:
        decoder.set_stream_tables(slot_processor.stream_tables)
    encoder = AutoModel.from_pretrained(encoder_path(margs))
    config = MultiStreamVisionEncoderDecoderConfig.from_encoder_decoder_configs(
        encoder.config, decoder.config, **tokens
    )
    return MultiStreamVisionEncoderDecoder(config=config, encoder=encoder, decoder=decoder)


def build_baseline(margs: ModelArguments, processor: MultiStreamVisionProcessor):
    """The `VisionEncoderDecoderModel` baseline: the same encoder, a GPT-2 with cross-attention in every block (from
    `--decoder_name_or_path`, or from scratch with the same `--n_embd/--n_layer/--n_head`)."""
    from transformers import GPT2Config

    from msnn_hf.baselines_vl import build_captioning_baseline

    decoder = margs.decoder_name_or_path or GPT2Config(
        vocab_size=len(processor.tokenizer), n_positions=margs.n_positions, n_embd=margs.n_embd,
        n_layer=margs.n_layer, n_head=margs.n_head, bos_token_id=processor.bos_token_id,
        eos_token_id=processor.eos_token_id, pad_token_id=processor.pad_token_id,
    )  # fmt: skip
    return build_captioning_baseline(
        encoder_path(margs), decoder, processor.bos_token_id, processor.eos_token_id, processor.pad_token_id
    )


def freeze_encoder(model) -> None:
    """No gradient to the encoder (MS-VED also keeps it in eval mode; the baseline's encoder is only run through
    the feature cache, which runs it in eval mode)."""
    if hasattr(model, "freeze_encoder"):
        model.freeze_encoder()
    else:
        model.encoder.requires_grad_(False)


class CaptionTrainer(Seq2SeqTrainer):
    """`Seq2SeqTrainer` whose prediction step computes the loss *before* generating: `generate()` of transformers'
    `VisionEncoderDecoderModel` expands given `encoder_outputs` for the beams in place, which would leave the batch
    the loss is computed on with the wrong size.

    Two fixes for several processes (DDP, `accelerate launch`), both models:

    * Both forwards take `**kwargs` but average their loss over their own batch (they ignore `num_items_in_batch`),
      so the Trainer must not treat them as models that normalise by the global token count: it would multiply the
      loss (and the gradient) by the number of processes, and skip the division by `gradient_accumulation_steps`.
    * `Seq2SeqTrainer.evaluate` / `predict` gather with `accelerator.gather` (kept for `num_return_sequences > 1`),
      which keeps the examples accelerate repeats to even out the last batch across processes: N images gave more
      than N captions. One sequence per example here, so `gather_for_metrics` (which drops them) is right.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False

    def evaluation_loop(self, *args, **kwargs):
        self.gather_function = self.accelerator.gather_for_metrics
        return super().evaluation_loop(*args, **kwargs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        if not self.args.predict_with_generate or prediction_loss_only:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = model(**inputs).loss.detach()
            prompt_free = {
                k: v
                for k, v in inputs.items()
                if k not in ("decoder_input_ids", "decoder_attention_mask", "labels")
            }
            tokens = model.generate(
                **prompt_free,
                max_length=self.args.generation_max_length,
                num_beams=self.args.generation_num_beams,
            )
        return loss, tokens, inputs["labels"]


class FeatureCache:
    """Patch tokens of a frozen encoder, computed once per image (in eval mode, without gradients) and kept;
    `preloaded` (from `--image_features_file`) fills it first."""

    def __init__(
        self,
        model: MultiStreamVisionEncoderDecoder,
        processor: MultiStreamVisionProcessor,
        preloaded: dict[str, torch.Tensor] | None = None,
        blind: bool = False,
    ) -> None:
        self.model, self.processor, self.features = model, processor, dict(preloaded or {})
        self.computed, self.preloaded, self.blind = 0, len(self.features), blind

    def __call__(self, paths: list[str]) -> torch.Tensor:
        missing = sorted({p for p in paths if p not in self.features})
        if missing:
            encoder = self.model.encoder
            pixel_values = self.processor.image_processor(load_images(missing), return_tensors="pt")[
                "pixel_values"
            ]
            training, _ = encoder.training, encoder.eval()  # the Trainer may have put it in train mode
            with torch.no_grad():
                out = encoder(pixel_values=pixel_values.to(encoder.device)).last_hidden_state
            encoder.train(training)
            self.features.update(zip(missing, out.cpu()))
            self.computed += len(missing)
        tokens = torch.stack([self.features[p] for p in paths])
        return torch.zeros_like(tokens) if self.blind else tokens


def preloaded_features(margs: ModelArguments, model) -> dict[str, torch.Tensor] | None:
    """The patch tokens of `--image_features_file`, checked against the encoder's output width (a file from another
    encoder is refused, not fed to the decoder)."""
    if not margs.image_features_file:
        return None
    from msnn_hf.features_vl import load_image_features

    path = Path(margs.image_features_file)
    if not path.is_file():
        raise UsageError(f"--image_features_file {path}: no such file")
    features = load_image_features(path)
    encoder_config = model.config.encoder
    width = getattr(encoder_config, "hidden_size", None) or getattr(encoder_config, "hidden_dim", None)
    shapes = {tuple(t.shape) for t in features.values()}
    if len(shapes) != 1 or (width is not None and next(iter(shapes))[-1] != width):
        raise UsageError(
            f"--image_features_file {path} holds patch tokens of shape(s) {sorted(shapes)}; the encoder "
            f"({encoder_config.model_type}) outputs width {width}"
        )
    return {k: v.float() for k, v in features.items()}


def load_images(paths: list[str]) -> list:
    from PIL import Image

    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


class CaptionCollator:
    """Rows with `image` (a path) and `caption` -> the model's inputs: `pixel_values` (or, with a feature cache,
    `encoder_outputs`), `decoder_input_ids`, `decoder_attention_mask`, `labels`."""

    def __init__(self, processor, max_length: int, features: FeatureCache | None) -> None:
        self.processor, self.max_length, self.features = processor, max_length, features

    def __call__(self, rows: list[dict], with_targets: bool = True) -> dict[str, Any]:
        paths = [row["image"] for row in rows]
        images = None if self.features is not None else load_images(paths)
        questions = [row["question"] for row in rows] if "question" in rows[0] else None
        targets = (
            [row["caption"] if "caption" in row else row["answer"] for row in rows] if with_targets else None
        )
        if questions is None and targets is None:
            questions = [""] * len(rows)
        batch = dict(
            self.processor(
                images=images, text=questions, targets=targets, truncation=True, max_length=self.max_length
            )
        )
        if self.features is not None:
            batch["encoder_outputs"] = BaseModelOutput(last_hidden_state=self.features(paths))
        return batch


def train_rows(dargs: DataArguments):
    from msnn_hf.data_vl import load_daquar, load_flickr8k, stream_daquar, stream_flickr8k

    if dargs.dataset == "daquar":
        if dargs.streaming:
            rows = stream_daquar(data_dir=dargs.data_dir, split="train")
            return rows.take(dargs.max_train_images) if dargs.max_train_images else rows
        rows = load_daquar(data_dir=dargs.data_dir, split="train")
        return rows.select(range(min(len(rows), dargs.max_train_images))) if dargs.max_train_images else rows
    if dargs.streaming:
        rows = stream_flickr8k(data_dir=dargs.data_dir, split="train", one_caption_per_row=True)
        if dargs.max_train_images:
            rows = rows.take(dargs.max_train_images * 5)  # five captions per image, in file order
        return rows
    rows = load_flickr8k(data_dir=dargs.data_dir, split="train", one_caption_per_row=True)
    if dargs.max_train_images:
        rows = rows.select(range(min(len(rows), dargs.max_train_images * 5)))
    return rows


def eval_rows(dargs: DataArguments, split: str):
    """Flickr8k: one row per image, `image`, `caption` (the first, for the loss) and `captions` (all five: the
    references); DAQUAR: the QA pairs."""
    from msnn_hf.data_vl import load_daquar, load_flickr8k

    if dargs.dataset == "daquar":
        rows = load_daquar(data_dir=dargs.data_dir, split=split)
        return rows.select(range(min(len(rows), dargs.max_eval_images))) if dargs.max_eval_images else rows
    rows = load_flickr8k(data_dir=dargs.data_dir, split=split)
    if dargs.max_eval_images:
        rows = rows.select(range(min(len(rows), dargs.max_eval_images)))
    return rows.map(lambda row: {"caption": row["captions"][0]})


def evaluate_split(trainer, processor, rows, split: str) -> tuple[dict[str, Any], list[str]]:
    import evaluate

    from msnn_hf.metrics import caption_metrics_path

    output = trainer.predict(rows, metric_key_prefix=split)
    predictions = output.predictions
    predictions = [[t for t in row if t >= 0] for row in predictions.tolist()]  # -100 pads between batches
    captions = [c.strip() for c in processor.batch_decode(predictions, skip_special_tokens=True)]
    metric = evaluate.load(caption_metrics_path())
    scores = metric.compute(predictions=captions, references=[list(r) for r in rows["captions"]])
    metrics = {f"{split}_{k}": v for k, v in scores.items()}
    metrics.update({k: v for k, v in output.metrics.items() if k.endswith("_loss")})
    return metrics, captions


def evaluate_vqa(trainer, processor, collator, rows, split: str, targs) -> tuple[dict[str, Any], list[str]]:
    """Answers generated after each question (left-padded prompts; the answer is what follows them), scored by
    exact match and set-F1 against the DAQUAR answers; the loss on the reference answers from `trainer.evaluate`."""
    import evaluate

    from msnn_hf.metrics import vqa_metrics_path

    model, answers = trainer.model, []
    batch_size = targs.per_device_eval_batch_size
    for start in range(0, len(rows), batch_size):
        chunk = [rows[i] for i in range(start, min(len(rows), start + batch_size))]
        inputs = collator(chunk, with_targets=False)
        inputs = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        with torch.no_grad():
            out = model.generate(
                **inputs, num_beams=targs.generation_num_beams or 1, do_sample=False,
                max_new_tokens=targs.generation_max_length or 8,
            )  # fmt: skip
        width = inputs["decoder_input_ids"].shape[1]
        answers += [a.strip() for a in processor.batch_decode(out[:, width:], skip_special_tokens=True)]
    metric = evaluate.load(vqa_metrics_path())
    scores = metric.compute(predictions=answers, references=[list(a) for a in rows["answers"]])
    metrics = {f"{split}_{k}": v for k, v in scores.items()}
    metrics[f"{split}_loss"] = trainer.evaluate(rows, metric_key_prefix=split)[f"{split}_loss"]
    return metrics, answers


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = HfArgumentParser((ModelArguments, DataArguments, Seq2SeqTrainingArguments))
    if argv is None and len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        margs, dargs, targs = parser.parse_json_file(json_file=sys.argv[1])
    else:
        margs, dargs, targs = parser.parse_args_into_dataclasses(args=argv)
    if margs.architecture not in ("msved", "ved"):
        raise UsageError(f"--architecture must be msved or ved; got {margs.architecture!r}")
    if margs.architecture == "ved" and margs.freeze_encoder and not margs.cache_encoder_features:
        raise UsageError(
            "--architecture ved --freeze_encoder needs --cache_encoder_features (its encoder would train in train mode)"
        )
    if margs.cache_encoder_features and not margs.freeze_encoder:
        raise UsageError(
            "--cache_encoder_features needs --freeze_encoder (a trained encoder changes its features)"
        )
    if margs.blind and not margs.cache_encoder_features:
        raise UsageError(
            "--blind needs --cache_encoder_features (it replaces the cached patch tokens by zeros)"
        )
    if margs.image_features_file and not margs.cache_encoder_features:
        raise UsageError("--image_features_file needs --cache_encoder_features")
    if dargs.dataset not in ("flickr8k", "daquar"):
        raise UsageError(f"--dataset must be flickr8k or daquar; got {dargs.dataset!r}")
    if dargs.streaming and targs.do_train and targs.max_steps <= 0:
        raise UsageError("--streaming needs --max_steps (a stream has no length)")
    targs.remove_unused_columns = False  # the collator reads the rows' image paths and captions
    if dargs.streaming and targs.accelerator_config.dispatch_batches is None:
        # several processes: each reads the stream and keeps its share (accelerate's IterableDatasetShard) instead
        # of the main process concatenating everyone's batches, which fails on captions padded to other lengths
        targs.accelerator_config.dispatch_batches = False
    finished = lm_utils.finished_record(margs, dargs, targs)
    if finished is not None:
        return finished
    set_seed(targs.seed)
    start = time.perf_counter()
    commit = git_commit()
    processor = build_processor(margs)
    model = build_model(margs, processor)
    if margs.freeze_encoder:
        freeze_encoder(model)
    features = (
        FeatureCache(model, processor, preloaded_features(margs, model), blind=margs.blind)
        if margs.cache_encoder_features
        else None
    )
    n_params = lm_utils.count_parameters(model)
    decoder = model.config.decoder
    kind = f"{getattr(decoder, 'integration_type', 'cross-attention')} streams={getattr(decoder, 'streams', None)}"
    print(f"model: {margs.architecture} {kind} trainable params={n_params:,}")
    wanted = [s.strip() for s in dargs.eval_splits.split(",") if s.strip()]
    evals = {split: eval_rows(dargs, split) for split in wanted} if targs.do_eval or targs.do_predict else {}
    targs.generation_max_length = targs.generation_max_length or dargs.max_target_length
    collator = CaptionCollator(processor, dargs.max_target_length, features)
    trainer = CaptionTrainer(
        model=model,
        args=targs,
        train_dataset=train_rows(dargs) if targs.do_train else None,
        data_collator=collator,
        processing_class=processor,
    )
    metrics: dict[str, Any] = {}
    train_seconds, resumed_from = 0.0, None
    if targs.do_train:
        metrics, train_seconds, resumed_from = lm_utils.train_and_save(
            trainer, targs, processor, lm_utils.run_settings(margs, dargs, targs)
        )
    generated = {}
    if evals:
        if not targs.predict_with_generate:
            raise UsageError("evaluation scores generated captions: pass --predict_with_generate")
        model.eval()
        for split, rows in evals.items():
            if dargs.dataset == "daquar":
                split_metrics, texts = evaluate_vqa(trainer, processor, collator, rows, split, targs)
                generated[split] = [
                    {"image_id": i, "question": q, "answer": a}
                    for i, q, a in zip(rows["image_id"], rows["question"], texts)
                ]
            else:
                split_metrics, texts = evaluate_split(trainer, processor, rows, split)
                generated[split] = [{"image_id": i, "caption": c} for i, c in zip(rows["image_id"], texts)]
            metrics.update(split_metrics)
            print(
                split, {k: round(v, 4) for k, v in split_metrics.items() if isinstance(v, float)}, flush=True
            )
    return lm_utils.write_record(
        "captioning", margs, dargs, targs, model, metrics, start, train_seconds, dargs.results_file, commit=commit,
        resumed_from=resumed_from, steps_before_resume=steps_before(resumed_from), num_parameters=n_params,
        global_steps=trainer.state.global_step, encoder_features_computed=features.computed if features else None,
        encoder_features_preloaded=features.preloaded if features else None,
        generated=generated,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(cli(main, "run_captioning.py"))
