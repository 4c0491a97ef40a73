"""``export-reviews``: the reviewed images of jobs, ready for ``signdigits train --data``."""

from __future__ import annotations

from pathlib import Path

import typer

from signdigits.cli.console import console, fail


def export_reviews_command(
    jobs: list[str] = typer.Argument(..., help="job ids, unique prefixes, or 'latest'"),
    out: Path = typer.Option(..., "--out", help="a new (or empty) folder to write"),
) -> None:
    """Reviewed images (not unusable ones) as digit folders 0-9, plus reviews.csv."""
    from signdigits.cli.preflight import database_for_reading, job_or_fail, settings_or_fail
    from signdigits.training.review_export import ExportError, check_out_folder, export_reviews
    from signdigits.web.upload_store import upload_root

    settings = settings_or_fail()
    try:
        check_out_folder(out)
    except ExportError as exc:
        fail(str(exc))
    sessions = database_for_reading(settings)
    ids = list(dict.fromkeys(job_or_fail(sessions, ref).id for ref in jobs))
    with sessions() as session:
        roots = settings.allowed_roots
        try:
            summary = export_reviews(
                session, job_ids=ids, out=out, max_bytes=settings.max_file_bytes,
                allowed_roots=[*roots, upload_root(settings)] if roots else [],
                warn=lambda line: console.print(line, markup=False, highlight=False))
        except ExportError as exc:
            fail(str(exc))
    console.print(f"exported {summary.written} reviewed images of {len(ids)} job(s) to {out}/ "
                  f"({summary.linked} hard links, {summary.written - summary.linked} copies"
                  + (f", {summary.skipped} skipped" if summary.skipped else "") + "); "
                  f"manifest {out}/reviews.csv")
    if summary.several_digits:
        console.print(f"not exported: {summary.several_digits} photo(s) whose hands were "
                      "reviewed as different digits (a digit folder holds one digit a photo; "
                      "`signdigits adapt` learns from each hand)", markup=False, highlight=False)


def _ask(image, position: str) -> str:
    from signdigits.files.names import printable

    probabilities = image.probabilities or []
    top = sorted(range(len(probabilities)), key=lambda d: -probabilities[d])[:3]
    guesses = ", ".join(f"{d} ({probabilities[d]:.0%})" for d in top)
    hands = _several(image)
    if hands:
        guesses = f"{image.digits} ({hands} hands, left to right)"
    elif image.digit is None:  # nothing to accept with Enter
        guesses = "no hand found"
    print(f"{position} {printable(image.path)}: model {guesses}", flush=True)
    if hands:
        prompt = (f"  {hands} characters, one per hand (a digit, or - for not a hand), Enter = "
                  f"{image.digits}; or one digit for the photo, x unusable, b back, q quit: ")
    else:
        enter = f"Enter = {image.digit}, " if image.digit is not None else ""
        prompt = f"  digit 0-9, {enter}x unusable, b back, q quit: "
    try:
        return input(prompt).strip()
    except EOFError:
        return "q"


def _several(image) -> int:
    """How many hands the model read on the photo, when more than one (else 0)."""
    count = image.hand_count or 0
    return count if count > 1 and image.digits and len(image.digits) == count else 0


def _hand_answers(answer: str, image) -> list[int | None] | None:
    """A group photo's answer hand by hand ("4-7"), or None when it is not one."""
    count = _several(image)
    if not count:
        return None
    if answer == "":
        return [int(d) for d in image.digits]
    if len(answer) == count and all(c in "0123456789-" for c in answer):
        return [None if c == "-" else int(c) for c in answer]
    return None


def review(job: str = typer.Argument(..., help="job id, unique prefix of one, or 'latest'"),
           ) -> None:
    """Review the job's below-threshold images in the terminal (reviewer: your user name).

    In the order of /jobs/{id}/review: type a digit, Enter for the model's digit, x for
    unusable, b to go back one, q to stop. A photo with several hands takes one character
    per hand, left to right ("4-7": a 4, not a hand, a 7). Each answer is stored at once.
    """
    import getpass

    from signdigits.cli.preflight import database_for_reading, job_or_fail, settings_or_fail
    from signdigits.db.models import Image
    from signdigits.db.reviews import (
        add_hands_review,
        add_review,
        review_progress,
        review_queue,
    )

    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    reviewer = getpass.getuser()
    job_id = job_or_fail(sessions, job).id
    order: list[int] = []  # ids in the order shown; "b" steps back along it
    answered: set[int] = set()
    position = 0
    while True:
        with sessions() as session:
            if position == len(order):
                skip = [i for i in order if i not in answered]
                fresh = review_queue(session, job_id=job_id, limit=1, skip=skip)
                if not fresh:
                    reviewed, total = review_progress(session, job_id=job_id)
                    console.print(f"nothing left to review: {reviewed} of {total} reviewed")
                    return
                order.append(fresh[0].id)
            image = session.get(Image, order[position])
            reviewed, total = review_progress(session, job_id=job_id)
        answer = _ask(image, f"[{reviewed} of {total} reviewed]")
        key = answer.lower()
        if key == "q":
            console.print(f"stopped: {reviewed} of {total} reviewed")
            return
        if key == "b":
            position = max(0, position - 1)
            continue
        hands = _hand_answers(answer, image)
        if hands is None and answer not in ("", "x", "X") and not (
                len(answer) == 1 and answer in "0123456789"):
            each = (f", {_several(image)} characters (0-9 or -)" if _several(image) else "")
            console.print(f"  {answer!r}: type one digit 0-9{each}, Enter, x, b or q",
                          markup=False)
            continue
        if hands is None and answer == "" and image.digit is None:
            console.print("  no digit of the model's to accept: type the digit, x, b or q",
                          markup=False)
            continue
        with sessions.begin() as session:
            row = session.get(Image, image.id)
            if hands is not None:
                add_hands_review(session, image=row, digits=hands, reviewer=reviewer)
            else:
                digit = image.digit if answer == "" else None if key == "x" else int(answer)
                add_review(session, image=row, digit=digit, unusable=key == "x",
                           reviewer=reviewer)
        answered.add(image.id)
        position += 1
