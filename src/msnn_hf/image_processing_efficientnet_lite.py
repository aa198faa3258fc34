"""Image processor of the EfficientNet-Lite encoder (`EfficientNetLiteImageProcessor`): any image -> RGB ->
224 x 224 -> ``(x - 127) / 128``, the preprocessing of TensorFlow's EfficientNet-Lite ("edge models use
inception-style mean and stddev"), which the converted weights were trained with.

Inputs may be file paths, PIL images, NumPy arrays or torch tensors (HWC or CHW, uint8 or float in [0, 1], one,
three or four channels; floats in [0, 1]), alone or in a (possibly mixed) list. Bad input fails with an `ImageLoadError` (a
`ValueError`) that names the image. The work per image is bounded: a file's header is checked against
`max_image_pixels` before anything is decoded (decompression bombs), JPEGs are decoded at a reduced scale when
they are much larger than the target (`PIL.Image.draft`), and large decoded images are box-reduced before the
final resampling.

Only relative imports of siblings and public transformers API: this module is copied into every checkpoint
as remote code.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import PILImageResampling, SizeDict
from transformers.processing_utils import ImagesKwargs

# TensorFlow EfficientNet-Lite: MEAN_RGB = 127, STDDEV_RGB = 128 on 0..255 pixels, written for `rescale` (1/255)
EFFICIENTNET_LITE_MEAN = (127.0 / 255.0,) * 3
EFFICIENTNET_LITE_STD = (128.0 / 255.0,) * 3
DEFAULT_MAX_IMAGE_PIXELS = 150_000_000  # a 10,000 x 10,000 photo passes; PIL itself refuses > 2 * 89.5M
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageLoadError(ValueError):
    """An input image could not be read or converted; the message names it."""


class EfficientNetLiteImageProcessorKwargs(ImagesKwargs, total=False):
    """
    max_image_pixels (`int`, *optional*, defaults to `self.max_image_pixels`):
        Images with more pixels (width x height, read from the file header before decoding) are refused with an
        `ImageLoadError`.
    """

    max_image_pixels: int


def _describe(source: Any, index: int | None) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"image file {os.fspath(source)!r}"
    where = f"image {index} of the batch" if index is not None else "the image"
    return f"{where} ({type(source).__name__})"


def _check_pixels(width: int, height: int, max_image_pixels: int, name: str) -> None:
    if width * height > max_image_pixels:
        raise ImageLoadError(
            f"{name} has {width}x{height} = {width * height:,} pixels, more than max_image_pixels="
            f"{max_image_pixels:,} (a guard against decompression bombs; raise it if the image is genuine)"
        )
    if width < 1 or height < 1:
        raise ImageLoadError(f"{name} is empty ({width}x{height})")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB view of any PIL image: transparency is composited onto white, 16-bit / 32-bit grey is scaled to
    8 bits (`I;16`: / 257; `I`: clipped to 0..65535, then / 257; `F`: taken as 0..1 if its maximum is <= 1,
    else as 0..255), every other mode goes through `Image.convert("RGB")`."""
    if image.mode == "RGB":
        return image
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode.startswith("I") or image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            array = array * 255.0 if array.size and np.nanmax(array) <= 1.0 else array
        else:
            array = np.clip(array, 0, 65535) / 257.0
        grey = np.clip(np.nan_to_num(array), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return image.convert("RGB")


def _array_to_pil(array: np.ndarray, name: str) -> Image.Image:
    """HWC or CHW (1, 3 or 4 channels) or HW array -> PIL. Floats are taken as 0..1 (scaled by 255 and rounded)
    unless some value exceeds 1, then as 0..255; integers must lie in 0..255."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ImageLoadError(
            f"{name} must have 2 (H, W) or 3 (H, W, C / C, H, W) dimensions; got {array.shape}"
        )
    if array.shape[-1] not in (1, 3, 4):
        if array.shape[0] not in (1, 3, 4):
            raise ImageLoadError(f"{name} has shape {array.shape}: expected 1, 3 or 4 channels first or last")
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageLoadError(f"{name} contains NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 255:
            raise ImageLoadError(f"{name}: float pixels must lie in [0, 1] (or 0..255); got {low}..{high}")
        array = np.round(array * 255.0 if high <= 1.0 else array).astype(np.uint8)
    elif array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise ImageLoadError(
                f"{name}: integer pixels must lie in 0..255; got {array.min()}..{array.max()}"
            )
        array = array.astype(np.uint8)
    array = np.ascontiguousarray(array)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[array.shape[-1]]
    return Image.fromarray(array[..., 0] if mode == "L" else array, mode=mode)


def _reduce_for(image: Image.Image, target: int) -> Image.Image:
    """Box-reduce by an integer factor while the short side stays >= 2 * target (bounds the resampling cost)."""
    factor = min(image.size) // (2 * target)
    return image.reduce(factor) if factor >= 2 else image


def load_rgb_image(
    source: Any,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    target_size: int | None = None,
    index: int | None = None,
) -> Image.Image:
    """Read one image (a path, PIL image, NumPy array or torch tensor) as an RGB PIL image.

    `target_size` (the largest side the caller will resize to) lets large inputs be decoded / reduced at a
    smaller scale first. Raises `ImageLoadError` naming the image for unreadable, truncated, non-image, too large
    or malformed inputs. URLs are refused: download the image first (this library never opens the network).
    """
    name = _describe(source, index)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path.startswith(("http://", "https://")):
            raise ImageLoadError(f"{name}: URLs are not fetched; download the image and pass its path")
        if not os.path.isfile(path):
            raise ImageLoadError(f"{name} does not exist or is not a file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own guard is below
                with Image.open(path) as opened:
                    _check_pixels(*opened.size, max_image_pixels, name)
                    if target_size is not None and opened.format == "JPEG":
                        opened.draft("RGB", (target_size, target_size))  # DCT-domain downscale, >= target
                    opened.load()
                    image = opened.copy()
        except ImageLoadError:
            raise
        except Image.DecompressionBombError as err:
            raise ImageLoadError(f"{name} is too large to decode safely: {err}") from err
        except UnidentifiedImageError as err:
            raise ImageLoadError(f"{name} is not an image file PIL can identify") from err
        except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
            raise ImageLoadError(f"{name} could not be decoded (truncated or corrupt?): {err}") from err
    elif isinstance(source, Image.Image):
        _check_pixels(*source.size, max_image_pixels, name)
        image = source
    elif isinstance(source, np.ndarray) or type(source).__module__.startswith("torch"):
        array = source.detach().cpu().numpy() if hasattr(source, "detach") else source
        shape = array.shape
        if array.ndim in (2, 3):
            spatial = shape if array.ndim == 2 else (shape[:2] if shape[-1] in (1, 3, 4) else shape[1:])
            _check_pixels(int(spatial[1]), int(spatial[0]), max_image_pixels, name)
        image = _array_to_pil(array, name)
    else:
        raise ImageLoadError(f"{name}: unsupported input type; pass a path, PIL image, NumPy array or tensor")
    try:
        image = to_rgb(image)
    except (OSError, ValueError) as err:
        raise ImageLoadError(f"{name} (mode {image.mode}) could not be converted to RGB: {err}") from err
    return _reduce_for(image, target_size) if target_size is not None else image


def _flatten(images: Any) -> list:
    """A flat list of single images from one image, a (nested) list or other iterable of images (a `datasets`
    column, say) or a 4-D array / tensor."""
    ndim = getattr(images, "ndim", None)
    if ndim == 4:
        return list(images)
    single = (str, bytes, os.PathLike, Image.Image)
    if ndim is None and not isinstance(images, single) and hasattr(images, "__iter__"):
        return [item for element in images for item in _flatten(element)]
    return [images]


class EfficientNetLiteImageProcessor(PilBackend):
    r"""
    Image processor for [`EfficientNetLiteModel`] (PIL/NumPy backend; no torchvision needed).

    Pipeline: load/convert to RGB (see `load_rgb_image`) -> resize to `size` (default 224 x 224, the whole image
    squashed, so that every image gives the same 7 x 7 token grid; `{"shortest_edge": n}` keeps the aspect ratio,
    with `do_center_crop` and `crop_size` to crop) with `resample` (default bicubic) -> rescale by 1/255 ->
    normalise with `image_mean` / `image_std` (default 127/255 and 128/255, i.e. `(x - 127) / 128`: TensorFlow
    EfficientNet-Lite's preprocessing) -> `pixel_values` of shape `(batch_size, 3, height, width)`.

    Args:
        max_image_pixels (`int`, *optional*, defaults to 150,000,000):
            Refuse images with more pixels than this (checked on the file header, before decoding). PIL refuses
            files over `2 * PIL.Image.MAX_IMAGE_PIXELS` on its own, whatever this value.
        **kwargs: the usual image-processor fields (`size`, `resample`, `do_center_crop`, `crop_size`,
            `do_rescale`, `rescale_factor`, `do_normalize`, `image_mean`, `image_std`).

    Example:

    ```python
    >>> import numpy as np
    >>> from PIL import Image
    >>> from msnn_hf import EfficientNetLiteImageProcessor

    >>> processor = EfficientNetLiteImageProcessor()
    >>> grey = Image.new("L", (1, 1), 127)  # grey-scale, 1 x 1
    >>> rgba = np.zeros((300, 500, 4), dtype=np.uint8)  # fully transparent -> white
    >>> batch = processor([grey, rgba], return_tensors="pt")
    >>> batch["pixel_values"].shape
    torch.Size([2, 3, 224, 224])
    >>> float(batch["pixel_values"][0].abs().max()), round(float(batch["pixel_values"][1].min()), 4)
    (0.0, 1.0)
    ```
    """

    valid_kwargs = EfficientNetLiteImageProcessorKwargs
    model_input_names = ["pixel_values"]

    resample = PILImageResampling.BICUBIC
    image_mean = EFFICIENTNET_LITE_MEAN
    image_std = EFFICIENTNET_LITE_STD
    size = {"height": 224, "width": 224}
    crop_size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = False
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = True
    max_image_pixels = DEFAULT_MAX_IMAGE_PIXELS

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)

    @staticmethod
    def _target_side(size: SizeDict | None, crop_size: SizeDict | None) -> int | None:
        sides = [
            v for d in (size, crop_size) if d is not None for v in (d.height, d.width, d.shortest_edge) if v
        ]
        return max(sides) if sides else None

    def _preprocess_image_like_inputs(self, images: Any, *args: Any, **kwargs: Any) -> BatchFeature:
        target = (
            self._target_side(kwargs.get("size"), kwargs.get("crop_size"))
            if kwargs.get("do_resize")
            else None
        )
        max_pixels = kwargs.get("max_image_pixels") or self.max_image_pixels
        flat = _flatten(images)
        if not flat:
            raise ImageLoadError("no images given")
        rgb = [load_rgb_image(image, max_pixels, target, index=i) for i, image in enumerate(flat)]
        return super()._preprocess_image_like_inputs(rgb, *args, **kwargs)

    def _preprocess(self, images: list[np.ndarray], **kwargs: Any) -> BatchFeature:
        return_tensors = kwargs.pop("return_tensors", None)
        pixel_values = super()._preprocess(images, return_tensors=None, **kwargs)["pixel_values"]
        shapes = sorted({tuple(image.shape) for image in pixel_values})
        if return_tensors is not None and len(shapes) > 1:
            raise ImageLoadError(
                f"images of different sizes {shapes} cannot be stacked into one tensor: resize to a fixed "
                "`size={'height': h, 'width': w}` or center-crop"
            )
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=return_tensors)


def register() -> None:
    """Register with `AutoImageProcessor` (for `EfficientNetLiteConfig` checkpoints) and for remote code."""
    from transformers import AutoImageProcessor

    from .configuration_efficientnet_lite import EfficientNetLiteConfig

    AutoImageProcessor.register(
        EfficientNetLiteConfig, image_processor_classes={"pil": EfficientNetLiteImageProcessor}, exist_ok=True
    )
    EfficientNetLiteImageProcessor.register_for_auto_class("AutoImageProcessor")


__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "EFFICIENTNET_LITE_MEAN",
    "EFFICIENTNET_LITE_STD",
    "EfficientNetLiteImageProcessor",
    "ImageLoadError",
    "load_rgb_image",
    "register",
]
