"""``predict``: photos read in this process, no queue: the hands found and the digit.

It reads a photo exactly as a worker does (:meth:`serving.reader.HandReader.look`:
decoded, its hands found, closer when none was, and read), so what it prints for a file
is what a job's row says for it; ``--preview`` draws what the reader saw. Needs only
what serving installs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from signdigits.cli.console import console, fail
from signdigits.cli.options import threshold_option


def predict(
    images: list[Path] = typer.Argument(..., help="image files", readable=False),
    threshold: float | None = threshold_option(),
    preview: Path | None = typer.Option(
        None, help="write NAME.png (the photo with the hands found drawn on it) and "
        "NAME-hand.png (the hand the digit was read from, as the landmark model saw it) "
        "here"),
    model: Path | None = typer.Option(None, help="model artifact (default: the shipped one)"),
) -> None:
    """The digit each photo's hand signs, its confidence and below-threshold flag, and how
    the photo was read; "no hand found" when none is."""
    from signdigits.cli.preflight import settings_or_fail
    from signdigits.files.names import printable
    from signdigits.files.reading import ImageError, read_image_file
    from signdigits.serving.artifact import ArtifactError
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.models import HandModelsError, models_dir
    from signdigits.serving.reader import HandReader

    settings = settings_or_fail()
    try:
        classifier = Classifier(model or settings.model_path, runtime=settings.runtime)
        reader = HandReader.from_folder(classifier, models_dir(settings.hand_models_dir),
                                        max_hands=settings.max_hands)
    except (ArtifactError, HandModelsError) as exc:
        fail(str(exc))
    limit = threshold if threshold is not None else settings.threshold
    limit = limit if limit is not None else classifier.info.default_threshold
    if preview:
        try:
            preview.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"--preview {preview}: cannot make the folder ({exc.strerror or exc})")
    failed = 0
    taken: set[str] = set()
    for path in images:
        try:
            photo, reading = reader.look(read_image_file(path, max_bytes=settings.max_file_bytes),
                                         max_pixels=settings.max_image_pixels)
        except ImageError as exc:
            console.print(f"{printable(str(path))}: error: {exc}", markup=False,
                          highlight=False)
            failed += 1
            continue
        answer = reading.answer
        if not reading.hands:
            print(f"{printable(str(path))}: {reading.how} (below threshold)")
        elif answer is not None:
            p = answer.prediction
            flag = " below threshold" if reading.doubtful(limit) else ""
            print(f"{printable(str(path))}: digit {p.digit} confidence {p.confidence:.4f}"
                  f"{flag} ({reading.how})")
        else:  # several hands: the string, then each hand's confidence in the same order
            flag = " below threshold" if reading.doubtful(limit) else ""
            each = ", ".join(f"{h.prediction.confidence:.4f}" for h in reading.hands)
            print(f"{printable(str(path))}: digits {reading.digits} confidences {each}"
                  f"{flag} ({reading.how})")
        if preview:
            name = _free_name(path.stem, taken)
            try:
                _write_preview(photo, reading, preview, name)
            except OSError as exc:
                fail(f"--preview {preview}: cannot write {name}.png ({exc.strerror or exc})")
    if failed:
        raise typer.Exit(1)


def _free_name(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem-2``, ... : a/one.png and b/one.jpg each keep their pictures, and
    a photo named one-hand.jpg does not overwrite one.jpg's crop."""
    name, k = stem, 1
    while {f"{name}.png", f"{name}-hand.png"} & taken:
        k += 1
        name = f"{stem}-{k}"
    taken.update({f"{name}.png", f"{name}-hand.png"})
    return name


def _write_preview(photo, reading, folder: Path, name: str) -> None:
    from signdigits.serving.preview import draw_hands, hand_crop, hand_record

    records = [hand_record(h.hand, scale=photo.scale, digit=h.prediction.digit,
                           confidence=h.prediction.confidence) for h in reading.hands]
    # Drawn on the decoded picture (records are in the photo's pixels, hence the scale).
    draw_hands(photo.image, records, scale=photo.scale).save(folder / f"{name}.png")
    if records:
        hand_crop(photo.image, records[0], scale=photo.scale).save(folder / f"{name}-hand.png")
