"""``GET /reset-password``: the page the password reset email links to by default.

A form for the new password, sent by a small inline script as JSON to
``POST /api/v1/auth/reset-password`` (the API takes JSON only). Nothing is loaded from
elsewhere: the Content-Security-Policy allows only this page's own script and style (by
their hashes) and requests to this origin, and ``Referrer-Policy: no-referrer`` keeps the
token in the URL from leaking to any other site.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from slotwise.errors import responses
from slotwise.text import Text

router = APIRouter(tags=["auth"])

PATH = "/reset-password"
API_PATH = "/api/v1/auth/reset-password"
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")  # as ResetPasswordRequest.token, URL-safe

SCRIPT = """
const form = document.getElementById("reset");
const said = document.getElementById("said");
history.replaceState(null, "", location.pathname);
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const fields = new FormData(form);
  if (fields.get("new_password") !== fields.get("again")) {
    said.textContent = "The two passwords differ.";
    return;
  }
  const sent = await fetch(form.dataset.api, {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({token: fields.get("token"), new_password: fields.get("new_password")}),
  });
  if (sent.ok) {
    form.hidden = true;
    said.textContent = "Your password is changed and every session is signed out: " +
      "sign in with the new one.";
    return;
  }
  const error = await sent.json().catch(() => ({}));
  const detail = Array.isArray(error.details) && error.details[0] ? error.details[0].msg : "";
  said.textContent = [error.message || "Something went wrong.", detail].join(" ").trim();
});
"""

STYLE = (
    "body{font-family:sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}"
    "label,input,button{display:block;width:100%;margin:.5rem 0}"
)


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src {_hash(SCRIPT)}; style-src {_hash(STYLE)}; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Choose a new password</title>
<style>{style}</style>
</head>
<body>
<h1>Choose a new password</h1>
{body}
<p id="said" role="status"></p>
<script>{script}</script>
</body>
</html>
"""

_FORM = """<form id="reset" data-api="{api}">
<input type="hidden" name="token" value="{token}">
<label for="new_password">New password (8 to 128 characters)</label>
<input id="new_password" name="new_password" type="password" autocomplete="new-password"
 minlength="8" maxlength="128" required>
<label for="again">The same again</label>
<input id="again" name="again" type="password" autocomplete="new-password" required>
<button type="submit">Set the new password</button>
</form>
<noscript>This page needs JavaScript.</noscript>"""

_INCOMPLETE_LINK = """<form id="reset" hidden></form>
<p>This link is incomplete. Open the link from the email again, or ask for a new one.</p>"""


@router.get(
    PATH,
    response_class=Response,  # not HTMLResponse: the 422 is documented as JSON, as it is
    responses={
        200: {"description": "The form", "content": {"text/html": {}}},
        400: {
            "description": "No token, or not one this service could have mailed.",
            "content": {"text/html": {}},
        },
        **responses(422),
    },
    summary="The page a password reset email links to (a form; no sign-in)",
)
async def reset_password_page(
    token: Annotated[Text, Query(description="The token from the email.")] = "",
) -> HTMLResponse:
    if TOKEN.fullmatch(token):
        body = _FORM.format(api=html.escape(API_PATH), token=html.escape(token))
        status_code = 200
    else:
        body, status_code = _INCOMPLETE_LINK, 400
    page = _PAGE.format(style=STYLE, body=body, script=SCRIPT)
    return HTMLResponse(page, status_code=status_code, headers=HEADERS)
