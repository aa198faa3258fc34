"""ONNX export of the multi-stream models (`torch.onnx.export(..., dynamo=True)`), and a check against eager PyTorch.

The exported graph takes `input_ids` and `attention_mask` with a dynamic batch and length and returns `logits`; the
phonetic / morphological streams are derived inside the graph from `input_ids` through the stream tables (a
gather), so a plain tokenizer is all a deployment needs. The forward reads no tensor values back to the host while
it is traced (`modeling_multistream_common.eager_checks`), which is what makes the graph exportable. Causal models
are exported without a KV cache (one full forward per call).

Example::

    from msnn_hf.onnx_export import export_onnx, onnx_session
    path = export_onnx(model, "model.onnx")
    session = onnx_session(path)
    logits = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

Needs `onnxscript` and `onnxruntime` (`pip install msnn_hf[onnx]`).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)


class _LogitsOnly(torch.nn.Module):
    """The model's forward with the deployment inputs, returning only `logits` (no cache, no extra outputs)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.extra = (
            {"use_cache": False} if "use_cache" in inspect.signature(model.forward).parameters else {}
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        extra = self.extra
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **extra
        ).logits


def export_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    example_batch: int = 2,
    example_length: int = 8,
    max_batch: int = 4096,
) -> Path:
    """Export ``model`` (eval mode) to an ONNX file with dynamic batch and sequence length; returns the path.

    The sequence length may range from 2 to the model's position table (`max_position_embeddings` / `n_positions`).
    """
    config = model.config
    max_length = getattr(config, config.max_positions_attribute)
    if not 2 <= example_length <= max_length:
        raise ValueError(f"example_length must lie in [2, {max_length}]; got {example_length}")
    model = model.eval()
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, config.vocab_size, (example_batch, example_length), generator=generator)
    attention_mask = torch.ones(example_batch, example_length, dtype=torch.long)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    length = torch.export.Dim("sequence", min=2, max=max_length)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the exporter's notes on axis names and fallbacks
        program = torch.onnx.export(
            _LogitsOnly(model),
            (input_ids, attention_mask),
            dynamo=True,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_shapes={"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}},
            verbose=False,
        )
    program.save(str(path))
    return path


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An `onnxruntime.InferenceSession` on the CPU for an exported model."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_difference(
    model: torch.nn.Module, session, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> float:
    """The largest absolute difference between onnxruntime's and eager PyTorch's logits at the real positions."""
    feed = {
        "input_ids": input_ids.numpy().astype(np.int64),
        "attention_mask": attention_mask.numpy().astype(np.int64),
    }
    ours = torch.from_numpy(session.run(None, feed)[0])
    with torch.no_grad():
        reference = _LogitsOnly(model.eval())(input_ids, attention_mask)
    if reference.dim() == 3:  # per-token logits: compare the real tokens only
        real = attention_mask.bool()
        return float((ours[real] - reference[real]).abs().max())
    return float((ours - reference).abs().max())


def main(argv: list[str] | None = None) -> None:
    """``python -m msnn_hf.onnx_export CHECKPOINT OUT.onnx``: export a saved multi-stream checkpoint."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("checkpoint", help="a saved multi-stream model folder")
    parser.add_argument("out", help="the .onnx file to write")
    args = parser.parse_args(argv)
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
    )

    import msnn_hf  # noqa: F401  (registers the Auto classes)

    architecture = (AutoConfig.from_pretrained(args.checkpoint).architectures or [""])[0]
    auto = (
        AutoModelForCausalLM
        if architecture.endswith("LMHeadModel")
        else AutoModelForMaskedLM
        if architecture.endswith("MaskedLM")
        else AutoModelForSequenceClassification
    )
    path = export_onnx(auto.from_pretrained(args.checkpoint), args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
