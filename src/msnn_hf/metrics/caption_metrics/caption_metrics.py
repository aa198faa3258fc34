"""Image-captioning metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D, computed by the COCO caption scorers.

A local `evaluate` module (no Hub access needed)::

    import evaluate
    from msnn_hf.metrics import caption_metrics_path

    metric = evaluate.load(caption_metrics_path())
    metric.compute(
        predictions=["a dog runs on the grass", "two men play football"],
        references=[["A dog is running on grass .", "The brown dog runs ."], ["Two men are playing soccer ."]],
    )
    # {'bleu_1': ..., 'bleu_2': ..., 'bleu_3': ..., 'bleu_4': ..., 'rouge_l': ..., 'cider_d': ..., 'meteor': ...}

Scorers: PyPI `pycocoevalcap` (the MS-COCO caption evaluation code): `Bleu(4)` (corpus BLEU, "closest"
reference length), `Rouge` (ROUGE-L, beta 1.2, mean over images), `Cider` (CIDEr-D: clipped n-gram counts, Gaussian
length penalty sigma 6, x10; document frequencies come from the references of the corpus being scored, so a corpus
of one image scores 0) and `Meteor` (METEOR 1.5, a Java process: only when `java` is on the PATH and the jar is in
the installed package; otherwise the key is absent and a note is logged).

Tokenisation: COCO's `PTBTokenizer` runs Stanford CoreNLP in Java, so it is replaced by `simple_tokenize`: lower
case, the clitics `'s 're 've 'll 'd 'm n't` split off as PTB does, tokens are runs of letters and digits (inner
hyphens and decimal points kept: `t-shirt`, `3.5`), every other character is dropped (PTB's punctuation removal).
Scores are therefore close to, but not byte-identical with, published COCO numbers.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Sequence

import datasets
import evaluate

logger = logging.getLogger(__name__)

_DESCRIPTION = """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of generated captions against one or more reference
captions per image, with the MS-COCO caption scorers (pycocoevalcap) and a documented simple tokenisation."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): one generated caption per image.
    references (`list` of `list` of `str`): the reference captions of each image (at least one).
    meteor (`bool`, *optional*, defaults to `True`): also compute METEOR (starts a Java process, a few seconds);
        skipped, with a logged note, when Java or the METEOR jar is missing.
    tokenize (`bool`, *optional*, defaults to `True`): apply `simple_tokenize` first (`False`: the strings are
        already tokenised, space-separated).
    per_image (`bool`, *optional*, defaults to `False`): also return the scorers' per-image values.
Returns:
    bleu_1, bleu_2, bleu_3, bleu_4, rouge_l, cider_d (`float`), meteor (`float`) when available, and with
    `per_image=True` per_image (`dict[str, list[float]]`).
"""

_CITATION = """\
@article{chen2015microsoft,
  title={Microsoft COCO Captions: Data Collection and Evaluation Server},
  author={Chen, Xinlei and Fang, Hao and Lin, Tsung-Yi and Vedantam, Ramakrishna and Gupta, Saurabh and
          Doll{\\'a}r, Piotr and Zitnick, C. Lawrence},
  journal={arXiv preprint arXiv:1504.00325},
  year={2015}
}
"""

_CLITIC = re.compile(r"(n't|'s|'re|'ve|'ll|'d|'m)\b")
_TOKEN = re.compile(r"n't|'(?:s|re|ve|ll|d|m)|\d+(?:\.\d+)+|[^\W_]+(?:-[^\W_]+)*")


def simple_tokenize(text: str) -> list[str]:
    """Lower-case word tokens of `text` (see the module docstring): PTB-style clitics, punctuation dropped."""
    text = _CLITIC.sub(r" \1", text.lower().replace("’", "'"))
    return _TOKEN.findall(text)


def meteor_available() -> tuple[bool, str]:
    """(whether METEOR can run here, why not)."""
    if shutil.which("java") is None:
        return False, "METEOR needs Java (`java` is not on the PATH)"
    try:
        import pycocoevalcap.meteor.meteor as meteor_module
    except ImportError:
        return False, "METEOR needs the `pycocoevalcap` package"
    jar = os.path.join(os.path.dirname(meteor_module.__file__), meteor_module.METEOR_JAR)
    if not os.path.isfile(jar):
        return False, f"the METEOR jar {jar} is missing from the installed pycocoevalcap"
    return True, ""


def _meteor(gts: dict, res: dict) -> tuple[float, list[float]]:
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        score, per_image = scorer.compute_score(gts, res)
    finally:  # stop the Java process now, not at garbage collection (its __del__ then finds it stopped: harmless)
        with scorer.lock:
            scorer.meteor_p.stdin.close()
            scorer.meteor_p.kill()
            scorer.meteor_p.wait()
    return float(score), [float(v) for v in per_image]


def caption_scores(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    meteor: bool = True,
    tokenize: bool = True,
    per_image: bool = False,
) -> dict:
    """Corpus-level BLEU-1..4, ROUGE-L, CIDEr-D (and METEOR) of `predictions` against `references`; with
    `per_image=True` also `"per_image": {metric: [one score per image]}` (the scorers' own per-image values;
    the corpus BLEU and METEOR are not the means of their per-image values)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference lists")
    if not predictions:
        raise ValueError("No predictions to score")
    for index, refs in enumerate(references):
        if isinstance(refs, str) or len(refs) == 0:
            raise ValueError(f"references[{index}] must be a non-empty list of strings; got {refs!r}")

    def prepare(text: str) -> str:
        text = " ".join(simple_tokenize(text)) if tokenize else " ".join(text.split())
        return text.replace("|||", "")  # METEOR's field separator

    res = {i: [prepare(p)] for i, p in enumerate(predictions)}
    gts = {i: [prepare(r) for r in refs] for i, refs in enumerate(references)}
    bleu, bleu_per_image = Bleu(4).compute_score(gts, res, verbose=0)
    scores: dict = {f"bleu_{n + 1}": float(bleu[n]) for n in range(4)}
    images: dict[str, list[float]] = {
        f"bleu_{n + 1}": [float(v) for v in bleu_per_image[n]] for n in range(4)
    }
    rouge, rouge_per_image = Rouge().compute_score(gts, res)
    cider, cider_per_image = Cider().compute_score(gts, res)
    scores["rouge_l"], images["rouge_l"] = float(rouge), [float(v) for v in rouge_per_image]
    scores["cider_d"], images["cider_d"] = float(cider), [float(v) for v in cider_per_image]
    if meteor:
        available, reason = meteor_available()
        if available:
            scores["meteor"], images["meteor"] = _meteor(gts, res)
        else:
            logger.warning("caption_metrics: METEOR skipped: %s", reason)
    if per_image:
        scores["per_image"] = images
    return scores


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CaptionMetrics(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(
        self, predictions, references, meteor: bool = True, tokenize: bool = True, per_image: bool = False
    ) -> dict:
        return caption_scores(predictions, references, meteor=meteor, tokenize=tokenize, per_image=per_image)
