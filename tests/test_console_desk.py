"""The console features a collections desk works with: who else is looking, search, replies with the
account's figures, transcript export, SLA timers and assignment; over HTTP, with the fixtures of
tests/test_console.py. The same in a real browser: tests/integration/test_console_desk_browser.py."""

from __future__ import annotations

from bot.domain.presence import SEEN_SECONDS, Presence, Viewer
from tests import test_console
from tests.test_console import World, claimed, handed_off, signed_in

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
