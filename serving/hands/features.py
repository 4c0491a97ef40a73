"""What the digit classifier reads of a hand: its shape, never its pixels or its place.

The 21 landmarks are turned into numbers that do not change when the hand moves, turns,
grows, or is seen in a mirror (a left hand, a palm seen from the back): each finger's
three bends, the distances between the points over the palm's size, and where each
point sits in the palm's own frame (across the knuckles and along the middle finger).
The background, the light and the camera never reach the classifier, which is why a
model trained on one studio's photos reads other people's.

Bump :data:`FEATURES_VERSION` when these numbers change: artifacts record the version
they were trained with and are refused by code that computes different ones.
"""

from __future__ import annotations

import numpy as np

FEATURES_VERSION = 1
WRIST = 0
_FINGERS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
_KNUCKLES = (5, 9, 13, 17)
_PAIRS = np.triu_indices(21, k=1)
BENDS = 15
DISTANCES = len(_PAIRS[0])  # 210
FRAME = 40  # 20 points x (across, along)
FEATURE_COUNT = BENDS + DISTANCES + FRAME  # 265


def hand_features(points: np.ndarray) -> np.ndarray:
    """(21, 3) landmarks (x, y, z in one pixel scale) -> (FEATURE_COUNT,) float32."""
    p = np.asarray(points, np.float64)
    palm = float(np.mean(np.linalg.norm(p[list(_KNUCKLES)] - p[WRIST], axis=1)))
    p = (p - p[WRIST]) / max(palm, 1e-6)
    return np.concatenate([_bends(p), _distances(p), _palm_frame(p)]).astype(np.float32)


def _bends(p: np.ndarray) -> np.ndarray:
    """Cosine of the angle at each finger joint: 1 straight, lower bent."""
    cosines = []
    for finger in _FINGERS:
        chain = (WRIST, *finger)
        for a, b, c in zip(chain, chain[1:], chain[2:], strict=False):
            first, second = p[b] - p[a], p[c] - p[b]
            cosines.append(first @ second / max(np.linalg.norm(first) * np.linalg.norm(second),
                                                1e-9))
    return np.asarray(cosines)


def _distances(p: np.ndarray) -> np.ndarray:
    return np.linalg.norm(p[_PAIRS[0]] - p[_PAIRS[1]], axis=1)


def _palm_frame(p: np.ndarray) -> np.ndarray:
    """Each point's coordinates along the middle finger's knuckle and across the knuckles
    (little finger to index): the same for a hand and its mirror image. Depth is left out:
    it is what tells a palm from the back of a hand, which says nothing about the digit."""
    along = p[9] / max(np.linalg.norm(p[9]), 1e-9)
    across = p[5] - p[17]
    across = across - (across @ along) * along
    across /= max(np.linalg.norm(across), 1e-9)
    return np.stack([p[1:] @ across, p[1:] @ along], axis=1).reshape(-1)
