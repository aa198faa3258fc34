"""Human agreement on the Flickr8k subset: caption 1 of every image scored against its other 4 captions.

    python scripts/caption_human_agreement.py --out results/vision/human_agreement_flickr8k.json

The reference point for captioning models (scored against all 5 captions, so the human figure is slightly
pessimistic: one reference fewer). METEOR needs Java; without it the key is absent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data_dir", default=None, help="the captions-flickr8k folder (default: MSNN_DATA_DIR)"
    )
    parser.add_argument("--splits", nargs="+", default=["validation", "test"])
    parser.add_argument("--no_meteor", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from msnn_hf.data_vl import load_flickr8k
    from msnn_hf.metrics import caption_human_agreement

    result = {
        "measurement": "caption_human_agreement",
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "protocol": "caption 0 of each image as the prediction, captions 1-4 as references; simple_tokenize",
        "splits": {},
    }
    for split in args.splits:
        captions = list(load_flickr8k(args.data_dir, split=split)["captions"])
        scores = caption_human_agreement(captions, meteor=not args.no_meteor)
        result["splits"][split] = {"images": len(captions), **{k: round(v, 4) for k, v in scores.items()}}
        print(split, json.dumps(result["splits"][split]), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
