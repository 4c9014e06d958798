"""One borrower's messages: one at a time in arrival order across gateways, and kept while Rasa is down.

Rasa is FakeRasa (conftest) and Twilio the stand-in; tests/integration/test_faults.py kills the real ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.core import keys
from bot.core.crypto import pseudonym
from bot.domain.turns import TurnOrder
from bot.edge import gateway
from bot.edge.gateway import drain, init_app
from bot.ops import twilio_standin
from bot.ops.chat import messages_in, signed_sms
from bot.services import Services
from tests.conftest import FakeRasa

PHONE = "+14155550123"  # in the sample ledger


@dataclasses.dataclass
class Gateways:
    clients: list[TestClient]
    services: Services
    rasa: FakeRasa
    standin: twilio_standin.StandIn

    async def sms(self, body: str, sid: str, n: int = 0) -> list[str]:
        form, signature = signed_sms(self.services.settings, PHONE, body, sid)
        response = await self.clients[n].post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
        assert response.status == 200
        return messages_in(await response.text())

    @property
    def conversation(self) -> str:
        return pseudonym(PHONE, self.services.settings.hmac_secret)

    async def replayed(self) -> None:
        """Until the kept turns are gone (a gateway's own drain loop may be the one replaying)."""
        await drain(self.clients[0].app)
        for _ in range(200):
            if not await self.services.pending_turns.waiting(self.conversation):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("kept turns were not replayed")

    def texted(self) -> list[str]:
        return [m["body"] for m in self.standin.messages]


@pytest.fixture
async def gateways(services: Services, rasa: tuple[FakeRasa, str]) -> AsyncIterator[Gateways]:
    """Two gateways on one Redis, one Rasa, Twilio's stand-in."""
    standin = TestServer(twilio_standin.init_app(services.settings.twilio_account_sid,
                                                 services.settings.twilio_auth_token))
    await standin.start_server()
    settings = dataclasses.replace(services.settings, rasa_url=rasa[1], action_url=rasa[1],
                                   twilio_api_base_url=str(standin.make_url("")).rstrip("/"))
    clients = [TestClient(TestServer(init_app(settings))) for _ in range(2)]
    for client in clients:
        await client.start_server()
    yield Gateways(clients, services, rasa[0], standin.app[twilio_standin.STATE])
    for client in clients:
        await client.close()
    await standin.close()


def sid(n: int) -> str:
    return f"SM{n:032x}"


async def test_a_message_rasa_cannot_take_is_kept_sealed_and_answered_by_sms_once(gateways: Gateways) -> None:
    gateways.rasa.up = False
    assert await gateways.sms("how much do I owe", sid(1)) == []  # Twilio hears nothing, retries nothing
    raw = await gateways.services.redis.lrange(keys.turns_pending(gateways.conversation), 0, -1)
    assert len(raw) == 1 and b"how much" not in raw[0] and sid(1).encode() not in raw[0]
    assert gateways.services.vault.open(raw[0]) == {"sid": sid(1), "body": "how much do I owe"}
    assert await gateways.sms("how much do I owe", sid(1)) == []  # Twilio's own retry: not kept twice
    assert len(await gateways.services.redis.lrange(keys.turns_pending(gateways.conversation), 0, -1)) == 1

    gateways.rasa.up = True
    await gateways.replayed()
    assert [(r["message"], r["message_id"]) for r in gateways.rasa.received] == [("how much do I owe", sid(1))]
    assert gateways.texted() == ["Hello from the bot."]
    assert await drain(gateways.clients[1].app) == 0  # nothing left, nothing sent twice
    assert gateways.texted() == ["Hello from the bot."]
    assert await gateways.services.redis.zcard(keys.TURNS_WAITING) == 0


@pytest.mark.parametrize("garbage", [b"not json", b'{"text": "a dict"}'])
async def test_rasa_answering_garbage_keeps_the_message(gateways: Gateways, garbage: bytes) -> None:
    gateways.rasa.garbage = garbage
    assert await gateways.sms("hello", sid(2)) == []
    assert await gateways.services.pending_turns.waiting(gateways.conversation)


async def test_later_messages_wait_behind_a_kept_one_and_all_go_in_arrival_order(gateways: Gateways) -> None:
    gateways.rasa.refused = {"first"}  # Rasa fails on this one only, so the drain loops cannot replay it yet
    assert await gateways.sms("first", sid(1)) == []
    assert await gateways.sms("second", sid(2), n=1) == []  # Rasa would take it, but "first" waits
    assert await gateways.sms("third", sid(3)) == []
    assert gateways.rasa.received == []
    gateways.rasa.refused = set()
    await gateways.replayed()
    assert [r["message"] for r in gateways.rasa.received] == ["first", "second", "third"]
    assert gateways.texted() == ["Hello from the bot."] * 3
    assert await gateways.sms("fourth", sid(4)) == ["Hello from the bot."]  # answered directly again


async def test_messages_arriving_together_at_two_gateways_are_taken_one_at_a_time_in_order(
        gateways: Gateways) -> None:
    gateways.rasa.delay = 0.2

    async def arrive(n: int) -> list[str]:
        await asyncio.sleep(0.03 * n)  # the arrival order
        return await gateways.sms(f"message {n}", sid(n), n=n % 2)

    answers = await asyncio.gather(*(arrive(n) for n in range(5)))
    assert answers == [["Hello from the bot."]] * 5
    assert [r["message"] for r in gateways.rasa.received] == [f"message {n}" for n in range(5)]
    assert gateways.rasa.most_at_once == 1


async def test_a_message_waiting_too_long_is_kept_and_answered_by_sms(gateways: Gateways,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway, "ORDER_WAIT_SECONDS", 0.1)
    gateways.rasa.delay = 0.5
    slow = asyncio.create_task(gateways.sms("slow one", sid(1)))
    await asyncio.sleep(0.05)
    assert await gateways.sms("impatient", sid(2), n=1) == []  # kept behind "slow one"
    assert await slow == ["Hello from the bot."]
    await gateways.replayed()
    assert [r["message"] for r in gateways.rasa.received] == ["slow one", "impatient"]
    assert gateways.texted() == ["Hello from the bot."]


async def test_a_line_holder_that_died_is_passed_once_its_lease_ends(services: Services) -> None:
    order = TurnOrder(services.redis, lease_ms=300)
    dead = order.hold("c_dead_holder", 1)
    assert await dead.__aenter__()  # entered and never left: its process died
    for key in (keys.turn_order("c_dead_holder"), keys.turn_leases("c_dead_holder")):
        assert 0 < await services.redis.pttl(key) <= 900  # nothing stays if nobody comes after it
    started = asyncio.get_running_loop().time()
    async with order.hold("c_dead_holder", 2) as my_turn:
        waited = asyncio.get_running_loop().time() - started
    assert my_turn and 0.2 < waited < 1.5


async def test_a_turn_given_up_leaves_the_line(services: Services) -> None:
    order = TurnOrder(services.redis)
    async with order.hold("c_give_up", 1) as first, order.hold("c_give_up", 0.05) as second:
        assert first and not second
    assert await services.redis.exists(keys.turn_order("c_give_up")) == 0


async def test_a_new_message_gives_way_at_once_to_kept_ones_and_the_drain_takes_them(services: Services) -> None:
    order = TurnOrder(services.redis)
    await services.pending_turns.add("c_kept", sid(1), "kept earlier")
    started = asyncio.get_running_loop().time()
    async with order.hold("c_kept", 5, after_kept=True) as new_message:
        assert not new_message and asyncio.get_running_loop().time() - started < 1  # no wait: it goes behind
    async with order.hold("c_kept", 5) as drain:  # the drain replays the kept ones
        assert drain
    await services.pending_turns.done("c_kept", sid(1))
    async with order.hold("c_kept", 5, after_kept=True) as new_message:
        assert new_message


async def test_what_a_place_sets_on_leaving_is_written_as_the_line_is_left(services: Services) -> None:
    order = TurnOrder(services.redis)
    async with order.hold("c_leaving", 1) as place:
        place.set_on_leaving("webhook:test-answer", b"sealed answer", 60)
        assert await services.redis.get("webhook:test-answer") is None  # not before
    assert await services.redis.get("webhook:test-answer") == b"sealed answer"
    assert 0 < await services.redis.ttl("webhook:test-answer") <= 60
    assert await services.redis.exists(keys.turn_order("c_leaving"), keys.turn_leases("c_leaving")) == 0


async def test_keys_hold_no_personal_data(gateways: Gateways) -> None:
    gateways.rasa.up = False
    await gateways.sms("my id is 1234, call me at +14155550123", sid(9))
    names = [k.decode() async for k in gateways.services.redis.scan_iter(match="turns:*")]
    assert names and not any(PHONE in n or "1234" in n for n in names)
    values: list[Any] = await gateways.services.redis.lrange(keys.turns_pending(gateways.conversation), 0, -1)
    assert not any(b"1234" in v or PHONE.encode() in v for v in values)


@pytest.mark.parametrize("first", ["refused", "503"])
async def test_a_turn_the_conversations_rasa_does_not_take_goes_to_another(
        services: Services, rasa: tuple[FakeRasa, str], first: str) -> None:
    other = FakeRasa()
    other_server = TestServer(other.app())
    await other_server.start_server()
    from tests.conftest import free_port

    down = f"http://127.0.0.1:{free_port()}" if first == "refused" else str(other_server.make_url("")).rstrip("/")
    if first == "503":
        other.refused = {"hello"}  # answers 503 for it: not taken
    settings = dataclasses.replace(services.settings, action_url=rasa[1])
    conversation = pseudonym(PHONE, settings.hmac_secret)
    # Order the two so that the conversation's own Rasa is the one that does not take the turn.
    urls = [down, rasa[1]] if dataclasses.replace(settings, rasa_url=f"{down},{rasa[1]}").rasa_for(
        conversation)[0] == down else [rasa[1], down]
    settings = dataclasses.replace(settings, rasa_url=",".join(urls))
    assert settings.rasa_for(conversation)[0] == down
    async with TestClient(TestServer(init_app(settings))) as client:
        form, signature = signed_sms(settings, PHONE, "hello", sid(5))
        response = await client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
        assert messages_in(await response.text()) == ["Hello from the bot."]
    assert [r["message"] for r in rasa[0].received] == ["hello"]
    await other_server.close()


def test_conversations_spread_over_the_rasa_servers_and_each_keeps_its_own(settings: Any) -> None:
    spread = dataclasses.replace(settings, rasa_url="http://a:1,http://b:2")
    firsts = [spread.rasa_for(f"c_{n:032x}")[0] for n in range(200)]
    assert 60 < firsts.count("http://a:1") < 140
    assert spread.rasa_for("c_same") == spread.rasa_for("c_same")
    assert sorted(spread.rasa_for("c_same")) == ["http://a:1", "http://b:2"]


OTHER_PHONE = "+8613800138000"  # another borrower in the sample ledger


@pytest.fixture
async def one_at_once(gateways: Gateways) -> AsyncIterator[TestClient]:
    """A gateway that lets Rasa have one turn at a time, beside the others (same Redis, Rasa, Twilio)."""
    settings = dataclasses.replace(gateways.clients[0].app[gateway.SERVICES].settings, rasa_turns_at_once=1)
    async with TestClient(TestServer(init_app(settings))) as client:
        yield client


async def _sms_from(client: TestClient, phone: str, body: str, message: str) -> list[str]:
    settings = client.app[gateway.SERVICES].settings
    form, signature = signed_sms(settings, phone, body, message)
    response = await client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 200
    return messages_in(await response.text())


async def test_rasa_gets_the_turns_a_gateway_allows_at_once_and_the_others_wait(
        gateways: Gateways, one_at_once: TestClient) -> None:
    gateways.rasa.delay = 0.2
    answers = await asyncio.gather(_sms_from(one_at_once, PHONE, "hello", sid(20)),
                                   _sms_from(one_at_once, OTHER_PHONE, "你好", sid(21)))
    assert answers == [["Hello from the bot."]] * 2  # both answered, one after the other
    assert gateways.rasa.most_at_once == 1


async def test_a_turn_that_waits_too_long_for_rasa_is_kept_and_answered_by_sms(
        gateways: Gateways, one_at_once: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway, "RASA_SLOT_WAIT_SECONDS", 0.05)
    gateways.rasa.delay = 0.5
    answers = await asyncio.gather(_sms_from(one_at_once, PHONE, "hello", sid(22)),
                                   _sms_from(one_at_once, OTHER_PHONE, "你好", sid(23)))
    assert sorted(answers) == [[], ["Hello from the bot."]]  # Twilio hears nothing for the kept one
    kept = pseudonym(PHONE if answers[0] == [] else OTHER_PHONE, gateways.services.settings.hmac_secret)
    assert await gateways.services.pending_turns.waiting(kept)
    gateways.rasa.delay = 0
    await drain(one_at_once.app)
    assert not await gateways.services.pending_turns.waiting(kept)
    assert gateways.texted() == ["Hello from the bot."]  # the kept turn's reply, by SMS, once
