"""Text as Slotwise accepts it: one rule for every string a request carries.

PostgreSQL cannot store NUL (U+0000), and neither database nor UTF-8 can hold a lone
surrogate (U+D800-U+DFFF); control characters (Unicode category Cc: U+0000-U+001F,
U+007F-U+009F) have no place in a name or a search and end up raw in logs, mail headers
and calendar files. So every string field and parameter is one of these types:

- `Text`: one line; no control character at all.
- `MultilineText`: free text (notes, bio, descriptions, reasons); tab, line feed and
  carriage return are allowed, no other control character.

Both refuse lone surrogates. The refusal is a 422 `validation_error` at the field's
location, of type `control_character`. The OpenAPI document carries the rule as each
string's `pattern`; a test walks every route and fails on a request string that does not
use these types.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

# Written as escapes, not characters: the patterns go into the OpenAPI document as they are,
# and read the same in Python's `re` and in ECMA-262 (JSON Schema's regex dialect).
_SURROGATES = r"\ud800-\udfff"
_CONTROLS = r"\u0000-\u001f\u007f-\u009f"
_CONTROLS_BUT_LINES = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"  # tab, LF, CR

TEXT_PATTERN = f"^[^{_CONTROLS}{_SURROGATES}]*$"
MULTILINE_PATTERN = f"^[^{_CONTROLS_BUT_LINES}{_SURROGATES}]*$"

_REFUSED_IN_TEXT = re.compile(f"[{_CONTROLS}{_SURROGATES}]")
_REFUSED_IN_MULTILINE = re.compile(f"[{_CONTROLS_BUT_LINES}{_SURROGATES}]")


def _refuse(found: re.Match[str], allowed: str) -> None:
    raise PydanticCustomError(
        "control_character",
        "Must not contain U+{code_point}: {allowed}.",
        {"code_point": f"{ord(found.group()):04X}", "allowed": allowed},
    )


def check_text(value: str) -> str:
    found = _REFUSED_IN_TEXT.search(value)
    if found is not None:
        _refuse(found, "no control characters or lone surrogates")
    return value


def check_multiline_text(value: str) -> str:
    found = _REFUSED_IN_MULTILINE.search(value)
    if found is not None:
        _refuse(found, "no control characters but tab and line breaks, no lone surrogates")
    return value


Text = Annotated[
    str, AfterValidator(check_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})
]
"""A single line of text: no control characters, no lone surrogates."""

MultilineText = Annotated[
    str,
    AfterValidator(check_multiline_text),
    Field(json_schema_extra={"pattern": MULTILINE_PATTERN}),
]
"""Free text: tab, line feed and carriage return allowed, no other control character."""
