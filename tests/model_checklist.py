"""The shared checklist of every multi-stream model family x integration type (tiny random configs, CPU).

Use: subclass `ModelChecklist` in a ``test_*.py`` file (the class name must start with ``Test``) and fill in the
family hooks (`VARIANTS`, `tiny_config`, `prepare_model`, `make_inputs`, ...). Every ``test_*`` method then runs
once per entry of `VARIANTS`; methods decorated with `@all_variants` also run for `BASELINE_VARIANTS`; methods
decorated with `@once` run once for the whole family (e.g. the subprocess remote-code check, which loads every
variant in one interpreter).

Snapshots of state-dict keys and config keys live in ``tests/snapshots/<family>/<variant>.json``; regenerate
them with ``MSNN_UPDATE_SNAPSHOTS=1 pytest tests/test_modeling_<family>.py -k snapshot`` and review the diff: a
renamed module or config field breaks users' checkpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

SNAPSHOT_DIR = Path(__file__).parent / "snapshots"
UPDATE_SNAPSHOTS = os.environ.get("MSNN_UPDATE_SNAPSHOTS") == "1"


def all_variants(test: Callable) -> Callable:
    """Run this check for `BASELINE_VARIANTS` too (forward, save/load, snapshots)."""
    test._checklist_scope = "all"
    return test


def once(test: Callable) -> Callable:
    """Run this check once per family, not per variant (it receives no ``variant`` argument)."""
    test._checklist_scope = "once"
    return test


def open_gates(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give a model's zero-initialised paths (the LI / DM gates, early fusion's projections, concat's zero block)
    random values, as training would: a model that starts as its backbone ignores its streams, and the mechanics
    checks (padding, batching, caches, causality, explicit ids) must see them."""
    from msnn_hf.modeling_multistream_stack import ConcatReadout, ZeroInitLinear

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".blend"):
                p.copy_(torch.randn(p.shape, generator=g))
        for module in model.modules():
            if isinstance(module, (ZeroInitLinear, ConcatReadout)):
                module.weight.add_(0.3 * torch.randn(module.weight.shape, generator=g))
    return model


def assert_same_outputs(first: torch.Tensor, second: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    torch.testing.assert_close(first, second, atol=atol, rtol=1e-4, msg=lambda m: f"{what}: {m}")


class ModelChecklist:
    """Checks shared by every model family. Family hooks (override in the subclass):

    * `FAMILY` (snapshot folder name), `VARIANTS` / `BASELINE_VARIANTS` (``{name: config overrides}``),
    * `HEAD_CLASSES` (every model class to check, the first is the main head) and `AUTO_CLASSES`
      (``{model class: Auto class}``),
    * `tiny_config(**overrides)`, `prepare_model(model, seed)` (e.g. load random stream tables),
    * `make_inputs(config, batch, length, seed)` -> model kwargs (`input_ids`, `attention_mask`, ...),
    * `PADDING_SIDE` (``"right"`` for encoders, ``"left"`` for decoders) and `STREAM_ID_KEYS`,
    * `main_output(output)` -> the tensor compared across runs (default ``output.logits``),
    * `loss_of(output)` -> a scalar to back-propagate (default: mean square of every floating-point output).
    """

    FAMILY: str = ""
    VARIANTS: dict[str, dict[str, Any]] = {}
    BASELINE_VARIANTS: dict[str, dict[str, Any]] = {}
    HEAD_CLASSES: tuple[type, ...] = ()
    AUTO_CLASSES: dict[type, type] = {}
    PADDING_SIDE: str = "right"
    STREAM_ID_KEYS: dict[str, str] = {"phonetic": "phonetic_ids", "morphological": "morph_ids"}
    MAX_POSITIONS: int = 64

    # ------------------------------------------------------------------------------------------ family hooks
    def tiny_config(self, **overrides: Any):
        raise NotImplementedError

    def prepare_model(self, model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
        return model

    def make_inputs(self, config, batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def main_output(self, output) -> torch.Tensor:
        return output.logits

    def loss_of(self, output) -> torch.Tensor:
        """A scalar that depends on every floating-point output (so that e.g. a pooler gets gradients too)."""
        tensors = [v for v in output.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
        return sum(t.float().square().mean() for t in tensors)

    # ------------------------------------------------------------------------------------- parametrisation
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "variant" not in metafunc.fixturenames:
            return
        scope = getattr(metafunc.function, "_checklist_scope", "core")
        names = list(self.VARIANTS) + (list(self.BASELINE_VARIANTS) if scope == "all" else [])
        metafunc.parametrize("variant", names)

    # ------------------------------------------------------------------------------------------------ helpers
    def config_for(self, variant: str, **overrides: Any):
        spec = {**self.VARIANTS, **self.BASELINE_VARIANTS}[variant]
        return self.tiny_config(**{**spec, **overrides})

    def build(
        self, variant: str, head: type | None = None, seed: int = 0, gates_open: bool = True, **overrides: Any
    ):
        """A tiny random model of ``variant``; ``gates_open``: its zero-initialised paths given random values
        (`open_gates`), so that the streams matter; ``False``: the model as built (it starts as its backbone)."""
        torch.manual_seed(seed)
        model = (head or self.HEAD_CLASSES[0])(self.config_for(variant, **overrides))
        model = self.prepare_model(model, seed)
        return (open_gates(model, seed) if gates_open else model).eval()

    def run(self, model, inputs: dict[str, torch.Tensor], **kwargs: Any):
        with torch.no_grad():
            return model(**inputs, **kwargs)

    def stream_names(self, config) -> list[str]:
        return [s for s in config.streams if s in self.STREAM_ID_KEYS]

    # ------------------------------------------------------------------------------------------------- checks
    @all_variants
    def test_forward_every_head(self, variant: str) -> None:
        for head in self.HEAD_CLASSES:
            model = self.build(variant, head)
            inputs = self.make_inputs(model.config, batch=2, length=7)
            output = self.run(model, inputs)
            out = self.main_output(output)
            assert out.shape[0] == 2 and torch.isfinite(out).all(), head.__name__
            as_tuple = self.run(model, inputs, return_dict=False)
            assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], out), head.__name__

    @all_variants
    def test_save_load_round_trip(self, variant: str, tmp_path: Path) -> None:
        for head in self.HEAD_CLASSES:
            model = self.build(variant, head)
            inputs = self.make_inputs(model.config, batch=2, length=7)
            folder = tmp_path / head.__name__
            model.save_pretrained(folder)
            files = {p.name for p in folder.iterdir()}
            assert "model.safetensors" in files, files
            assert not {f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))}, files
            loaded = head.from_pretrained(folder).eval()
            assert_same_outputs(
                self.main_output(self.run(loaded, inputs)),
                self.main_output(self.run(model, inputs)),
                head.__name__,
            )
            for key, value in model.state_dict().items():
                assert torch.equal(value, loaded.state_dict()[key]), (
                    f"{head.__name__}: {key} changed on reload"
                )

    def test_auto_class_loading(self, variant: str, tmp_path: Path) -> None:
        from transformers import AutoConfig

        for head, auto_class in self.AUTO_CLASSES.items():
            model = self.build(variant, head)
            model.save_pretrained(tmp_path / head.__name__)
            config = AutoConfig.from_pretrained(tmp_path / head.__name__)
            assert type(config) is type(model.config)
            loaded = auto_class.from_pretrained(tmp_path / head.__name__).eval()
            assert type(loaded) is head
            inputs = self.make_inputs(model.config, batch=2, length=5)
            assert_same_outputs(
                self.main_output(self.run(loaded, inputs)),
                self.main_output(self.run(model, inputs)),
                head.__name__,
            )

    @once
    def test_remote_code_loading_without_package(self, tmp_path: Path) -> None:
        """Checkpoints load with ``trust_remote_code=True`` in an interpreter where the package cannot be imported.

        One subprocess loads one checkpoint per variant, cycling through the Auto classes (every variant and every
        Auto class is covered once) and compares its output with the in-process model's.
        """
        package = self.HEAD_CLASSES[0].__module__.split(".")[0]
        cases = []
        heads = list(self.AUTO_CLASSES.items())
        for index, variant in enumerate(self.VARIANTS):
            head, auto_class = heads[index % len(heads)]
            model = self.build(variant, head)
            folder = tmp_path / f"{variant}-{head.__name__}"
            model.save_pretrained(folder)
            inputs = self.make_inputs(model.config, batch=2, length=5)
            torch.save(
                {"inputs": inputs, "expected": self.main_output(self.run(model, inputs))},
                folder / "expected.pt",
            )
            auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
            assert auto_class.__name__ in auto_map and "AutoConfig" in auto_map, auto_map
            cases.append((str(folder), auto_class.__name__))
        script = textwrap.dedent(
            f"""
            import importlib.abc, json, sys
            class Block(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path=None, target=None):
                    if name == {package!r} or name.startswith({package!r} + "."):
                        raise ImportError("blocked for the remote-code test: " + name)
            sys.meta_path.insert(0, Block())
            import torch, transformers
            for folder, auto_name in json.loads(sys.argv[1]):
                model = getattr(transformers, auto_name).from_pretrained(folder, trust_remote_code=True).eval()
                assert not type(model).__module__.startswith({package!r}), type(model).__module__
                saved = torch.load(folder + "/expected.pt")
                with torch.no_grad():
                    out = model(**saved["inputs"])
                torch.testing.assert_close(out[0], saved["expected"], atol=1e-5, rtol=1e-4)
            print("remote-ok", {package!r} in sys.modules)
            """
        )
        env = {
            **os.environ,
            "HF_MODULES_CACHE": str(tmp_path / "modules"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": "",
            "OMP_NUM_THREADS": "1",
        }
        result = subprocess.run(
            [sys.executable, "-c", script, json.dumps(cases)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        assert "remote-ok False" in result.stdout, result.stdout

    def test_batch_equals_single(self, variant: str) -> None:
        model = self.build(variant)
        inputs = self.make_inputs(model.config, batch=3, length=6, seed=1)
        batched = self.main_output(self.run(model, inputs))
        for row in range(3):
            single = {k: v[row : row + 1] for k, v in inputs.items()}
            assert_same_outputs(self.main_output(self.run(model, single))[0], batched[row], f"row {row}")

    def test_padding_invariance(self, variant: str) -> None:
        """Padding tokens change nothing at the real tokens (compared as the main head reads them)."""
        model = self.build(variant)
        short = self.make_inputs(model.config, batch=1, length=5, seed=2)
        padded = self.make_inputs(model.config, batch=1, length=9, seed=3)
        padded = self.pad_like(short, padded)
        assert_same_outputs(
            self.comparable(self.run(model, short), 5, 5),
            self.comparable(self.run(model, padded), 5, 9),
            "padded vs unpadded",
        )

    def pad_like(
        self, short: dict[str, torch.Tensor], long: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """``short`` padded to the length of ``long`` (pad positions carry ``long``'s junk, masked out)."""
        length, n = long["input_ids"].shape[1], short["input_ids"].shape[1]
        real = slice(0, n) if self.PADDING_SIDE == "right" else slice(length - n, length)
        padded = {}
        for key, value in long.items():
            value = value.clone()
            if key == "attention_mask":
                value.zero_()
                value[:, real] = 1
            elif key in short:
                value[:, real] = short[key]
            padded[key] = value
        return padded

    def comparable(self, output, n_real: int, length: int) -> torch.Tensor:
        """The part of the main output that must not depend on padding (sequence heads: all of it)."""
        out = self.main_output(output)
        if out.dim() >= 3:  # per-token output: the real positions
            real = slice(0, n_real) if self.PADDING_SIDE == "right" else slice(length - n_real, length)
            return out[:, real]
        return out

    def test_gradient_reaches_every_parameter(self, variant: str) -> None:
        """Starting as the backbone, only the zero-initialised gates (and what they already pass) receive gradient
        at step 0; after one optimiser step every parameter does, and after two every parameter has moved."""
        for head in self.HEAD_CLASSES:
            model = self.build(variant, head, gates_open=False).train()
            inputs = self.make_inputs(model.config, batch=2, length=6, seed=4)
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
            for step in range(2):
                optimizer.zero_grad()
                self.loss_of(model(**inputs)).backward()
                dead = [
                    n
                    for n, p in model.named_parameters()
                    if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
                ]
                if step == 0:
                    gates = [n for n in dead if n.endswith(".blend")]
                    assert not gates, f"{head.__name__}: the gates get no gradient at step 0: {gates}"
                else:
                    assert not dead, f"{head.__name__}: no gradient reaches {dead} after one step"
                optimizer.step()
            still = [
                n
                for n, p in model.named_parameters()
                if p.requires_grad and torch.equal(p.detach(), before[n])
            ]
            assert not still, f"{head.__name__}: not moved after two steps: {still}"

    def test_gradient_checkpointing_equals_normal(self, variant: str) -> None:
        grads = []
        for checkpointing in (False, True):
            model = self.build(variant, seed=5).train()
            if checkpointing:
                if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
                    model.activation_checkpointing_enable()
                    assert model.is_activation_checkpointing
                else:
                    model.gradient_checkpointing_enable()
                    assert model.is_gradient_checkpointing
            inputs = self.make_inputs(model.config, batch=2, length=6, seed=5)
            self.loss_of(model(**inputs)).backward()
            grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        assert grads[0].keys() == grads[1].keys()
        for name in grads[0]:
            assert_same_outputs(grads[1][name], grads[0][name], f"grad of {name}", atol=1e-6)

    def test_stream_weights_shape(self, variant: str) -> None:
        model = self.build(variant)
        config = model.config
        inputs = self.make_inputs(config, batch=2, length=6)
        weights = self.run(model, inputs, output_stream_weights=True).stream_weights
        expected = (len(config.integration_layers), 2, 6, len(config.streams))
        assert weights is not None and tuple(weights.shape) == expected
        assert torch.isfinite(weights).all()
        assert self.run(model, inputs).stream_weights is None

    def test_explicit_stream_ids_win(self, variant: str) -> None:
        """Derived stream ids equal explicitly passed ones; different explicit ids change the output."""
        model = self.build(variant)
        config = model.config
        inputs = self.make_inputs(config, batch=2, length=6)
        tables = model.base_model.stream_tables
        derived = tables(inputs["input_ids"])
        explicit = {self.STREAM_ID_KEYS[s]: derived[s] for s in self.stream_names(config)}
        reference = self.main_output(self.run(model, inputs))
        assert_same_outputs(
            self.main_output(self.run(model, inputs, **explicit)), reference, "explicit == derived"
        )
        name = self.stream_names(config)[0]
        other = {self.STREAM_ID_KEYS[name]: torch.roll(derived[name], 1, dims=1)}
        assert not torch.allclose(self.main_output(self.run(model, inputs, **other)), reference)

    def test_bad_inputs_raise_value_errors(self, variant: str) -> None:
        model = self.build(variant)
        config = model.config
        inputs = self.make_inputs(config, batch=2, length=6)
        name = self.stream_names(config)[0]
        key = self.STREAM_ID_KEYS[name]
        good = model.base_model.stream_tables(inputs["input_ids"])[name]
        vocab = config.stream_vocab_sizes[name]
        bad_ids = {
            "wrong slot": good[..., :-1],
            "wrong tokens": good[:, :-1],
            "wrong batch": good[:1],
            "2-d": good[..., 0],
            "out of vocabulary": good.clone().fill_(vocab),
            "negative": good.clone().fill_(-1),
        }
        for what, ids in bad_ids.items():
            with pytest.raises(ValueError, match=key):
                self.run(model, inputs, **{key: ids})
                pytest.fail(f"{what} {key} were accepted")
        with pytest.raises(ValueError, match="input_ids"):
            self.run(model, {**inputs, "input_ids": inputs["input_ids"].clone().fill_(config.vocab_size)})
        too_long = self.make_inputs(config, batch=1, length=self.MAX_POSITIONS + 1)
        with pytest.raises(ValueError, match="exceeds"):
            self.run(model, too_long)

    @all_variants
    def test_state_dict_and_config_snapshot(self, variant: str) -> None:
        snapshot = {
            "config_keys": sorted(
                k for k in self.config_for(variant).to_dict() if k != "transformers_version"
            ),
            "state_dict_keys": {
                head.__name__: sorted(self.build(variant, head).state_dict()) for head in self.HEAD_CLASSES
            },
        }
        path = SNAPSHOT_DIR / self.FAMILY / f"{variant}.json"
        if UPDATE_SNAPSHOTS or not path.exists():
            if not UPDATE_SNAPSHOTS and os.environ.get("CI"):
                pytest.fail(f"snapshot {path} missing; create it with MSNN_UPDATE_SNAPSHOTS=1")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(snapshot, indent=1) + "\n")
        recorded = json.loads(path.read_text())
        assert recorded["config_keys"] == snapshot["config_keys"], (
            "config keys changed (renamed field?); if intended, rerun with MSNN_UPDATE_SNAPSHOTS=1"
        )
        assert recorded["state_dict_keys"] == snapshot["state_dict_keys"], (
            "state-dict keys changed (renamed module?); if intended, rerun with MSNN_UPDATE_SNAPSHOTS=1"
        )

    @once
    def test_config_with_unknown_key_loads(self, tmp_path: Path) -> None:
        variant = next(iter(self.VARIANTS))
        model = self.build(variant)
        model.save_pretrained(tmp_path)
        config_file = tmp_path / "config.json"
        values = json.loads(config_file.read_text())
        values["a_key_from_the_future"] = {"nested": [1, 2]}
        config_file.write_text(json.dumps(values))
        loaded = self.HEAD_CLASSES[0].from_pretrained(tmp_path)
        assert loaded.config.a_key_from_the_future == {"nested": [1, 2]}
        config_class = type(model.config)
        assert config_class.from_pretrained(tmp_path).to_dict()["a_key_from_the_future"] == {"nested": [1, 2]}
