"""Train a byte-level BPE tokenizer on PTB train and build its multi-stream processor (stream tables).

Writes (outside git, e.g. under `outputs/`):

* ``<output_dir>/tokenizer``: a `PreTrainedTokenizerFast` (byte-level BPE, GPT-2 style: every word gets a leading
  space marker, ``add_prefix_space=True``) with special tokens ``<|endoftext|>`` (bos = eos, the end-of-sentence
  appended to every line), ``<|pad|>``, ``<|mask|>``, ``<|unk|>`` (never produced by a byte-level model);
* ``<output_dir>/processor``: `MultiStreamProcessor.from_tokenizer(tokenizer, corpus=PTB train lines)`.

Usage::

    python trainers/train_bpe_tokenizer.py --output_dir outputs/lm --vocab_size 8192
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lm_utils import default_data_dir, read_lines  # noqa: E402

SPECIALS = {
    "eos_token": "<|endoftext|>",
    "pad_token": "<|pad|>",
    "mask_token": "<|mask|>",
    "unk_token": "<|unk|>",
}


def train_tokenizer(lines: list[str], vocab_size: int, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on `lines`, wrapped as a `PreTrainedTokenizerFast` with bos/eos/pad/mask/unk."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIALS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )
    tok.train_from_iterator((line.strip() for line in lines), trainer=trainer, length=len(lines))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIALS["eos_token"], **SPECIALS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", default=None, help="default: $MSNN_DATA_DIR or ../shared/data")
    parser.add_argument("--train_file", default=None, help="default: <data_dir>/ptb/train.txt")
    parser.add_argument("--output_dir", default="outputs/lm")
    parser.add_argument("--vocab_size", type=int, default=8192)
    parser.add_argument("--min_frequency", type=int, default=2)
    parser.add_argument("--max_lines", type=int, default=None, help="train on the first N lines only (tests)")
    parser.add_argument("--no_processor", action="store_true", help="skip the stream tables")
    parser.add_argument("--morph_vocab_size", type=int, default=2000)
    args = parser.parse_args(argv)

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    train_file = Path(args.train_file) if args.train_file else data_dir / "ptb" / "train.txt"
    lines = read_lines(train_file, args.max_lines)
    out = Path(args.output_dir)
    start = time.perf_counter()
    tokenizer = train_tokenizer(lines, args.vocab_size, args.min_frequency)
    tokenizer.save_pretrained(out / "tokenizer")
    info = {
        "train_file": str(train_file),
        "lines": len(lines),
        "vocab_size": len(tokenizer),
        "specials": SPECIALS,
    }
    print(f"tokenizer: {len(tokenizer)} entries in {time.perf_counter() - start:.1f}s -> {out / 'tokenizer'}")
    if not args.no_processor:
        from msnn_hf.processing_multistream import MultiStreamProcessor

        start = time.perf_counter()
        processor = MultiStreamProcessor.from_tokenizer(
            tokenizer, corpus=[line.strip() for line in lines], morph_vocab_size=args.morph_vocab_size
        )
        processor.save_pretrained(out / "processor")
        info["processor_seconds"] = round(time.perf_counter() - start, 1)
        info["stream_vocab_sizes"] = processor.stream_vocab_sizes
        info["slot_sizes"] = processor.slot_sizes
        print(f"processor in {info['processor_seconds']}s -> {out / 'processor'}")
    (out / "tokenizer_info.json").write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()
