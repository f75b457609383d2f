"""The link in a password reset email works: Slotwise's own page by default (its form's
script run in Node against the API's real answers), or the operator's page
(``password_reset_url``)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser

import httpx
import pytest
from pydantic import ValidationError

from slotwise.booking.publish import reminder_still_due
from slotwise.main import create_app
from slotwise.notifications.sender import SmtpSender
from slotwise.notifications.worker import Worker
from tests.conftest import make_settings
from tests.factories import Clock, login, signed_in
from tests.notifications.conftest import SmtpServer, mail_settings

NEW_PASSWORD = "another-long-and-unusual-passphrase"
LINK = re.compile(r"(https?://[^\s/]+)(/reset-password)\?token=([A-Za-z0-9_-]+)")

# A stand-in for the browser: just the DOM the page's script touches. `fetch` prints the
# request it is asked to send and answers with the reply given (the API's real answer).
BROWSER = """
const given = JSON.parse(process.argv[1]);
const out = (what) => process.stdout.write(JSON.stringify(what) + "\\n");
const page = {
  reset: {
    dataset: {api: given.api}, hidden: false, values: given.fields,
    addEventListener(kind, handler) { this.handler = handler; },
  },
  said: {textContent: ""},
};
globalThis.document = {getElementById: (id) => page[id]};
globalThis.FormData = class {
  constructor(form) { this.form = form; }
  get(name) { return this.form.values[name]; }
};
globalThis.location = {pathname: "/reset-password"};
globalThis.history = {replaceState: (s, t, url) => out({address_bar: url})};
globalThis.fetch = async (url, init) => {
  out({fetch: {url, method: init.method, headers: init.headers, body: init.body}});
  return {ok: given.reply.status < 300, status: given.reply.status,
          json: async () => given.reply.body};
};
"""
RUN = """
page.reset.handler({preventDefault() {}})
  .then(() => out({said: page.said.textContent, hidden: page.reset.hidden}));
"""


class _Page(HTMLParser):
    """The page's inputs, its script and style, and any reference to elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}
        self.form: dict[str, str] = {}
        self.external: list[str] = []
        self.text: dict[str, str] = {"script": "", "style": ""}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "input":
            self.inputs[values["name"]] = values.get("value", "")
        if tag == "form":
            self.form = values
        self.external += [values[name] for name in ("src", "href", "action") if name in values]
        self._in = tag if tag in self.text else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.text[self._in] += data


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _browser(script: str, given: dict[str, object]) -> list[dict[str, object]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the page's script cannot be run")
    ran = subprocess.run(  # noqa: S603 - our own script, in Node
        [node, "-e", BROWSER + script + RUN, json.dumps(given)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [json.loads(line) for line in ran.stdout.splitlines()]


async def _mailed_link(smtp: SmtpServer, email: str) -> re.Match[str]:
    (message,) = smtp.inbox.to(email)
    text = str(message.get_body(preferencelist=("plain",)).get_content())
    found = LINK.search(text)
    assert found is not None, text
    return found


async def test_the_mailed_link_opens_a_page_whose_form_sets_the_password(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    account = await signed_in(client)
    await client.post("/auth/forgot-password", json={"email": account.email})
    await worker.run_until_idle(now=clock.now)
    link = await _mailed_link(smtp, account.email)
    assert link.group(1) == "http://127.0.0.1:8000"  # public_base_url, as configured
    token = link.group(3)

    page = await client.get(f"http://test{link.group(2)}", params={"token": token})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    policy = page.headers["content-security-policy"]
    parsed = _Page()
    parsed.feed(page.text)
    assert "default-src 'none'" in policy
    assert f"script-src {_sha256(parsed.text['script'])};" in policy
    assert f"style-src {_sha256(parsed.text['style'])};" in policy
    assert parsed.external == []  # no external assets, no form target
    assert parsed.inputs["token"] == token
    assert parsed.form["data-api"] == "/api/v1/auth/reset-password"

    fields = {"token": token, "new_password": NEW_PASSWORD, "again": NEW_PASSWORD}
    given = {"api": parsed.form["data-api"], "fields": fields, "reply": {"status": 204}}
    address_bar, fetched, finished = _browser(parsed.text["script"], given)
    assert address_bar == {"address_bar": "/reset-password"}  # the token leaves it
    sent = fetched["fetch"]
    answer = await client.request(
        sent["method"], f"http://test{sent['url']}", headers=sent["headers"], content=sent["body"]
    )
    assert answer.status_code == 204, answer.text
    assert "sign in with the new one" in finished["said"]
    assert finished["hidden"] is True
    await login(client, account.email, NEW_PASSWORD)

    # The same link again: the script shows the API's own refusal.
    again = await client.request(
        sent["method"], f"http://test{sent['url']}", headers=sent["headers"], content=sent["body"]
    )
    assert again.status_code == 400
    given["reply"] = {"status": 400, "body": again.json()}
    *_, shown = _browser(parsed.text["script"], given)
    assert shown == {"said": again.json()["message"], "hidden": False}


async def test_the_page_checks_the_two_passwords_and_shows_validation_details(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("http://test/reset-password", params={"token": "t" * 43})
    parsed = _Page()
    parsed.feed(page.text)
    differ = {"token": "t" * 43, "new_password": NEW_PASSWORD, "again": "something else"}
    events = _browser(
        parsed.text["script"], {"api": "/x", "fields": differ, "reply": {"status": 204}}
    )
    assert events[-1] == {"said": "The two passwords differ.", "hidden": False}
    assert not any("fetch" in event for event in events)
    short = await client.post(
        "/auth/reset-password", json={"token": "t" * 43, "new_password": "short"}
    )
    assert short.status_code == 422
    same = {"token": "t" * 43, "new_password": "short", "again": "short"}
    reply = {"status": 422, "body": short.json()}
    *_, shown = _browser(parsed.text["script"], {"api": "/x", "fields": same, "reply": reply})
    assert shown["said"].startswith(short.json()["message"])
    assert short.json()["details"][0]["msg"] in shown["said"]


@pytest.mark.parametrize(
    "token",
    ["", "short", '"><script>alert(1)</script>' + "x" * 20, "x" * 129],
)
async def test_a_link_without_a_usable_token_says_so_and_reflects_nothing(
    client: httpx.AsyncClient, token: str
) -> None:
    page = await client.get("http://test/reset-password", params={"token": token})
    assert page.status_code == 400
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "This link is incomplete" in page.text
    assert "<script>alert" not in page.text
    parsed = _Page()
    parsed.feed(page.text)
    assert parsed.inputs == {}


async def test_a_link_with_a_control_character_is_refused_as_every_text_is(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("http://test/reset-password", params={"token": "a" * 20 + "\u0000"})
    assert page.status_code == 422
    assert page.json()["details"][0]["type"] == "control_character"
    assert "aaaa" not in page.text


async def test_the_operator_page_is_linked_when_configured(
    database_url: str, smtp: SmtpServer
) -> None:
    template = "https://app.example.com/account/reset?t={token}&from=mail"
    settings = mail_settings(database_url, smtp, password_reset_url=template)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as client:
            account = await signed_in(client)
            await client.post("/auth/forgot-password", json={"email": account.email})
            worker = Worker(
                db=app.state.slotwise.db,
                settings=settings,
                sender=SmtpSender(settings),
                reminder_still_due=reminder_still_due,
            )
            await worker.run_until_idle(now=datetime.now(UTC))
            (message,) = smtp.inbox.to(account.email)
            text = str(message.get_body(preferencelist=("plain",)).get_content())
            found = re.search(r"https://app\.example\.com/account/reset\?t=(\S+)&from=mail", text)
            assert found is not None, text
            reset = await client.post(
                "/auth/reset-password",
                json={"token": found.group(1), "new_password": NEW_PASSWORD},
            )
            assert reset.status_code == 204
            assert "/reset-password" not in text
    finally:
        await app.state.slotwise.aclose()


@pytest.mark.parametrize("template", ["https://app.example.com/reset", "ftp://x/{token}"])
def test_a_reset_url_without_token_or_web_scheme_is_refused(template: str) -> None:
    with pytest.raises(ValidationError, match="password_reset_url"):
        make_settings("sqlite+aiosqlite://", password_reset_url=template)
