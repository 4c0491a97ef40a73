"""A hand unlike every hand the model trained on is read below any threshold
(training/familiarity.py chooses the references and the cut, serving/familiar.py is the
graph's step), the same in every runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signdigits.training.calibration import softmax
from signdigits.training.familiarity import familiar_from
from tests.conftest import DATASET, require, sample_images

FOREIGN = DATASET.parent / "foreign-photos"
ARM_PHOTO = FOREIGN / "modi" / "0" / "92.jpg"  # the signer's forearm beside the hand


def test_the_references_cover_every_training_hand_and_nothing_far():
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 4, (5, 12))
    x = np.concatenate([c + rng.normal(0, 1, (120, 12)) for c in centres])
    familiar = familiar_from(x, references=40)
    assert familiar.references.shape == (40, 12)
    assert not familiar.unfamiliar(x).any()  # every training hand within the cut
    # The cut: the farthest any training hand lies from its nearest reference but itself.
    z = familiar.standardise(x)
    gaps = np.sqrt(((z[:, None, :] - familiar.references[None]) ** 2).sum(-1))
    gaps[gaps == 0] = np.inf
    assert familiar.cut == pytest.approx(gaps.min(axis=1).max())
    far = x.mean(axis=0) + 10 * x.std(axis=0)
    assert familiar.unfamiliar(far[None]).all()
    again = familiar_from(x, references=40)  # the same hands, the same choice
    assert np.array_equal(again.references, familiar.references) and again.cut == familiar.cut
    everyone = familiar_from(x[:30])  # fewer hands than references: all of them
    assert len(everyone.references) == 30


def _real_features(count: int) -> np.ndarray:
    from signdigits.serving.hands.features import hand_features
    from signdigits.serving.hands.finder import HandFinder
    from signdigits.serving.hands.models import default_models_dir
    from signdigits.serving.photo import read_photo

    finder = HandFinder(default_models_dir())
    paths = [path for path, _ in sample_images(DATASET, 1, seed=5)][:count]
    return np.stack([hand_features(finder.find(read_photo(p).image)[0].landmarks.points)
                     for p in paths]).astype(np.float32)


def arm_strip(folder: Path) -> Path:
    """A PNG of :data:`ARM_PHOTO` left of its hand (5% of the width off): the forearm,
    a wristband, the wall, no hand."""
    from signdigits.serving.hands.finder import HandFinder
    from signdigits.serving.hands.models import default_models_dir
    from signdigits.serving.photo import read_photo

    photo = read_photo(ARM_PHOTO)
    (hand,) = HandFinder(default_models_dir()).find(photo.image)
    strip = photo.image.crop((0, 0, int(hand.box[0] - 0.05 * photo.image.width),
                              photo.image.height))
    strip.save(folder / "strip.png")
    return folder / "strip.png"


@pytest.mark.parametrize("runtime", ["onnx", "tensorflow"])
def test_the_shipped_graph_pulls_only_unfamiliar_hands_halfway_to_uniform(runtime):
    """Real hands of the dataset as the dense layer reads them; the same hands moved far
    from every training hand: half those probabilities plus 0.05 each, at most 0.55."""
    from signdigits.serving.artifact import read_model_info, shipped_model_path
    from signdigits.serving.classifier import Classifier
    from signdigits.training.adapt import parent_weights

    info = read_model_info(shipped_model_path())
    assert info.onnx_path is not None
    weights = parent_weights(info.onnx_path)
    served = Classifier(info.path, runtime=runtime)
    hands = _real_features(6)
    far = hands + 25.0  # features of real hands lie within a few units of 0
    dense = softmax(np.concatenate([hands, far]) @ weights.kernel + weights.bias)
    got = served.probabilities(np.concatenate([hands, far]))
    assert np.abs(got[:6] - dense[:6]).max() <= 1e-5
    assert np.abs(got[6:] - (0.5 * dense[6:] + 0.05)).max() <= 1e-5
    assert got[6:].max() <= 0.55 + 1e-6 < info.default_threshold
    assert (got.argmax(axis=1) == dense.argmax(axis=1)).all()  # the same digit, less sure
    said = [p.unfamiliar for p in served.classify(np.concatenate([hands, far]))]
    assert said == [False] * 6 + [True] * 6  # the graph's second output


def test_an_arm_without_its_hand_is_read_below_the_threshold(tmp_path):
    """The strip of a webcam photo beside the signing hand, with the forearm and no hand:
    the landmark model is 0.975 sure of a "hand" there, and the classifier alone read it
    as a 5 at 1.0. It lies farther from every training hand than the cut."""
    from signdigits.serving.artifact import read_model_info, shipped_model_path
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.models import default_models_dir
    from signdigits.serving.reader import HandReader
    from signdigits.worker.columns import reading_columns

    require(ARM_PHOTO.is_file(), f"foreign photos not found at {ARM_PHOTO}")
    strip = arm_strip(tmp_path)
    reader = HandReader.from_folder(Classifier(shipped_model_path()), default_models_dir())
    threshold = read_model_info(shipped_model_path()).default_threshold
    whole = reader.look(ARM_PHOTO.read_bytes())[1]
    assert whole.digits == "0" and not whole.doubtful(threshold)
    arm = reader.look(strip.read_bytes())[1]
    assert arm.doubtful(threshold) and arm.confidence <= 0.55 + 1e-6, arm.digits
    if arm.hands:  # taken for a hand: said why it is below the threshold, at any threshold
        assert arm.how.endswith(", unlike the training hands") and arm.doubtful(0.5)
        columns = reading_columns(arm, scale=1.0, threshold=0.5)
        assert columns["below_threshold"] and columns["reading"] == arm.how
        assert all(h["below_threshold"] for h in columns["hand"]["hands"])
