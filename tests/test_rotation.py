"""Key rotation on the real Redis: sealed values move to the newest key, everything else stays as it was."""

from __future__ import annotations

import json
import os
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import redis as sync_redis
from cryptography.fernet import Fernet

from bot.core import audit, keys
from bot.core.crypto import Vault
from bot.domain.consent import FamilyContact
from bot.domain.records import Records
from bot.privacy.rotation import Rotation, rotate_all, rotation_summary
from bot.services import Services

NEW = Fernet.generate_key().decode()
TTL = 3600


def old_vault(services: Services) -> Vault:
    """The key the services fixture writes with: the one the rotation retires."""
    return services.vault


def rotating(services: Services) -> Vault:
    """DATA_KEYS during a rotation: the new key first, the old one after it."""
    return Vault((NEW, *services.settings.data_keys))


async def fill(services: Services) -> None:
    """Records of every shape, written under the old key (by the real writers where they are simple)."""
    redis, vault = services.redis, old_vault(services)
    await services.records.promise("CN001", "c_one", date(2026, 12, 5), Decimal("500.00"))
    await services.consents.record("CN001", "family_contact", "granted", "c_one", "sms", "May we…", "utter_x")
    await services.consents.save_family_contact("CN001", FamilyContact("+8613800001111", "我妈"))
    await services.records.hand_off("c_one", "CN001", "dispute")  # plain hash, zset and hold
    await redis.set(keys.tracker("c_one"), vault.seal({"name": "c_one", "events": []}), ex=TTL)
    await redis.rpush(keys.tracker_archive("c_one"), *(vault.seal({"event": "user", "text": f"#{i}"})
                                                       for i in range(20)))
    await redis.expire(keys.tracker_archive("c_one"), TTL)
    await redis.lpush(keys.agent_outcomes("CN001"), vault.seal({"outcome": "promise", "note": "paid on 5th"}))
    await redis.zadd(keys.field_visit_outcomes("CN001"), {vault.seal({"code": "promise"}): 1767225600.25})
    await redis.expire(keys.field_visit_outcomes("CN001"), TTL)
    await redis.hset(keys.field_visit("v1"), mapping={"state": "submitted", "version": 3,
                                                      "record": vault.seal({"notes": "地址"})})
    await redis.expire(keys.field_visit("v1"), TTL)
    await redis.hset(keys.field_visit_report("v1"), "report-zh.pdf", vault.seal_bytes(os.urandom(300_000)))
    await redis.expire(keys.field_visit_report("v1"), TTL)
    await redis.sadd("test:sealed-set", vault.seal({"member": 1}))
    await redis.expire("test:sealed-set", TTL)
    await redis.incr(keys.verification_failures("CN001"))
    await redis.expire(keys.verification_failures("CN001"), 86400)
    await redis.set("lock:c_one", json.dumps({"conversation_id": "c_one", "tickets": []}), ex=TTL)
    await audit.record(redis, "test_event", account_id="CN001")


EXPECTED = {"strings": 4 + 3, "hash_fields": 3, "list_items": 21, "zset_members": 1, "set_members": 1}
"""Sealed values fill() leaves: 4 ledger accounts, promise, family contact, tracker; consent, visit
record, report; 20 archived events, an agent outcome; a visit outcome; a set member."""


async def everything(redis: Any) -> dict[bytes, tuple[bytes, int, list[bytes]]]:
    """Every key: its DUMP, its TTL in seconds, and its tokens."""
    found = {}
    async for name in redis.scan_iter(count=1000):
        found[name] = (await redis.dump(name), await redis.ttl(name), await tokens(redis, name))
    return found


async def tokens(redis: Any, name: bytes) -> list[bytes]:
    kind = await redis.type(name)
    values: list[bytes] = []
    if kind == b"string":
        values = [await redis.get(name)]
    elif kind == b"hash":
        values = list((await redis.hgetall(name)).values())
    elif kind == b"list":
        values = await redis.lrange(name, 0, -1)
    elif kind == b"zset":
        values = await redis.zrange(name, 0, -1)
    elif kind == b"set":
        values = list(await redis.smembers(name))
    return [v for v in values if v.startswith(b"gAAAAA")]


def counts(rotation: Rotation) -> dict[str, int]:
    return {name: getattr(rotation, name) for name in EXPECTED}


def assert_moved(before: dict[bytes, tuple[bytes, int, list[bytes]]],
                 after: dict[bytes, tuple[bytes, int, list[bytes]]], old: Vault) -> None:
    """Tokens now open with the new key alone, to what they held; all else is byte for byte; TTLs kept."""
    newest = Vault((NEW,))
    assert after.keys() == before.keys()
    for name, (dump, ttl, sealed) in before.items():
        dump_after, ttl_after, sealed_after = after[name]
        assert abs(ttl_after - ttl) <= 1, name
        if not sealed:
            assert dump_after == dump, name
            continue
        assert sorted(newest.open_bytes(t) for t in sealed_after) == sorted(old.open_bytes(t) for t in sealed), name


async def test_every_sealed_value_moves_to_the_new_key_and_nothing_else_changes(services: Services) -> None:
    await fill(services)
    before = await everything(services.redis)

    rotation = await rotate_all(services.redis, rotating(services), batch=7)

    assert_moved(before, await everything(services.redis), old_vault(services))
    assert counts(rotation) == EXPECTED
    assert (rotation.keys, rotation.changed, rotation.unreadable, rotation.other_keys) == (len(before), 0, 0, 1)
    newest = Vault((NEW,))
    assert (await Records(services.redis, newest).get_promise("CN001") or {})["amount"] == "500.00"
    archive = await services.redis.lrange(keys.tracker_archive("c_one"), 0, -1)
    assert [newest.open(t)["text"] for t in archive] == [f"#{i}" for i in range(20)]  # order kept
    scored = await services.redis.zrange(keys.field_visit_outcomes("CN001"), 0, -1, withscores=True)
    assert [score for _, score in scored] == [1767225600.25]


async def test_running_twice_is_harmless_and_the_old_key_can_then_go(services: Services) -> None:
    await fill(services)
    before = await everything(services.redis)
    await rotate_all(services.redis, rotating(services))

    again = await rotate_all(services.redis, rotating(services))
    without_old = await rotate_all(services.redis, Vault((NEW,)))

    assert_moved(before, await everything(services.redis), old_vault(services))
    assert counts(again) == counts(without_old) == EXPECTED
    assert again.unreadable == without_old.unreadable == 0


async def test_a_token_no_key_opens_is_counted_and_left_untouched(services: Services) -> None:
    stranger = Vault((Fernet.generate_key().decode(),))
    lost, field = stranger.seal({"who": "unknown"}), stranger.seal({"who": "also unknown"})
    await services.redis.set("test:lost", lost, ex=TTL)
    await services.redis.hset(keys.consent("CN009"), "contact", field)
    damaged = b"gAAAAA-not-a-token"
    await services.redis.rpush("test:damaged", damaged)

    rotation = await rotate_all(services.redis, rotating(services))

    assert rotation.unreadable == 3 and rotation.strings == 4  # the sample ledger still moves
    assert await services.redis.get("test:lost") == lost and 0 < await services.redis.ttl("test:lost") <= TTL
    assert await services.redis.hget(keys.consent("CN009"), "contact") == field
    assert await services.redis.lrange("test:damaged", 0, -1) == [damaged]
    assert "keep every old key" in rotation_summary(rotation)


async def test_a_value_written_meanwhile_is_not_overwritten(services: Services,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The live system writes between the rotation's read and its compare-and-set."""
    await fill(services)
    vault, live = rotating(services), rotating(services)
    outcome = live.seal({"outcome": "callback"})
    live_writes = {
        keys.promise("CN001"): lambda r, _: r.set(keys.promise("CN001"), live.seal({"amount": "9.00"})),
        keys.consent("CN001"): lambda r, _: r.hset(keys.consent("CN001"), "family_contact", live.seal({"s": "x"})),
        keys.tracker_archive("c_one"): lambda r, _: r.lset(keys.tracker_archive("c_one"), 3, live.seal({"n": 3})),
        keys.field_visit_outcomes("CN001"): lambda r, _: r.delete(keys.field_visit_outcomes("CN001")),
        keys.field_visit_outcomes("CN002"): lambda r, old: r.zrem(keys.field_visit_outcomes("CN002"), old),
        "test:sealed-set": lambda r, old: r.srem("test:sealed-set", old),
        # Moves the list's items: the rotation still finds and replaces its item.
        keys.agent_outcomes("CN001"): lambda r, _: r.lpush(keys.agent_outcomes("CN001"), outcome),
    }
    await services.redis.zadd(keys.field_visit_outcomes("CN002"), {old_vault(services).seal({"n": 1}): 1,
                                                                    live.seal({"n": 2}): 2})
    await services.redis.sadd("test:sealed-set", "a plain member")
    targets = {}
    for name in live_writes:
        found = await tokens(services.redis, name.encode())
        targets[found[3] if name == keys.tracker_archive("c_one") else found[0]] = name
    rotate = vault.rotate
    with sync_redis.Redis.from_url(services.settings.redis_url) as client:

        def racing_rotate(token: bytes) -> bytes:
            if token in targets:
                live_writes[targets[token]](client, token)
            return rotate(token)

        monkeypatch.setattr(vault, "rotate", racing_rotate)
        rotation = await rotate_all(services.redis, vault)

    assert rotation.changed == 6 and rotation.unreadable == 0
    assert counts(rotation) == {"strings": EXPECTED["strings"] - 1, "hash_fields": 2, "list_items": 20,
                                "zset_members": 1, "set_members": 0}  # CN002's live member, again
    assert live.open(await services.redis.get(keys.promise("CN001"))) == {"amount": "9.00"}
    assert live.open(await services.redis.hget(keys.consent("CN001"), "family_contact")) == {"s": "x"}
    assert live.open(await services.redis.lindex(keys.tracker_archive("c_one"), 3)) == {"n": 3}
    assert not await services.redis.exists(keys.field_visit_outcomes("CN001"))
    assert [score for _, score in await services.redis.zrange(keys.field_visit_outcomes("CN002"), 0, -1,
                                                              withscores=True)] == [2]
    assert await services.redis.smembers("test:sealed-set") == {b"a plain member"}
    agent_outcomes = await services.redis.lrange(keys.agent_outcomes("CN001"), 0, -1)
    assert agent_outcomes[0] == outcome and Vault((NEW,)).open(agent_outcomes[1])["note"] == "paid on 5th"


async def test_a_list_that_moves_meanwhile_is_followed_and_each_item_rotated_once(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    old, vault = old_vault(services), rotating(services)
    name = keys.agent_outcomes("CN001")
    await services.redis.rpush(name, *(old.seal({"n": i}) for i in range(10)))
    first = await services.redis.lindex(name, 0)
    rotate = vault.rotate
    with sync_redis.Redis.from_url(services.settings.redis_url) as client:

        def racing_rotate(token: bytes) -> bytes:
            if token == first:  # two agents close conversations: the items move two places on
                client.lpush(name, vault.seal({"n": "live"}), vault.seal({"n": "live"}))
            return rotate(token)

        monkeypatch.setattr(vault, "rotate", racing_rotate)
        rotation = await rotate_all(services.redis, vault, batch=3)

    assert (rotation.list_items, rotation.changed) == (10, 0)
    items = [Vault((NEW,)).open(t)["n"] for t in await services.redis.lrange(name, 0, -1)]
    assert items == ["live", "live", *range(10)]


def test_the_summary_says_what_happened_and_what_to_do() -> None:
    clean = rotation_summary(Rotation(keys=12, strings=5, hash_fields=1, other_keys=1))
    assert clean.startswith("Scanned 12 keys and re-encrypted 6 sealed values under the newest data key "
                            "(5 strings, 1 hash field, 0 list items, 0 sorted-set members, 0 set members).")
    assert "1 key of other types (streams and the like) was not read." in clean
    assert "older keys can leave DATA_KEYS" in clean and "\n" not in clean
    stuck = rotation_summary(Rotation(keys=3, strings=1, changed=2, unreadable=1))
    assert "2 values changed while this ran and were left alone" in stuck
    assert "1 sealed value opens with none of the configured keys" in stuck and "can leave" not in stuck


async def test_a_batch_below_one_is_refused(services: Services) -> None:
    with pytest.raises(ValueError, match="batch must be 1 or more"):
        await rotate_all(services.redis, rotating(services), batch=0)

