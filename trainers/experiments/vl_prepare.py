"""Shared inputs of the vision + language experiments (`vl.py`): a caption tokenizer and the frozen encoder's features.

* ``<work>/tokenizer``: a lower-cased byte-level BPE (`--vocab_size`, default 2,048) trained on the Flickr8k training
  captions and the DAQUAR training questions and answers only (no validation / test text). A 30k-piece vocabulary
  (MiniLM's) makes the output layer most of a small decoder's cost on CPU; the captions use fewer than 3,000 words.
* ``<work>/lite0_features.safetensors``: the 49 x 1280 patch tokens of the converted ImageNet EfficientNet-Lite0 (in
  eval mode) for every Flickr8k and DAQUAR image, keyed by image path (`msnn_hf.features_vl`), read by
  `run_captioning.py --image_features_file`. float32, about 290 MB; computed once (about 3 minutes on one core).

Both are rebuilt only when missing; `vl.py` calls `prepare()`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "trainers"))

SPECIALS = {
    "eos_token": "<|endoftext|>",
    "pad_token": "<|pad|>",
    "unk_token": "<|unk|>",
}


def data_dirs(data_dir: str | None) -> tuple[Path, Path]:
    from msnn_hf.data import default_data_dir

    root = (Path(data_dir) if data_dir else Path(default_data_dir())).resolve()
    return root / "captions-flickr8k", root / "vqa-daquar"


def training_text(flickr: Path, daquar: Path) -> list[str]:
    """The training split's text only: Flickr8k captions, DAQUAR questions and answers (underscores as spaces)."""
    lines = []
    for line in (flickr / "captions.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["split"] == "train":
            lines += row["captions"]
    for line in (daquar / "qa.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["split"] == "train":
            lines += [row["question"], *row["answers"]]
    return lines


def build_tokenizer(lines: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIALS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer=trainer, length=len(lines))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIALS["eos_token"], **SPECIALS)


def image_paths(flickr: Path, daquar: Path) -> list[str]:
    from msnn_hf.data_vl import iter_daquar, iter_flickr8k

    paths = {row["image"] for row in iter_flickr8k(data_dir=flickr)}
    paths |= {row["image"] for row in iter_daquar(data_dir=daquar)}
    return sorted(paths)


def build_features(paths: list[str], out: Path) -> None:
    from run_captioning import load_images
    from tqdm.auto import tqdm
    from transformers import AutoImageProcessor, AutoModel

    from msnn_hf.features_vl import encode_images, save_image_features
    from msnn_hf.pretrained import efficientnet_lite0_path

    folder = efficientnet_lite0_path()
    encoder, processor = AutoModel.from_pretrained(folder).eval(), AutoImageProcessor.from_pretrained(folder)
    chunks = []
    for start in tqdm(range(0, len(paths), 64), desc="Lite0 features", unit="batch"):
        chunks.append(encode_images(load_images(paths[start : start + 64]), encoder, processor))
    import torch

    tmp = out.with_suffix(".tmp")
    save_image_features(tmp, paths, torch.cat(chunks))
    tmp.replace(out)


def prepare(work: Path, data_dir: str | None = None, vocab_size: int = 2048) -> dict[str, str]:
    """The tokenizer folder and the features file under `work` (built when missing); their paths."""
    import msnn_hf  # noqa: F401  (registers the Lite0 encoder with AutoModel)

    flickr, daquar = data_dirs(data_dir)
    work.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = work / f"tokenizer-bpe{vocab_size}"
    if not (tokenizer_dir / "tokenizer.json").is_file():
        started = time.perf_counter()
        tokenizer = build_tokenizer(training_text(flickr, daquar), vocab_size)
        tokenizer.save_pretrained(tokenizer_dir)
        print(
            f"tokenizer: {len(tokenizer)} pieces -> {tokenizer_dir} ({time.perf_counter() - started:.1f} s)"
        )
    features = work / "lite0_features.safetensors"
    if not features.is_file():
        started = time.perf_counter()
        paths = image_paths(flickr, daquar)
        build_features(paths, features)
        print(f"features: {len(paths)} images -> {features} ({time.perf_counter() - started:.0f} s)")
    return {"tokenizer": str(tokenizer_dir), "features": str(features)}


if __name__ == "__main__":
    print(prepare(REPO_ROOT / "outputs" / "vl"))
