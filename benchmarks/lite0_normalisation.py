"""Which input normalisation do the converted EfficientNet-Lite0 weights expect? Measured on Flickr8k photos whose
five captions all mention a dog: the share of top-1 ImageNet classes that are dog breeds (indices 151-268) and
the mean probability mass on dog breeds, under

* ``tf_lite``: ``(x - 127) / 128`` (TensorFlow EfficientNet-Lite's MEAN_RGB / STDDEV_RGB; the processor's default);
* ``imagenet``: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) (what the loader package's README shows).

    python benchmarks/lite0_normalisation.py --out benchmarks/results/lite0_normalisation.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

NORMALISATIONS = {
    "tf_lite": {"image_mean": [127 / 255] * 3, "image_std": [128 / 255] * 3},
    "imagenet": {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data_dir", default=None, help="the captions-flickr8k folder (default: MSNN_DATA_DIR)"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForImageClassification

    from msnn_hf import EfficientNetLiteImageProcessor
    from msnn_hf.data_vl import iter_flickr8k
    from msnn_hf.pretrained import efficientnet_lite0_path

    dogs = [
        e["image"] for e in iter_flickr8k(args.data_dir) if all(" dog" in c.lower() for c in e["captions"])
    ]
    model = AutoModelForImageClassification.from_pretrained(efficientnet_lite0_path()).eval()
    result = {
        "measurement": "lite0_normalisation",
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "photos": len(dogs),
        "results": {},
    }
    for name, fields in NORMALISATIONS.items():
        processor = EfficientNetLiteImageProcessor(**fields)
        probs = []
        with torch.no_grad():
            for i in range(0, len(dogs), 32):
                pixels = processor(dogs[i : i + 32], return_tensors="pt")["pixel_values"]
                probs.append(model(pixel_values=pixels).logits.softmax(-1))
        probs = torch.cat(probs)
        top1 = probs.argmax(-1)
        result["results"][name] = {
            **fields,
            "top1_dog_breed": round(((top1 >= 151) & (top1 <= 268)).float().mean().item(), 4),
            "mean_dog_breed_probability": round(probs[:, 151:269].sum(-1).mean().item(), 4),
            "mean_top1_probability": round(probs.max(-1).values.mean().item(), 4),
        }
        print(name, json.dumps(result["results"][name]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
