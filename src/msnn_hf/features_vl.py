"""Encode images once with a frozen encoder and reuse the patch tokens (a safetensors file).

On two CPU cores EfficientNet-Lite0 encodes about 6 images a second (`benchmarks/bench_vision.py`): re-encoding
the Flickr8k photos every epoch costs far more than training a small decoder on them. With the encoder frozen its
output is a fixed function of the image, so it can be computed once:

    from msnn_hf.features_vl import encode_images, load_image_features, save_image_features

    tokens = encode_images(paths, encoder, processor)  # (N, 49, 1280)
    save_image_features("flickr8k_lite0.safetensors", paths, tokens)
    features = load_image_features("flickr8k_lite0.safetensors")  # {path: (49, 1280) tensor}
    collator = CaptionCollator(processor, tokenizer, features=features)  # batches carry encoder_outputs

`VisionEncoderDecoderModel` takes such batches as they are (`encoder_outputs` replaces `pixel_values`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import torch


@torch.no_grad()
def encode_images(
    images: Sequence,
    encoder: torch.nn.Module,
    image_processor,
    batch_size: int = 32,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """`last_hidden_state` of `encoder` (in eval mode) for every image: `(len(images), num_patches, hidden)`."""
    if not len(images):
        raise ValueError("no images to encode")
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    try:
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = image_processor(list(images[start : start + batch_size]), return_tensors="pt")
            tokens = encoder(pixel_values=batch["pixel_values"].to(device)).last_hidden_state
            chunks.append(tokens.to(device="cpu", dtype=dtype))
    finally:
        encoder.train(was_training)
    return torch.cat(chunks)


def save_image_features(path: str | os.PathLike, keys: Sequence[str], features: torch.Tensor) -> None:
    """Write `features` (one row per key) and the keys to a safetensors file."""
    from safetensors.torch import save_file

    keys = [str(k) for k in keys]
    if len(keys) != features.shape[0]:
        raise ValueError(f"{len(keys)} keys for {features.shape[0]} feature rows")
    if len(set(keys)) != len(keys):
        raise ValueError("keys must be unique")
    save_file({"features": features.contiguous()}, os.fspath(path), metadata={"keys": json.dumps(keys)})


def load_image_features(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """`{key: (num_patches, hidden) tensor}` from a file written by `save_image_features`."""
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if "keys" not in metadata:
            raise ValueError(f"{path} has no 'keys' metadata: not written by save_image_features")
        keys = json.loads(metadata["keys"])
        features = handle.get_tensor("features")
    return dict(zip(keys, features))


__all__ = ["encode_images", "load_image_features", "save_image_features"]
