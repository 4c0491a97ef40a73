"""``signdigits results JOB --labels folders|FILE``: the job's answers checked against
labels (the figures the job page shows: :mod:`db.labels`)."""

from __future__ import annotations

from pathlib import Path

from signdigits.db.labels import MAX_LABELS_FILE, NO_HAND, Evaluation, read_labels_csv
from signdigits.worker.thresholds import ModelRead

THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.99, 0.999)


def read_labels(source: str) -> dict[str, int] | None:
    """None for ``folders``; else the ``path,digit`` CSV at ``source``. Raises ValueError
    (one line) for a file that cannot be read."""
    if source == "folders":
        return None
    path = Path(source)
    try:
        if path.stat().st_size > MAX_LABELS_FILE:
            raise ValueError(f"--labels {source}: over {MAX_LABELS_FILE >> 20} MB")
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"--labels {source}: {reason} (give 'folders' or a path,digit "
                         "CSV file)") from None
    try:
        return read_labels_csv(text)
    except ValueError as exc:
        raise ValueError(f"--labels {source}: {exc}") from None


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def report(found: Evaluation, *, source: str, models: list[ModelRead] | None = None) -> str:
    """The figures as lines of text. ``models``: the models that read the job, when more
    than one flagged its images, each by its own default threshold."""
    where = "the folder names (0-9)" if source == "folders" else source
    lines = [f"checked against {where}: {found.counted:,} labelled photos with one hand "
             "or none (a photo with no hand found counts as wrong)"]
    apart = [f"{n:,} {what}" for n, what in ((found.several_hands, "of several hands"),
                                             (found.errors, "unreadable"),
                                             (found.pending, "not read yet"),
                                             (found.cancelled, "cancelled"),
                                             (found.unlabelled, "without a label")) if n]
    if apart:
        lines.append("not counted: " + ", ".join(apart))
    lines.append(f"accuracy: {found.right:,} of {found.counted:,} right "
                 f"({_share(found.right, found.counted)})")
    lines.append(f"with the reviews applied: {found.final_right:,} of {found.final_counted:,} "
                 f"right ({_share(found.final_right, found.final_counted)}; photos marked "
                 "unusable left out)")
    at = f"at the job's threshold {found.threshold:g}"
    if models:  # the images were flagged by several thresholds, one per model
        at = "at the threshold each model that read it applied (" + "; ".join(
            f"{'unknown' if m.threshold is None else f'{m.threshold:g}'} by model {m.version}"
            for m in models) + ")"
    lines.append(f"{at}: {found.kept:,} kept (coverage "
                 f"{_share(found.kept, found.counted)}), {_share(found.kept_right, found.kept)} "
                 f"of them right; {found.counted - found.kept:,} below")
    lines.append("")
    lines.append("coverage and accuracy by threshold:")
    lines.append(f"{'threshold':>9}  {'kept':>7}  {'coverage':>8}  {'right':>7}")
    applied = {round(m.threshold, 3) for m in models or [] if m.threshold is not None}
    for threshold in sorted({*THRESHOLDS, round(found.threshold, 3), *applied}):
        kept, right = found.at(threshold)
        lines.append(f"{threshold:>9.3f}  {kept:>7,}  {_share(kept, found.counted):>8}  "
                     f"{_share(right, kept):>7}")
    lines.append("")
    lines.append("confusion matrix (rows: the label; columns: the model's answer, "
                 "- = no hand found):")
    lines.append("label " + "".join(f"{d:>6}" for d in range(10)) + f"{'-':>6}")
    for label, counts in enumerate(found.matrix):
        lines.append(f"{label:>5} " + "".join(f"{n:>6}" for n in counts[:NO_HAND])
                     + f"{counts[NO_HAND]:>6}")
    return "\n".join(lines)
