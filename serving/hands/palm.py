"""Palms in a photo: MediaPipe's palm detector, its anchors and its box decoding.

The detector looks at the photo letterboxed into 192 x 192 and scores 2,016 anchor
boxes; each hit carries a box and seven palm keypoints. Overlapping hits are merged by
score-weighted averaging (MediaPipe's "weighted" non-maximum suppression), and each palm
becomes the rotated square the landmark model reads (:func:`hand_region`), by the rules
of MediaPipe's own hand graph: rotated so that the wrist is below the middle finger,
moved half a palm towards the fingers, 2.6 times the palm's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from signdigits.serving.hands.runtime import TfliteModel, unit_pixels

INPUT_SIDE = 192
MIN_PALM_SCORE = 0.5
_OVERLAP = 0.3  # IoU above which two hits are the same palm
_STRIDES = (8, 16, 16, 16)
# The region rules of MediaPipe's palm-detection-to-hand-ROI step.
_REGION_SCALE = 2.6
_REGION_SHIFT = -0.5  # of the palm's height, towards the fingers
_WRIST, _MIDDLE_KNUCKLE = 0, 2  # the keypoints that set the hand's rotation


@dataclass(frozen=True)
class Palm:
    score: float
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in photo pixels
    keypoints: np.ndarray  # (7, 2) photo pixels


@dataclass(frozen=True)
class Region:
    """A rotated square in photo pixels: what the landmark model is shown."""

    center: tuple[float, float]
    side: float
    rotation: float  # radians, counter-clockwise turn of the square's axes on screen


@cache
def anchors() -> np.ndarray:
    """(2016, 2) anchor centres in [0, 1]: MediaPipe's SSD anchors for the 192 palm model
    (fixed size, so only the centres matter), two per layer and cell, layers of equal
    stride sharing their cells."""
    centres = []
    layer = 0
    while layer < len(_STRIDES):
        stride = _STRIDES[layer]
        same = sum(1 for s in _STRIDES[layer:] if s == stride)
        cells = math.ceil(INPUT_SIDE / stride)
        for y in range(cells):
            for x in range(cells):
                centres += [((x + 0.5) / cells, (y + 0.5) / cells)] * (2 * same)
        layer += same
    return np.asarray(centres, np.float32)


def letterbox(image: Image.Image) -> tuple[np.ndarray, float, tuple[float, float]]:
    """The photo fitted into 192 x 192 on black, as float32 in [0, 1]; and the scale and
    the padding (in input pixels) that map the input back onto the photo."""
    width, height = image.size
    scale = INPUT_SIDE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = Image.new("RGB", (INPUT_SIDE, INPUT_SIDE))
    pad = ((INPUT_SIDE - size[0]) // 2, (INPUT_SIDE - size[1]) // 2)
    canvas.paste(image.resize(size, Image.Resampling.BILINEAR), pad)
    pixels = unit_pixels(canvas)
    return pixels, scale, (float(pad[0]), float(pad[1]))


def find_palms(model: TfliteModel, image: Image.Image, *, max_palms: int) -> list[Palm]:
    pixels, scale, (pad_x, pad_y) = letterbox(image)
    raw_boxes, raw_scores = model(pixels)
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[0, :, 0], -100, 100)))
    hits = np.flatnonzero(scores >= MIN_PALM_SCORE)
    if not len(hits):
        return []
    raw = raw_boxes[0, hits]
    centre = anchors()[hits] * INPUT_SIDE
    # Offsets are in input pixels from the anchor's centre; boxes as centre and size.
    cx, cy = centre[:, 0] + raw[:, 0], centre[:, 1] + raw[:, 1]
    w, h = raw[:, 2], raw[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    keypoints = raw[:, 4:18].reshape(-1, 7, 2) + centre[:, None, :]
    # Input pixels -> photo pixels.
    boxes = (boxes - [pad_x, pad_y, pad_x, pad_y]) / scale
    keypoints = (keypoints - [pad_x, pad_y]) / scale
    return _merge_overlapping(scores[hits], boxes, keypoints)[:max_palms]


def _merge_overlapping(scores: np.ndarray, boxes: np.ndarray,
                       keypoints: np.ndarray) -> list[Palm]:
    palms = []
    left = np.argsort(-scores)
    while len(left):
        best = left[0]
        same = left[_iou(boxes[best], boxes[left]) > _OVERLAP]
        weights = scores[same] / scores[same].sum()
        box = (boxes[same] * weights[:, None]).sum(axis=0)
        points = (keypoints[same] * weights[:, None, None]).sum(axis=0)
        x0, y0, x1, y1 = (float(v) for v in box)
        palms.append(Palm(float(scores[best]), (x0, y0, x1, y1), points))
        left = np.setdiff1d(left, same, assume_unique=True)
        left = left[np.argsort(-scores[left])]
    return palms


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def hand_region(palm: Palm) -> Region:
    wrist, knuckle = palm.keypoints[_WRIST], palm.keypoints[_MIDDLE_KNUCKLE]
    rotation = _normalized(math.pi / 2 - math.atan2(-(knuckle[1] - wrist[1]),
                                                    knuckle[0] - wrist[0]))
    x0, y0, x1, y1 = palm.box
    width, height = x1 - x0, y1 - y0
    shift = height * _REGION_SHIFT
    cx = (x0 + x1) / 2 - shift * math.sin(rotation)
    cy = (y0 + y1) / 2 + shift * math.cos(rotation)
    return Region((cx, cy), max(width, height) * _REGION_SCALE, rotation)


def _normalized(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))
