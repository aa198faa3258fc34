"""Trainer callbacks and helpers for the integration weights (DM alpha / LI contributions).

`mean_stream_weights` averages `output_stream_weights=True` over the real (non-padding) tokens of a dataset;
`StreamWeightsCallback` records that average on a fixed probe batch into the Trainer's log history (and thus
TensorBoard, when installed) as `alpha/layer<l>/<stream>`.

Example::

    probe = collator([eval_dataset[i] for i in range(32)])
    StreamWeightsCallback.attach(trainer, probe)   # before trainer.train()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from transformers import TrainerCallback

ALPHA_KEY = "alpha/layer{layer}/{stream}"


def integration_layer_names(config, num_layers: int) -> list[int]:
    """The backbone layer index of each integration point (`config.integration_layers`), else 0..L-1."""
    layers = getattr(config, "integration_layers", None)
    if isinstance(layers, (list, tuple)) and len(layers) == num_layers:
        return [int(i) for i in layers]
    return list(range(num_layers))


def _model_inputs(batch: Mapping, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items() if k not in ("labels", "label") and torch.is_tensor(v)}


@torch.no_grad()
def accumulate_stream_weights(model, batches: Iterable[Mapping]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Mask-weighted sums of the stream weights over `batches`: `(sums [L, S], token count)`, or `None` when the
    model reports no stream weights (single-stream, early fusion, concat). Eval mode; restores train mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = None, torch.zeros((), dtype=torch.float64)
    try:
        for batch in batches:
            inputs = _model_inputs(batch, device)
            weights = getattr(model(**inputs, output_stream_weights=True), "stream_weights", None)
            if weights is None:
                return None
            weights = weights.detach().double().cpu()  # (L, B, T, S)
            mask = inputs.get("attention_mask")
            mask = torch.ones(weights.shape[1:3]) if mask is None else mask.detach().cpu()
            mask = mask.double()[None, :, :, None]  # (1, B, T, 1)
            summed = (weights * mask).sum(dim=(1, 2))  # (L, S)
            total = summed if total is None else total + summed
            count += mask.sum()
    finally:
        model.train(was_training)
    return None if total is None else (total, count)


def mean_stream_weights(model, batches: Iterable[Mapping]) -> dict | None:
    """Mean integration weight per integration layer and stream over the real tokens of `batches`.

    Returns `{"layers": [backbone layer index, ...], "streams": [...], "mean": [[float] * S] * L}` or `None`
    when the model has no integration weights.
    """
    result = accumulate_stream_weights(model, batches)
    if result is None:
        return None
    total, count = result
    mean = (total / count.clamp_min(1)).tolist()
    return {
        "layers": integration_layer_names(model.config, len(mean)),
        "streams": list(model.config.streams),
        "mean": mean,
    }


def flatten_stream_weights(summary: Mapping | None) -> dict[str, float]:
    """`{"alpha/layer<l>/<stream>": value}` from a `mean_stream_weights` summary."""
    if not summary:
        return {}
    return {
        ALPHA_KEY.format(layer=layer, stream=stream): float(value)
        for layer, row in zip(summary["layers"], summary["mean"])
        for stream, value in zip(summary["streams"], row)
    }


def format_stream_weights_table(summary: Mapping | None) -> str:
    """A plain-text table: one row per integration layer, one column per stream."""
    if not summary:
        return "(this model has no integration weights)"
    streams = list(summary["streams"])
    width = max(13, *(len(s) + 2 for s in streams))
    lines = ["layer".ljust(7) + "".join(s.rjust(width) for s in streams)]
    for layer, row in zip(summary["layers"], summary["mean"]):
        lines.append(str(layer).ljust(7) + "".join(f"{v:.4f}".rjust(width) for v in row))
    return "\n".join(lines)


class StreamWeightsCallback(TrainerCallback):
    """Records the mean integration weight per layer and stream into the Trainer's log history.

    On every evaluation log (or on every log with `on="log"`), runs `model(**probe_batch,
    output_stream_weights=True)` without gradients in eval mode (train mode is restored) and adds
    `alpha/layer<l>/<stream>` entries (mask-weighted means over the probe's real tokens) to that log entry. Models
    without integration weights add nothing.

    Add it with `StreamWeightsCallback.attach(trainer, probe_batch)`: that puts it before the reporting callbacks
    so TensorBoard / W&B see the values too (`Trainer(callbacks=[...])` appends it after them: log history only).

    Args:
        probe_batch (`Mapping[str, torch.Tensor]`): a collated batch (e.g. the first 32 validation examples).
        on (`str`, *optional*, defaults to `"evaluate"`): `"evaluate"` or `"log"`.
    """

    def __init__(self, probe_batch: Mapping[str, torch.Tensor], on: str = "evaluate") -> None:
        if on not in ("evaluate", "log"):
            raise ValueError(f"`on` must be 'evaluate' or 'log'; got {on!r}")
        self.probe_batch = dict(probe_batch)
        self.on = on

    @classmethod
    def attach(
        cls, trainer, probe_batch: Mapping[str, torch.Tensor], on: str = "evaluate"
    ) -> StreamWeightsCallback:
        callback = cls(probe_batch, on=on)
        trainer.callback_handler.callbacks.insert(0, callback)
        return callback

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if logs is None or model is None:
            return
        is_eval = any(key.startswith("eval_") for key in logs)
        if self.on == "evaluate" and not is_eval:
            return
        values = flatten_stream_weights(mean_stream_weights(model, [self.probe_batch]))
        if not values:
            return
        logs.update(values)
        # Trainer.log appended a copy of `logs` to the history just before calling on_log: update that entry too
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(values)


__all__ = [
    "ALPHA_KEY",
    "StreamWeightsCallback",
    "accumulate_stream_weights",
    "flatten_stream_weights",
    "format_stream_weights_table",
    "integration_layer_names",
    "mean_stream_weights",
]
