"""Training's pure rules: signers from photo counters, the split by signer, and scoring a
model in its own class order."""

from __future__ import annotations

import numpy as np

from signdigits.training.data import SOURCE_STRIDE, signer_groups, split_by_signer
from signdigits.training.labels import NPY_CLASS_TO_DIGIT


def test_signer_groups_follow_runs_of_the_photo_counter():
    counters = [100, 101, 102, 103, 110, 111, 112, 500, 501, -1]
    digits = [0, 1, 2, 0, 1, 2, 3, 0, 1, 5]
    groups = signer_groups(counters, digits)
    # 0,1,2 | 0 (digit falls back) ,1,2,3 (gap of 7 > 5 starts another) | 0,1 | no counter
    assert len({groups[0], groups[1], groups[2]}) == 1
    assert groups[3] != groups[2]
    assert groups[4] != groups[3] and groups[4] == groups[5] == groups[6]
    assert groups[7] == groups[8] != groups[6]
    assert groups[9] not in set(groups[:9].tolist())


def test_split_keeps_each_signer_on_one_side():
    groups = np.repeat(np.arange(50), 10)
    train, val, test = split_by_signer(groups, seed=3)
    sides = [set(groups[train]), set(groups[val]), set(groups[test])]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert len(train) + len(val) + len(test) == len(groups)
    again = split_by_signer(groups, seed=3)
    assert all((a == b).all() for a, b in zip((train, val, test), again, strict=True))


def test_a_second_data_folder_never_moves_the_first_ones_signers():
    """--data A --data B: A splits exactly as alone; B's signers are split on their own."""
    first = np.repeat(np.arange(40), 10)
    export = SOURCE_STRIDE + np.repeat(np.arange(20), 2)
    alone = split_by_signer(first, seed=7)
    both = split_by_signer(np.concatenate([first, export]), seed=7)
    for side_alone, side_both in zip(alone, both, strict=True):
        assert np.array_equal(side_both[side_both < len(first)], side_alone)
    sides = [set(np.concatenate([first, export])[s].tolist()) for s in both]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert len([g for g in sides[2] if g >= SOURCE_STRIDE]) == 3  # 15% of 20 signers
    tiny = split_by_signer(np.concatenate([first, SOURCE_STRIDE + np.arange(3)]), seed=7)
    assert all(i < len(first) for i in np.concatenate(tiny[1:]))  # a small export all trains


def test_a_model_with_another_class_order_is_scored_by_its_own_table():
    """evaluate compared the dataset's class numbers with the model's: a model right on
    every image, numbering its outputs in digit order, scored 0%."""
    from signdigits.training.evaluate import score_model

    classes = np.arange(len(NPY_CLASS_TO_DIGIT)).repeat(3)  # the dataset's numbering
    digits = np.asarray(NPY_CLASS_TO_DIGIT)[classes]
    digit_order = tuple(range(10))  # this model's output k is digit k
    probs = np.eye(10, dtype=np.float32)[digits] * 0.9 + 0.01
    figures, curve = score_model(probs, classes, digit_order, threshold=0.5)
    assert figures["accuracy"] == 1.0 and figures["at_threshold"]["accuracy"] == 1.0
    assert figures["confusion"] == (np.eye(10, dtype=int) * 3).tolist()
    assert curve[50]["accuracy"] == 1.0
    shipped_order, _ = score_model(probs[:, list(NPY_CLASS_TO_DIGIT)], classes,
                                   NPY_CLASS_TO_DIGIT, threshold=0.5)
    assert shipped_order["accuracy"] == 1.0


def _images(n: int = 6):
    from signdigits.serving.model_input import FEATURE_COUNT
    from signdigits.training.data import LabelledImages

    rng = np.random.default_rng(0)
    found = np.arange(n) % 3 != 2  # every third photo: no hand found
    x = rng.normal(size=(n, FEATURE_COUNT)).astype(np.float32) * found[:, None]
    return LabelledImages(
        x=x, found=found, classes=np.arange(n) % 10, groups=np.arange(n) // 2,
        names=[f"{i % 10}/IMG_{i}.JPG" for i in range(n)])


def test_a_subset_keeps_every_column_of_its_photos_together():
    data = _images()
    part = data.subset(np.array([4, 1]))
    assert part.names == [data.names[4], data.names[1]]
    assert part.classes.tolist() == [4, 1] and part.groups.tolist() == [2, 0]
    assert np.array_equal(part.x, data.x[[4, 1]]) and part.found.tolist() == [True, True]
    hands = data.with_hands()
    assert hands.found.all() and len(hands) == 4 and "2/IMG_2.JPG" not in hands.names


def test_the_digest_follows_what_is_trained_on_and_nothing_else():
    """The digest ties a CV result and an artifact to the data: the served features, whether
    a hand was found, and the labels; not the names."""
    import dataclasses

    data = _images()
    same = dataclasses.replace(data, names=["renamed"] * len(data))
    assert same.digest() == data.digest()
    x = data.x.copy()
    x[0, 0] += 1e-3
    changed = [dataclasses.replace(data, x=x),
               dataclasses.replace(data, found=np.ones(len(data), bool)),
               dataclasses.replace(data, classes=np.roll(data.classes, 1))]
    assert len({data.digest(), *(c.digest() for c in changed)}) == 4


def test_a_photo_without_a_hand_counts_wrong_and_outside_the_loss_and_confusion():
    from signdigits.training.evaluate import evaluate_probabilities

    table = tuple(range(10))
    classes = np.array([3, 3, 5, 7])
    probs = np.eye(10, dtype=np.float32)[[3, 3, 5, 1]] * 0.9 + 0.01
    probs[1] = 0.0  # no hand found in the second photo: no answer at all
    figures = evaluate_probabilities(probs, classes, table)
    assert figures["images"] == 4 and figures["no_hand"] == 1
    assert figures["accuracy"] == 0.5  # 3 and 5 right; the missing hand and the 7 wrong
    assert sum(map(sum, figures["confusion"])) == 3 and figures["confusion"][7][1] == 1
    assert figures["loss"] == round(-np.mean(np.log([0.91, 0.91, 0.01])), 4)
    assert figures["per_digit"]["3"] == {"precision": 1.0, "recall": 0.5, "support": 2}


def test_the_same_photos_are_known_after_the_hand_finder_changed():
    """evaluate --split test finds a model's test signers when what is read of the photos
    (the features, hence the data digest) changed but the photos did not; other photos are
    never taken for them."""
    from signdigits.training.data import LabelledImages
    from signdigits.training.evaluate import same_photos_as_trained

    def photos(names, x=0.0):
        n = len(names)
        return LabelledImages(np.full((n, 3), x, np.float32), np.ones(n, bool),
                              np.arange(n) % 10, np.arange(n) // 4, list(names))

    trained = photos([f"{d}/IMG_{i}.JPG" for i, d in enumerate(range(12))])
    today = photos(trained.names, x=1.0)  # read again: other features, same photos
    assert today.digest() != trained.digest()
    assert same_photos_as_trained(today, {"photos_digest": trained.photos_digest()})
    other = photos([f"x{name}" for name in trained.names])
    assert not same_photos_as_trained(other, {"photos_digest": trained.photos_digest()})
    # A model trained before photos_digest was recorded: by the split's counts.
    split = {"train_images": 8, "validation_images": 0, "test_images": 4, "test_groups": [2]}
    assert same_photos_as_trained(today, {"split": split})
    assert not same_photos_as_trained(today.subset(np.arange(11)), {"split": split})
    assert not same_photos_as_trained(today, {"split": {**split, "test_groups": [1, 2]}})
    assert not same_photos_as_trained(today, {})
