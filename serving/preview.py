"""Pictures of what the reader saw: the photo with each hand's box and landmarks drawn,
and the square the landmark model read. ``predict --preview``, the web's image view and
``/try`` draw with these, so the three show the same thing.

Hands are described as stored (:func:`hand_record`): plain JSON in the photo's own
pixels, so a picture can be drawn from a results row long after the reading.
"""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw

from signdigits.serving.hands.landmarks import cut_region
from signdigits.serving.hands.palm import Region

# The bones between the 21 landmarks: thumb, four fingers, and across the palm.
BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10),
         (10, 11), (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17),
         (17, 18), (18, 19), (19, 20))
ANSWER_COLOUR = (0, 200, 90)
OTHER_COLOUR = (255, 170, 0)  # below the threshold: a person should look


def hand_record(hand: Any, *, scale: float, digit: int | None = None,
                confidence: float | None = None, probabilities: list[float] | None = None,
                below_threshold: bool | None = None) -> dict[str, Any]:
    """A found hand as JSON in the photo's own pixels (``scale``: decoded per original)."""
    points = hand.landmarks.points[:, :2] / scale
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    region = hand.region
    return {
        "box": [round(float(v)) for v in (x0, y0, x1, y1)],
        "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in points],
        "region": {"center": [round(region.center[0] / scale, 1),
                              round(region.center[1] / scale, 1)],
                   "side": round(region.side / scale, 1),
                   "rotation": round(region.rotation, 4)},
        "presence": round(hand.landmarks.presence, 4),
        "padded": hand.padded,
        **({"digit": digit} if digit is not None else {}),
        **({"confidence": round(confidence, 6)} if confidence is not None else {}),
        **({"below_threshold": below_threshold} if below_threshold is not None else {}),
        **({"probabilities": [round(v, 6) for v in probabilities]}
           if probabilities is not None else {}),
    }


def draw_hands(image: Image.Image, hands: list[dict[str, Any]], *,
               scale: float = 1.0) -> Image.Image:
    """A copy of ``image`` with each hand's box, bones, points and digit: green, or orange
    for a hand read below the threshold. ``scale``: ``image``'s pixels per photo pixel."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 250))
    for hand in hands:
        colour = OTHER_COLOUR if hand.get("below_threshold") else ANSWER_COLOUR
        points = [(x * scale, y * scale) for x, y in hand["landmarks"]]
        x0, y0, x1, y1 = (v * scale for v in hand["box"])
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        for a, b in BONES:
            draw.line((points[a], points[b]), fill=colour, width=width)
        r = width + 1
        for x, y in points:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255), outline=colour)
        if "digit" in hand:
            draw.text((x0 + width, max(0, y0 - 6 * width - 12)), f"{hand['digit']}",
                      fill=colour, font_size=max(14, 6 * width))
    return out


def hand_crop(image: Image.Image, hand: dict[str, Any], *, scale: float = 1.0,
              side: int = 224) -> Image.Image:
    """The square the landmark model read, upright, cut again from ``image``."""
    region = hand["region"]
    square = Region((region["center"][0] * scale, region["center"][1] * scale),
                    region["side"] * scale, region["rotation"])
    return cut_region(image.convert("RGB"), square, side)
