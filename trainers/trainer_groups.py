"""The Trainer the msnn_hf scripts share: optional learning rates of their own for the parameters that are new (not in
the backbone) and for the integration gates.

Every multi-stream model starts with its integration gates closed (`integration.<k>.blend` = 0, so
`z = h + d + tanh(β) ⊙ (ẑ − h)` is the backbone's state). An Adam step moves a parameter by about its learning rate,
so at a fine-tuning rate (5e-5) a gate opens at most ~0.03 in 600 steps and the model stays its backbone; `gate_lr`
lets the gates open at a rate of their own (without weight decay, which would pull them shut).
"""

from __future__ import annotations

import torch
from transformers import Trainer

__all__ = ["MultiStreamTrainer", "gate_openness", "is_gate"]


def is_gate(name: str) -> bool:
    """An integration gate (`integration.<k>.blend`, `tanh(β)` of `z = h + d + tanh(β) ⊙ (ẑ − h)`)."""
    return name.endswith(".blend") and ".integration." in f".{name}"


def gate_openness(model) -> list[float] | None:
    """Mean |tanh(β)| of each integration gate, in order (0: closed, the model is its backbone there; 1: open, z is
    the integration's ẑ); None for a model without gates."""
    values = [
        float(torch.tanh(param.detach().float()).abs().mean())
        for name, param in model.named_parameters()
        if is_gate(name)
    ]
    return values or None


class MultiStreamTrainer(Trainer):
    """`Trainer` with optional separate learning rates for the parameters that are new (not in the backbone) and for
    the integration gates (`gate_lr`; no weight decay on them)."""

    def __init__(
        self,
        *args,
        new_params_lr: float | None = None,
        backbone_names: set[str] | None = None,
        gate_lr: float | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.new_params_lr = new_params_lr
        self.gate_lr = gate_lr
        self.backbone_names = backbone_names or set()

    def create_optimizer(self, model=None):
        if (self.new_params_lr is None and self.gate_lr is None) or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        new_lr = self.args.learning_rate if self.new_params_lr is None else self.new_params_lr
        groups: dict[tuple[str, bool], list] = {}
        for name, param in opt_model.named_parameters():
            if not param.requires_grad:
                continue
            if self.gate_lr is not None and is_gate(name):
                key = ("gate", False)
            else:
                key = ("backbone" if name in self.backbone_names else "new", name in decay)
            groups.setdefault(key, []).append(param)
        rates = {"backbone": self.args.learning_rate, "new": new_lr, "gate": self.gate_lr}
        grouped = [
            {
                "params": params,
                "weight_decay": self.args.weight_decay if is_decay else 0.0,
                "lr": rates[kind],
            }
            for (kind, is_decay), params in sorted(groups.items())
        ]
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(grouped, **optimizer_kwargs)
        return self.optimizer
