"""The hand finder on real photos: it finds the hands that are there and none that are not,
serves only the pinned model files, and never brings TensorFlow into serving.

Reads the shared foreign photos (``../shared/datasets/foreign-photos``: other people's
webcams and rooms) and the dataset's studio crops, in place, never copied. The hand
models are the ones ``scripts/setup`` fetched into the venv.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from signdigits.serving.hands.models import (
    FETCH_COMMAND,
    MODEL_FILES,
    HandModelsError,
    check_models,
)
from tests.conftest import DATASET, make_env, require, run_cli, sample_images

FOREIGN = DATASET.parent / "foreign-photos"


def _find(finder, path: Path):
    from signdigits.serving.photo import read_photo

    photo = read_photo(path)
    return photo, finder.find(photo.image)


@pytest.mark.parametrize("signer", ["cyril", "modi"])
def test_a_hand_is_found_in_the_foreign_photos(finder, signer):
    """Two photos of each digit, spread over each capture (all 1,000 had one found)."""
    folder = FOREIGN / signer
    require((folder / "0").is_dir(), f"foreign photos not found at {folder}")
    photos = [p for d in range(10) for p in sorted((folder / str(d)).iterdir())[::25]]
    assert len(photos) == 20
    missed = []
    for path in photos:
        photo, hands = _find(finder, path)
        if not hands:
            missed.append(path.relative_to(folder))
            continue
        x0, y0, x1, y1 = hands[0].box  # on the decoded picture, inside it (give or take)
        width, height = photo.image.size
        assert -0.1 * width < x0 < x1 < 1.1 * width and -0.1 * height < y0 < y1 < 1.1 * height
        assert (x1 - x0) * (y1 - y0) > 0.01 * width * height  # a hand, not a speck
    assert len(missed) <= 1, missed


def test_a_hand_is_found_in_the_datasets_crops(finder, dataset):
    """Three photos of each digit; all but one of the dataset's 1,853 had one found, nearly
    all on the whole photo (the hand fills a studio crop)."""
    found = whole = 0
    for path, _digit in sample_images(dataset, 3, seed=7):
        _photo, hands = _find(finder, path)
        found += bool(hands)
        whole += bool(hands and hands[0].whole_photo)
    assert found >= 29, found
    assert whole >= 27, whole


def test_a_thin_picture_costs_a_bounded_number_of_detector_passes(finder, tmp_path,
                                                                 monkeypatch):
    """A 6000 x 2 PNG (92 bytes) was 3,000 windows, each a palm-detector and a landmark
    pass, then a padded canvas of 12000 x 6002: a minute of a worker, every other job
    waiting; 50000 x 2 ended in a decompression-bomb error. Now a picture under
    MIN_PHOTO_SIDE is not searched, a long one gets at most MAX_WINDOWS windows and no
    padded copy, and the whole read, closer decode included, is a no-hand answer."""
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands import finder as finder_module
    from signdigits.serving.reader import HandReader

    passes = []
    real = finder_module.find_palms
    monkeypatch.setattr(finder_module, "find_palms",
                        lambda model, window, **kw: passes.append(window.size)
                        or real(model, window, **kw))
    Image.new("L", (6000, 2)).save(tmp_path / "line.png")
    Image.new("RGB", (8000, 40), (200, 150, 120)).save(tmp_path / "strip.png")
    reader = HandReader(Classifier(), finder)
    line = reader.look((tmp_path / "line.png").read_bytes())[1]
    assert line.hands == [] and passes == []
    strip = reader.look((tmp_path / "strip.png").read_bytes())[1]
    assert strip.hands == [] and 0 < len(passes) <= finder_module.MAX_WINDOWS
    assert max(max(size) for size in passes) < 8000  # windows of the strip, no canvas


def test_a_hand_cut_out_onto_black_is_found_and_read(finder, dataset, tmp_path):
    """The kind of set people make by segmenting their hands: bench.drift's `black` cuts
    the studio hand out of its light wall onto black, under lights from dim to bright. The
    wall is gone (the corners black), and the hand is still found and read right."""
    from signdigits.bench.drift import degrade_folder
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.reader import HandReader

    for path, digit in sample_images(dataset, 1, seed=3):
        (tmp_path / "studio" / str(digit)).mkdir(parents=True)
        (tmp_path / "studio" / str(digit) / path.name).symlink_to(path)  # read in place
    truth = degrade_folder(tmp_path / "studio", tmp_path / "black", "black")
    reader = HandReader(Classifier(), finder)
    right = 0
    for relative, digit in truth.items():
        copy = np.asarray(Image.open(tmp_path / "black" / relative).convert("RGB"))
        assert copy[:3, :3].max() < 40 and copy[-3:, -3:].max() < 40, relative  # the wall
        right += reader.look(tmp_path / "black" / relative)[1].digits == str(digit)
    assert right == 10, right


def test_a_hand_that_fills_the_photo_is_read_without_the_palm_detector(finder, dataset):
    path, _digit = sample_images(dataset, 1, seed=3)[0]
    palms_before = finder.seconds.palms
    _photo, hands = _find(finder, path)
    assert len(hands) == 1 and hands[0].whole_photo and hands[0].palm_score is None
    assert finder.seconds.palms == palms_before  # the detector never ran


def test_a_small_hand_in_a_big_photo_is_found_by_the_palm_detector(finder, dataset):
    """A studio hand pasted at a fifth of the width onto a wall: too small for the whole
    photo to look like a hand, found by the palm detector where it was put."""
    from signdigits.serving.photo import read_photo

    path, _digit = sample_images(dataset, 1, seed=3)[0]
    hand = read_photo(path).image.resize((128, 128))
    scene = _wall()
    scene.paste(hand, (420, 200))
    hands = finder.find(scene)
    assert hands and not hands[0].whole_photo and hands[0].palm_score is not None
    x0, y0, x1, y1 = hands[0].box
    assert 400 < (x0 + x1) / 2 < 570 and 180 < (y0 + y1) / 2 < 350, hands[0].box


def _side_by_side(paths: list[Path], *, gap: int = 0, height: int = 480) -> Image.Image:
    photos = [Image.open(path).convert("RGB") for path in paths]
    photos = [p.resize((round(p.width * height / p.height), height)) for p in photos]
    row = Image.new("RGB", (sum(p.width for p in photos) + gap * (len(photos) - 1), height),
                    (128, 128, 128))
    left = 0
    for photo in photos:
        row.paste(photo, (left, 0))
        left += photo.width + gap
    return row


def _first(signer: str, digit: int) -> Path:
    return sorted((FOREIGN / signer / str(digit)).glob("*.jpg"))[0]


@pytest.mark.parametrize("gap", [0, 40])
def test_four_people_side_by_side_are_four_hands_each_in_its_own_photo(finder, gap):
    """Letterboxed whole into the palm detector, four webcam photos in a row were too small
    for it: the row is searched in windows, each hand found once, none merged."""
    require(FOREIGN.is_dir(), f"foreign photos not found at {FOREIGN}")
    paths = [_first("cyril", 4), _first("modi", 1), _first("cyril", 2), _first("modi", 9)]
    row = _side_by_side(paths, gap=gap)
    hands = finder.find(row)
    assert len(hands) == 4, [h.box for h in hands]
    # One hand in each photo's stretch of the row.
    width = (row.width + gap) / 4
    assert sorted(int(((h.box[0] + h.box[2]) / 2) // width) for h in hands) == [0, 1, 2, 3]


def test_a_close_up_is_not_taken_for_a_group(finder):
    """A hand that fills a webcam photo is its only subject: the whole-photo shortcut holds
    and the palm detector does not run."""
    require(FOREIGN.is_dir(), f"foreign photos not found at {FOREIGN}")
    palms_before = finder.seconds.palms
    hands = finder.find(Image.open(_first("cyril", 5)).convert("RGB"))
    assert len(hands) == 1 and hands[0].whole_photo
    assert finder.seconds.palms == palms_before


def test_a_whole_photo_hand_the_classifier_is_sure_of_is_placed_once(finder):
    """The reader places a hand filling the photo once when the classifier is all but
    certain of its digit there (serving.reader.SETTLED_CONFIDENCE), else twice; either way
    its answers are those of two placements (training's reading) on these photos."""
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.reader import SETTLED_CONFIDENCE, HandReader

    require(FOREIGN.is_dir(), f"foreign photos not found at {FOREIGN}")
    reader = HandReader(Classifier(), finder)
    once = 0
    for path in [_first(signer, digit) for signer in ("cyril", "modi") for digit in range(10)]:
        image = Image.open(path).convert("RGB")
        served, placed_twice = reader.find(image), finder.find(image)
        assert len(served) == len(placed_twice) == 1 and not placed_twice[0].placed_once
        reading, reference = reader.classify([served, placed_twice])
        assert reading.digits == reference.digits == path.parent.name, path
        if served[0].placed_once:
            once += 1
            # Read in the photo's own square, which the web then shows as the crop read.
            assert served[0].region.side == max(image.size) and served[0].region.rotation == 0
            assert reading.confidence >= SETTLED_CONFIDENCE
            assert reading.how == "hand landmarks, whole photo, placed once"
        else:  # placed twice (or found by the palm detector), as training reads it
            assert served[0].landmarks.points.tolist() == \
                placed_twice[0].landmarks.points.tolist()
            assert reading.how == reference.how != "hand landmarks, whole photo, placed once"
    assert 5 <= once < 20, once


def test_only_a_hand_that_is_the_photos_subject_is_placed_once(finder):
    """Four people side by side: no hand fills the photo, so none is settled at its first
    placement, whatever the classifier would say."""
    require(FOREIGN.is_dir(), f"foreign photos not found at {FOREIGN}")
    row = _side_by_side([_first("cyril", 4), _first("modi", 1), _first("cyril", 2),
                         _first("modi", 9)])
    hands = finder.find(row, lambda _landmarks: True)
    assert len(hands) == 4 and not any(hand.placed_once for hand in hands)
    close_up = Image.open(_first("cyril", 5)).convert("RGB")
    assert finder.find(close_up, lambda _landmarks: True)[0].placed_once
    assert not finder.find(close_up, lambda _landmarks: False)[0].placed_once


@pytest.mark.parametrize("resting", [[], ["--resting"]])
def test_several_hands_bench_reads_its_composites(tmp_path, resting):
    """python -m signdigits.bench.several_hands: photos of 1-4 foreign photos in a row (and
    one more turned fingers down, not signing), the digits expected left to right, and the
    share read right."""
    require(FOREIGN.is_dir(), f"foreign photos not found at {FOREIGN}")
    done = subprocess.run(
        [sys.executable, "-m", "signdigits.bench.several_hands", "--count", "12",
         "--seed", "4", "--out", str(tmp_path / "out"), *resting],
        capture_output=True, text=True, timeout=300, env=make_env())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    several = next(line for line in lines if line.startswith("several:"))
    string_right = float(several.split("string right")[1].split("%")[0])
    assert string_right >= 75, done.stdout  # 96-98% over 300 photos; 12 here
    assert lines[-1].startswith("photos_per_cpu_s=")
    expected = (tmp_path / "out" / "expected.csv").read_text().splitlines()
    assert expected[0] == "file,digits" and len(expected) == 13
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 12


def _wall() -> Image.Image:
    """A light-grey wall with a soft shadow, like the backgrounds of the cyril photos."""
    y, x = np.mgrid[0:480, 0:640]
    grey = 200 - 40 * np.exp(-((x - 420) ** 2 + (y - 260) ** 2) / 2e4)
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2).astype(np.uint8))


def _noise() -> Image.Image:
    return Image.fromarray(np.random.default_rng(5).integers(0, 256, (480, 640, 3), np.uint8))


def _face() -> Image.Image:
    """A face drawn in skin colour: the commonest skin-coloured thing that is not a hand."""
    image = Image.new("RGB", (640, 480), (90, 110, 140))
    draw = ImageDraw.Draw(image)
    draw.ellipse((220, 80, 420, 360), fill=(224, 172, 140))  # the head
    draw.rectangle((290, 350, 350, 480), fill=(214, 162, 130))  # the neck
    for eye in (270, 340):
        draw.ellipse((eye, 180, eye + 30, 200), fill=(250, 250, 250))
        draw.ellipse((eye + 9, 183, eye + 21, 197), fill=(60, 40, 30))
    draw.polygon([(320, 210), (305, 270), (335, 270)], fill=(205, 150, 120))  # the nose
    draw.arc((280, 270, 360, 320), 20, 160, fill=(150, 60, 60), width=6)  # the mouth
    return image


@pytest.mark.parametrize("picture", [_wall, _noise, _face], ids=["wall", "noise", "face"])
def test_a_photo_without_a_hand_gives_no_hands(finder, picture):
    assert finder.find(picture()) == []


def test_a_real_face_and_room_beside_the_hand_give_no_hands(finder):
    """The part of a webcam photo beside the signing hand: a face, a shirt, a wall, no
    hand. At the landmark model's own cut (0.5) the palm route kept a "hand" on some of
    them and the classifier read it as a 5 at up to 100%."""
    folder = FOREIGN / "modi"
    require((folder / "0").is_dir(), f"foreign photos not found at {folder}")
    pieces = 0
    for path in [p for d in range(10) for p in sorted((folder / str(d)).iterdir())[::10]]:
        photo, hands = _find(finder, path)
        if len(hands) != 1:
            continue
        x0, _, x1, _ = hands[0].box
        width, height = photo.image.size
        margin = 0.05 * width
        if x0 - margin >= 0.4 * width:
            piece = photo.image.crop((0, 0, int(x0 - margin), height))
        elif width - x1 - margin >= 0.4 * width:
            piece = photo.image.crop((int(x1 + margin), 0, width, height))
        else:
            continue
        pieces += 1
        assert finder.find(piece) == [], f"a hand found beside the hand of {path}"
    assert pieces >= 10, f"only {pieces} photos had room beside the hand"


def _copy(hand_models: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in MODEL_FILES:
        shutil.copyfile(hand_models / name, folder / name)
    return folder


@pytest.mark.parametrize("damage", ["truncated", "one byte changed", "missing"])
def test_a_model_file_not_the_pinned_one_is_refused_with_the_command_to_fix_it(
        hand_models, tmp_path, damage):
    from signdigits.serving.hands.finder import HandFinder

    folder = _copy(hand_models, tmp_path / "hands")
    assert check_models(folder).keys() == MODEL_FILES.keys()
    target = folder / next(iter(MODEL_FILES))
    data = target.read_bytes()
    if damage == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "one byte changed":
        target.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
    else:
        target.unlink()
    for check in (check_models, HandFinder):
        with pytest.raises(HandModelsError, match=FETCH_COMMAND) as refused:
            check(folder)
        assert str(target) in str(refused.value)


def test_fetch_hand_models_installs_checked_files(hand_models, tmp_path):
    """Over an altered copy. pip downloads the pinned wheel from the configured index;
    ``scripts/setup`` fetched the same wheel, so pip's cache answers (2 s here)."""
    folder = _copy(hand_models, tmp_path / "hands")
    altered = folder / next(iter(MODEL_FILES))
    altered.write_bytes(altered.read_bytes()[:100])
    done = run_cli("fetch-hand-models", "--folder", str(folder), env=make_env(), cwd=tmp_path,
                   timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert check_models(folder) == {name: pinned for name, (_, pinned) in MODEL_FILES.items()}
    assert "checked" in done.stdout + done.stderr
    again = run_cli("fetch-hand-models", "--folder", str(folder), env=make_env(), cwd=tmp_path,
                    timeout=120)
    assert again.returncode == 0 and "present, hashes checked" in again.stdout + again.stderr


def test_serving_and_the_workers_never_import_tensorflow(hand_models, tmp_path):
    """Reading a photo the way a worker does loads LiteRT and ONNX Runtime, never
    TensorFlow or Keras (1.3 GB, and a worker process over its 250 MB)."""
    photo = next((FOREIGN / "cyril" / "5").iterdir(), None) if (FOREIGN / "cyril").is_dir() \
        else next((DATASET / "5").iterdir())
    script = f"""
import sys
from pathlib import Path
import signdigits.serving.reader, signdigits.serving.photo
import signdigits.worker.context, signdigits.worker.batch, signdigits.worker.tasks
from signdigits.serving.artifact import resolve_model_path
from signdigits.serving.hands.finder import HandFinder
from signdigits.serving.photo import read_photo
photo = read_photo(Path({str(photo)!r}))
hands = HandFinder(Path({str(hand_models)!r})).find(photo.image)
print("hands", len(hands))
if resolve_model_path(None).exists():
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.reader import HandReader
    reader = HandReader.from_folder(Classifier(threads=1), Path({str(hand_models)!r}))
    print("digit", reader.read(photo).answer is not None)
print("heavy", sorted(m for m in ("tensorflow", "keras", "tf2onnx") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=make_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "hands 1" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "heavy []", done.stdout
