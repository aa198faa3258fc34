"""The multi-stream stack, shared by every model family: the streams, the layer loop, the fusion strategies, the
readout.

A family keeps only its *semantic adapter* (how its backbone embeds tokens and runs one layer, its masks and cache)
and its heads; everything else is here, written once. The loop reads like the design::

    hidden = semantic.embed(fusion.semantic_inputs_embeds(words, slots))  # early fusion adds to the word embeddings
    z, others = hidden, slots                                             # z_0 = the semantic embedding output
    for layer in range(num_layers):
        hidden = semantic.layer(layer, hidden)                            # the backbone's own block
        if layer is the k-th integration point:
            others = stream_layers[k](others)                             # each stream's own block ("raw" output)
            z = fusion.integrate(k, [hidden, *others], z)                 # LI / DM
    representation = fusion.readout(hidden, others, z)                    # the heads read this

`integration_layers` means the same in every family: the *integration points*, the backbone layers after which the
streams are integrated; every non-semantic stream runs one layer per point.

The fusion strategies (``config.integration_type``) are small interchangeable classes chosen from `FUSIONS`:
``"none"`` (one stream), ``"early"``, ``"concat"``, ``"li"`` / ``"dm"``. With ``integration_init="backbone"`` every
one of them starts as the backbone: the gates of LI / DM are at zero (`integration.py`), concat's map starts as
``[I, 0]``, early fusion's projections at zero.

Only relative imports of siblings and public torch / transformers API: this module is copied into every
checkpoint as remote code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .configuration_multistream_common import SEMANTIC, STREAM_REGISTRY
from .integration import DirectMixing, LinearIntegration, build_integration
from .modeling_multistream_common import (
    ParameterCache,
    StreamEncoder,
    StreamTables,
    batched_stream_layer,
    batched_stream_weights,
    resolve_stream_ids,
)


class ZeroInitLinear(nn.Linear):
    """A bias-free linear that starts at zero (a new path that does nothing at step 0)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=False)

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)


class ConcatReadout(nn.Linear):
    """``Linear(concat of the streams' final outputs)`` to the backbone's width. Starting as the backbone, its
    weight is ``[I, 0]`` (the semantic stream's output passes, the others enter through zeros) and its bias 0."""

    def __init__(self, in_features: int, out_features: int, reference_width: int | None) -> None:
        self.reference_width = reference_width  # None: the generic initialisation ("mix")
        super().__init__(in_features, out_features)

    def reset_parameters(self) -> None:
        if self.reference_width is None:
            return super().reset_parameters()
        with torch.no_grad():
            self.weight.zero_()
            self.weight[:, : self.reference_width].copy_(torch.eye(self.out_features, self.reference_width))
            self.bias.zero_()


# --------------------------------------------------------------------------------------------- fusion strategies
class Fusion:
    """How a multi-stream model combines its streams: one subclass per ``integration_type`` (see `FUSIONS`).

    Holds no state: `build` adds the fusion's modules to the model (``integration``, ``final_norm``); the other
    methods are the steps of the loop, given the model. ``others`` are the non-semantic streams' states in the order
    of `config.non_semantic_streams` (a `(S, B, T, d)` stack when they run as one batched layer, else a list).
    """

    runs_stream_layers = True

    def build(self, model: MultiStreamStackMixin, config) -> None:
        """Add this fusion's modules to ``model``."""

    def semantic_inputs_embeds(self, model, word_embeds: torch.Tensor, slots: dict[str, torch.Tensor]):
        """The semantic stream's input embeddings `(B, T, H)` (before positions, token types and norm)."""
        return word_embeds

    def integrate(self, model, point: int, hidden, others, z, return_weights: bool, carried=None):
        """The integrated state after integration point ``point`` and the stream weights (or ``None``). ``carried``
        (models that start as the backbone): ``z - hidden`` at the previous point, the integrated pathway's
        deviation from the backbone so far."""
        return z, None

    def readout(self, model, hidden, others, z) -> torch.Tensor:
        """The representation the heads read, `(B, T, output_hidden_size)` (before the backbone's final norm)."""
        return hidden


def _final_norm(model, config, width: int) -> None:
    """The integrated pathway's final LayerNorm: only when starting as a mixture ("mix") in a family whose backbone
    has no final norm of its own (BERT is post-LN; GPT-2 reads everything through its `ln_f`)."""
    if config.integration_init == "mix" and not model.semantic_has_final_norm:
        model.final_norm = nn.LayerNorm(width, eps=getattr(config, config.layer_norm_eps_attribute))


def _normed(model, x: torch.Tensor) -> torch.Tensor:
    return model.final_norm(x) if getattr(model, "final_norm", None) is not None else x


class SingleStream(Fusion):
    """``"none"``: one stream, no integration; the backbone alone is ``streams=["semantic"]``. A non-semantic
    stream's output is a pre-LayerNorm residual state, so it gets a final LayerNorm."""

    def build(self, model, config):
        if config.streams[0] != SEMANTIC:
            model.final_norm = nn.LayerNorm(
                config.output_hidden_size, eps=getattr(config, config.layer_norm_eps_attribute)
            )

    def readout(self, model, hidden, others, z):
        return hidden if hidden is not None else model.final_norm(others[0])


class EarlyFusion(Fusion):
    """``"early"``: ``inputs_embeds + sum_s P_s slot_s`` feeds the backbone; only the backbone layers run. ``P_s``
    are bias-free and start at zero, so the model starts as the backbone."""

    runs_stream_layers = False

    def build(self, model, config):
        width = getattr(config, config.hidden_size_attribute)
        model.integration = nn.ModuleDict(
            {s: ZeroInitLinear(config.stream_hidden_size, width) for s in config.non_semantic_streams}
        )

    def semantic_inputs_embeds(self, model, word_embeds, slots):
        for name, proj in model.integration.items():
            word_embeds = word_embeds + proj(slots[name])  # (B, T, H)
        return word_embeds


class ConcatFusion(Fusion):
    """``"concat"``: every stream runs its layers without integration; the heads read a linear map of the
    concatenation of the streams' final outputs (``[I, 0]`` at the start, see `ConcatReadout`)."""

    def build(self, model, config):
        width = getattr(config, config.hidden_size_attribute)
        reference = config.stream_widths[SEMANTIC] if config.integration_init == "backbone" else None
        model.integration = ConcatReadout(sum(config.stream_widths.values()), width, reference)
        _final_norm(model, config, width)

    def readout(self, model, hidden, others, z):
        return _normed(model, model.integration(torch.cat([hidden, *others], dim=-1)))  # (B, T, H)


class LayerwiseIntegration(Fusion):
    """``"li"`` / ``"dm"``: ``z = integration[k]([hidden, *others], z)`` at every integration point ``k``; ``z_0``
    is the semantic embedding output; the heads read the last ``z``."""

    def build(self, model, config):
        model.integration = nn.ModuleDict(
            {
                str(point): build_integration(
                    config.integration_type,
                    config.stream_widths,
                    getattr(config, config.hidden_size_attribute),
                    alpha_granularity=config.alpha_granularity,
                    activation=config.integration_activation,
                    recurrent=config.integration_recurrent,
                    layer_norm_eps=getattr(config, config.layer_norm_eps_attribute),
                    alpha_init=config.dm_alpha_init,
                    init_std=config.initializer_range,
                    gated=config.integration_init == "backbone",
                )
                for point in range(len(config.integration_layers))
            }
        )
        _final_norm(model, config, getattr(config, config.hidden_size_attribute))

    def integrate(self, model, point, hidden, others, z, return_weights, carried=None):
        out = model.integration[str(point)]([hidden, *others], z, return_weights=return_weights)
        if (
            carried is not None
        ):  # gated: the deviations of the earlier points ride along with the backbone's state
            return out.integrated + carried, out.weights
        return out.integrated, out.weights  # (B, T, H), (B, T, S)

    def readout(self, model, hidden, others, z):
        return _normed(model, z)


FUSIONS: dict[str, Fusion] = {
    "none": SingleStream(),
    "early": EarlyFusion(),
    "concat": ConcatFusion(),
    "li": LayerwiseIntegration(),
    "dm": LayerwiseIntegration(),
}


# ----------------------------------------------------------------------------------------------------- the stack
_PATCHES_HINT = (
    ": the vision stream reads an image encoder's patch tokens; build it with `MultiStreamVisionEncoderDecoder` "
    "(modeling_multistream_vision.py), whose decoder is a `MultiStreamGPT2Config` with 'vision' in `streams`"
)


@dataclass
class StackOutput:
    """What the loop returns to the family: the representation the heads read (before the backbone's final norm),
    the semantic stream's hidden states (if asked) and the stream weights `(points, B, T, S)` (if asked)."""

    representation: torch.Tensor
    hidden_states: list[torch.Tensor] | None
    stream_weights: torch.Tensor | None


class MultiStreamStackMixin:
    """The stack, mixed into a family's base model (a `PreTrainedModel`). The family implements the semantic adapter:

    * `semantic_has_final_norm` (class attribute): whether the backbone reads its output through a final norm of its
      own (GPT-2's ``ln_f``), applied by the family after the readout;
    * `semantic_word_embeddings()`: the backbone's word embedding module;
    * its forward: embeds, builds its masks / cache and calls `run_stack` with a function that runs one backbone
      layer.

    State-dict keys: ``streams.<name>.*`` (the non-semantic streams; BERT also keeps its backbone there, as
    ``streams.semantic``), ``integration.*``, ``final_norm.*``, ``stream_tables.<name>``.
    """

    semantic_has_final_norm: bool = False
    # the `STREAM_REGISTRY` kinds this stack builds (`build_stream`); the vision decoder adds "patches"
    buildable_stream_kinds: tuple[str, ...] = ("slots",)

    # --------------------------------------------------------------------------------------------------- building
    def build_stack(
        self, config, semantic: dict[str, nn.Module] | None = None, cache_offset: int = 0
    ) -> None:
        """Build the streams, the stream tables and the fusion's modules. ``semantic`` (BERT: ``{"semantic":
        BertModel}``) is put first into ``self.streams``; ``cache_offset`` numbers the stream layers' KV-cache slots
        after the backbone's."""
        config.validate_multistream_fields()  # fields may have been edited after the config was built
        self.fusion = FUSIONS[config.integration_type]
        points = config.integration_layers
        self._integration_point = {
            layer: k for k, layer in enumerate(points)
        }  # backbone layer -> point index
        num_stream_layers = len(points) if self.fusion.runs_stream_layers else 0
        streams = dict(semantic or {})
        offset = cache_offset
        for name in config.non_semantic_streams:
            spec = STREAM_REGISTRY[name]
            if spec.kind not in self.buildable_stream_kinds:
                raise ValueError(
                    f"Stream {name!r} (kind {spec.kind!r}) cannot be built by {type(self).__name__}, which builds "
                    f"{list(self.buildable_stream_kinds)} streams"
                    + (_PATCHES_HINT if spec.kind == "patches" else "")
                )
            streams[name] = self.build_stream(name, config, num_stream_layers, offset)
            offset += getattr(streams[name], "num_cache_layers", num_stream_layers)
        self.num_cache_layers = offset
        self.streams = nn.ModuleDict(streams)
        self._context_streams = [n for n, m in streams.items() if getattr(m, "reads_context", False)]
        self.stream_tables = StreamTables(config.vocab_size, config.slot_sizes) if config.slot_sizes else None
        self.fusion.build(self, config)
        # `batched_stream_weights`' stacked weights, kept within one generation (see `ParameterCache`)
        self._stacked_stream_weights = ParameterCache()

    def build_stream(self, name: str, config, num_layers: int, layer_idx_offset: int) -> nn.Module:
        """One non-semantic stream's module, with ``num_layers`` layers (one per integration point) whose KV-cache
        slots start at ``layer_idx_offset``: a `StreamEncoder` for a ``"slots"`` stream. A family that builds more
        kinds (`buildable_stream_kinds`) overrides this; a module with an attribute ``num_cache_layers`` says how
        many KV-cache slots it uses (else one per layer)."""
        return StreamEncoder(
            vocab_size=config.stream_vocab_sizes[name],
            slot_size=config.slot_sizes[name],
            hidden_size=config.stream_hidden_size,
            num_layers=num_layers,
            num_heads=config.stream_num_heads,
            intermediate_size=config.stream_intermediate_size,
            max_position_embeddings=getattr(config, config.max_positions_attribute),
            dropout=config.stream_dropout,
            layer_norm_eps=getattr(config, config.layer_norm_eps_attribute),
            layer_idx_offset=layer_idx_offset,
        )

    def context_streams(self) -> list[str]:
        """The non-semantic streams fed by a per-call *context* instead of a slot embedding (the vision stream reads
        the encoder's patch tokens): their modules say so with ``reads_context = True``. Empty for the text
        families."""
        return self._context_streams

    def init_stack_weights(self, module: nn.Module) -> None:
        """The stack's own starts, for `_init_weights` (runs after the generic initialisation of the children)."""
        if isinstance(module, (LinearIntegration, DirectMixing, ZeroInitLinear, ConcatReadout)):
            module.reset_parameters()

    # ---------------------------------------------------------------------------------------------------- inputs
    def stream_ids(
        self,
        input_ids: torch.LongTensor | None,
        given: dict[str, torch.LongTensor | None],
        shape: tuple[int, int],
    ) -> dict[str, torch.LongTensor]:
        """Every slot stream's ids `(B, T, slot)`: given explicitly (validated) or gathered from the tables."""
        if not self.config.non_semantic_streams:
            return {}
        if self.config.stream_alignment == "word":
            missing = [STREAM_REGISTRY[n].input_key for n in self.config.slot_sizes if given.get(n) is None]
            if missing:
                raise ValueError(
                    f"This model reads word-aligned streams (stream_alignment='word'), which its per-token tables "
                    f"cannot derive from input_ids: pass {missing} from the processor (processor(texts, ...))"
                )
        ids = resolve_stream_ids(self.stream_tables, input_ids, given, self.config.stream_vocab_sizes)
        for name, value in ids.items():
            if tuple(value.shape[:2]) != tuple(shape):
                raise ValueError(
                    f"`{STREAM_REGISTRY[name].input_key}` has (batch, tokens) = {tuple(value.shape[:2])}, the input "
                    f"has {tuple(shape)}"
                )
        return ids

    def embed_streams(
        self, stream_ids: dict[str, torch.LongTensor], position_ids: torch.LongTensor
    ) -> dict[str, torch.Tensor]:
        """Every non-semantic stream's slot embedding `(B, T, d_s)`."""
        return {
            name: self.streams[name].embeddings(ids, position_ids.expand(ids.shape[0], -1))
            for name, ids in stream_ids.items()
        }

    def stream_layer_groups(self) -> list[list[nn.Module]]:
        """The slot streams' layers at each integration point (context streams run apart, see `run_stack`)."""
        contextual = self.context_streams()
        names = [n for n in self.config.non_semantic_streams if n not in contextual]
        if not self.fusion.runs_stream_layers or not names:
            return []
        return [
            [self.streams[n].layers[k] for n in names] for k in range(len(self.config.integration_layers))
        ]

    # ------------------------------------------------------------------------------------------------------ loop
    def run_stack(
        self,
        hidden: torch.Tensor | None,
        slots: dict[str, torch.Tensor],
        semantic_layer,
        stream_mask: torch.Tensor | None,
        cache=None,
        output_hidden_states: bool = False,
        output_stream_weights: bool = False,
        stream_context: dict | None = None,
    ) -> StackOutput:
        """The layer loop: each backbone layer, and at each integration point each stream's layer, then the fusion.

        Args:
            hidden: the semantic stream's embedding output `(B, T, H)` (``None`` without a semantic stream).
            slots: every slot stream's slot embedding `(B, T, d_s)`.
            semantic_layer: ``semantic_layer(index, hidden) -> hidden``, one backbone layer (the family's adapter).
            stream_mask: the boolean SDPA mask of the stream layers (`stream_attention_mask`), or ``None``.
            cache: the KV cache the stream layers share with the backbone (causal families), or ``None``.
            stream_context: ``{name: tuple of positional arguments}`` for the context streams (`context_streams`,
                e.g. the vision stream: its patch tokens, their mask and the cross-attention cache). Such a stream
                starts at ``streams[name].initial_state(hidden)`` and its layer at point k is called as
                ``layer(state, hidden_k, *context)``, ``hidden_k`` the semantic stream's state after that point's
                backbone layer (read per token, so a causal model stays causal; tensors are positional so that
                gradient checkpointing passes their gradients).
        """
        config, fusion = self.config, self.fusion
        names = config.non_semantic_streams
        contextual = self.context_streams()
        if contextual:
            missing = [n for n in contextual if n not in (stream_context or {})]
            if missing:
                raise ValueError(f"The {missing} stream(s) need their context (e.g. `encoder_hidden_states`)")
            if hidden is None:
                raise ValueError(
                    f"The {contextual} stream(s) read the semantic stream, which this model lacks"
                )
        slot_names = [n for n in names if n not in contextual]
        groups = self.stream_layer_groups()
        # the slot streams' layers at each point as one batched layer, their states stacked from here to the end
        plan = batched_stream_weights(groups, self._stacked_stream_weights) if groups else None
        others = (
            torch.stack([slots[n] for n in slot_names])
            if plan is not None
            else [slots[n] for n in slot_names]
        )
        read = {n: self.streams[n].initial_state(hidden) for n in contextual}  # the context streams' states

        def states() -> list[torch.Tensor]:  # every non-semantic stream's state, in the order of `names`
            if not read:
                return list(others)
            by_name = dict(zip(slot_names, list(others), strict=True)) | read
            return [by_name[n] for n in names]

        # starting as the backbone, z = hidden + the sum of every point's gated contribution: each point's gate sees
        # the readout directly (all of them receive gradient at step 0), not only through the next point's gate
        z, previous_hidden = hidden, hidden
        gated = config.integration_init == "backbone" and isinstance(fusion, LayerwiseIntegration)
        traced = hidden if hidden is not None else (others[0] if names else None)
        all_hidden = [traced] if output_hidden_states else None
        weights = []
        for layer in range(config.num_layers):
            if hidden is not None:
                hidden = semantic_layer(layer, hidden)
            point = self._integration_point.get(layer)
            if point is not None and groups:
                if plan is not None:
                    others = batched_stream_layer(plan[point], groups[point][0], others, stream_mask, cache)
                else:
                    others = [
                        g(x, stream_mask, cache=cache) for g, x in zip(groups[point], others, strict=True)
                    ]
            if point is not None and fusion.runs_stream_layers:
                for n in contextual:  # e.g. every token reads the patches with its semantic state
                    read[n] = self.streams[n].layers[point](read[n], hidden, *stream_context[n])
            if point is not None:
                carried = z - previous_hidden if gated else None
                z, point_weights = fusion.integrate(
                    self, point, hidden, states(), z, output_stream_weights, carried
                )
                previous_hidden = hidden
                if point_weights is not None:
                    weights.append(point_weights)  # (B, T, S)
            if all_hidden is not None:
                all_hidden.append(hidden if hidden is not None else others[0])
        representation = fusion.readout(self, hidden, states(), z)
        return StackOutput(
            representation=representation,
            hidden_states=all_hidden,
            stream_weights=torch.stack(weights) if weights else None,  # (points, B, T, S)
        )

    def scope_kept_weights(self, cache, past_length: int) -> None:
        """Derived weights (the stacked stream layers) are reused within one generation, the calls that continue the
        same cache; its first call, and every call without a cache, build them afresh."""
        self._stacked_stream_weights.scope(cache, fresh=past_length == 0)


def select_hidden_states(states: tuple[torch.Tensor, ...], selection) -> tuple[torch.Tensor, ...]:
    """`output_hidden_states` as transformers 5.x models take it: ``True`` keeps every state (the embedding output and
    each layer's), an index or a list of indices (negative ones count from the end) keeps those, in order."""
    if isinstance(selection, bool):
        return states
    indices = [selection] if isinstance(selection, int) else list(selection)
    count = len(states)
    bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, int) or not -count <= i < count]
    if bad:
        raise ValueError(
            f"`output_hidden_states` selects {bad}, outside the {count} hidden states [-{count}, {count})"
        )
    return tuple(states[i] for i in sorted({i % count for i in indices}))


# -------------------------------------------------------------------------- what every family's PreTrainedModel shares
def init_stack_module(module: nn.Module) -> None:
    """The stack's own starts, for `_init_weights` (after the generic initialisation of the module's children).
    Weights loaded from a checkpoint (`_is_hf_initialized`) are never re-initialised."""
    if isinstance(module, StreamTables):
        for name in module.slot_sizes:
            if not getattr(getattr(module, name), "_is_hf_initialized", False):
                getattr(module, name).zero_()
    elif isinstance(module, (LinearIntegration, DirectMixing, ZeroInitLinear, ConcatReadout)):
        if not any(getattr(p, "_is_hf_initialized", False) for p in module.parameters()):
            module.reset_parameters()


class MultiStreamPreTrainedMixin:
    """For every family's `PreTrainedModel`: the stream tables, `resize_token_embeddings` that keeps them in step,
    the config a processor determines, and loading that refuses what would silently change a model's outputs."""

    def semantic_stream(self) -> nn.Module:
        """The semantic stream's backbone module (`BertModel` / `GPT2Model`)."""
        raise NotImplementedError

    @torch.no_grad()
    def set_stream_tables(self, tables: dict[str, torch.Tensor]) -> None:
        """Copy alignment tables (`processor.stream_tables`: ``{stream: LongTensor[rows, slot]}``) into the buffers.

        Tables with fewer rows than `config.vocab_size` (a tokenizer smaller than its embedding matrix) are padded
        with all-zero slots: those ids are never produced by the tokenizer. A model without non-semantic streams has
        no tables, and the call does nothing.
        """
        base = self.base_model
        if base.stream_tables is None:  # a single-stream model (e.g. the backbone baseline): nothing to copy
            return
        vocab_size = self.config.vocab_size
        padded = {}
        for name in self.config.slot_sizes:  # the slot streams (a vision stream has no table)
            if name not in tables:
                raise ValueError(f"Stream table {name!r} missing; got tables for {sorted(tables)}")
            table = torch.as_tensor(tables[name])
            if table.dim() == 2 and table.shape[0] < vocab_size and not table.is_floating_point():
                table = torch.cat([table, table.new_zeros(vocab_size - table.shape[0], table.shape[1])])
            padded[name] = table
        base.stream_tables.load_tables(padded)

    def resize_token_embeddings(
        self,
        new_num_tokens: int | None = None,
        pad_to_multiple_of: int | None = None,
        mean_resizing: bool = True,
    ) -> nn.Embedding:
        """As `PreTrainedModel.resize_token_embeddings`, and the stream tables follow the vocabulary: new rows get
        all-zero (`<pad>`) slots until `set_stream_tables` loads tables for the new tokens; removed rows go."""
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

    @classmethod
    def backbone_config_overrides(cls, backbone_config, processor, overrides: dict) -> dict:
        """The config fields of a model built from a backbone: the processor's stream sizes and vocabulary (added
        tokens grow it), then the caller's overrides."""
        values: dict = {}
        if processor is not None:
            values.update(cls.config_class.processor_overrides(processor))
            values["vocab_size"] = max(backbone_config.vocab_size, len(processor.tokenizer))
        values.update(overrides)
        return values

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """As `PreTrainedModel.from_pretrained`, and a checkpoint that would silently change the model's outputs is
        refused with a `ValueError` naming the tensor: missing stream tables (they would be all-zero: every stream id
        `<pad>`), and weights or buffers that are not finite (corrupted data)."""
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        missing_tables = sorted(k for k in info.get("missing_keys", ()) if "stream_tables." in k)
        if missing_tables and len(info.get("missing_keys", ())) < len(
            model.state_dict()
        ):  # not a fresh model
            raise ValueError(
                f"The checkpoint has no stream tables {missing_tables}: the model would derive every stream id as "
                "<pad>. Save the model with its tables (`model.set_stream_tables(processor.stream_tables)`)."
            )
        for name, tensor in (*model.named_parameters(), *model.named_buffers()):
            if (
                tensor.is_floating_point()
                and tensor.device.type != "meta"
                and not torch.isfinite(tensor).all()
            ):
                raise ValueError(
                    f"The checkpoint's tensor {name!r} holds non-finite values (NaN or inf): corrupted?"
                )
        return (model, info) if wants_info else model
