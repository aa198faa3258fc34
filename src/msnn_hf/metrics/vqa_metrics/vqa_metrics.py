"""Visual question answering metrics for DAQUAR-style answers: exact-match accuracy after normalisation.

A local `evaluate` module (no Hub access needed)::

    import evaluate
    from msnn_hf.metrics import vqa_metrics_path

    metric = evaluate.load(vqa_metrics_path())
    metric.compute(predictions=["Chair", "tape dispenser, book"], references=[["chair"], ["book", "tape_dispenser"]])
    # {'exact_match': 1.0, 'answer_f1': 1.0, 'num_examples': 2}

A DAQUAR answer is a word, an `_`-joined compound (`tape_dispenser`) or a comma-separated list of them
(`book, scissor, papers`); a reference is that answer as a list (the `answers` field of the data). Normalisation
(`normalize_answer`): lower case, `_` and `-` as spaces, punctuation other than commas dropped, articles
(a, an, the) dropped, whitespace collapsed; a prediction is split on commas into a set. Then

- `exact_match`: the fraction of questions whose normalised answer *set* equals the reference set;
- `answer_f1`: the mean set-F1 between prediction and reference (partial credit for list answers).

WUPS (Wu-Palmer set similarity at 0.9 / 0.0, Malinowski & Fritz 2014) needs NLTK's WordNet data, which is not
installed and cannot be downloaded offline here, so it is not computed.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import datasets
import evaluate

_DESCRIPTION = """Exact-match accuracy and set-F1 of visual question answering predictions against DAQUAR-style
answers (a word, a compound or a comma-separated list), after normalisation."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): one answer per question; a list answer is comma-separated.
    references (`list` of `list` of `str`): the reference answer of each question as a list of its items.
Returns:
    exact_match (`float`), answer_f1 (`float`), num_examples (`int`).
"""

_CITATION = """\
@inproceedings{malinowski2014multi,
  title={A Multi-World Approach to Question Answering about Real-World Scenes based on Uncertain Input},
  author={Malinowski, Mateusz and Fritz, Mario},
  booktitle={Advances in Neural Information Processing Systems},
  year={2014}
}
"""

_PUNCTUATION = re.compile("[" + re.escape(string.punctuation.replace(",", "")) + "]")
_ARTICLES = {"a", "an", "the"}


def normalize_answer(text: str) -> str:
    """One answer item, normalised: lower case, `_`/`-` as spaces, punctuation and articles dropped."""
    text = text.lower().replace("_", " ").replace("-", " ")
    text = _PUNCTUATION.sub("", text)
    return " ".join(word for word in text.split() if word not in _ARTICLES)


def answer_set(answer: str | Sequence[str]) -> frozenset[str]:
    """The normalised items of an answer (a comma-separated string or a list of items); empty items dropped."""
    items = answer.split(",") if isinstance(answer, str) else [p for item in answer for p in item.split(",")]
    return frozenset(n for n in (normalize_answer(item) for item in items) if n)


def _set_f1(predicted: frozenset, gold: frozenset) -> float:
    common = len(predicted & gold)
    if common == 0:
        return float(predicted == gold)  # both empty: 1, else 0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def vqa_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """Exact-match accuracy and mean set-F1 (see the module docstring)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("No predictions to score")
    matches, f1 = 0, 0.0
    for prediction, reference in zip(predictions, references):
        predicted, gold = answer_set(prediction), answer_set(reference)
        matches += predicted == gold
        f1 += _set_f1(predicted, gold)
    n = len(predictions)
    return {"exact_match": matches / n, "answer_f1": f1 / n, "num_examples": n}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VqaMetrics(evaluate.Metric):
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

    def _compute(self, predictions, references) -> dict:
        return vqa_scores(predictions, references)
