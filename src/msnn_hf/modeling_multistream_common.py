"""Parts shared by every multi-stream model family: stream tables, slot embeddings and stream layers.

A non-semantic stream (phonetic, morphological) sees one *slot* per semantic token: the ids of that
token's phonemes ``[B, T, P]`` or morphs ``[B, T, M]``. `SlotEmbedding` turns a slot into one vector per
token; `StreamLayer` is a narrow pre-LayerNorm transformer block (``x = x + attn(ln(x))``,
``x = x + mlp(ln(x))``) whose output is the stream's *raw* residual state, handed to the integration.

Only relative imports of siblings and public torch / transformers API: this module is copied into every
checkpoint as remote code.
"""

from __future__ import annotations

import operator
import weakref
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoTokenizer
from transformers.modeling_layers import GradientCheckpointingLayer

from .configuration_multistream_common import SEMANTIC, STREAM_INPUT_KEYS


def eager_checks() -> bool:
    """Whether value checks that read tensors back to the host may run: not while `torch.compile`, `torch.export`
    (and the ONNX exporter built on it) or `torch.jit` trace the forward. Those checks (ids in range, an all-ones
    mask) give clear errors in eager use; a traced graph must not depend on tensor values, and on a GPU each check
    would cost a device-to-host round trip per call."""
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing())


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
        if (
            self._owner is None
            or not eager_checks()  # traced: the graph holds the derivation itself
            or (torch.is_grad_enabled() and any(p.requires_grad for p in params))
        ):
            return build()
        key = (tuple(map(id, params)), tuple(map(_data_ptr, params)), tuple(map(_version, params)))
        entry = self._entries.get(name)
        if entry is not None and entry[0] == key:
            return entry[1]
        value = build()
        self._entries[name] = (key, value)
        return value


_STREAM_ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class StreamTables(nn.Module):
    """Alignment tables (one slot of stream ids per vocabulary entry) as persistent buffers.

    Saved with the model (``stream_tables.phonetic``, ``stream_tables.morphological``), so a checkpoint
    derives its streams from ``input_ids`` alone. Built empty; `load_tables` copies a processor's tables.
    """

    def __init__(self, vocab_size: int, slot_sizes: dict[str, int]) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.slot_sizes = dict(slot_sizes)
        self._checked_ranges: dict[str, tuple] = {}  # `check_range`'s results, by table
        for name, slot in self.slot_sizes.items():
            self.register_buffer(name, torch.zeros(vocab_size, slot, dtype=torch.long), persistent=True)

    @torch.no_grad()
    def load_tables(self, tables: dict[str, torch.Tensor]) -> None:
        for name in self.slot_sizes:
            if name not in tables:
                raise ValueError(f"Stream table {name!r} missing; got tables for {sorted(tables)}")
            table = torch.as_tensor(tables[name])
            if table.is_floating_point() or table.is_complex() or table.dtype == torch.bool:
                raise ValueError(
                    f"Stream table {name!r} must hold integer ids; got dtype {table.dtype} (a table of floats is "
                    "not cast: build the tables with the processor, `processor.stream_tables`)"
                )
            table = table.long()
            expected = tuple(getattr(self, name).shape)
            if tuple(table.shape) != expected:
                raise ValueError(
                    f"Stream table {name!r} has shape {tuple(table.shape)}, the model expects {expected} "
                    "(vocab_size x slot size): was the processor built for another tokenizer?"
                )
            getattr(self, name).copy_(table)

    @torch.no_grad()
    def resize(self, vocab_size: int) -> None:
        """Follow a resized vocabulary: new rows get all-zero (`<pad>`) slots until tables for the new tokens are
        loaded (e.g. from a processor rebuilt for the extended tokenizer); removed rows are dropped."""
        for name in self.slot_sizes:
            old = getattr(self, name)
            new = old.new_zeros(vocab_size, old.shape[1])
            rows = min(vocab_size, old.shape[0])
            new[:rows] = old[:rows]
            setattr(self, name, new)  # replaces the buffer (still persistent)
        self.vocab_size = vocab_size

    def check_range(self, name: str, vocab_size: int) -> None:
        """Raise unless every id in table ``name`` lies in ``[0, vocab_size)``. The result is kept until the table
        changes (identity, storage or version counter), so that a decoding step does not scan the gathered ids."""
        table = getattr(self, name)
        if not eager_checks():
            return
        key = (id(table), table.data_ptr(), table._version, vocab_size)
        checked = self._checked_ranges
        if checked.get(name) == key:
            return
        if table.numel() and (int(table.min()) < 0 or int(table.max()) >= vocab_size):
            raise ValueError(
                f"Stream table {name!r} holds ids in [{int(table.min())}, {int(table.max())}], outside the {name} "
                f"vocabulary [0, {vocab_size}): were the tables built by a processor with another stream vocabulary?"
            )
        checked[name] = key

    def forward(self, input_ids: torch.LongTensor) -> dict[str, torch.LongTensor]:
        """Stream ids for every stream: ``{name: (batch, tokens, slot)}``."""
        return {name: F.embedding(input_ids, getattr(self, name)) for name in self.slot_sizes}


def resolve_stream_ids(
    tables: StreamTables | None,
    input_ids: torch.LongTensor | None,
    given: dict[str, torch.LongTensor | None],
    vocab_sizes: dict[str, int],
) -> dict[str, torch.LongTensor]:
    """Stream ids to use: explicitly given ids take precedence, the rest are gathered from the tables.

    Validates shape (``(batch, tokens, slot)`` matching ``input_ids``) and range (``[0, vocab)``) with a
    `ValueError` that names the stream, instead of a broadcast or an index error deep inside torch: given ids
    themselves, gathered ids through their table (`StreamTables.check_range`).
    """
    resolved: dict[str, torch.LongTensor] = {}
    derived = None
    for name, vocab in vocab_sizes.items():
        ids = given.get(name)
        key = STREAM_INPUT_KEYS.get(name, f"{name}_ids")
        if ids is None:
            if input_ids is None or tables is None:
                raise ValueError(f"`{key}` is required when `input_ids` are not given")
            if derived is None:
                derived = tables(input_ids)
            # the table, not the gathered ids (checked once per table version)
            tables.check_range(name, vocab)
            resolved[name] = derived[name]
            continue
        slot = tables.slot_sizes[name] if tables is not None else ids.shape[-1]
        if ids.dim() != 3 or ids.shape[-1] != slot:
            raise ValueError(f"`{key}` must have shape (batch, tokens, {slot}); got {tuple(ids.shape)}")
        if input_ids is not None and tuple(ids.shape[:2]) != tuple(input_ids.shape):
            raise ValueError(
                f"`{key}` has (batch, tokens) = {tuple(ids.shape[:2])} but `input_ids` has {tuple(input_ids.shape)}"
            )
        if ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"`{key}` must be an integer tensor; got {ids.dtype}")
        if eager_checks() and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise ValueError(
                f"`{key}` holds ids in [{int(ids.min())}, {int(ids.max())}], outside the {name} vocabulary [0, {vocab})"
            )
        resolved[name] = ids.long()
    return resolved


def check_token_inputs(
    config,
    input_ids: torch.LongTensor | None,
    inputs_embeds: torch.FloatTensor | None,
    attention_mask: torch.Tensor | None,
    position_ids: torch.LongTensor | None = None,
    token_type_ids: torch.LongTensor | None = None,
    past_length: int = 0,
) -> tuple[int, int]:
    """Check a forward's token inputs and return ``(batch, tokens)``; a `ValueError` names the input.

    Shapes are always checked; values (ids inside the vocabulary, positions inside the position table, token types
    inside `type_vocab_size`) only in eager use (`eager_checks`), so that the forward still traces for
    `torch.export` / ONNX / `compile(fullgraph=True)`.
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds`")
    if inputs_embeds is not None and SEMANTIC not in config.streams:
        raise ValueError("`inputs_embeds` feed the semantic stream, which this model does not have")
    shape = tuple(input_ids.shape) if input_ids is not None else tuple(inputs_embeds.shape[:-1])
    if len(shape) != 2:
        raise ValueError(f"`input_ids` must have shape (batch, tokens); got {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(
            f"Empty input: `input_ids` has shape {shape}; pass at least one sequence of one token"
        )
    if input_ids is not None and input_ids.is_floating_point():
        raise ValueError(f"`input_ids` must be an integer tensor; got {input_ids.dtype}")
    for name, value in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
        expected = (shape[0], past_length + shape[1]) if name == "attention_mask" else shape
        if value is not None and value.dim() == 2 and tuple(value.shape) != expected:
            raise ValueError(f"`{name}` must have shape {expected} (batch, tokens); got {tuple(value.shape)}")
    max_positions = getattr(config, config.max_positions_attribute)
    check_sequence_length(past_length + shape[1], max_positions)
    if not eager_checks():
        return shape
    limits = [("input_ids", input_ids, config.vocab_size, "the vocabulary")]
    limits.append(("position_ids", position_ids, max_positions, "the position table"))
    limits.append(
        ("token_type_ids", token_type_ids, getattr(config, "type_vocab_size", None), "the token types")
    )
    for name, value, limit, what in limits:
        if value is None or limit is None or not value.numel():
            continue
        low, high = int(value.min()), int(value.max())
        if low < 0 or high >= limit:
            raise ValueError(f"`{name}` hold values in [{low}, {high}], outside {what} [0, {limit})")
    return shape


def check_sequence_length(length: int, max_positions: int) -> None:
    if length > max_positions:
        raise ValueError(
            f"Sequence length {length} exceeds the position table ({max_positions} positions); "
            "truncate the input (e.g. processor(..., truncation=True, max_length=...))"
        )


class SlotEmbedding(nn.Module):
    """Embeds a slot of sub-unit ids into one vector per token.

    ``mean_p (E[id_p] + S[p]) + P[t]`` over the non-pad entries of the slot (``E`` the unit embedding,
    ``S`` the position-in-slot embedding, ``P`` the token position), then LayerNorm and dropout.
    """

    def __init__(
        self,
        vocab_size: int,
        slot_size: int,
        hidden_size: int,
        max_position_embeddings: int,
        layer_norm_eps: float = 1e-12,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.unit_embeddings = nn.Embedding(vocab_size, hidden_size, padding_idx=0)
        self.slot_position_embeddings = nn.Embedding(slot_size, hidden_size)
        self.position_embeddings = nn.Embedding(max_position_embeddings, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def pooled_units(self, ids: torch.LongTensor) -> torch.Tensor:
        """Mean of the slot's unit + slot-position embeddings over its non-pad entries: (B, T, d)."""
        present = (ids != 0).unsqueeze(-1).to(self.unit_embeddings.weight.dtype)  # (B, T, P, 1)
        units = self.unit_embeddings(ids) + self.slot_position_embeddings.weight  # (B, T, P, d)
        return (units * present).sum(2) / present.sum(2).clamp_min(1.0)  # (B, T, d)

    def forward(self, ids: torch.LongTensor, position_ids: torch.LongTensor) -> torch.Tensor:
        x = self.pooled_units(ids) + self.position_embeddings(position_ids)  # (B, T, d)
        return self.dropout(self.norm(x))


class StreamSelfAttention(nn.Module):
    """Multi-head self-attention on PyTorch SDPA; optional KV cache (any `transformers.Cache`)."""

    def __init__(
        self, hidden_size: int, num_heads: int, dropout: float, layer_idx: int | None = None
    ) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"stream hidden size {hidden_size} is not a multiple of its {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv_proj = nn.Linear(hidden_size, 3 * hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout
        self.layer_idx = layer_idx

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None, cache=None) -> torch.Tensor:
        batch, tokens, hidden = x.shape
        q, k, v = self.qkv_proj(x).view(batch, tokens, 3, self.num_heads, self.head_dim).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hd)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(y.transpose(1, 2).reshape(batch, tokens, hidden))  # (B, T, d)


class StreamMLP(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, activation: str, dropout: float) -> None:
        super().__init__()
        if activation not in _STREAM_ACTIVATIONS:
            raise ValueError(
                f"Unknown stream activation {activation!r}; valid: {sorted(_STREAM_ACTIVATIONS)}"
            )
        self.fc_in = nn.Linear(hidden_size, intermediate_size)
        self.act = _STREAM_ACTIVATIONS[activation]()
        self.fc_out = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc_out(self.act(self.fc_in(x))))


class StreamLayer(GradientCheckpointingLayer):
    """Pre-LayerNorm block: ``x = x + attn(ln(x)); x = x + mlp(ln(x))``. Returns the raw residual state."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        activation: str = "gelu",
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-12,
        layer_idx: int | None = None,
    ) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.attn = StreamSelfAttention(hidden_size, num_heads, dropout, layer_idx)
        self.mlp_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.mlp = StreamMLP(hidden_size, intermediate_size, activation, dropout)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, attention_mask: torch.Tensor | None = None, cache=None
    ) -> torch.Tensor:
        x = x + self.resid_dropout(self.attn(self.attn_norm(x), attention_mask, cache=cache))  # (B, T, d)
        return x + self.mlp(self.mlp_norm(x))  # (B, T, d)


class StreamEncoder(nn.Module):
    """One non-semantic stream: `SlotEmbedding` then ``num_layers`` `StreamLayer`s.

    The model runs the layers one at a time (``stream.layers[l]``) so that it can integrate after each.
    ``layer_idx_offset`` numbers the layers' KV-cache slots after those of the other streams.
    """

    def __init__(
        self,
        vocab_size: int,
        slot_size: int,
        hidden_size: int,
        num_layers: int,
        num_heads: int,
        intermediate_size: int,
        max_position_embeddings: int,
        activation: str = "gelu",
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-12,
        layer_idx_offset: int = 0,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.embeddings = SlotEmbedding(
            vocab_size, slot_size, hidden_size, max_position_embeddings, layer_norm_eps, dropout
        )
        self.layers = nn.ModuleList(
            StreamLayer(
                hidden_size,
                num_heads,
                intermediate_size,
                activation,
                dropout,
                layer_norm_eps,
                layer_idx=layer_idx_offset + i,
            )
            for i in range(num_layers)
        )


_BATCHED_SUBMODULES: dict[str, tuple[str, str | None, type[nn.Module]]] = {
    # name in the batched layer: (child of the StreamLayer, its child or None, the exact type required)
    "attn_norm": ("attn_norm", None, nn.LayerNorm),
    "attn.qkv_proj": ("attn", "qkv_proj", nn.Linear),
    "attn.out_proj": ("attn", "out_proj", nn.Linear),
    "mlp_norm": ("mlp_norm", None, nn.LayerNorm),
    "mlp.fc_in": ("mlp", "fc_in", nn.Linear),
    "mlp.fc_out": ("mlp", "fc_out", nn.Linear),
}


def _batchable_layer(layer: nn.Module) -> tuple[tuple, dict[str, torch.Tensor]] | None:
    """What must agree for `StreamLayer`s to run as one batched layer, and the parameters that layer stacks, by
    name; ``None`` when the layer cannot be batched: not a plain `StreamLayer`, a submodule replaced by another kind
    (an adapter such as a LoRA layer), or forward hooks on the layer or its submodules (the batched layer calls no
    module, so they would not run). Runs on every call, hence the direct reads of the module and parameter dicts
    (`nn.Module.__getattr__` costs about a microsecond a read, which adds up to a visible share of a decoding step).
    """
    if type(layer) is not StreamLayer:
        return None
    children = layer._modules
    attn, mlp = children["attn"], children["mlp"]
    act = mlp._modules["act"]
    modules = [layer, attn, mlp, act]
    params: dict[str, torch.Tensor] = {}
    for name, (child, grandchild, kind) in _BATCHED_SUBMODULES.items():
        module = children[child] if grandchild is None else children[child]._modules[grandchild]
        if type(module) is not kind:
            return None
        modules.append(module)
        own = module._parameters
        if own["weight"] is None or own["bias"] is None:  # an affine-free norm or a bias-free projection
            return None
        params[name + ".weight"], params[name + ".bias"] = own["weight"], own["bias"]
    if any(m._forward_hooks or m._forward_pre_hooks for m in modules):
        return None
    norm, mlp_norm = children["attn_norm"], children["mlp_norm"]
    signature = (
        attn.num_heads,
        attn.head_dim,
        params["mlp.fc_in.weight"].shape,
        type(act),
        getattr(act, "approximate", None),
        norm.eps,
        mlp_norm.eps,
        attn.dropout,
        children["resid_dropout"].p,
        mlp._modules["dropout"].p,
        params["attn_norm.weight"].dtype,
        params["attn_norm.weight"].device,
        layer.training,
    )
    return signature, params


def _stack_parameters(params: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One group's parameters stacked over its layers, for `torch.baddbmm`: projection weights `(S, d_in, d_out)`,
    biases `(S, 1, d_out)`.

    Each LayerNorm's affine map is folded into the projection that reads it: ``(n * g + b) W + c`` is
    ``n (g W) + (b W + c)`` for the normalised input ``n``, so the batched layer needs no per-stream scale and shift
    of the activations (two operator calls fewer per layer; the fold itself is one product per weight, on the
    weights, which are smaller than a training batch's activations and kept between calls without gradients).
    """

    def stack(name: str) -> torch.Tensor:
        first = params[0][name]
        if first.dim() == 2:  # a projection (out, in): stack the transposes, (S, in, out)
            return torch.stack([row[name].t() for row in params])
        return torch.stack([row[name] for row in params])[:, None, :]  # a norm weight or a bias: (S, 1, d)

    stacked = {
        name: stack(name)
        for name in ("attn.out_proj.weight", "attn.out_proj.bias", "mlp.fc_out.weight", "mlp.fc_out.bias")
    }
    for norm, proj in (("attn_norm", "attn.qkv_proj"), ("mlp_norm", "mlp.fc_in")):
        weight, gain, shift = stack(proj + ".weight"), stack(norm + ".weight"), stack(norm + ".bias")
        stacked[proj + ".weight"] = gain.transpose(1, 2) * weight  # (S, d, 1) * (S, d, out)
        stacked[proj + ".bias"] = torch.baddbmm(stack(proj + ".bias"), shift, weight)  # (S, 1, out)
    return stacked


def batched_stream_weights(
    groups: list[list[nn.Module]], store: ParameterCache | None = None
) -> list[dict[str, torch.Tensor]] | None:
    """The stacked parameters of every group of stream layers (a group: one layer of each stream at one depth),
    for `batched_stream_layer`; ``None`` when some group cannot run as one batched layer (layers of different
    shapes or kinds, fewer than two streams, hooks, gradient checkpointing), which then runs one layer at a time.

    Within one generation and without gradients the stacks of all groups are kept in ``store`` until a parameter
    changes (`ParameterCache`: one check per call for the whole model); otherwise they are stacked on every call
    (with gradients, so that gradients reach every stream's own parameters).
    """
    params = []
    for layers in groups:
        if len(layers) < 2:
            return None
        found = [_batchable_layer(layer) for layer in layers]
        if None in found or any(f[0] != found[0][0] for f in found[1:]):
            return None
        if layers[0].training and any(getattr(layer, "gradient_checkpointing", False) for layer in layers):
            return None
        params.append([f[1] for f in found])

    def build() -> list[dict[str, torch.Tensor]]:
        return [_stack_parameters(rows) for rows in params]

    if store is None:
        return build()
    key = ("stream_layers", tuple(id(layer) for layers in groups for layer in layers))
    return store.get(key, [p for rows in params for row in rows for p in row.values()], build)


def batched_stream_layer(
    weights: dict[str, torch.Tensor],
    first: StreamLayer,
    x: torch.Tensor,
    attention_mask: torch.Tensor | None,
    cache=None,
) -> torch.Tensor:
    """One layer of every stream as **one** batched layer: `(S, batch, tokens, d)` in, the same out.

    ``weights`` is one group of `batched_stream_weights`; ``first`` the group's first layer, whose settings (heads,
    epsilons, dropout, activation, training mode) every layer of the group shares and whose cache slot holds all
    streams' keys and values, ``(batch, S * num_heads, tokens, head_dim)``. Every projection is a single
    `torch.baddbmm` over the stacked per-stream weights and every stream's heads sit side by side in one attention
    call: same parameters and values (up to float rounding) as running the layers one by one, a fraction of the
    operator calls, which is what a decoding step with a handful of tokens pays for.
    """
    num_streams, batch, tokens, hidden = x.shape
    attn = first.attn
    heads, head_dim, training = attn.num_heads, attn.head_dim, first.training
    w = weights
    x = x.view(num_streams, batch * tokens, hidden)  # (S, B*T, d)
    h = F.layer_norm(x, (hidden,), eps=first.attn_norm.eps)  # the norms' affine maps are in the projections
    qkv = torch.baddbmm(w["attn.qkv_proj.bias"], h, w["attn.qkv_proj.weight"])  # (S, B*T, 3d)
    qkv = qkv.view(num_streams, batch, tokens, 3, heads, head_dim).permute(3, 1, 0, 4, 2, 5)
    q, k, v = qkv.reshape(3, batch, num_streams * heads, tokens, head_dim).unbind(0)  # (B, S*nh, T, hd)
    if cache is not None:
        k, v = cache.update(k, v, attn.layer_idx)
    y = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attention_mask, dropout_p=attn.dropout if training else 0.0
    )  # (B, S*nh, T, hd)
    y = y.view(batch, num_streams, heads, tokens, head_dim).permute(1, 0, 3, 2, 4)
    y = torch.baddbmm(
        w["attn.out_proj.bias"], y.reshape(num_streams, batch * tokens, hidden), w["attn.out_proj.weight"]
    )
    x = x + (F.dropout(y, first.resid_dropout.p) if training else y)
    h = F.layer_norm(x, (hidden,), eps=first.mlp_norm.eps)
    h = first.mlp.act(torch.baddbmm(w["mlp.fc_in.bias"], h, w["mlp.fc_in.weight"]))  # (S, B*T, d_ff)
    h = torch.baddbmm(w["mlp.fc_out.bias"], h, w["mlp.fc_out.weight"])
    x = x + (F.dropout(h, first.mlp.dropout.p) if training else h)
    return x.view(num_streams, batch, tokens, hidden)


def stream_attention_mask(
    attention_mask: torch.Tensor | None,
    query_length: int,
    key_length: int,
    causal: bool,
    device: torch.device,
) -> torch.Tensor | None:
    """Boolean SDPA mask `(batch or 1, 1, query_length, key_length)`, ``True`` = may attend.

    ``attention_mask`` is the usual 2-D padding mask over all ``key_length`` positions (past + current).
    Rows that would attend to nothing (queries at padding positions) attend everywhere instead, which keeps
    SDPA free of NaNs; those positions are padding and are never read.

    ``None`` (attend everywhere) when nothing is masked: no padding and either not causal or a single query, which
    is the last position (every cached decoding step); SDPA then skips the mask altogether.
    """
    mask = None
    if attention_mask is not None:
        if attention_mask.shape[-1] != key_length:
            raise ValueError(
                f"attention_mask covers {attention_mask.shape[-1]} positions, expected {key_length}"
            )
        if not eager_checks() or not bool(attention_mask.all()):
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, K)
    if causal and query_length > 1:
        past = key_length - query_length
        q_pos = torch.arange(past, key_length, device=device)[:, None]
        causal_mask = (torch.arange(key_length, device=device)[None, :] <= q_pos)[None, None]  # (1,1,Q,K)
        mask = causal_mask if mask is None else (mask & causal_mask)
    if mask is None:
        return None
    mask = mask.expand(mask.shape[0], 1, query_length, key_length)
    return mask | ~mask.any(-1, keepdim=True)


_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


def check_backbone_tokenizer(tokenizer, backbone_name_or_path: str, backbone_vocab_size: int) -> None:
    """A processor's tokenizer must number tokens as the backbone's own tokenizer does: the semantic stream's
    embedding row ``i`` was trained for the backbone's token ``i``. Compared entry by entry when the backbone
    ships a tokenizer; otherwise a tokenizer smaller than the backbone's vocabulary is refused (it cannot be the
    backbone's). Tokens added after the backbone's vocabulary are fine."""
    own = None
    folder = Path(backbone_name_or_path)
    # a local folder without tokenizer files has no tokenizer (AutoTokenizer would build an empty one)
    if not folder.is_dir() or any((folder / name).is_file() for name in _TOKENIZER_FILES):
        try:
            own = AutoTokenizer.from_pretrained(backbone_name_or_path)
        except (OSError, ValueError):  # a Hub id without tokenizer files, or offline
            own = None
    if own is not None:
        ours = tokenizer.get_vocab()
        wrong = sorted(t for t, i in own.get_vocab().items() if ours.get(t) != i)
        if wrong:
            raise ValueError(
                f"The processor's tokenizer numbers tokens differently from {backbone_name_or_path}'s own tokenizer "
                f"({len(wrong)} of {len(own)} entries differ, e.g. {wrong[:3]}): build the processor from the "
                "backbone's tokenizer (`MultiStreamProcessor.from_tokenizer(backbone, ...)`)"
            )
    elif len(tokenizer) < backbone_vocab_size:
        raise ValueError(
            f"The processor's tokenizer has {len(tokenizer)} entries, fewer than the {backbone_vocab_size} of "
            f"{backbone_name_or_path}'s vocabulary: it is not the backbone's tokenizer"
        )
