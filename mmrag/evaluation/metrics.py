"""The figures: recall@K both ways, VQA accuracy, BLEU-4, CIDEr-D, box AP.

BLEU-4 and CIDEr-D are written here, after the COCO caption evaluation's definitions
(Papineni et al. 2002; Vedantam et al. 2015), because pycocoevalcap, which has them, runs its
tokenizer (and METEOR, SPICE) on Java, had its last release in 2020, and the two scorers are
short. Captions are tokenised as its PTB tokenizer leaves them for plain English: lower case,
punctuation dropped. Box AP is pycocotools' own COCOeval.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

RECALL_AT = (1, 5, 10)
_PUNCTUATION = re.compile(r"[^\w\s]")
_ARTICLES = {"a", "an", "the"}
CIDER_SIGMA = 6.0  # CIDEr-D's length penalty


def recall_at(
    similarity: npt.NDArray[np.float32], relevant: Sequence[set[int]], ks: Sequence[int] = RECALL_AT
) -> dict[int, float]:
    """Percentage of queries (rows) with a relevant column among their ``k`` most similar.
    Ties rank by column order (a stable sort), as every implementation must pick one."""
    order = np.argsort(-similarity, axis=1, kind="stable")
    hits = {k: 0 for k in ks}
    for row, wanted in enumerate(relevant):
        ranked = order[row]
        for k in ks:
            if wanted.intersection(ranked[:k].tolist()):
                hits[k] += 1
    return {k: 100.0 * hits[k] / len(relevant) for k in ks}


def tokens(text: str) -> list[str]:
    return _PUNCTUATION.sub(" ", text.lower()).split()


def normalise_answer(text: str) -> str:
    """A VQA answer as compared: lower case, punctuation and articles dropped."""
    return " ".join(word for word in tokens(text) if word not in _ARTICLES)


def vqa_accuracy(answer: str, humans: Sequence[str]) -> float:
    """VQAv2's rule: min(humans who gave this answer / 3, 1)."""
    given = normalise_answer(answer)
    agreeing = sum(normalise_answer(human) == given for human in humans)
    return min(agreeing / 3.0, 1.0)


def _ngrams(words: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def bleu4(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4: clipped n-gram precisions (n = 1..4) pooled over the corpus, geometric
    mean, brevity penalty against each candidate's closest reference length."""
    matched = [0] * 4
    total = [0] * 4
    length = reference_length = 0
    for candidate, refs in zip(candidates, references, strict=True):
        words = tokens(candidate)
        ref_words = [tokens(ref) for ref in refs]
        length += len(words)
        reference_length += min((abs(len(r) - len(words)), len(r)) for r in ref_words)[1]
        for n in range(1, 5):
            counts = _ngrams(words, n)
            most: Counter[tuple[str, ...]] = Counter()
            for ref in ref_words:
                most |= _ngrams(ref, n)
            matched[n - 1] += sum(min(count, most[gram]) for gram, count in counts.items())
            total[n - 1] += max(len(words) - n + 1, 0)
    if length == 0 or any(m == 0 for m in matched):
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matched, total, strict=True)) / 4
    brevity = 1.0 if length > reference_length else math.exp(1 - reference_length / length)
    return brevity * math.exp(log_precision)


def cider_d(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """CIDEr-D: for n = 1..4, the cosine of TF-IDF n-gram vectors (document frequencies over
    the references of this set), candidate counts clipped at the reference's, a Gaussian
    penalty on the length difference; averaged over references and n, times 10."""
    refs_tokens = [[tokens(ref) for ref in refs] for refs in references]
    documents = len(references)
    frequency: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(4)]
    for refs in refs_tokens:
        for n in range(1, 5):
            seen: set[tuple[str, ...]] = set()
            for ref in refs:
                seen.update(_ngrams(ref, n))
            frequency[n - 1].update(seen)
    log_documents = math.log(float(documents))
    scores = []
    for candidate, refs in zip(candidates, refs_tokens, strict=True):
        words = tokens(candidate)
        per_n = []
        for n in range(1, 5):
            vector = _tfidf(_ngrams(words, n), frequency[n - 1], log_documents)
            total = 0.0
            for ref in refs:
                ref_vector = _tfidf(_ngrams(ref, n), frequency[n - 1], log_documents)
                total += _clipped_cosine(vector, ref_vector) * math.exp(
                    -((len(words) - len(ref)) ** 2) / (2 * CIDER_SIGMA**2)
                )
            per_n.append(total / len(refs))
        scores.append(10.0 * sum(per_n) / 4)
    return sum(scores) / len(scores) if scores else 0.0


def _tfidf(
    counts: Counter[tuple[str, ...]], frequency: Counter[tuple[str, ...]], log_documents: float
) -> dict[tuple[str, ...], float]:
    return {
        gram: count * (log_documents - math.log(max(1.0, float(frequency[gram]))))
        for gram, count in counts.items()
    }


def _clipped_cosine(
    candidate: dict[tuple[str, ...], float], reference: dict[tuple[str, ...], float]
) -> float:
    dot = sum(
        min(value, reference[g]) * reference[g] for g, value in candidate.items() if g in reference
    )
    norm = math.sqrt(sum(v * v for v in candidate.values())) * math.sqrt(
        sum(v * v for v in reference.values())
    )
    return dot / norm if norm else 0.0


def box_ap(ground_truth: dict[str, Any], detections: list[dict[str, Any]]) -> dict[str, float]:
    """COCO box AP (IoU 0.50:0.95), AP50 and AP75, in percent, by pycocotools."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        from mmrag.errors import ModelUnavailable

        raise ModelUnavailable("box AP needs pycocotools: pip install pycocotools") from None
    import contextlib
    import io

    if not detections:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its own summary
        truth = COCO()
        truth.dataset = {"info": {}, **ground_truth}
        for annotation in truth.dataset["annotations"]:
            annotation.setdefault("iscrowd", 0)
            annotation.setdefault("area", annotation["bbox"][2] * annotation["bbox"][3])
        truth.createIndex()
        found = truth.loadRes(detections)
        evaluation = COCOeval(truth, found, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {
        "AP": 100 * float(stats[0]),
        "AP50": 100 * float(stats[1]),
        "AP75": 100 * float(stats[2]),
    }
