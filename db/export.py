"""What one result row is when it leaves the database: the CLI's and the web's exports.

``signdigits results`` and the web's ``results.csv``/``.json`` promise the same rows; one
definition here means a column, or the neutralising of formula cells, cannot be added to
one and forgotten in the other.
"""

from __future__ import annotations

from collections.abc import Mapping

# New columns go at the end: programs reading these files by position keep working.
COLUMNS = ["path", "digit", "confidence", "below_threshold", "error", "status",
           "model_version", "worker", "finished_at", "reviewed_digit", "final_digit",
           "hand_box", "reading", "digits", "hand_count", "reviewed_digits", "final_digits",
           "threshold"]
# Cells that hold text from outside (file names, error messages, host names): the only
# ones a spreadsheet could read as a formula. Numbers and our own words are left alone.
TEXT_COLUMNS = ("path", "error", "model_version", "worker")
# Excel, LibreOffice and Google Sheets start a formula (or DDE command) with these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# RFC 4180: a name holding a bare "\r" is then quoted, and a reader keeps the row whole.
CSV_LINE_END = "\r\n"


def reviewed_digit(review) -> int | None:
    """The person's digit; None when nobody reviewed the image or it was marked unusable."""
    return None if review is None or review.unusable else review.digit


def final_digit(image, review) -> int | None:
    """The reviewed digit where there is one, else the model's. A photo whose current
    review says unusable has none: it shows no digit, whatever the model guessed; nor has
    one whose hands, as reviewed, sign several."""
    if review is None:
        return image.digit
    return reviewed_digit(review)


def reviewed_digits(review) -> str | None:
    """The digits the person's current answer leaves, left to right ("" for none); None
    when nobody reviewed the image."""
    if review is None:
        return None
    if getattr(review, "hand_digits", None) is not None:
        return "".join(str(d) for d in review.hand_digits if d is not None)
    return "" if review.unusable or review.digit is None else str(review.digit)


def final_digits(image, review) -> str | None:
    """The reviewed digits where there is a review, else the model's."""
    return image.digits if review is None else reviewed_digits(review)


def result_record(image, review=None, thresholds: Mapping[str, float | None] | None = None
                  ) -> dict:
    """``thresholds``: model version -> the threshold its rows were flagged by (more than
    one model reads a job promoted mid-way; worker.thresholds.thresholds_by_model)."""
    return {
        "path": image.path,
        "digit": image.digit,
        "confidence": None if image.confidence is None else round(image.confidence, 6),
        "below_threshold": image.below_threshold,
        "error": image.error,
        "status": image.status,
        "model_version": image.model_version,
        "worker": image.worker,
        "finished_at": image.finished_at.isoformat() if image.finished_at else None,
        "reviewed_digit": reviewed_digit(review),
        "final_digit": final_digit(image, review),
        "hand_box": hand_box(image.hand),
        "reading": image.reading,
        "digits": image.digits,
        "hand_count": image.hand_count,
        "reviewed_digits": reviewed_digits(review),
        "final_digits": final_digits(image, review),
        # JSON only (a CSV row has no room for a list of them): each hand in reading order.
        "hands": hands_list(image.hand),
        # The threshold ``below_threshold`` was decided by: the job's, or with a model
        # promoted mid-job and no threshold given, the default of the model that read it.
        "threshold": (thresholds or {}).get(image.model_version) if image.model_version
        else None,
    }


def hand_box(hand: dict | None) -> list[int] | None:
    """The first hand's box, [x0, y0, x1, y1] in the photo's pixels; None without one."""
    hands = (hand or {}).get("hands") or []
    return list(hands[0]["box"]) if hands else None


def hands_list(hand: dict | None) -> list[dict]:
    """Each hand read, in reading order: its place, box, digit, confidence and flag."""
    return [{"position": position, "box": list(record["box"]), "digit": record.get("digit"),
             "confidence": record.get("confidence"),
             "below_threshold": record.get("below_threshold")}
            for position, record in enumerate((hand or {}).get("hands") or [])]


def spreadsheet_safe(value: str) -> str:
    """A text cell no spreadsheet evaluates: a leading ``'`` before a formula character.

    ``=HYPERLINK(...)`` as a file name would otherwise be a live link (or with DDE, a
    command) in the sheet of whoever opens the results. The ``'`` is visible in the CSV.
    """
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_row(record: dict) -> dict:
    return {key: _cell(key, record.get(key)) for key in COLUMNS}


def _cell(key: str, value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, list):  # the hand box: "x0 y0 x1 y1", one cell a sheet won't split
        return " ".join(str(v) for v in value)
    return spreadsheet_safe(value) if key in TEXT_COLUMNS and isinstance(value, str) else value
