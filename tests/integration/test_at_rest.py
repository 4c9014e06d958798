"""What an attacker with the Redis files, or a port scanner on the machine's network, would find.

Runs after every other integration test (tests/integration/conftest.py orders it last), so the
database holds what whole conversations, hand-offs, visits and reports left in it.
"""

from __future__ import annotations

import csv
import socket
from collections.abc import Iterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.core.settings import Settings
from tests.integration.conftest import TEST_LOGS
from tests.integration.test_field_browser import ADDRESS

# Words borrowers wrote in the integration tests, which only sealed records may hold.
WRITTEN = ("我现在欠你们多少钱啊", "talk to a real person", "我要投诉", "户口簿地址与合同不同", "餐厅厨师",
           "我明天还一半", ADDRESS)


def borrowers_details() -> set[str]:
    with (TEST_LOGS / "stack" / "accounts.csv").open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    return {value for row in rows for value in (row["name"], row["phone"], row["phone"].lstrip("+"),
                                                row["birth_date"])} | set(WRITTEN)


async def everything_in(client: aioredis.Redis) -> Iterator[tuple[bytes, bytes]]:
    """Every key with each of its values (fields and members too), as raw bytes."""
    found = []
    async for key in client.scan_iter(count=1000):
        kind = (await client.type(key)).decode()
        if kind == "string":
            values = [await client.get(key)]
        elif kind == "hash":
            values = [v for pair in (await client.hgetall(key)).items() for v in pair]
        elif kind == "list":
            values = await client.lrange(key, 0, -1)
        elif kind in ("set", "zset"):
            values = list(await client.smembers(key)) if kind == "set" else await client.zrange(key, 0, -1)
        else:  # stream
            values = [v for _, fields in await client.xrange(key) for pair in fields.items() for v in pair]
        found += [(key, value or b"") for value in values]
    return iter(found)


async def test_redis_holds_no_personal_data_in_the_clear(stack: Settings) -> None:
    client = aioredis.from_url(stack.redis_url)
    secrets = {s.encode() for s in borrowers_details()}
    keys_seen, leaks = set(), []
    for key, value in await everything_in(client):
        keys_seen.add(key)
        leaks += [(key, "key") for s in secrets if s in key]
        leaks += [(key, "value") for s in secrets if s in value]
    await client.close()
    assert any(k.startswith(b"tracker:archive:") for k in keys_seen)  # conversations were stored
    assert any(k.startswith(b"fieldvisit:report:") for k in keys_seen)  # and a visit's reports
    assert not leaks, sorted({(k.decode(errors="replace").split(":")[0], where) for k, where in leaks})


async def test_the_action_server_answers_only_rasa(stack: Settings, http: aiohttp.ClientSession) -> None:
    webhook = stack.action_url + "/webhook"
    call = {"next_action": "action_session_start", "sender_id": "c_" + "0" * 32,
            "tracker": {"sender_id": "c_" + "0" * 32, "slots": {}, "events": [], "latest_message": {}}}
    for token in ("", "?token=wrong", "?token=" + stack.rasa_token[:-1]):
        async with http.post(webhook + token, json=call) as response:
            assert response.status == 401
    async with http.get(stack.action_url + "/health") as response:
        assert response.status == 200


async def test_rasas_http_api_needs_its_token(stack: Settings, http: aiohttp.ClientSession) -> None:
    tracker = f"{stack.rasa_url}/conversations/c_{'0' * 32}/tracker"
    for query in ("", "?token=wrong"):
        async with http.get(tracker + query) as response:
            assert response.status == 401
    async with http.get(f"{tracker}?token={stack.rasa_token}") as response:
        assert response.status == 200


@pytest.mark.parametrize("component", ["rasa_url", "action_url"])
def test_rasa_and_the_action_server_listen_on_loopback_only(stack: Settings, component: str) -> None:
    port = int(getattr(stack, component).rsplit(":", 1)[1])
    outward = _outward_address()
    if outward is None:
        pytest.skip("this machine has no address but loopback")
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex((outward, port)) != 0, f"{component} answers on {outward}"


def _outward_address() -> str | None:
    """An address of this machine other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a route
            address = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address
