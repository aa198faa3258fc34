"""Deployment paths: ONNX export (onnxruntime against eager), `torch.compile(fullgraph=True)` (no graph break, the
same outputs, a training step), bf16 autocast, and the fill-mask / text-generation pipelines on saved checkpoints."""

from __future__ import annotations

import pytest
import torch
from test_modeling_bert import build as build_bert
from test_modeling_bert import token_ids
from test_modeling_gpt2 import make_model

from msnn_hf import MultiStreamBertForMaskedLM, MultiStreamBertForSequenceClassification

torch.set_num_threads(1)
RAGGED = torch.tensor([[1] * 11, [1] * 6 + [0] * 5, [1] * 3 + [0] * 8])


@pytest.mark.parametrize(
    "family",
    ["bert-classifier", pytest.param("bert-mlm", marks=pytest.mark.slow), "gpt2"],
)
def test_onnx_export_runs_in_onnxruntime_like_eager(family, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from msnn_hf.onnx_export import export_onnx, max_difference, onnx_session

    if family == "gpt2":
        model = make_model("dm-token-last")
        mask = RAGGED.flip(1)  # left padding
        ids = torch.randint(3, 60, (3, 11), generator=torch.Generator().manual_seed(3))
    else:
        head = (
            MultiStreamBertForMaskedLM if family == "bert-mlm" else MultiStreamBertForSequenceClassification
        )
        model = build_bert(head, integration_type="dm", alpha_granularity="token")
        ids, mask = token_ids(3, 11, seed=3), RAGGED
    session = onnx_session(export_onnx(model, tmp_path / "model.onnx", example_batch=2, example_length=7))
    assert max_difference(model, session, ids, mask) < 1e-4  # another batch size and length than exported
    assert max_difference(model, session, ids[:1, :4], mask[:1, :4]) < 1e-4


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_compile_fullgraph_forward_and_training_step(family):
    """`torch.compile(fullgraph=True)` captures the whole forward (no graph break, no host read-back) and gives the
    eager outputs and gradients. The `aot_eager` backend checks the capture quickly; inductor is the slow test."""
    if family == "bert":
        model, inputs = (
            build_bert(integration_type="li"),
            dict(input_ids=token_ids(2, 7), attention_mask=RAGGED[:2, :7]),
        )
        inputs["labels"] = torch.tensor([0, 2])
    else:
        model, ids = make_model("dm-scalar"), torch.randint(3, 60, (2, 7))
        inputs = dict(input_ids=ids, labels=ids)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(**inputs).logits, model(**inputs).logits)
    model.train()
    compiled(**inputs).loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model(**inputs).loss.backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[name], p.grad, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_compile_with_inductor_equals_eager(family):
    model = (
        build_bert(integration_type="dm", alpha_granularity="token")
        if family == "bert"
        else make_model("li-all")
    )
    ids = token_ids(2, 7) if family == "bert" else torch.randint(3, 60, (2, 7))
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(
            compiled(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5, rtol=1e-4
        )


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_bf16_autocast_on_cpu(family):
    """bf16 autocast keeps the logits within 0.1 of fp32 on these tiny models (bf16 has 8 bits of mantissa: a
    relative error of ~0.4 % per operation) and training steps run and lower the loss."""
    if family == "bert":
        model, ids = build_bert(integration_type="dm", alpha_granularity="token"), token_ids(4, 9)
        labels = torch.tensor([0, 1, 2, 1])
    else:
        model, ids = make_model("li-all"), torch.randint(3, 60, (4, 9))
        labels = ids
    with torch.no_grad():
        reference = model(input_ids=ids).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(input_ids=ids).logits
    assert (low.float() - reference).abs().max() < 0.1
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_text_generation_pipeline_with_a_plain_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, pipeline

    words = ["<pad>", "<s>", "</s>"] + [f"w{i}" for i in range(57)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    model = make_model("dm-token-last")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    generate = pipeline("text-generation", model=str(tmp_path), device="cpu")
    out = generate("w3 w4 w5", max_new_tokens=4, do_sample=False)
    assert out[0]["generated_text"].startswith("w3 w4 w5") and len(out[0]["generated_text"].split()) > 3
