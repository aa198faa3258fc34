"""Reading what a trained multi-stream model does: the mixing weights of Direct Mixing.

`output_stream_weights=True` returns each stream's *share in the integrated state* ``z`` (with the start-as-the-
backbone gate ``z = r_0 + tanh(β) ⊙ (ẑ − r_0)``: the mixing weight times the gate's mean opening; see
docs/architecture.md). While the gates are nearly closed those shares are all close to 0 (or, where the signed
per-channel gate averages below 0, slightly negative) and say little about *which* stream the model chose. The
choice itself is DM-token's softmax inside ``ẑ = Σ_s α_s u_s``; `capture_mixing_weights` records it:

    from msnn_hf.analysis import capture_mixing_weights

    with capture_mixing_weights(model) as mixing:
        out = model(**inputs)
    alpha = torch.stack(mixing)  # (integration points, batch, tokens, streams); sums to 1 over streams
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .integration import DirectMixing


@contextlib.contextmanager
def capture_mixing_weights(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, the softmax weights `(batch, tokens, streams)` of every DM-token integration call (one per
    integration point and forward call, in call order) are appended to the yielded list. The model computes
    exactly what it computes without it; the modules are restored on exit. Models without DM-token integration
    yield an empty list."""
    captured: list[torch.Tensor] = []
    patched = []
    for module in model.modules():
        if isinstance(module, DirectMixing) and module.alpha_granularity == "token":
            original = module.mix

            def mix(units, return_weights=True, _original=original):
                potential, alpha = _original(units, True)
                captured.append(alpha.detach())
                return potential, alpha if return_weights else None

            module.mix = mix
            patched.append(module)
    try:
        yield captured
    finally:
        for module in patched:
            del module.mix  # the class's method again


__all__ = ["capture_mixing_weights"]
