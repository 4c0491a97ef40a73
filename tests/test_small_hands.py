"""Small hands in big photos: decoded closer, searched in finer tiles, placed again; and
specks those tiles find not taken for hands.

The pictures are built from the shared foreign photos (``../shared/datasets/
foreign-photos``), read in place, never copied into the repository: webcam close-ups
shrunk onto a 1280 x 960 picture of smooth colours (tests.photos.small_hand), and a
degraded webcam copy (bench.drift). The hand models are the ones ``scripts/setup``
fetched (tests.hand_fixtures).
"""

from __future__ import annotations

import numpy as np

from tests.conftest import require
from tests.photos import plain_wall, small_hand


def test_a_hand_too_small_at_the_first_decode_is_found_on_a_closer_one(finder, dataset,
                                                                       tmp_path):
    """14 pixels wide at the usual decode, no hand is found; decoded closer (1280 x 960,
    all its pixels), the hand is found and read right, in that picture's pixels."""
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.photo import read_photo
    from signdigits.serving.reader import HandReader, look

    digit = small_hand(dataset, tmp_path / "small.jpg")
    first = read_photo(tmp_path / "small.jpg")
    assert first.image.size == (320, 240) and finder.find(first.image) == []
    photo, hands = look(finder, tmp_path / "small.jpg")
    assert photo.image.size == (1280, 960) and photo.scale == 1.0 and len(hands) == 1
    reader = HandReader(Classifier(), finder)
    assert reader.look((tmp_path / "small.jpg").read_bytes())[1].digits == str(digit)
    # A photo that has no more pixels to give is not decoded again: the same photo back.
    plain_wall(tmp_path / "wall.jpg", size=(320, 240))
    wall, none = look(finder, tmp_path / "wall.jpg")
    assert none == [] and wall.image.size == (320, 240)


def test_a_small_hand_found_at_the_first_decode_is_placed_again_on_a_closer_one(
        finder, dataset, tmp_path):
    """23 pixels wide at the usual decode: found, but its points placed in a square blown
    up from about 46 pixels. The photo is decoded closer and the same hand placed again
    there from its own points, without a second search: the points move by pixels, not
    across the photo, and the digit is read right."""
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.photo import read_photo
    from signdigits.serving.reader import Closer, HandReader, closer_step, look_again

    digit = small_hand(dataset, tmp_path / "small.jpg", share=0.125)
    first = read_photo(tmp_path / "small.jpg")
    hands = finder.find(first.image)
    assert len(hands) == 1 and closer_step([hands[0].box]) is Closer.PLACE
    palms = finder.seconds.palms
    photo, again = look_again(finder, tmp_path / "small.jpg", first, hands,
                              max_pixels=10**8)
    assert finder.seconds.palms == palms  # no palm detector pass: placed, not searched
    assert photo.image.size == (1280, 960) and len(again) == 1
    assert (again[0].palm_score, again[0].padded) == (hands[0].palm_score, hands[0].padded)
    moved = again[0].landmarks.points[:, :2] - hands[0].landmarks.points[:, :2] * 4
    assert 0 < np.abs(moved).max() < 40  # a few photo pixels: the same hand, placed anew
    reader = HandReader(Classifier(), finder)
    assert reader.classify([again])[0].digits == str(digit)


def test_a_hand_a_thirtieth_of_the_width_is_found_in_the_closer_decodes_finer_tiles(
        finder, dataset, tmp_path):
    """The hand 29 x 37 pixels in 1280 x 960: no hand at the usual decode, and none on the
    closer one in 3 x 3, 5 x 5 or 7 x 7 tiles (the palm under the detector's reach); its
    finer tiles find it, and the digit is read right at the default threshold."""
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.photo import read_photo
    from signdigits.serving.reader import CLOSER_GRIDS, HandReader, look

    digit = small_hand(dataset, tmp_path / "tiny.jpg", share=0.05)
    closer = read_photo(tmp_path / "tiny.jpg", min_side=960)
    assert finder.find(closer.image, grids=(3, 5, 7)) == []
    assert max(CLOSER_GRIDS) > 7
    photo, hands = look(finder, tmp_path / "tiny.jpg")
    assert photo.image.size == (1280, 960) and len(hands) == 1
    x0, y0, x1, y1 = hands[0].box
    assert max(x1 - x0, y1 - y0) < 0.035 * 1280, hands[0].box
    classifier = Classifier()
    reading = HandReader(classifier, finder).classify([hands])[0]
    assert reading.digits == str(digit)
    assert not reading.doubtful(classifier.info.default_threshold)


def test_a_speck_the_finest_tiles_take_for_a_hand_is_not_kept(finder, dataset, tmp_path,
                                                              monkeypatch):
    """A webcam copy of a modi photo (bench.drift's `webcam`: stretched, dim, noisy): its
    blurred hand is missed, and the 9 x 9 and 11 x 11 tiles find a 28 x 10 pixel speck
    below it that the classifier reads as 5 at 0.998. The landmark model placing it is 0.91
    sure of it, under what a hand found in tiles needs (TILE_PRESENCE): no hand, no answer.
    With the cut of any other hand (KEEP_PRESENCE) the speck would be kept."""
    from signdigits.bench.drift import degrade_folder
    from signdigits.serving.hands import finder as finder_module
    from signdigits.serving.reader import look

    photo = dataset.parent / "foreign-photos" / "modi" / "2" / "20.jpg"
    require(photo.is_file(), f"foreign photos not found at {photo.parent.parent.parent}")
    (tmp_path / "modi" / "2").mkdir(parents=True)
    (tmp_path / "modi" / "2" / "20.jpg").symlink_to(photo)  # read in place, not copied
    degrade_folder(tmp_path / "modi", tmp_path / "webcam", "webcam")
    copy = tmp_path / "webcam" / "2" / "20.jpg"
    decoded, hands = look(finder, copy)
    assert decoded.image.size == (1138, 480)
    assert hands == [], [(hand.box, hand.landmarks.presence) for hand in hands]
    tile_presence = finder_module.TILE_PRESENCE
    monkeypatch.setattr(finder_module, "TILE_PRESENCE", finder_module.KEEP_PRESENCE)
    _, [speck] = look(finder, copy)
    x0, y0, x1, y1 = speck.box
    assert max(x1 - x0, y1 - y0) < 40 and speck.landmarks.presence < tile_presence


def test_an_arm_small_at_the_edge_of_a_picture_is_not_a_hand(finder, dataset, monkeypatch):
    """The part of modi 2/48 left of its signing hand (bench.beside_hand's strip): the
    forearm, cut at the strip's edge, 5% of the strip. The palm detector finds it in a
    window, not in tiles, and the landmark model is 0.84 sure of it; the classifier would
    read it as a 5 at 1.0. Small in the picture, it needs what a hand found in tiles
    needs (TILE_PRESENCE): no hand. Kept from KEEP_PRESENCE, as any bigger hand is, it
    would be a hand."""
    import io

    from signdigits.bench.beside_hand import strips
    from signdigits.serving.hands import finder as finder_module
    from signdigits.serving.reader import look

    path = dataset.parent / "foreign-photos" / "modi" / "2" / "48.jpg"
    require(path.is_file(), f"foreign photos not found at {path.parent.parent.parent}")
    photo, (hand,) = look(finder, path)
    (left,) = [strip for side, strip in strips(photo.image, hand.box, margin=0.05, least=0.3)
               if side == "left"]
    data = io.BytesIO()
    left.save(data, format="PNG")
    assert look(finder, data.getvalue())[1] == []
    monkeypatch.setattr(finder_module, "SMALL_SHARE", 0.0)
    _, (arm,) = look(finder, data.getvalue())
    x0, y0, x1, y1 = arm.box
    assert max(x1 - x0, y1 - y0) < 0.1 * max(left.size)
    assert finder_module.KEEP_PRESENCE <= arm.landmarks.presence < finder_module.TILE_PRESENCE
