"""The hand finder's arithmetic, without its models: the palm detector's anchors, the
letterbox, merging overlapping hits, the square the landmark model reads, and the
features that must not change when a hand moves, turns, grows or is mirrored."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from signdigits.serving import model_input
from signdigits.serving.hands import features, palm
from signdigits.serving.hands.landmarks import cut_region
from signdigits.serving.jpeg import dct_scale


def test_the_detector_has_2016_anchors_on_its_two_grids():
    anchors = palm.anchors()
    assert anchors.shape == (2016, 2) and anchors.dtype == np.float32
    assert (anchors > 0).all() and (anchors < 1).all()
    # Stride 8: 24 x 24 cells, 2 anchors each; the three stride-16 layers share 12 x 12
    # cells, 6 anchors each.
    fine, coarse = anchors[:24 * 24 * 2], anchors[24 * 24 * 2:]
    assert len(np.unique(fine, axis=0)) == 576 and len(np.unique(coarse, axis=0)) == 144
    assert np.allclose(fine[0], [0.5 / 24, 0.5 / 24]) and np.allclose(fine[1], fine[0])
    assert np.allclose(coarse[:6], [0.5 / 12, 0.5 / 12])
    assert np.allclose(anchors[-1], [11.5 / 12, 11.5 / 12])


def test_the_letterbox_keeps_the_shape_and_says_how_to_map_back():
    image = Image.new("RGB", (640, 480), (255, 0, 0))
    pixels, scale, (pad_x, pad_y) = palm.letterbox(image)
    assert pixels.shape == (1, 192, 192, 3) and pixels.dtype == np.float32
    assert scale == pytest.approx(0.3) and (pad_x, pad_y) == (0.0, 24.0)
    assert pixels[0, :24].max() == 0 and pixels[0, -24:].max() == 0  # black bands
    assert np.allclose(pixels[0, 24:168, :, 0], 1.0)  # the photo between them
    # An input pixel maps back onto the photo: (x - pad) / scale.
    assert (96 - pad_x) / scale == pytest.approx(320) and (96 - pad_y) / scale == pytest.approx(
        240)


def test_overlapping_hits_merge_into_one_palm_weighted_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    keypoints = np.zeros((3, 7, 2), np.float32)
    keypoints[1] += 1
    scores = np.array([0.9, 0.6, 0.8], np.float32)
    palms = palm._merge_overlapping(scores, boxes, keypoints)
    assert [p.score for p in palms] == pytest.approx([0.9, 0.8])
    assert palms[0].box[0] == pytest.approx(0.6 / 1.5)  # (0 * 0.9 + 1 * 0.6) / 1.5
    assert np.allclose(palms[0].keypoints, 0.4)
    assert palms[1].box == pytest.approx((50, 50, 60, 60))


def _palm(box, wrist, knuckle) -> palm.Palm:
    keypoints = np.zeros((7, 2), np.float32)
    keypoints[0], keypoints[2] = wrist, knuckle
    return palm.Palm(0.9, box, keypoints)


def test_an_upright_palms_region_is_moved_towards_the_fingers_and_grown():
    region = palm.hand_region(_palm((50, 100, 150, 200), wrist=(100, 200), knuckle=(100, 100)))
    assert region.rotation == pytest.approx(0.0)
    assert region.center == pytest.approx((100, 100))  # half the palm's height up
    assert region.side == pytest.approx(260)  # 2.6 x the palm


@pytest.mark.parametrize(("knuckle", "rotation", "center"), [
    ((200, 150), math.pi / 2, (150, 150)),  # fingers to the right
    ((0, 150), -math.pi / 2, (50, 150)),  # to the left
    ((100, 250), math.pi, (100, 200)),  # down
])
def test_a_turned_palms_region_turns_with_it(knuckle, rotation, center):
    region = palm.hand_region(_palm((50, 100, 150, 200), wrist=(100, 150), knuckle=knuckle))
    assert abs(math.remainder(region.rotation - rotation, 2 * math.pi)) < 1e-6
    assert region.center == pytest.approx(center)
    assert region.side == pytest.approx(260)


def test_an_unturned_region_is_cut_as_a_plain_crop():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (300, 400, 3), np.uint8))
    cut = cut_region(image, palm.Region((200, 150), 224, 0.0))
    assert cut.size == (224, 224)
    plain = np.asarray(image.crop((88, 38, 312, 262)), np.int16)
    assert np.abs(np.asarray(cut, np.int16) - plain).max() <= 1


def _hand(seed: int = 3) -> np.ndarray:
    """21 points with a hand's proportions, jittered: wrist, then four per finger."""
    rng = np.random.default_rng(seed)
    points = [(0.0, 0.0, 0.0)]
    for finger, angle in enumerate(np.linspace(-0.9, 0.5, 5)):
        for joint in range(1, 5):
            reach = 40 + 25 * joint - 10 * (finger == 0)
            points.append((reach * math.sin(angle), -reach * math.cos(angle), 3.0 * joint))
    return np.asarray(points) * 2 + rng.normal(0, 2, (21, 3)) + (300, 200, 0)


def _turned(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    turned = points.copy()
    turned[:, 0] = c * points[:, 0] - s * points[:, 1]
    turned[:, 1] = s * points[:, 0] + c * points[:, 1]
    return turned


@pytest.mark.parametrize("change", ["moved", "turned", "upside down", "grown", "shrunk",
                                    "mirrored", "all at once"])
def test_features_ignore_place_size_turn_and_mirror(change):
    hand = _hand()
    changed = {
        "moved": hand + (-250, 730, 12),
        "turned": _turned(hand, 0.7),
        "upside down": _turned(hand, math.pi),
        "grown": hand * 3.5,
        "shrunk": hand * 0.2,
        "mirrored": hand * (-1, 1, 1),
        "all at once": _turned(hand * (-1, 1, 1), -2.1) * 0.6 + (40, -90, 5),
    }[change]
    assert np.abs(features.hand_features(changed) - features.hand_features(hand)).max() < 1e-5


def test_features_tell_hands_apart():
    """Not the same for every input: another pose moves them."""
    hand, other = _hand(), _hand()
    other[5:9] = other[5] + (other[5:9] - other[5]) * (1, -0.3, 1)  # the index finger bent
    assert np.abs(features.hand_features(other) - features.hand_features(hand)).max() > 0.1


def test_the_feature_count_is_the_one_artifacts_record():
    assert features.FEATURE_COUNT == model_input.FEATURE_COUNT == 265
    out = features.hand_features(_hand())
    assert out.shape == (model_input.FEATURE_COUNT,) and out.dtype == np.float32
    assert np.isfinite(out).all()


@pytest.mark.parametrize(("size", "scale"), [((4032, 3024), 8), ((1920, 1080), 4),
                                             ((640, 480), 2), ((479, 700), 1), ((100, 100), 1),
                                             ((1920, 960), 4), ((1919, 959), 2)])
def test_jpegs_are_decoded_at_the_smallest_scale_keeping_240_a_side(size, scale):
    assert dct_scale(*size, 240) == scale


def _upright_hand() -> np.ndarray:
    """21 points of an open hand, fingers up (y grows downwards), wrist at (100, 200)."""
    points = np.zeros((21, 3), np.float32)
    points[0, :2] = (100, 200)
    for finger, x in enumerate((60, 80, 100, 120, 140)):
        for joint in range(4):
            points[1 + 4 * finger + joint, :2] = (x, 160 - 20 * joint)
    return points


def test_the_region_from_landmarks_of_an_upright_hand_is_upright_and_covers_it():
    from signdigits.serving.hands.landmarks import region_from_landmarks

    region = region_from_landmarks(_upright_hand())
    assert region.rotation == pytest.approx(0.0, abs=1e-6)
    # Twice the extent of the wrist and knuckle-side joints (80 wide, 80 tall), moved a
    # tenth of it towards the fingers.
    assert region.side == pytest.approx(160.0)
    assert region.center == pytest.approx((100.0, 152.0))


@pytest.mark.parametrize("angle", [math.pi / 2, -math.pi / 3, math.pi])
def test_the_region_from_landmarks_turns_with_the_hand(angle):
    from signdigits.serving.hands.landmarks import region_from_landmarks

    upright = region_from_landmarks(_upright_hand())
    turned_points = _upright_hand()
    wrist = turned_points[0, :2].copy()
    cos, sin = math.cos(angle), math.sin(angle)
    turned_points[:, :2] = (turned_points[:, :2] - wrist) @ np.array([[cos, sin], [-sin, cos]]) \
        + wrist
    turned = region_from_landmarks(turned_points)
    assert math.remainder(turned.rotation - angle, 2 * math.pi) == pytest.approx(0, abs=1e-5)
    assert turned.side == pytest.approx(upright.side, rel=1e-5)
    offset = np.subtract(upright.center, wrist)
    expected = wrist + offset @ np.array([[cos, sin], [-sin, cos]])
    assert turned.center == pytest.approx(tuple(expected), abs=1e-3)
