"""21 points on a hand: MediaPipe's hand-landmark model on the rotated square around a palm.

The square (:class:`palm.Region`) is cut out of the photo upright into 224 x 224, the
model places the 21 landmarks (wrist, then four joints per finger from the thumb) and
says how sure it is that a hand is there and which hand it is; the points are turned
back into photo pixels. ``z`` is depth relative to the wrist, in the same pixel scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from signdigits.serving.hands.palm import Region
from signdigits.serving.hands.runtime import TfliteModel

INPUT_SIDE = 224
MIN_PRESENCE = 0.5  # below it the model says the square holds no hand


@dataclass(frozen=True)
class Landmarks:
    points: np.ndarray  # (21, 3) x, y, z in photo pixels
    presence: float  # 0-1: that the square holds a hand
    right: float  # 0-1: that it is a right hand as MediaPipe sees it (a mirrored view)


def cut_region(image: Image.Image, region: Region, side: int = INPUT_SIDE) -> Image.Image:
    """The rotated square upright, ``side`` pixels a side; outside the photo is black."""
    cos, sin = math.cos(region.rotation), math.sin(region.rotation)
    step = region.side / side
    cx, cy = region.center
    half = region.side / 2
    # Output pixel (u, v) -> photo point centre + R(rotation) @ (u*step - half, v*step - half).
    coefficients = (cos * step, -sin * step, cx - cos * half + sin * half,
                    sin * step, cos * step, cy - sin * half - cos * half)
    return image.transform((side, side), Image.Transform.AFFINE, coefficients,
                           resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


def place_landmarks(model: TfliteModel, image: Image.Image, region: Region) -> Landmarks:
    crop = cut_region(image, region)
    pixels = np.asarray(crop, np.float32)[None] / np.float32(255.0)
    screen, presence, handedness, _world = model(pixels)
    local = screen.reshape(21, 3) / INPUT_SIDE  # fractions of the square
    cos, sin = math.cos(region.rotation), math.sin(region.rotation)
    u, v = local[:, 0] - 0.5, local[:, 1] - 0.5
    points = np.stack([
        region.center[0] + (cos * u - sin * v) * region.side,
        region.center[1] + (sin * u + cos * v) * region.side,
        local[:, 2] * region.side,
    ], axis=1)
    return Landmarks(points.astype(np.float32), _probability(presence),
                     _probability(handedness))


def _probability(value: np.ndarray) -> float:
    """The lite model's presence and handedness heads end in a sigmoid already."""
    return float(np.clip(value.reshape(-1)[0], 0.0, 1.0))
