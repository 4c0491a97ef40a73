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
from signdigits.serving.hands.runtime import TfliteModel, unit_pixels

INPUT_SIDE = 224
MIN_PRESENCE = 0.5  # below it the model says the square holds no hand
# MediaPipe's rule for the square around a hand given its landmarks (the one its tracking
# uses for the next frame): the wrist and the knuckle-side joints, turned so that the
# wrist is below the middle of the palm, twice their extent, moved a tenth towards the
# fingers.
_ROI_POINTS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
_ROI_SCALE = 2.0
_ROI_SHIFT = -0.1


@dataclass(frozen=True)
class Landmarks:
    points: np.ndarray  # (21, 3) x, y, z in photo pixels
    presence: float  # 0-1: that the square holds a hand
    right: float  # 0-1: that it is a right hand as MediaPipe sees it (a mirrored view)


def cut_region(image: Image.Image, region: Region, side: int = INPUT_SIDE) -> Image.Image:
    """The rotated square upright, ``side`` pixels a side; outside the photo is black.

    A square larger than ``side`` photo pixels (a webcam photo read whole, a big hand) is
    sampled at the nearest pixel: Pillow's bilinear affine costs 1.0-1.4 ms a cut here,
    nearest 0.1 ms, and without an anti-aliasing filter neither blends more than the
    neighbouring pixels when shrinking. A smaller square (a studio crop, a small hand) is
    enlarged, where bilinear keeps the edges smooth, and stays bilinear. Measured on
    ``modi``: 16.5 -> 14.5 CPU-ms a photo to find its hand; the shipped model 499/500 right
    (was 500/500; the one miss below the threshold), 497 above it, all right; ``cyril``
    500/500 both ways; the studio photos' features unchanged (all enlarged).
    """
    cos, sin = math.cos(region.rotation), math.sin(region.rotation)
    step = region.side / side
    cx, cy = region.center
    half = region.side / 2
    # Output pixel (u, v) -> photo point centre + R(rotation) @ (u*step - half, v*step - half).
    coefficients = (cos * step, -sin * step, cx - cos * half + sin * half,
                    sin * step, cos * step, cy - sin * half - cos * half)
    sampling = Image.Resampling.NEAREST if step >= 1 else Image.Resampling.BILINEAR
    return image.transform((side, side), Image.Transform.AFFINE, coefficients,
                           resample=sampling, fillcolor=(0, 0, 0))


def place_landmarks(model: TfliteModel, image: Image.Image, region: Region) -> Landmarks:
    crop = cut_region(image, region)
    pixels = unit_pixels(crop)
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


def hand_rotation(points: np.ndarray) -> float:
    """How far the hand is turned from fingers up, in radians in [-pi, pi): the direction
    from the wrist to the middle of the palm (0: straight up the photo; +-pi: down)."""
    wrist = points[0, :2]
    palm_middle = ((points[5, :2] + points[13, :2]) / 2 + points[9, :2]) / 2
    rotation = math.pi / 2 - math.atan2(-(palm_middle[1] - wrist[1]), palm_middle[0] - wrist[0])
    return rotation - 2 * math.pi * math.floor((rotation + math.pi) / (2 * math.pi))


def region_from_landmarks(points: np.ndarray) -> Region:
    """The square MediaPipe reads a hand in again, from landmarks placed once."""
    rotation = hand_rotation(points)
    cos, sin = math.cos(rotation), math.sin(rotation)
    # The points in the square's own axes: their bounds give its centre and size.
    to_square = np.array([[cos, sin], [-sin, cos]])
    turned = points[list(_ROI_POINTS), :2] @ to_square.T
    low, high = turned.min(axis=0), turned.max(axis=0)
    centre = ((low + high) / 2) @ to_square
    width, height = high - low
    shift = height * _ROI_SHIFT
    return Region((float(centre[0] - shift * sin), float(centre[1] + shift * cos)),
                  float(max(width, height) * _ROI_SCALE), rotation)


def _probability(value: np.ndarray) -> float:
    """The lite model's presence and handedness heads end in a sigmoid already."""
    return float(np.clip(value.reshape(-1)[0], 0.0, 1.0))
