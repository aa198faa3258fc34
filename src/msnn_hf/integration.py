"""Integration mechanisms of multi-stream networks: Linear Integration (LI) and Direct Mixing (DM).

Pure PyTorch, no Hugging Face imports: this module is copied next to the modeling code into every
checkpoint (remote code) and is shared by all model families.

Notation (per integration point ``l``, per token): ``r_s`` is the *raw* output of stream ``s`` at that
layer, ``z`` the integrated state.

* **Linear Integration** (full projections)::

      z_l = act(norm(W_z z_{l-1} + sum_s W_s r_s + b))

  weights = contribution of each stream at each token, ``||W_s r_s|| / sum_s' ||W_s' r_s'||``.

* **Direct Mixing** (interpretable mixing coefficients, no norm: a "raw membrane potential")::

      z_l = act(gamma * W_z z_{l-1} + sum_s alpha_s * u_s + b),   u_s = rms_normalise(P_s r_s)

  ``P_s`` is a bias-free projection to the integrated width (identity where the widths already agree)
  and ``rms_normalise`` divides each token vector by its root mean square (no learned scale), so every
  ``u_s`` has unit RMS and the ``alpha_s`` are comparable across streams. ``alpha`` is ``"scalar"`` (one
  per stream), ``"channel"`` (one per stream and hidden unit) or ``"token"`` (a gate computed from the
  normalised streams at each token, softmax over streams). weights = alpha (channel: mean over units).

What "raw" means for a transformer layer: the block's output hidden state, *before* the integrated
pathway's own bias, normalisation and activation (the "threshold"). Every call has the same signature::

    forward(stream_outputs: dict[str, Tensor (B, T, d_s)], previous: Tensor (B, T, H) | None, return_weights=True)
        -> IntegrationOutput(integrated (B, T, H), weights (B, T, S) or None when not return_weights)

with ``S`` in the order of the ``streams`` given at construction; ``stream_outputs`` may also be a list in that
order, or a `StackedStreams` (what the models pass: no dict to build and check at every layer of every decoding
step, no stack to split apart).
"""

from __future__ import annotations

import math
import operator
import weakref
from dataclasses import dataclass
from typing import NamedTuple

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
    """Result of one integration step.

    Args:
        integrated (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
            the new integrated state ``z_l``.
        weights (`torch.FloatTensor` of shape `(batch_size, sequence_length, num_streams)`, *optional*):
            per-token weight of every stream (DM: alpha; LI: normalised contribution norms); `None` when the call
            was made with `return_weights=False` (saves LI's norms when nobody reads them, e.g. in generation).
    """

    integrated: torch.Tensor
    weights: torch.Tensor | None


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown integration activation {name!r}; valid: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _check_inputs(streams: list[str], stream_outputs: dict[str, torch.Tensor]) -> None:
    missing = [s for s in streams if s not in stream_outputs]
    extra = [s for s in stream_outputs if s not in streams]
    if missing or extra:
        raise ValueError(
            f"Integration expects outputs of streams {streams}; missing {missing}, unexpected {extra}"
        )
    shapes = {s: tuple(stream_outputs[s].shape[:2]) for s in streams}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"All streams must share (batch, tokens); got {shapes}")


class StackedStreams(NamedTuple):
    """Stream outputs as the models hold them: the reference (first) stream's output and every other stream's
    output stacked, in the order of the integration's ``streams`` (they share one width). Passing this instead of a
    dict saves splitting the stack apart at every layer (and Direct Mixing then projects them in one product).

    Args:
        reference (`torch.FloatTensor` of shape `(batch_size, sequence_length, d_0)`): the first stream's output.
        others (`torch.FloatTensor` of shape `(num_streams - 1, batch_size, sequence_length, d)`): the others'.
    """

    reference: torch.Tensor
    others: torch.Tensor


def _ordered_inputs(
    streams: list[str], stream_outputs: dict[str, torch.Tensor] | list[torch.Tensor] | StackedStreams
) -> list[torch.Tensor]:
    """The stream outputs in the order of ``streams``: from a dict by name (checked: names and (batch, tokens)), a
    `StackedStreams`, or a list already in that order (only its length is checked)."""
    if isinstance(stream_outputs, StackedStreams):
        stream_outputs = [stream_outputs.reference, *stream_outputs.others.unbind(0)]
    elif isinstance(stream_outputs, dict):
        _check_inputs(streams, stream_outputs)
        return [stream_outputs[s] for s in streams]
    if len(stream_outputs) != len(streams):
        raise ValueError(
            f"Integration expects {len(streams)} stream outputs (in the order {streams}); got {len(stream_outputs)}"
        )
    return list(stream_outputs)


def rms_normalise(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Divide every vector (last dimension) by its root mean square: unit scale, no learned parameters.

    ``x / sqrt(mean(x**2) + eps)``, as one fused `F.rms_norm` (no weight) rather than four element-wise ops.
    """
    return F.rms_norm(x, (x.shape[-1],), eps=eps)


_data_ptr = torch.Tensor.data_ptr
_version = operator.attrgetter("_version")


class ParameterCache:
    """Tensors derived from parameters (stacked, concatenated, scaled), reused within one *scope*: the calls of one
    generation, which share a KV cache.

    `get(name, params, build)` returns ``build()``. Inside a scope (`scope(owner)`, ``owner`` the generation's
    cache) and without gradients, the result is kept and returned again for as long as the scope lasts and none of
    ``params`` changes its identity, storage (`.to()`, `load_state_dict(assign=True)`) or version counter (an
    optimizer step, `load_state_dict`, in-place edits under `torch.no_grad()`). Edits through ``param.data`` do not
    bump the version counter (peft's `merge_and_unload` makes them, for one), which is why nothing outlives its
    scope: every new generation, and every call made without one, builds afresh. With gradients it is built on
    every call, so that gradients flow to the parameters. Not part of the state dict.
    """

    def __init__(self) -> None:
        self._entries: dict = {}
        self._owner: weakref.ref | None = None

    def scope(self, owner: object | None, fresh: bool = False) -> None:
        """Enter the scope of ``owner`` (kept entries are reused while calls name the same owner, held by a weak
        reference); ``fresh`` (e.g. the first call of a generation) or a different owner drop what was kept, and
        ``None`` leaves every scope (no reuse)."""
        if owner is None or fresh or self._owner is None or self._owner() is not owner:
            self._entries.clear()
            self._owner = weakref.ref(owner) if owner is not None else None

    def get(self, name, params: list[torch.Tensor], build) -> torch.Tensor | dict | list:
        if (
            self._owner is not None and self._owner() is None
        ):  # the generation is over: let go of what it kept
            self._entries.clear()
            self._owner = None
        if self._owner is None or (torch.is_grad_enabled() and any(p.requires_grad for p in params)):
            return build()
        # identity, storage and version of every parameter, read by C-level maps (a decoding step checks about a
        # hundred parameters)
        key = (tuple(map(id, params)), tuple(map(_data_ptr, params)), tuple(map(_version, params)))
        entry = self._entries.get(name)
        if entry is not None and entry[0] == key:
            return entry[1]
        value = build()
        self._entries[name] = (key, value)
        return value


class LinearIntegration(nn.Module):
    """Linear Integration: ``z = act(norm(W_z z_prev + sum_s W_s r_s + b))``.

    Args:
        stream_dims: width of every stream, in order (the first stream is the reference stream, usually
            ``"semantic"``).
        hidden_size: width of the integrated state.
        activation: one of `ACTIVATIONS`.
        layer_norm_eps: epsilon of the normalisation.
        recurrent: use the previous integrated state (``W_z``); ``False`` drops the term.

    Initialisation: ``W_s`` of the first stream is the identity where widths agree (the integrated pathway
    starts as a normalised copy of the reference stream); the other ``W_s`` and ``W_z`` are small random.
    """

    def __init__(
        self,
        stream_dims: dict[str, int],
        hidden_size: int,
        activation: str = "gelu",
        layer_norm_eps: float = 1e-12,
        recurrent: bool = True,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.streams = list(stream_dims)
        self.hidden_size = hidden_size
        self.init_std = init_std
        self.stream_proj = nn.ModuleDict(
            {s: nn.Linear(d, hidden_size, bias=False) for s, d in stream_dims.items()}
        )
        self.recurrent_proj = nn.Linear(hidden_size, hidden_size, bias=False) if recurrent else None
        self.bias = nn.Parameter(torch.zeros(hidden_size))
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.act = _activation(activation)
        self._derived = ParameterCache()
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for i, (_name, proj) in enumerate(self.stream_proj.items()):
            if i == 0 and proj.in_features == proj.out_features:
                proj.weight.copy_(torch.eye(self.hidden_size))
            else:
                proj.weight.normal_(0.0, self.init_std)
        if self.recurrent_proj is not None:
            self.recurrent_proj.weight.normal_(0.0, self.init_std)
        self.bias.zero_()
        self.norm.reset_parameters()

    def forward(
        self,
        stream_outputs: dict[str, torch.Tensor] | list[torch.Tensor] | StackedStreams,
        previous: torch.Tensor | None = None,
        return_weights: bool = True,
    ) -> IntegrationOutput:
        inputs = _ordered_inputs(self.streams, stream_outputs)
        recurrent = previous is not None and self.recurrent_proj is not None
        if not return_weights:
            # one product: [r_1 .. r_S, z] @ [W_1 .. W_S, W_z]^T + b, the weights concatenated (kept when no grad)
            projections = [self.stream_proj[s] for s in self.streams]
            if recurrent:
                inputs.append(previous)
                projections.append(self.recurrent_proj)
            weight = self._derived.get(
                ("joint", recurrent),
                [p.weight for p in projections],
                lambda: torch.cat([p.weight for p in projections], dim=1),
            )  # (H, sum of widths)
            potential = F.linear(torch.cat(inputs, dim=-1), weight, self.bias)  # (B, T, H)
            return IntegrationOutput(integrated=self.act(self.norm(potential)), weights=None)
        contributions = [self.stream_proj[s](r) for s, r in zip(self.streams, inputs)]  # S x (B, T, H)
        potential = sum(contributions[1:], contributions[0]) + self.bias  # (B, T, H)
        if recurrent:
            potential = potential + self.recurrent_proj(previous)
        integrated = self.act(self.norm(potential))  # (B, T, H)
        norms = torch.stack([c.norm(dim=-1) for c in contributions], dim=-1)  # (B, T, S)
        weights = norms / norms.sum(-1, keepdim=True).clamp_min(1e-12)
        return IntegrationOutput(integrated=integrated, weights=weights)


class DirectMixing(nn.Module):
    """Direct Mixing: ``z = act(gamma * W_z z_prev + sum_s alpha_s * u_s + b)``, no normalisation.

    Args:
        stream_dims: width of every stream, in order (the first is the reference stream).
        hidden_size: width of the integrated state.
        alpha_granularity: ``"scalar"``, ``"channel"`` or ``"token"``.
        activation: one of `ACTIVATIONS`.
        recurrent: use the previous integrated state (``gamma * W_z z_prev``).
        alpha_init: initial alpha of the non-reference streams (the reference stream starts at 1).
            For ``"token"``, the gate's bias starts at ``log`` of these values so that the softmax
            starts at the same proportions.

    ``W_z`` starts as the identity and ``gamma`` at ``gamma_init`` (a leaky carry of the previous state).
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
    ) -> None:
        super().__init__()
        if alpha_granularity not in ALPHA_GRANULARITIES:
            raise ValueError(
                f"Unknown alpha_granularity {alpha_granularity!r}; valid: {list(ALPHA_GRANULARITIES)}"
            )
        self.streams = list(stream_dims)
        self.hidden_size = hidden_size
        self.alpha_granularity = alpha_granularity
        self.alpha_init = alpha_init
        self.gamma_init = gamma_init
        self.init_std = init_std
        self.eps = eps
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
        self.act = _activation(activation)
        self._derived = ParameterCache()
        self.reset_parameters()

    def _initial_alpha(self) -> torch.Tensor:
        init = torch.full((len(self.streams),), float(self.alpha_init))
        init[0] = 1.0
        return init

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for proj in self.stream_proj.values():
            nn.init.normal_(proj.weight, 0.0, 1.0 / math.sqrt(proj.in_features))
        init = self._initial_alpha()
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

    def normalised_streams(
        self, stream_outputs: dict[str, torch.Tensor] | list[torch.Tensor] | StackedStreams
    ) -> torch.Tensor:
        """``u_s`` for every stream, stacked: `(num_streams, batch, tokens, hidden_size)` (one RMS normalisation
        over the stacked projections). ``stream_outputs``: by name, a list in the order of `streams`, or a
        `StackedStreams`, whose stacked streams are projected by one batched product when they all need a
        projection (weights stacked on each call with gradients, kept without)."""
        if isinstance(stream_outputs, StackedStreams):
            others = stream_outputs.others  # (S-1, B, T, d)
            names = self.streams[1:]
            if names and all(s in self.stream_proj for s in names):
                weights = [self.stream_proj[s].weight for s in names]
                stacked = self._derived.get(
                    "stream_proj", weights, lambda: torch.stack([w.t() for w in weights])
                )  # (S-1, d, H)
                num, batch, tokens, width = others.shape
                projected = torch.bmm(others.reshape(num, batch * tokens, width), stacked)
                reference = stream_outputs.reference
                if self.streams[0] in self.stream_proj:
                    reference = self.stream_proj[self.streams[0]](reference)
                elif reference.shape[-1] != self.hidden_size:
                    raise ValueError(
                        f"Stream {self.streams[0]!r} has width {reference.shape[-1]}, expected {self.hidden_size}"
                    )
                raw = torch.cat([reference.reshape(1, batch * tokens, -1), projected])  # (S, B*T, H)
                return rms_normalise(raw, self.eps).view(num + 1, batch, tokens, self.hidden_size)
        raw = []
        if not isinstance(stream_outputs, list):
            stream_outputs = _ordered_inputs(self.streams, stream_outputs)
        for s, r in zip(self.streams, stream_outputs, strict=True):
            if s in self.stream_proj:
                r = self.stream_proj[s](r)
            elif r.shape[-1] != self.hidden_size:
                raise ValueError(f"Stream {s!r} has width {r.shape[-1]}, expected {self.hidden_size}")
            raw.append(r)
        return rms_normalise(torch.stack(raw), self.eps)  # (S, B, T, H)

    def mixing_weights(self, units: torch.Tensor) -> torch.Tensor:
        """alpha broadcastable against ``units``: `(S, B, T, 1)` or `(S, 1, 1, H)` or `(S, 1, 1, 1)`."""
        if self.alpha_granularity == "scalar":
            return self.alpha[:, None, None, None]
        if self.alpha_granularity == "channel":
            return self.alpha[:, None, None, :]
        num_streams, batch, tokens, hidden = units.shape
        features = units.permute(1, 2, 0, 3).reshape(batch, tokens, num_streams * hidden)
        return F.softmax(self.gate(features), dim=-1).permute(2, 0, 1)[..., None]  # (S, B, T, 1)

    def mix(
        self, units: torch.Tensor, return_weights: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``sum_s alpha_s * u_s`` `(B, T, H)` from the stacked units `(S, B, T, H)`, and the per-token weights
        `(B, T, S)` (`None` unless ``return_weights``).

        Same values as ``(mixing_weights(U) * U).sum(0)``, computed without materialising ``alpha * U`` (a
        matrix-vector product for scalar alpha, per-stream products for channel alpha, a (1 x S) @ (S x H) product
        per token for the token gate): a training step of the integration is about a third cheaper on CPU.
        """
        num_streams, batch, tokens, hidden = units.shape
        if self.alpha_granularity == "scalar":
            potential = (self.alpha[None] @ units.view(num_streams, -1)).view(batch, tokens, hidden)
            return potential, self.alpha.expand(batch, tokens, -1) if return_weights else None
        if self.alpha_granularity == "channel":
            potential = sum(self.alpha[i] * u for i, u in enumerate(units.unbind(0)))  # (B, T, H)
            return potential, self.alpha.mean(-1).expand(batch, tokens, -1) if return_weights else None
        features = units.permute(1, 2, 0, 3).reshape(batch, tokens, num_streams * hidden)  # (B, T, S*H)
        alpha = F.softmax(self.gate(features), dim=-1)  # (B, T, S)
        # sum_s alpha_s u_s as one (1 x S) @ (S x H) product per token
        potential = (alpha.unsqueeze(-2) @ features.view(batch, tokens, num_streams, hidden)).squeeze(-2)
        return potential, alpha if return_weights else None

    def forward(
        self,
        stream_outputs: dict[str, torch.Tensor] | list[torch.Tensor] | StackedStreams,
        previous: torch.Tensor | None = None,
        return_weights: bool = True,
    ) -> IntegrationOutput:
        if isinstance(stream_outputs, StackedStreams):
            if len(stream_outputs.others) != len(self.streams) - 1:
                raise ValueError(
                    f"Integration expects {len(self.streams) - 1} stacked streams after the reference (the order "
                    f"{self.streams}); got {len(stream_outputs.others)}"
                )
            inputs = stream_outputs
        else:
            inputs = _ordered_inputs(self.streams, stream_outputs)
        potential, weights = self.mix(self.normalised_streams(inputs), return_weights)  # (B,T,H), (B,T,S)
        if previous is not None and self.recurrent_proj is not None:
            # gamma * W_z z + b: gamma scales whichever is smaller, the (H, H) weight (training: many tokens)
            # or the (tokens, H) product (decoding one token at a time: scaling the weight would cost H*H)
            # (without gradients gamma * W_z is kept between calls)
            weight = self.recurrent_proj.weight
            if not torch.is_grad_enabled() or previous.numel() > weight.numel():
                scaled = self._derived.get("recurrent", [self.gamma, weight], lambda: self.gamma * weight)
                potential = potential + F.linear(previous, scaled, self.bias)
            else:
                potential = torch.addcmul(potential + self.bias, self.gamma, F.linear(previous, weight))
        else:
            potential = potential + self.bias
        return IntegrationOutput(integrated=self.act(potential), weights=weights)


INTEGRATION_CLASSES: dict[str, type[nn.Module]] = {
    "li": LinearIntegration,
    "dm": DirectMixing,
}


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
) -> nn.Module:
    """Build one integration module by name (``"li"`` or ``"dm"``) with the options that apply to it."""
    if integration_type == "li":
        return LinearIntegration(
            stream_dims, hidden_size, activation, layer_norm_eps, recurrent=recurrent, init_std=init_std
        )
    if integration_type == "dm":
        return DirectMixing(
            stream_dims,
            hidden_size,
            alpha_granularity=alpha_granularity,
            activation=activation,
            recurrent=recurrent,
            alpha_init=alpha_init,
            init_std=init_std,
        )
    raise ValueError(f"Unknown integration_type {integration_type!r}; valid: {sorted(INTEGRATION_CLASSES)}")
