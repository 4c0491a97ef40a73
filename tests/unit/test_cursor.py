"""The images page's cursor: what ``GET /api/jobs/{id}/images`` hands out and takes back.

Through the web's public functions ``encode_cursor``/``decode_cursor``
(``signdigits.web.routes.images``).
"""

from __future__ import annotations

import base64
import json

import pytest
from fastapi import HTTPException

from signdigits.db.images import ImageCursor
from signdigits.web.limits import MAX_ID
from signdigits.web.routes.images import decode_cursor, encode_cursor


def _token(value) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    ImageCursor(1, None, False),  # id order
    ImageCursor(5, 0.25, False),  # confidence order, among scored rows
    ImageCursor(0, None, True),  # confidence order, into the unscored rows
    ImageCursor(77, None, True),
    ImageCursor(MAX_ID, 1.0, False),
    ImageCursor(3, 0.1 + 0.2, False),  # a float comes back exactly
])
def test_a_cursor_comes_back_as_it_went(cursor):
    token = encode_cursor(cursor)
    assert token.isascii() and "=" not in token and "/" not in token and "+" not in token
    assert decode_cursor(token) == cursor


def test_no_cursor_is_the_first_page():
    assert encode_cursor(None) is None
    assert decode_cursor(None) is None and decode_cursor("") is None


@pytest.mark.parametrize("token", [
    "garbage!!",  # not base64
    _token(b"not json"),
    _token([1, 2]),  # the wrong shape
    _token({"last_id": 1}),
    _token([-1, None, False]),  # ids are never negative
    _token([MAX_ID + 1, None, False]),  # past any id
    _token(["x", None, False]),
    _token([1, "high", False]),
    _token(b"[1, NaN, false]"),  # json takes these; no confidence is one
    _token(b"[1, Infinity, false]"),
    _token(b"[1, 1e999, false]"),
    _token(b"[" * 100_000 + b"]" * 100_000),  # nests past the parser's depth
])
def test_a_cursor_the_api_never_made_is_refused_as_a_400(token):
    with pytest.raises(HTTPException) as refused:
        decode_cursor(token)
    assert refused.value.status_code == 400
    assert refused.value.detail == "cursor is not one this API returned"
