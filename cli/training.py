"""``train``, ``cv``, ``evaluate`` and ``export-onnx``: the model's commands (``predict``
is :mod:`cli.predict`).

``train`` and ``export-onnx`` need TensorFlow and the ONNX converter, ``evaluate``
matplotlib: without the ``training`` extra they say so in one line.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from signdigits.cli.console import console, fail

TRAINING_EXTRA = "pip install 'signdigits[training]'"
CONVERTER = ("tensorflow", "keras", "tf2onnx", "onnx")


# The recipe's options, shared by train and cv (a cv result is only reused by a train
# with the same recipe, so both must offer the same choices and defaults).
L2 = typer.Option(0.01, min=0, help="weight penalty: larger keeps probabilities further "
                  "from 1 on hands unlike the training photos")
EPOCHS = typer.Option(600, min=1, help="full-batch optimiser steps")


def _missing(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is None
    except (ValueError, ImportError):  # a None in sys.modules: blocked, as good as missing
        return True


def require_training_extra(command: str, modules: tuple[str, ...]) -> None:
    """Fail in one line, before any work, when the training extra is not installed."""
    missing = [m for m in modules if _missing(m)]
    if missing:
        fail(f"signdigits {command} needs the training extra ({', '.join(missing)} not "
             f"installed): {TRAINING_EXTRA}")


def _load(data: Path):
    from signdigits.training.data import DataError, load_labelled

    with console.status(f"reading {data}") as status:
        try:
            return load_labelled(
                data, progress=lambda n, t: status.update(f"reading {data}: {n}/{t} images")
            )
        except DataError as exc:
            fail(str(exc))


def _load_all(data: list[Path]):
    from signdigits.training.data import DataError, load_sources

    with console.status(f"reading {data[0]}") as status:
        try:
            return load_sources(
                data,
                progress=lambda p, n, t: status.update(f"finding hands in {p}: {n}/{t} photos"))
        except DataError as exc:
            fail(str(exc))


def _check_out(out: Path, *, also: tuple[Path, ...] = ()) -> None:
    """Refuse an --out that cannot be written now, before the training, not after it."""
    import os

    for target in (out, *also):
        if target.is_dir():
            fail(f"--out {out}: {target} is a folder", 2)
    absolute = out.absolute()
    existing = next(p for p in absolute.parents if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        fail(f"--out {out}: cannot write in {existing}")


def _check_model_out(out: Path) -> None:
    # Any other name was found out after the whole training (Keras refuses it), and
    # NAME.onnx unlinked the served graph beside a working NAME.keras, then overwrote it.
    if out.suffix != ".keras":
        fail(f"--out {out}: a model is written as NAME.keras (its ONNX graph goes beside "
             "it as NAME.onnx)", 2)
    _check_out(out, also=(out.with_suffix(".onnx"), out.with_suffix(".tmp.keras")))


def train(
    data: list[Path] = typer.Option(
        ..., help="digit folders (0-9); repeat to train on several (e.g. an export-reviews "
        "folder): each is split by signer on its own"),
    epochs: int = EPOCHS,
    out: Path = typer.Option(Path("signdigits-hands.keras"), help="where to write the model"),
    seed: int = typer.Option(7, help="seed for the signer split and the weights"),
    l2: float = L2,
    cv: int = typer.Option(
        0, "--cv", min=0, help="K > 1: K-fold CV by signer first, then fit on all its signers"
    ),
    cv_result: Path = typer.Option(
        None, help="reuse a `signdigits cv --out` result (same data and recipe) instead"
    ),
) -> None:
    """Train the hand classifier with a signer-disjoint split; write it and its ONNX graph."""
    require_training_extra("train", (*CONVERTER, "matplotlib"))
    import json

    if cv == 1:
        fail("--cv 1: cross-validation needs at least 2 folds (0 turns it off)", 2)
    if cv and cv_result is not None:
        fail("--cv and --cv-result: give one (--cv runs the cross-validation, --cv-result "
             "reuses one)", 2)
    _check_model_out(out)
    loaded = None
    if cv_result is not None:
        try:
            loaded = json.loads(cv_result.read_text())
        except (OSError, ValueError) as exc:
            fail(f"--cv-result {cv_result}: cannot read it as JSON ({exc})", 2)
    from signdigits.training.fit import Recipe, recipe_differences

    recipe = Recipe(epochs=epochs, seed=seed, l2=l2)
    differences = loaded is not None and recipe_differences(loaded.get("recipe"), recipe)
    if differences:
        fail(f"--cv-result {cv_result}: made with another recipe: {', '.join(differences)}", 2)
    from signdigits.serving.classifier import configure_tensorflow

    configure_tensorflow(0)
    from signdigits.training.train import CrossValidationMismatch, train_model

    images = _load_all(data)
    command = "signdigits " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        info = train_model(
            images, out=out, recipe=recipe, command=command, report=console.print,
            folds=cv, cv_result=loaded,
        )
    except CrossValidationMismatch as exc:
        fail(f"--cv-result {cv_result}: {exc}", 2)
    except ValueError as exc:
        fail(str(exc), 2)
    test = info.metadata["evaluation"]["test"]
    console.print(f"saved {out} and {info.onnx_path} (version {info.version}), "
                  f"test accuracy {test['accuracy']:.4f}")


def export_onnx_command(
    model: Path = typer.Argument(..., help="a .keras artifact made by `signdigits train`"),
) -> None:
    """Write MODEL's ONNX graph beside it (MODEL.onnx); both get one new version."""
    require_training_extra("export-onnx", CONVERTER)
    from signdigits.serving.artifact import ArtifactError

    if model.suffix != ".keras":
        fail(f"{model}: expected a .keras artifact")
    from signdigits.training.export_onnx import export_onnx

    try:
        with console.status(f"converting {model} to ONNX"):
            info = export_onnx(model)
    except ArtifactError as exc:
        fail(str(exc))
    macs = info.metadata["multiply_adds_per_image"]
    console.print(f"wrote {info.onnx_path} (version {info.version}, "
                  f"{macs:,} multiply-adds per image)")


def cv(
    data: Path = typer.Option(..., help="digit folders (0-9)"),
    folds: int = typer.Option(5, min=2, help="signer-grouped folds over the training signers"),
    l2: float = L2,
    epochs: int = EPOCHS,
    seed: int = typer.Option(7, help="seed for the signer split, the folds and the weights"),
    out: Path | None = typer.Option(None,
                                    help="write the result (with out-of-fold logits) as JSON"),
) -> None:
    """k-fold CV by signer on the training signers: out-of-fold accuracy, calibration."""
    require_training_extra("cv", ("tensorflow",))
    import json

    if out:
        _check_out(out)
    from signdigits.serving.classifier import configure_tensorflow

    configure_tensorflow(0)
    from signdigits.training.cv import cross_validate, summary_line
    from signdigits.training.fit import Recipe

    images = _load(data)
    recipe = Recipe(epochs=epochs, seed=seed, l2=l2)
    try:
        result = cross_validate(images, recipe, folds=folds, report=console.print)
    except ValueError as exc:
        fail(str(exc), 2)
    if out:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result))
        except OSError as exc:
            fail(f"--out {out}: cannot write it ({exc.strerror or exc})")
        console.print(f"wrote {out}")
    print(summary_line(result))


def evaluate(
    data: list[Path] = typer.Option(
        ..., help="digit folders (0-9); repeat as for train"),
    model: Path | None = typer.Option(None, help="model artifact (default: SIGNDIGITS_MODEL_PATH, "
                               "else the shipped one)"),
    report: Path = typer.Option(Path("evaluation-report"), help="folder for the PNGs and CSV"),
    split: str = typer.Option(
        "auto", help="auto (test split if this is the model's training data), test, all"
    ),
) -> None:
    """Accuracy, loss, per-digit precision/recall and a report folder; ends `accuracy=`."""
    require_training_extra("evaluate", ("matplotlib",))
    if split not in ("auto", "test", "all"):
        fail(f"--split {split!r}: expected auto, test or all", 2)
    import numpy as np

    from signdigits.cli.preflight import settings_or_fail
    from signdigits.serving.artifact import ArtifactError
    from signdigits.serving.classifier import Classifier
    from signdigits.training.evaluate import same_photos_as_trained, score_model, write_report

    settings = settings_or_fail()
    try:
        classifier = Classifier(model or settings.model_path, runtime=settings.runtime)
    except ArtifactError as exc:
        fail(str(exc))
    images = _load_all(data)
    console.print(f"model: {classifier.info.path} (version {classifier.version})")
    meta = classifier.info.metadata
    trained_on_this = images.digest() == meta.get("data_digest")
    same_photos = trained_on_this or same_photos_as_trained(images, meta)
    if split == "test" or (split == "auto" and same_photos):
        test_groups = set(meta.get("split", {}).get("test_groups", []))
        if not same_photos:
            fail("--split test needs the data the model was trained on, every --data in "
                 "the same order (digest differs)")
        images = images.subset(np.flatnonzero(np.isin(images.groups, list(test_groups))))
        console.print(f"evaluating on the model's test split: {len(images)} images"
                      + ("" if trained_on_this else " (the same photos; what the hand "
                         "finder reads of them has changed since the training)"))
    else:
        console.print(f"evaluating on all {len(images)} images"
                      + ("" if split == "all" else " (not the data this model was trained "
                         "on, so not its test split; it may have seen some of them)"))
    # A photo where no hand was found: all-zero probabilities, as served (no answer).
    probs = np.zeros((len(images), len(classifier.info.class_to_digit)), np.float32)
    if images.found.any():
        probs[images.found] = classifier.probabilities(images.x[images.found])
    threshold = classifier.info.default_threshold
    figures, curve = score_model(probs, images.classes, classifier.info.class_to_digit,
                                 threshold)
    write_report(report, figures, curve, meta.get("history"), threshold)
    at = figures["at_threshold"]
    console.print(
        f"no hand found in {figures['no_hand']} of {figures['images']} photos (counted wrong, "
        "below any threshold)")
    console.print(
        f"loss {figures['loss']:.4f}, ECE {figures['ece']:.4f} on {figures['images']} images; "
        f"at the default threshold {threshold:g}: {at['coverage']:.2%} accepted, "
        f"{at['accuracy']:.2%} of them correct ({at['accepted_wrong']} wrong accepted)"
    )
    for digit, f in figures["per_digit"].items():
        console.print(
            f"digit {digit}: precision {f['precision']}, recall {f['recall']}, n={f['support']}"
        )
    console.print(f"report: {report}/ (confusion.png, learning_curves.png, selective_accuracy.*)")
    print(f"accuracy={figures['accuracy']:.4f}")
