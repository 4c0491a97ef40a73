"""How a bad setting is told: one line naming the variable, its value (secrets and URL
passwords masked) and what is expected, in the words of the setting's description."""

from __future__ import annotations

import os
import re

from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsError

ENV_PREFIX = "SIGNDIGITS_"
# Secrets a message may echo only masked.
SECRET_FIELDS = {"flower_basic_auth", "web_auth", "web_token", "webhook_secret", "metrics_token"}
URL_FIELDS = {"broker_url", "database_url", "webhook_url"}


def describe_fields_error(exc: ValidationError, fields: dict[str, FieldInfo]) -> str:
    """Each failed field as ``SIGNDIGITS_X='value': what is expected``, joined on one line."""
    problems = []
    for error in exc.errors():
        if not error["loc"]:  # a check across fields: its message names the variables
            problems.append(error["msg"].removeprefix("Value error, "))
            continue
        field, variable = _field_and_variable(str(error["loc"][0]), fields)
        # As typed: pydantic's input for a JSON variable is already parsed.
        shown = shown_value(field, raw_variable(variable) or error.get("input"))
        problems.append(f"{variable}={shown}: {_expected(fields.get(field), error)}")
    return "; ".join(problems)


_EXPECTED = {
    "int_parsing": "an integer", "int_from_float": "an integer", "int_type": "an integer",
    "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
    "list_type": "a JSON list", "path_type": "a path", "string_type": "text",
}
_BOUNDS = {"greater_than_equal": ("at least", "ge"), "less_than_equal": ("at most", "le"),
           "greater_than": ("more than", "gt"), "less_than": ("less than", "lt")}


def _field_and_variable(location: str, fields: dict[str, FieldInfo]) -> tuple[str, str]:
    """The field an error is about, and the variable that set it (a renamed one's old name
    when that is the one set)."""
    for name, field in fields.items():
        choices = getattr(field.validation_alias, "choices", [])
        if location == name or location in choices:
            set_ones = [c for c in choices if isinstance(c, str) and raw_variable(c)]
            return name, (set_ones[0] if set_ones else ENV_PREFIX + name.upper())
    return location, ENV_PREFIX + location.upper()


def _expected(field: FieldInfo | None, error: ErrorDetails) -> str:
    """What the field wants, in the words of its README line."""
    meaning = f" ({field.description})" if field is not None and field.description else ""
    kind = error["type"]
    if kind == "literal_error":
        return f"expected {error['ctx']['expected']}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}{meaning}"
    if kind in _BOUNDS:
        words, key = _BOUNDS[kind]
        return f"expected a number {words} {error['ctx'][key]}{meaning}"
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith("expected"):
        return message
    return f"invalid{meaning}: {message}"


def shown_value(field: str, value: object) -> str:
    """A value fit for a terminal: URL passwords and secrets masked, quoted like Python."""
    if value is None:
        return "unset"
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if field in SECRET_FIELDS:
        user, colon, _ = text.partition(":")
        text = f"{user}:***" if colon else "***"
    elif field in URL_FIELDS:
        text = masked_password(text)
    return repr(text)


def masked_password(url: str) -> str:
    """``url`` with everything between ``user:`` and the last ``@`` masked.

    Up to the last ``@``, not the first ``@`` or ``/``: an unescaped ``@`` or ``/`` in a
    password is what makes a URL wrong, and stopping there showed the password's tail.
    """
    return re.sub(r"(?s)(://[^:/@]*:).*@", r"\1***@", url)  # (?s): a newline too


def raw_variable(name: str) -> str | None:
    """The environment's value for a field (or a full variable name), matched as
    pydantic-settings matches: case-insensitively."""
    variable = name.upper() if name.upper().startswith(ENV_PREFIX) else ENV_PREFIX + name.upper()
    return next((v for k, v in os.environ.items() if k.upper() == variable), None)


def describe_unparsable(exc: SettingsError) -> str:
    """pydantic-settings could not even parse a JSON-valued variable (allowed_roots)."""
    found = re.search(r'field "([^"]+)"', str(exc))
    if not found:
        return str(exc)
    field = found.group(1)
    variable = ENV_PREFIX + field.upper()
    raw = raw_variable(field)
    reason = f" ({exc.__cause__})" if exc.__cause__ else ""
    return (f"{variable}={shown_value(field, raw)}: expected a JSON list of folders such as "
            f'["/data"]{reason}')
