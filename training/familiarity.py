"""Which training hands the served graph measures a hand against, and how far is too far
(:mod:`serving.familiar` applies it).

The references are :data:`REFERENCES` of the training hands chosen farthest-first (each
the hand farthest from those chosen before it), so that every training hand lies near one;
the cut is the farthest any training hand lies from its nearest reference other than
itself. A served hand farther than that from every reference is unlike all the training
data, and is read below any threshold.

Chosen on the foreign photos and degraded copies of them (measuring only, never fitted:
docs/model.md, "Unfamiliar hands"): 256 references flag as many wrong answers as all
1,572 training hands do and cost one 265 x 256 matrix product per hand (0.27 MB in each
artifact file, against 1.7 MB for all of them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REFERENCES = 256
_CHUNK = 4096  # rows of distances at once: memory stays small for any training set
_STD_FLOOR = 1e-3  # a feature constant in training (one is) does not divide by zero


@dataclass(frozen=True)
class Familiar:
    mean: np.ndarray  # (F,) of the training hands
    scale: np.ndarray  # (F,) 1 / their standard deviation
    references: np.ndarray  # (M, F) standardised
    cut: float  # standardised distance; farther from every reference is unfamiliar

    def distances(self, x: np.ndarray) -> np.ndarray:
        """(N,) each hand's distance to its nearest reference."""
        return np.sqrt(_nearest(self.standardise(x), self.references))

    def unfamiliar(self, x: np.ndarray) -> np.ndarray:
        return self.distances(x) > self.cut

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.mean) * self.scale

    def summary(self, **counts: int) -> dict:
        """What the artifact's metadata says of it."""
        return {"references": int(len(self.references)), "cut": round(self.cut, 4),
                "rule": ("a hand farther (standardised features) from every one of the "
                         f"{len(self.references)} reference hands than any training hand "
                         "lies from its nearest other reference keeps half its "
                         "probabilities, the rest spread evenly: at most 0.55 sure"),
                **counts}


def familiar_from(x: np.ndarray, *, references: int = REFERENCES) -> Familiar:
    """The references and the cut for training hands ``x`` (N, F)."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    scale = 1.0 / np.maximum(x.std(axis=0), _STD_FLOOR)
    z = (x - mean) * scale
    chosen = _farthest_first(z, min(references, len(z)))
    refs = z[chosen]
    squared = _nearest(z, refs, chosen=chosen)
    finite = squared[np.isfinite(squared)]
    cut = float(np.sqrt(finite.max())) if len(finite) else 0.0
    return Familiar(mean, scale, refs, cut)


def _farthest_first(z: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` rows: the one farthest from the mean, then each time the row
    farthest from all chosen so far (deterministic: ties go to the lowest index)."""
    chosen = [int(np.argmax((z * z).sum(axis=1)))]
    nearest = _squared(z, z[chosen]).min(axis=1)
    while len(chosen) < count:
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, _squared(z, z[chosen[-1:]])[:, 0])
    return np.array(chosen)


def _squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared distances, never negative."""
    return np.maximum((a * a).sum(axis=1)[:, None] - 2.0 * a @ b.T + (b * b).sum(axis=1), 0.0)


def _nearest(z: np.ndarray, refs: np.ndarray, *, chosen: np.ndarray | None = None
             ) -> np.ndarray:
    """(N,) each row's squared distance to its nearest reference; with ``chosen`` (the
    rows ``refs`` were taken from), the nearest other than itself."""
    out = np.empty(len(z))
    for start in range(0, len(z), _CHUNK):
        block = _squared(z[start:start + _CHUNK], refs)
        if chosen is not None:
            inside = np.flatnonzero((chosen >= start) & (chosen < start + len(block)))
            block[chosen[inside] - start, inside] = np.inf
        out[start:start + len(block)] = block.min(axis=1)
    return out
