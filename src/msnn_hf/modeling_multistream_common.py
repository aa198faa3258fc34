"""Parts shared by every multi-stream model family: stream tables, slot embeddings and stream layers.

A non-semantic stream (phonetic, morphological) sees one *slot* per semantic token: the ids of that
token's phonemes ``[B, T, P]`` or morphs ``[B, T, M]``. `SlotEmbedding` turns a slot into one vector per
token; `StreamLayer` is a narrow pre-LayerNorm transformer block (``x = x + attn(ln(x))``,
``x = x + mlp(ln(x))``) whose output is the stream's *raw* residual state, handed to the integration.

Only relative imports of siblings and public torch / transformers API: this module is copied into every
checkpoint as remote code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoTokenizer
from transformers.modeling_layers import GradientCheckpointingLayer

from .integration import ParameterCache

SEMANTIC = "semantic"
STREAM_INPUT_KEYS: dict[str, str] = {"phonetic": "phonetic_ids", "morphological": "morph_ids"}
TEXT_STREAMS: tuple[str, ...] = (SEMANTIC, *STREAM_INPUT_KEYS)

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
        for name, slot in self.slot_sizes.items():
            self.register_buffer(name, torch.zeros(vocab_size, slot, dtype=torch.long), persistent=True)

    @torch.no_grad()
    def load_tables(self, tables: dict[str, torch.Tensor]) -> None:
        for name in self.slot_sizes:
            if name not in tables:
                raise ValueError(f"Stream table {name!r} missing; got tables for {sorted(tables)}")
            table = torch.as_tensor(tables[name], dtype=torch.long)
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

    def forward(self, input_ids: torch.LongTensor) -> dict[str, torch.LongTensor]:
        """Stream ids for every stream: ``{name: (batch, tokens, slot)}``."""
        return {name: F.embedding(input_ids, getattr(self, name)) for name in self.slot_sizes}


class StreamTablesVocabularyMixin:
    """For the multi-stream `PreTrainedModel`s: `resize_token_embeddings` that keeps the stream tables (and the
    semantic stream's own config) in step with the vocabulary. The family says where its semantic stream is."""

    def semantic_stream(self) -> nn.Module:
        """The semantic stream's backbone module (`BertModel` / `GPT2Model`)."""
        raise NotImplementedError

    def resize_token_embeddings(
        self,
        new_num_tokens: int | None = None,
        pad_to_multiple_of: int | None = None,
        mean_resizing: bool = True,
    ) -> nn.Embedding:
        """As `PreTrainedModel.resize_token_embeddings`, and the stream tables follow the vocabulary.

        New vocabulary rows get all-zero (`<pad>`) slots until `set_stream_tables` loads tables for the new tokens
        (e.g. from a processor rebuilt for the extended tokenizer); removed rows are dropped.
        """
        if SEMANTIC not in self.config.streams:
            raise ValueError(
                "resize_token_embeddings resizes the semantic word embeddings; this model has none"
            )
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        vocab_size = embeddings.weight.shape[0]
        self.semantic_stream().config.vocab_size = vocab_size
        if self.base_model.stream_tables is not None:
            self.base_model.stream_tables.resize(vocab_size)
        return embeddings


def resolve_stream_ids(
    tables: StreamTables | None,
    input_ids: torch.LongTensor | None,
    given: dict[str, torch.LongTensor | None],
    vocab_sizes: dict[str, int],
) -> dict[str, torch.LongTensor]:
    """Stream ids to use: explicitly given ids take precedence, the rest are gathered from the tables.

    Validates shape (``(batch, tokens, slot)`` matching ``input_ids``) and range (``[0, vocab)``) with a
    `ValueError` that names the stream, instead of a broadcast or an index error deep inside torch.
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
            ids = derived[name]
        slot = tables.slot_sizes[name] if tables is not None else ids.shape[-1]
        if ids.dim() != 3 or ids.shape[-1] != slot:
            raise ValueError(f"`{key}` must have shape (batch, tokens, {slot}); got {tuple(ids.shape)}")
        if input_ids is not None and tuple(ids.shape[:2]) != tuple(input_ids.shape):
            raise ValueError(
                f"`{key}` has (batch, tokens) = {tuple(ids.shape[:2])} but `input_ids` has {tuple(input_ids.shape)}"
            )
        if ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"`{key}` must be an integer tensor; got {ids.dtype}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise ValueError(
                f"`{key}` holds ids in [{int(ids.min())}, {int(ids.max())}], outside the {name} vocabulary [0, {vocab})"
            )
        resolved[name] = ids.long()
    return resolved


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


def _layer_signature(layer: nn.Module) -> tuple | None:
    """What must agree for `StreamLayer`s to run as one batched layer; ``None`` for anything else."""
    if type(layer) is not StreamLayer:
        return None
    attn, mlp = layer.attn, layer.mlp
    return (
        attn.num_heads,
        attn.head_dim,
        mlp.fc_in.out_features,
        type(mlp.act),
        getattr(mlp.act, "approximate", None),
        layer.attn_norm.eps,
        layer.mlp_norm.eps,
        attn.dropout,
        layer.resid_dropout.p,
        mlp.dropout.p,
        layer.attn_norm.weight.dtype,
        layer.attn_norm.weight.device,
    )


def _layer_parameters(layer: StreamLayer) -> dict[str, torch.Tensor]:
    """The parameters a batched layer stacks, by name (plain attribute reads: this runs at every step)."""
    attn, mlp = layer.attn, layer.mlp
    return {
        "attn_norm.weight": layer.attn_norm.weight,
        "attn_norm.bias": layer.attn_norm.bias,
        "attn.qkv_proj.weight": attn.qkv_proj.weight,
        "attn.qkv_proj.bias": attn.qkv_proj.bias,
        "attn.out_proj.weight": attn.out_proj.weight,
        "attn.out_proj.bias": attn.out_proj.bias,
        "mlp_norm.weight": layer.mlp_norm.weight,
        "mlp_norm.bias": layer.mlp_norm.bias,
        "mlp.fc_in.weight": mlp.fc_in.weight,
        "mlp.fc_in.bias": mlp.fc_in.bias,
        "mlp.fc_out.weight": mlp.fc_out.weight,
        "mlp.fc_out.bias": mlp.fc_out.bias,
    }


def _stacked_parameters(layers: list[StreamLayer], store: ParameterCache | None) -> dict[str, torch.Tensor]:
    """Every `StreamLayer` parameter stacked over the layers, shaped for `torch.baddbmm` / broadcasting:
    norms and biases `(S, 1, d)`, projection weights `(S, d_in, d_out)` (contiguous).

    Without gradients (evaluation, `generate()`) the stacks are kept in ``store`` until a parameter changes
    (`ParameterCache`); with gradients they are stacked on every call, so that gradients reach every stream's own
    parameters.
    """
    params = [_layer_parameters(layer) for layer in layers]

    def build() -> dict[str, torch.Tensor]:
        stacked = {}
        for name, first in params[0].items():
            if first.dim() == 2:  # a projection (out, in): stack the transposes, (S, in, out)
                stacked[name] = torch.stack([row[name].t() for row in params])
            else:  # a norm weight or a bias (d,): (S, 1, d)
                stacked[name] = torch.stack([row[name] for row in params])[:, None, :]
        return stacked

    if store is None:
        return build()
    return store.get(tuple(id(layer) for layer in layers), [p for row in params for p in row.values()], build)


def run_stream_layers(
    layers: list[nn.Module],
    states: list[torch.Tensor],
    attention_mask: torch.Tensor | None,
    cache=None,
    store: ParameterCache | None = None,
) -> list[torch.Tensor]:
    """Run one layer of each non-semantic stream: ``[layers[i](states[i]) for i]``.

    When the layers are `StreamLayer`s of one shape (the usual case: every stream has `stream_hidden_size`), they
    run as **one** batched layer: every projection a single `torch.baddbmm` over the stacked per-stream weights,
    every stream's heads side by side in one attention call. Same parameters, same values (up to float rounding),
    a fraction of the operator calls, which is what a decoding step with a handful of tokens pays for. The KV
    cache then holds all streams' heads in the first layer's slot, ``(batch, S * num_heads, tokens, head_dim)``.
    Layers of different shapes, a single stream, and gradient checkpointing run one by one.

    Args:
        layers: one layer per stream, in the order of ``states``.
        states: each stream's input `(batch, tokens, d_s)`.
        attention_mask: boolean SDPA mask `(batch or 1, 1, tokens, key_length)` shared by the streams, or `None`.
        cache: a `transformers.Cache` (keys and values of every attention layer), or `None`.
        store: the model's `ParameterCache`, where the stacked weights are kept between calls without gradients.

    Returns:
        Every stream's raw output `(batch, tokens, d_s)`, in order.
    """
    signatures = {_layer_signature(layer) for layer in layers}
    checkpointing = any(
        layer.training and getattr(layer, "gradient_checkpointing", False) for layer in layers
    )
    if len(layers) < 2 or None in signatures or len(signatures) > 1 or checkpointing:
        return [layer(x, attention_mask, cache=cache) for layer, x in zip(layers, states, strict=True)]
    first = layers[0]
    training = first.training
    num_streams, heads, head_dim = len(layers), first.attn.num_heads, first.attn.head_dim
    batch, tokens, hidden = states[0].shape
    w = _stacked_parameters(layers, store)
    x = torch.stack(states).view(num_streams, batch * tokens, hidden)  # (S, B*T, d)

    def norm(t: torch.Tensor, module: str, eps: float) -> torch.Tensor:
        return torch.addcmul(w[module + ".bias"], F.layer_norm(t, (hidden,), eps=eps), w[module + ".weight"])

    def linear(t: torch.Tensor, module: str) -> torch.Tensor:
        return torch.baddbmm(w[module + ".bias"], t, w[module + ".weight"])

    qkv = linear(norm(x, "attn_norm", first.attn_norm.eps), "attn.qkv_proj")  # (S, B*T, 3d)
    qkv = qkv.view(num_streams, batch, tokens, 3, heads, head_dim).permute(3, 1, 0, 4, 2, 5)
    q, k, v = qkv.reshape(3, batch, num_streams * heads, tokens, head_dim).unbind(0)  # (B, S*nh, T, hd)
    if cache is not None:
        k, v = cache.update(k, v, first.attn.layer_idx)
    y = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attention_mask, dropout_p=first.attn.dropout if training else 0.0
    )  # (B, S*nh, T, hd)
    y = y.view(batch, num_streams, heads, tokens, head_dim).permute(1, 0, 3, 2, 4)
    y = linear(y.reshape(num_streams, batch * tokens, hidden), "attn.out_proj")  # (S, B*T, d)
    x = x + (F.dropout(y, first.resid_dropout.p) if training else y)
    h = first.mlp.act(linear(norm(x, "mlp_norm", first.mlp_norm.eps), "mlp.fc_in"))  # (S, B*T, d_ff)
    h = linear(h, "mlp.fc_out")
    x = x + (F.dropout(h, first.mlp.dropout.p) if training else h)
    return list(x.view(num_streams, batch, tokens, hidden).unbind(0))  # S x (B, T, d)


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
        if not bool(attention_mask.all()):
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
