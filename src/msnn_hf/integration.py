"""Integration mechanisms of multi-stream networks: Linear Integration (LI) and Direct Mixing (DM).

Pure PyTorch, no Hugging Face imports: this module is copied next to the modeling code into every checkpoint
(remote code) and is shared by all model families. Notation (per integration point, per token): ``r_s`` is the
*raw* output of stream ``s`` at that point (``r_0`` the reference stream, the backbone's), ``z`` the integrated
state. "Raw" = the block's output hidden state, before the integrated pathway's own bias, norm and activation.

* **Linear Integration**::

      z_hat = act(norm(W_z z_prev + sum_s W_s r_s + b))

  weights = each stream's share of the contributions, ``||W_s r_s|| / sum_s' ||W_s' r_s'||``.

* **Direct Mixing** (no norm: a "raw membrane potential")::

      z_hat = act(gamma * W_z z_prev + sum_s alpha_s * u_s + b),   u_s = rms_normalise(P_s r_s)

  ``P_s`` is a bias-free projection where widths differ (else none); every ``u_s`` has unit RMS, so the alphas
  compare across streams. ``alpha`` is ``"scalar"``, ``"channel"`` (weights: the mean over units) or ``"token"``
  (a gate on the units at each token, softmax over streams).

* **Start as the reference stream** (``gated=True``, the default of the models)::

      z = r_0 + tanh(beta) * (z_hat - r_0),   beta = 0 at initialisation (one per hidden unit)

  so that ``z = r_0`` before training: a model built from a pretrained backbone computes the backbone's function
  (the stack adds the deviation ``z_prev - r_0_prev`` the earlier points built up, so that every point's gate
  reaches the heads directly; see `modeling_multistream_stack.py`).
  ``beta`` receives gradient at step 0 (``z_hat - r_0`` is not zero); the mechanism's own parameters from the
  first step on. weights are then the streams' shares *in z*: ``tau * w_s``, and the reference stream also gets
  the carried part ``1 - tau`` (``tau`` the mean of ``tanh(beta)``; ``w_s`` as above). Without the gate
  (``gated=False``) ``z = z_hat`` and weights = ``w_s``.

Every mechanism has one call signature::

    forward(stream_outputs: list of (B, T, d_s) in the order of `streams` | dict by name, previous: (B, T, H) | None,
            return_weights=True) -> IntegrationOutput(integrated (B, T, H), weights (B, T, S) | None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}
ALPHA_GRANULARITIES = ("scalar", "channel", "token")


@dataclass
class IntegrationOutput:
    """One integration step: ``integrated`` `(B, T, H)`, the new state ``z``; ``weights`` `(B, T, S)`, every stream's
    weight at every token (`None` when called with ``return_weights=False``)."""

    integrated: torch.Tensor
    weights: torch.Tensor | None


def rms_normalise(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``x / sqrt(mean(x**2) + eps)`` over the last dimension: unit scale, no learned parameters."""
    return F.rms_norm(x, (x.shape[-1],), eps=eps)


class Integration(nn.Module):
    """What LI and DM share: the streams' order, the optional start-as-the-reference gate, the call signature."""

    def __init__(self, stream_dims: dict[str, int], hidden_size: int, activation: str, gated: bool) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown integration activation {activation!r}; valid: {sorted(ACTIVATIONS)}")
        self.streams = list(stream_dims)
        self.hidden_size = hidden_size
        self.act = ACTIVATIONS[activation]()
        self.blend = nn.Parameter(torch.zeros(hidden_size)) if gated else None

    def ordered(self, stream_outputs: dict[str, torch.Tensor] | list[torch.Tensor]) -> list[torch.Tensor]:
        """The stream outputs in the order of `streams` (a dict is checked by name, a list by length)."""
        if isinstance(stream_outputs, dict):
            missing = [s for s in self.streams if s not in stream_outputs]
            extra = [s for s in stream_outputs if s not in self.streams]
            if missing or extra:
                raise ValueError(
                    f"Integration expects outputs of streams {self.streams}; missing {missing}, unexpected {extra}"
                )
            stream_outputs = [stream_outputs[s] for s in self.streams]
        if len(stream_outputs) != len(self.streams):
            raise ValueError(
                f"Integration expects {len(self.streams)} stream outputs (in the order {self.streams}); "
                f"got {len(stream_outputs)}"
            )
        if any(r.shape[:-1] != stream_outputs[0].shape[:-1] for r in stream_outputs[1:]):
            raise ValueError(
                f"All streams must share (batch, tokens); got {[tuple(r.shape) for r in stream_outputs]}"
            )
        return list(stream_outputs)

    def finish(
        self, reference: torch.Tensor, z_hat: torch.Tensor, weights: torch.Tensor | None
    ) -> IntegrationOutput:
        """Apply the start-as-the-reference gate (if any): ``z = r_0 + tanh(beta) * (z_hat - r_0)``."""
        if self.blend is None:
            return IntegrationOutput(integrated=z_hat, weights=weights)
        tau = torch.tanh(self.blend)  # (H,)
        integrated = torch.addcmul(reference, tau, z_hat - reference)  # (B, T, H)
        if weights is not None:
            carried = 1.0 - tau.mean()
            weights = torch.cat(
                [carried + (1.0 - carried) * weights[..., :1], (1.0 - carried) * weights[..., 1:]], -1
            )
        return IntegrationOutput(integrated=integrated, weights=weights)


class LinearIntegration(Integration):
    """Linear Integration: ``z_hat = act(norm(W_z z_prev + sum_s W_s r_s + b))``.

    Initialisation: ``W_s`` of the first stream is the identity where widths agree; the other ``W_s`` and ``W_z``
    are small random (std ``init_std``); the gate ``beta`` (if ``gated``) is zero.
    """

    def __init__(
        self,
        stream_dims: dict[str, int],
        hidden_size: int,
        activation: str = "gelu",
        layer_norm_eps: float = 1e-12,
        recurrent: bool = True,
        init_std: float = 0.02,
        gated: bool = False,
    ) -> None:
        super().__init__(stream_dims, hidden_size, activation, gated)
        self.init_std = init_std
        self.stream_proj = nn.ModuleDict(
            {s: nn.Linear(d, hidden_size, bias=False) for s, d in stream_dims.items()}
        )
        self.recurrent_proj = nn.Linear(hidden_size, hidden_size, bias=False) if recurrent else None
        self.bias = nn.Parameter(torch.zeros(hidden_size))
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for i, proj in enumerate(self.stream_proj.values()):
            if i == 0 and proj.in_features == proj.out_features:
                proj.weight.copy_(torch.eye(self.hidden_size))
            else:
                proj.weight.normal_(0.0, self.init_std)
        if self.recurrent_proj is not None:
            self.recurrent_proj.weight.normal_(0.0, self.init_std)
        self.bias.zero_()
        self.norm.reset_parameters()
        if self.blend is not None:
            self.blend.zero_()

    def forward(self, stream_outputs, previous: torch.Tensor | None = None, return_weights: bool = True):
        inputs = self.ordered(stream_outputs)
        contributions = [self.stream_proj[s](r) for s, r in zip(self.streams, inputs)]  # S x (B, T, H)
        potential = sum(contributions[1:], contributions[0]) + self.bias  # (B, T, H)
        if previous is not None and self.recurrent_proj is not None:
            potential = potential + self.recurrent_proj(previous)
        weights = None
        if return_weights:
            norms = torch.stack([c.norm(dim=-1) for c in contributions], dim=-1)  # (B, T, S)
            weights = norms / norms.sum(-1, keepdim=True).clamp_min(1e-12)
        return self.finish(inputs[0], self.act(self.norm(potential)), weights)


class DirectMixing(Integration):
    """Direct Mixing: ``z_hat = act(gamma * W_z z_prev + sum_s alpha_s * u_s + b)``, no normalisation.

    Initialisation: alpha 1 for the first stream and ``alpha_init`` for the others (``"token"``: the gate's bias at
    the log of those proportions, so the softmax starts there); ``W_z`` the identity, ``gamma`` = ``gamma_init``;
    ``P_s`` normal with std ``1 / sqrt(d_s)``; the gate ``beta`` (if ``gated``) zero.
    """

    def __init__(
        self,
        stream_dims: dict[str, int],
        hidden_size: int,
        alpha_granularity: str = "scalar",
        activation: str = "gelu",
        recurrent: bool = True,
        alpha_init: float = 0.1,
        gamma_init: float = 0.5,
        init_std: float = 0.02,
        eps: float = 1e-6,
        gated: bool = False,
    ) -> None:
        super().__init__(stream_dims, hidden_size, activation, gated)
        if alpha_granularity not in ALPHA_GRANULARITIES:
            raise ValueError(
                f"Unknown alpha_granularity {alpha_granularity!r}; valid: {list(ALPHA_GRANULARITIES)}"
            )
        self.alpha_granularity = alpha_granularity
        self.alpha_init, self.gamma_init, self.init_std, self.eps = alpha_init, gamma_init, init_std, eps
        num_streams = len(self.streams)
        self.stream_proj = nn.ModuleDict(
            {s: nn.Linear(d, hidden_size, bias=False) for s, d in stream_dims.items() if d != hidden_size}
        )
        if alpha_granularity == "scalar":
            self.alpha = nn.Parameter(torch.empty(num_streams))
        elif alpha_granularity == "channel":
            self.alpha = nn.Parameter(torch.empty(num_streams, hidden_size))
        else:  # token: a small gate on the normalised streams, softmax over streams
            self.gate = nn.Linear(num_streams * hidden_size, num_streams)
        self.recurrent_proj = nn.Linear(hidden_size, hidden_size, bias=False) if recurrent else None
        self.gamma = nn.Parameter(torch.empty(())) if recurrent else None
        self.bias = nn.Parameter(torch.zeros(hidden_size))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for proj in self.stream_proj.values():
            nn.init.normal_(proj.weight, 0.0, 1.0 / math.sqrt(proj.in_features))
        init = torch.full((len(self.streams),), float(self.alpha_init))
        init[0] = 1.0
        if self.alpha_granularity == "scalar":
            self.alpha.copy_(init)
        elif self.alpha_granularity == "channel":
            self.alpha.copy_(init[:, None].expand_as(self.alpha))
        else:
            self.gate.weight.normal_(0.0, self.init_std)
            self.gate.bias.copy_(torch.log(init / init.sum()))
        if self.recurrent_proj is not None:
            self.recurrent_proj.weight.copy_(torch.eye(self.hidden_size))
            self.gamma.fill_(self.gamma_init)
        self.bias.zero_()
        if self.blend is not None:
            self.blend.zero_()

    def normalised_streams(self, stream_outputs) -> torch.Tensor:
        """``u_s`` of every stream, stacked: `(S, B, T, H)`."""
        units = []
        for s, r in zip(self.streams, self.ordered(stream_outputs)):
            if s in self.stream_proj:
                r = self.stream_proj[s](r)
            elif r.shape[-1] != self.hidden_size:
                raise ValueError(f"Stream {s!r} has width {r.shape[-1]}, expected {self.hidden_size}")
            units.append(r)
        return rms_normalise(torch.stack(units), self.eps)

    def mixing_weights(self, units: torch.Tensor) -> torch.Tensor:
        """alpha broadcastable against ``units`` `(S, B, T, H)`: `(S, B, T, 1)`, `(S, 1, 1, H)` or `(S, 1, 1, 1)`."""
        if self.alpha_granularity == "scalar":
            return self.alpha[:, None, None, None]
        if self.alpha_granularity == "channel":
            return self.alpha[:, None, None, :]
        num_streams, batch, tokens, hidden = units.shape
        features = units.permute(1, 2, 0, 3).reshape(batch, tokens, num_streams * hidden)
        return F.softmax(self.gate(features), dim=-1).permute(2, 0, 1)[..., None]

    def mix(
        self, units: torch.Tensor, return_weights: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``sum_s alpha_s u_s`` `(B, T, H)` and the weights `(B, T, S)`; the same values as
        ``(mixing_weights(U) * U).sum(0)`` without materialising ``alpha * U`` (a matrix-vector product for scalar
        alpha, a (1 x S) @ (S x H) product per token for the token gate)."""
        num_streams, batch, tokens, hidden = units.shape
        if self.alpha_granularity == "scalar":
            potential = (self.alpha[None] @ units.view(num_streams, -1)).view(batch, tokens, hidden)
            return potential, self.alpha.expand(batch, tokens, -1) if return_weights else None
        if self.alpha_granularity == "channel":
            potential = sum(self.alpha[i] * u for i, u in enumerate(units.unbind(0)))  # (B, T, H)
            return potential, self.alpha.mean(-1).expand(batch, tokens, -1) if return_weights else None
        features = units.permute(1, 2, 0, 3).reshape(batch, tokens, num_streams * hidden)  # (B, T, S*H)
        alpha = F.softmax(self.gate(features), dim=-1)  # (B, T, S)
        potential = (alpha.unsqueeze(-2) @ features.view(batch, tokens, num_streams, hidden)).squeeze(-2)
        return potential, alpha if return_weights else None

    def forward(self, stream_outputs, previous: torch.Tensor | None = None, return_weights: bool = True):
        inputs = self.ordered(stream_outputs)
        potential, weights = self.mix(self.normalised_streams(inputs), return_weights)  # (B, T, H), (B, T, S)
        if previous is not None and self.recurrent_proj is not None:
            potential = torch.addcmul(potential, self.gamma, self.recurrent_proj(previous))
        return self.finish(inputs[0], self.act(potential + self.bias), weights)


INTEGRATION_CLASSES: dict[str, type[Integration]] = {"li": LinearIntegration, "dm": DirectMixing}


def build_integration(
    integration_type: str,
    stream_dims: dict[str, int],
    hidden_size: int,
    *,
    alpha_granularity: str = "scalar",
    activation: str = "gelu",
    recurrent: bool = True,
    layer_norm_eps: float = 1e-12,
    alpha_init: float = 0.1,
    init_std: float = 0.02,
    gated: bool = False,
) -> Integration:
    """One integration module by name (``"li"`` or ``"dm"``) with the options that apply to it."""
    if integration_type == "li":
        return LinearIntegration(
            stream_dims, hidden_size, activation, layer_norm_eps, recurrent, init_std, gated
        )
    if integration_type == "dm":
        return DirectMixing(
            stream_dims, hidden_size, alpha_granularity, activation, recurrent, alpha_init, init_std=init_std,
            gated=gated,
        )  # fmt: skip
    raise ValueError(f"Unknown integration_type {integration_type!r}; valid: {sorted(INTEGRATION_CLASSES)}")
