"""The console features a collections desk works with: who else is looking, search, replies with the
account's figures, transcript export, SLA timers and assignment; over HTTP, with the fixtures of
tests/test_console.py. The same in a real browser: tests/integration/test_console_desk_browser.py."""

from __future__ import annotations

import io

import pypdf
import pytest

from bot.core import keys
from bot.domain.presence import SEEN_SECONDS, Presence, Viewer
from tests import test_console
from tests.test_campaign import phone
from tests.test_console import Desk, World, audit_events, claimed, handed_off, signed_in, sms

desk = test_console.world  # the console's world (signed-in agents, a stand-in), as this file's fixture

# --- who else is looking ---------------------------------------------------------------------------


async def test_the_holder_and_a_supervisor_see_each_other_on_the_page(desk: World) -> None:
    alice, conversation = await claimed(desk)
    sue = await signed_in(desk, "sue")
    assert '<p id="viewers" class="viewers" aria-live="polite" hidden>' in await (
        await alice.get(f"/agent/c/{conversation}")).text()
    page = await (await sue.get(f"/agent/c/{conversation}")).text()
    assert '<span id="viewer-names">alice</span>' in page
    answer = await (await alice.post(f"/agent/c/{conversation}/presence")).json()
    assert answer == {"others": [{"username": "sue", "role": "supervisor"}]}
    assert (await sue.post(f"/agent/c/{conversation}/presence", leave="1")).status == 200
    assert await (await alice.post(f"/agent/c/{conversation}/presence")).json() == {"others": []}


async def test_presence_needs_the_conversation_and_a_form_token(desk: World) -> None:
    conversation = await handed_off(desk)
    bob = await signed_in(desk, "bob")
    assert (await bob.post(f"/agent/c/{conversation}/presence")).status == 403  # not his
    sue = await signed_in(desk, "sue")
    assert (await sue.post(f"/agent/c/{conversation}/presence", csrf="forged")).status == 403


async def test_a_viewer_not_heard_from_is_gone(desk: World) -> None:
    presence = Presence(desk.services.redis)
    conversation = desk.conversation(0)
    assert await presence.seen(conversation, Viewer("sue", "supervisor"), now=1000.0)
    assert not await presence.seen(conversation, Viewer("sue", "supervisor"), now=1005.0)
    assert await presence.others(conversation, "alice", now=1005.0 + SEEN_SECONDS - 1) == [Viewer("sue", "supervisor")]
    assert await presence.others(conversation, "alice", now=1006.0 + SEEN_SECONDS) == []
    assert await presence.others(conversation, "sue", now=1005.0) == []  # not oneself


# --- search ----------------------------------------------------------------------------------------


async def _search(desk_of: Desk, query: str) -> str:
    response = await desk_of.post("/agent/search", q=query)
    assert response.status == 200
    return str(await response.text())


async def test_an_agent_finds_a_waiting_conversation_by_account_id_or_phone(desk: World) -> None:
    conversation = await handed_off(desk)
    alice = await signed_in(desk, "alice")
    for query in ("T00000", phone(0), "+86 137 0000 0000", "137-0000-0000"):
        page = await _search(alice, query)
        assert f'<tr data-conversation="{conversation}">' in page and "waiting" in page, query
        assert f"/agent/c/{conversation}/claim" in page and phone(0) not in page  # masked for agents
    events = [e for e in await audit_events(desk) if e["event"] == "search"]
    assert [(e["kind"], e["found"]) for e in events] == [("account_id", "T00000")] + [("phone", "T00000")] * 3
    stream = str(await desk.services.redis.xrange(keys.AUDIT_STREAM))
    assert "13700000000" not in stream  # the number searched is nowhere


async def test_an_agent_does_not_find_someone_elses_conversation_a_supervisor_does(desk: World) -> None:
    _, conversation = await claimed(desk)  # alice holds it
    bob, sue = await signed_in(desk, "bob"), await signed_in(desk, "sue")
    assert 'id="no-results"' in await _search(bob, "T00000")
    page = await _search(sue, phone(0))
    assert "held by alice" in page and f'href="/agent/c/{conversation}"' in page and phone(0) in page
    assert 'id="no-results"' in await _search(sue, "T09999")  # no such account


@pytest.mark.parametrize("query", ["hello there", "+86 137 0000 0000 and 138 0013 8000", "", "x" * 60])
async def test_a_search_that_is_neither_an_account_nor_a_number_says_so(desk: World, query: str) -> None:
    sue = await signed_in(desk, "sue")
    page = await _search(sue, query)
    assert "give an account id, or a phone number" in page or 'id="no-results"' in page


async def test_search_is_a_posted_form_with_its_token(desk: World) -> None:
    sue = await signed_in(desk, "sue")
    assert (await sue.post("/agent/search", csrf="forged", q="T00000")).status == 403
    assert (await sue.get("/agent/search")).status == 200


# --- transcript export -----------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


async def test_a_supervisor_exports_the_transcript_and_ledger_as_pdf_audited(desk: World) -> None:
    alice, conversation = await claimed(desk, n=1)  # a Chinese-speaking borrower
    await sms(desk, 1, "我下周一发工资后还一半")
    sue = await signed_in(desk, "sue")
    response = await sue.get(f"/agent/c/{conversation}/transcript.pdf")
    assert response.status == 200 and response.content_type == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="conversation-T00001.pdf"'
    text = pdf_text(await response.read())
    assert "我下周一发工资后还一半" in text and "T00001" in text and "Transcript" in text and "Ledger" in text
    assert phone(1) in text  # a complaint file names the borrower in full
    events = [e for e in await audit_events(desk) if e["event"] == "export_transcript"]
    assert [(e["agent"], e["account_id"]) for e in events] == [("sue", "T00001")]
    assert (await alice.get(f"/agent/c/{conversation}/transcript.pdf")).status == 403  # the holder is no supervisor
    assert [e["agent"] for e in await audit_events(desk) if e["event"] == "denied"] == ["alice"]
    assert f'/agent/c/{conversation}/transcript.pdf' in await (await sue.get(f"/agent/c/{conversation}")).text()
