"""The console features a collections desk works with: who else is looking, search, replies with the
account's figures, transcript export, SLA timers and assignment; over HTTP, with the fixtures of
tests/test_console.py. The same in a real browser: tests/integration/test_console_desk_browser.py."""

from __future__ import annotations

import dataclasses
import html
import io
import re
import time as clock
from collections import Counter
from datetime import date, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pypdf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core import keys
from bot.core.crypto import pseudonym
from bot.core.formatting import long_date, money
from bot.dialogue.conversation import local_today
from bot.domain.agents import Desk as AgentDesk
from bot.domain.assignment import Waiting, choose
from bot.domain.ledger import overdue
from bot.domain.plans import Instalment, Offer
from bot.domain.presence import SEEN_SECONDS, Presence, Viewer
from bot.domain.sla import Calendar, load_sla
from bot.domain.sla import clock as sla_clock
from bot.web.appkeys import SERVICES
from tests import test_console
from tests.test_campaign import phone
from tests.test_console import Desk, World, audit_events, claimed, flash, handed_off, signed_in, sms

desk = test_console.world  # the console's world (signed-in agents, a stand-in), as this file's fixture

# --- who else is looking ---------------------------------------------------------------------------


async def test_the_holder_and_a_supervisor_see_each_other_on_the_page(desk: World) -> None:
    alice, conversation = await claimed(desk)
    sue = await signed_in(desk, "sue")
    assert '<p id="viewers" class="viewers" aria-live="polite" hidden>' in await (
        await alice.get(f"/agent/c/{conversation}")).text()
    assert await (await alice.post(f"/agent/c/{conversation}/presence")).json() == {"others": []}  # the page's first
    page = await (await sue.get(f"/agent/c/{conversation}")).text()
    assert '<span id="viewer-names">alice</span>' in page  # the page only reads; its script says sue is here
    assert await (await sue.post(f"/agent/c/{conversation}/presence")).json() == {
        "others": [{"username": "alice", "role": "agent"}]}
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


# --- replies with the account's figures ------------------------------------------------------------


async def _verified(world: World, conversation: str, account_id: str) -> None:
    """The live tracker says the borrower passed verification (what the bot's slot records)."""
    events = [{"event": "slot", "name": "verified_account", "value": account_id}]
    await world.services.redis.set(keys.tracker(conversation), world.services.vault.seal({"events": events}))


def quick_replies(page: str) -> dict[str, str]:
    found = re.findall(r'<button type="button" class="quick-reply" data-text="([^"]*)" title="[^"]*">([^<]*)</button>',
                       page)
    return {label: html.unescape(text) for text, label in found}


async def claimed_sample(world: World, account_id: str) -> tuple[Desk, str]:
    """alice holds the conversation of a sample account (samples/: they owe something)."""
    account = await world.services.ledger.get(account_id)
    assert account is not None
    conversation = pseudonym(account.phone, world.services.settings.hmac_secret)
    await world.services.records.hand_off(conversation, account_id, "request_human")
    alice = await signed_in(world, "alice")
    assert (await alice.post(f"/agent/c/{conversation}/claim")).status == 303
    return alice, conversation


async def test_figure_replies_come_filled_in_in_the_borrowers_language_once_verified(desk: World) -> None:
    alice, conversation = await claimed_sample(desk, "CN001")
    page = await (await alice.get(f"/agent/c/{conversation}")).text()
    assert 'id="figures-hint"' in page and not {"amount", "payment link", "plan"} & quick_replies(page).keys()
    account = await desk.services.ledger.get("CN001")
    assert account is not None
    offer = Offer("plan", 3, Decimal("900.00"), Decimal(0), Decimal(0), tuple(
        Instalment(date(2027, 1, 15) + timedelta(days=31 * n), Decimal("300.00")) for n in range(3)))
    await desk.services.arrangements.accept(account, conversation, offer, local_today(account), "sms", 2)
    await _verified(desk, conversation, "CN001")
    replies = quick_replies(await (await alice.get(f"/agent/c/{conversation}")).text())
    due = overdue(account, local_today(account))
    assert due.amount > 0 and due.oldest_due is not None
    amount = money(due.amount, account.currency, "zh")
    assert replies["amount"] == f"您的账户目前逾期{amount}，最早一期应还日为{long_date(due.oldest_due, 'zh')}。"
    assert amount in replies["payment link"] and "https://" in replies["payment link"]
    assert replies["plan"] == (f"您的分期方案：共3期，每月{money(Decimal('300'), account.currency, 'zh')}，"
                               f"自2027年1月15日至2027年3月18日，合计{money(Decimal('900'), account.currency, 'zh')}。")
    assert "hello" in replies  # the plain ones stay


async def test_figure_replies_in_english_and_none_without_anything_overdue(desk: World) -> None:
    alice, conversation = await claimed_sample(desk, "US001")
    await _verified(desk, conversation, "US001")
    filled = quick_replies(await (await alice.get(f"/agent/c/{conversation}")).text())
    assert filled["amount"].startswith("$") and "is overdue on your account" in filled["amount"]
    assert "plan" not in filled  # no plan on record
    bob, nothing_due = await claimed(desk, "bob")  # T00000 owes nothing yet
    await _verified(desk, nothing_due, "T00000")
    page = await (await bob.get(f"/agent/c/{nothing_due}")).text()
    assert not {"amount", "payment link"} & quick_replies(page).keys()


# --- service levels --------------------------------------------------------------------------------


def always_open(world: World) -> None:
    """The gateway's desk works around the clock (so that these tests hold at any hour); targets as in
    policy/sla.yml. Working hours themselves are tests/test_sla.py's."""
    calendar = Calendar(ZoneInfo("UTC"), frozenset(range(7)), time(0), time(23, 59, 59))
    for services in (world.services, world.client.server.app[SERVICES]):
        services.__dict__["sla"] = dataclasses.replace(load_sla(), calendar=calendar)


async def _waited(world: World, conversation: str, minutes: float) -> None:
    await world.services.redis.hset(keys.handoff(conversation), "since", int(clock.time() - minutes * 60))


async def test_the_queue_shows_each_reply_clock_against_its_reasons_target(desk: World) -> None:
    always_open(desk)
    for n, reason, minutes in ((0, "dispute", 16), (1, "request_human", 10), (2, "request_human", 50)):
        await _waited(desk, await handed_off(desk, n, reason), minutes)
    alice = await signed_in(desk, "alice")
    rows = await (await alice.get("/agent/queue/rows")).text()
    cells = dict(re.findall(r'<tr data-conversation="(c_[0-9a-f]+)">.*?<td class="sla([^"]*)">', rows, re.S))
    assert cells == {desk.conversation(0): " sla-breached", desk.conversation(1): " sla-ok",
                     desk.conversation(2): " sla-due_soon"}
    assert "first reply: 16 of 15 working min · over" in rows


async def test_a_late_reply_is_recorded_and_the_borrowers_next_message_starts_the_next_clock(desk: World) -> None:
    always_open(desk)
    alice, conversation = await claimed(desk, n=2)  # request_human: 60 minutes to the first reply
    await desk.services.redis.hset(keys.handoff(conversation), "reason", "complaint")
    await _waited(desk, conversation, 20)
    reply = await alice.post(f"/agent/c/{conversation}/reply", text="Sorry for the wait.", nonce="r" * 20)
    assert reply.status == 303
    item = await desk.services.handoffs.item(conversation)
    assert item is not None and item.first_reply_at and item.waiting_since is None
    assert sla_clock(desk.services.sla, item, clock.time()) is None  # answered
    await sms(desk, 2, "ok but why did you charge me twice")
    item = await desk.services.handoffs.item(conversation)
    running = sla_clock(desk.services.sla, item, clock.time()) if item else None
    assert running is not None and running.kind == "next" and running.state == "ok"
    sue = await signed_in(desk, "sue")
    page = await (await sue.get("/agent/sla")).text()
    assert "T00002" in page and "first reply: 20 of 15 min" in page and "alice" in page
    assert (await alice.get("/agent/sla")).status == 403


async def test_the_supervisors_list_puts_breaches_first(desk: World) -> None:
    always_open(desk)
    for n, reason, minutes in ((0, "request_human", 50), (1, "dispute", 40), (2, "request_human", 5)):
        await _waited(desk, await handed_off(desk, n, reason), minutes)
    sue = await signed_in(desk, "sue")
    page = await (await sue.get("/agent/sla")).text()
    listed = re.findall(r'<tr data-conversation="(c_[0-9a-f]+)" class="sla-(\w+)">', page)
    assert listed == [(desk.conversation(1), "breached"), (desk.conversation(0), "due_soon")]


# --- assignment ------------------------------------------------------------------------------------

desks = st.lists(st.builds(AgentDesk, username=st.sampled_from(["ann", "bea", "cal", "dan"]), role=st.just("agent"),
                           capacity=st.integers(1, 3), languages=st.sampled_from([("zh",), ("en",), ("zh", "en")]),
                           on_shift=st.booleans()), max_size=4, unique_by=lambda d: d.username)
queues = st.lists(st.builds(Waiting, conversation_id=st.uuids().map(str), language=st.sampled_from(["zh", "en"]),
                            offered_to=st.sampled_from([None, "ann", "bea", "eve"])), max_size=12)


@given(waiting=queues, staff=desks, held=st.dictionaries(st.sampled_from(["ann", "bea", "cal"]), st.integers(0, 3)))
def test_an_offer_goes_to_an_agent_on_shift_with_the_language_and_room(
        waiting: list[Waiting], staff: list[AgentDesk], held: dict[str, int]) -> None:
    chosen = choose(waiting, staff, held)
    by_name = {d.username: d for d in staff}
    offers = Counter(v for v in chosen.values() if v is not None)
    for item in waiting:
        agent = chosen[item.conversation_id]
        if agent is None:  # nobody able had room
            assert all(held.get(d.username, 0) + offers[d.username] >= d.capacity for d in staff
                       if d.on_shift and item.language in d.languages)
        else:
            desk_of = by_name[agent]
            assert desk_of.on_shift and item.language in desk_of.languages
    for name, count in offers.items():
        assert held.get(name, 0) + count <= by_name[name].capacity


def test_the_least_loaded_agent_gets_the_next_offer_and_an_offer_stands_while_it_can() -> None:
    ann = AgentDesk("ann", "agent", 2, ("zh", "en"), True)
    bea = AgentDesk("bea", "agent", 3, ("en",), True)
    queue = [Waiting("c1", "zh", None), Waiting("c2", "en", None), Waiting("c3", "en", None), Waiting("c4", "zh", None)]
    # c2: ann and bea both hold 1 then, the name decides; ann is then full, so c3 is bea's and c4 nobody's.
    assert choose(queue, [ann, bea], {"ann": 0, "bea": 1}) == {"c1": "ann", "c2": "ann", "c3": "bea", "c4": None}
    kept = [Waiting("c1", "en", "bea")]
    assert choose(kept, [ann, bea], {"bea": 2}) == {"c1": "bea"}  # bea still has room: no reshuffle
    assert choose(kept, [ann, dataclasses.replace(bea, on_shift=False)], {}) == {"c1": "ann"}  # off shift
    sue = AgentDesk("sue", "supervisor", 9, ("zh", "en"), True)
    assert choose([Waiting("c9", "zh", None)], [sue], {}) == {"c9": None}  # supervisors are not offered work


async def test_new_hand_offs_are_offered_in_the_borrowers_language_and_capacity_holds(desk: World) -> None:
    await desk.services.agents.set_desk("alice", 1, ("zh",))
    await desk.services.agents.set_desk("bob", 3, ("en",))
    alice, bob = await signed_in(desk, "alice"), await signed_in(desk, "bob")
    for agent in (alice, bob):
        assert flash(await agent.post("/agent/shift", on="1")).startswith("Your shift started")
    for n in (0, 1, 3):  # T00000 writes English, T00001 and T00003 Chinese
        await handed_off(desk, n)
    rows = await (await alice.get("/agent/queue/rows")).text()
    offered = dict(re.findall(r'<tr data-conversation="(c_[0-9a-f]+)"[^>]*>.*?<td class="offer">([^<]*)</td>', rows,
                              re.S))
    assert offered == {desk.conversation(0): "bob", desk.conversation(1): "you", desk.conversation(3): "nobody free"}
    assert 'class="offered-mine"' in rows and "On shift · holding 0 of 1" in await (await alice.get("/agent/")).text()
    assert (await alice.post(f"/agent/c/{desk.conversation(1)}/claim")).status == 303
    refused = await alice.post(f"/agent/c/{desk.conversation(3)}/claim")
    assert flash(refused) == "You hold 1 conversations already, your capacity: close or hand one back first."
    sue = await signed_in(desk, "sue")
    assert (await sue.post(f"/agent/c/{desk.conversation(1)}/reassign", agent="bob")).status == 303
    assert await desk.services.handoffs.holder(desk.conversation(1)) == "bob"  # a supervisor still reassigns
    assert flash(await bob.post("/agent/shift", on="0")) == "Your shift ended: nothing more is offered to you."
    rows = await (await alice.get("/agent/queue/rows")).text()
    assert f'<tr data-conversation="{desk.conversation(0)}">' in rows and "nobody free" in rows  # bob left
