"""Key rotation: re-encrypt every sealed value in Redis under the newest data key.

A new key goes first in DATA_KEYS, the old ones after it, and every process (gateway, Rasa, action
server, workers) is restarted with that list, so that all writes use the new key. Then this runs
(``python -m bot rotate-keys``). When it reports nothing unreadable, nothing in Redis needs the old
keys any more and they can be dropped; backups taken before still need them.

Sealed values are Fernet tokens (bot.core.crypto) and look like one: they start with ``gAAAAA``. They sit in
strings, hash field values, list items, sorted-set members and set members. Nothing else is touched:
counters, ids, JSON, streams, locks and job data stay byte for byte as they are.

Every token is re-encrypted, even one already under the newest key: telling which key opens a token
would need the keys themselves, which the Vault keeps private, and re-encrypting it again is harmless.

The system keeps running meanwhile, so each replacement is one Lua compare-and-set: the value is
replaced only if it is still the one read, and the key keeps its TTL. A value that changed meanwhile
was written by the live system, under the newest key: it is left as it is, and counted. A token that no
configured key opens is counted and left untouched, never deleted. Only counts are logged: values hold
personal data, and key names are not worth the risk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.core.crypto import InvalidToken, Vault

log = logging.getLogger(__name__)

TOKEN_PREFIX = b"gAAAAA"  # Fernet's version byte and the top of its timestamp, base64

# Every script first checks the key still has the type it was read as: a key deleted and written again
# as another type meanwhile is then a change, not an error.
_IS = "local function is(kind) return redis.call('TYPE', KEYS[1])['ok'] == kind end\n"

# KEYS: string. ARGV: old token, new token. 1 if replaced, 0 if the value changed meanwhile.
_STRING = _IS + """
if not is('string') or redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
"""
# KEYS: hash. ARGV: field, old token, new token.
_HASH = _IS + """
if not is('hash') or redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""
# KEYS: list. ARGV: the item's index when read, old token, new token. Pushes and trims meanwhile move
# it; it is then found by value (every token is unique). Returns where it was replaced, -1 if it is gone.
_LIST = _IS + """
if not is('list') then return -1 end
local i = tonumber(ARGV[1])
if redis.call('LINDEX', KEYS[1], i) ~= ARGV[2] then
  i = redis.call('LPOS', KEYS[1], ARGV[2])
  if not i then return -1 end
end
redis.call('LSET', KEYS[1], i, ARGV[3])
return i
"""
# KEYS: sorted set. ARGV: old token, new token. The new member is added before the old one goes:
# removing the last member would delete the key, and its TTL with it.
_ZSET = _IS + """
if not is('zset') then return 0 end
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
redis.call('ZADD', KEYS[1], score, ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""
# KEYS: set. ARGV: old token, new token. Added first, for the same reason.
_SET = _IS + """
if not is('set') or redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[1], ARGV[1])
return 1
"""


@dataclass
class Rotation:
    """What a rotation did, as counts only.

    Attributes:
        keys: key names SCAN returned (SCAN may return a key twice; it is then rotated twice, harmlessly).
        strings, hash_fields, list_items, zset_members, set_members: tokens re-encrypted, per Redis type.
        changed: tokens the live system replaced or removed before the compare-and-set; left as written.
        unreadable: tokens no configured key opens (or damaged ones); left untouched.
        other_keys: keys of types that never hold tokens here (streams, module types); not read.
    """

    keys: int = 0
    strings: int = 0
    hash_fields: int = 0
    list_items: int = 0
    zset_members: int = 0
    set_members: int = 0
    changed: int = 0
    unreadable: int = 0
    other_keys: int = 0

    @property
    def rotated(self) -> int:
        """Tokens re-encrypted, all types together."""
        return self.strings + self.hash_fields + self.list_items + self.zset_members + self.set_members


async def rotate_all(redis: Any, vault: Vault, batch: int = 500) -> Rotation:
    """Re-encrypt every token in the Redis database under ``vault``'s first key, while the system runs.

    Args:
        redis: a ``redis.asyncio`` client returning bytes (the default, not ``decode_responses``).
        vault: every configured key, the newest first, as in DATA_KEYS.
        batch: keys per SCAN step, and items per read of one list.

    Returns:
        The counts, for rotation_summary.

    Raises:
        ValueError: ``batch`` is below 1.
        redis.exceptions.RedisError: Redis failed. What was re-encrypted stays so; running again finishes.
    """
    if batch < 1:
        raise ValueError(f"batch must be 1 or more, not {batch}")
    rotator = _Rotator(redis, vault, batch)
    names: list[bytes] = []
    async for name in redis.scan_iter(count=batch):
        names.append(name)
        if len(names) == batch:
            await rotator.keys(names)
            names = []
    await rotator.keys(names)
    done = rotator.done
    log.info("key rotation: %d keys, %d tokens re-encrypted, %d changed meanwhile, %d unreadable, %d keys not read",
             done.keys, done.rotated, done.changed, done.unreadable, done.other_keys)
    return done


class _Rotator:
    """One run: its scripts, its counts, and a method per Redis type."""

    def __init__(self, redis: Any, vault: Vault, batch: int) -> None:
        self.redis = redis
        self.vault = vault
        self.batch = batch
        self.done = Rotation()
        self._string = redis.register_script(_STRING)
        self._hash_field = redis.register_script(_HASH)
        self._list_item = redis.register_script(_LIST)
        self._zset_member = redis.register_script(_ZSET)
        self._set_member = redis.register_script(_SET)

    async def keys(self, names: list[bytes]) -> None:
        """Rotate what a batch of keys holds: their types in one round trip, all strings' values in another."""
        if not names:
            return
        self.done.keys += len(names)
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.type(name)
            kinds = await pipe.execute()
        await self._strings([name for name, kind in zip(names, kinds, strict=True) if kind == b"string"])
        by_kind = {b"hash": self._hash, b"list": self._list, b"zset": self._zset, b"set": self._set}
        for name, kind in zip(names, kinds, strict=True):
            if kind in by_kind:
                await by_kind[kind](name)
            elif kind not in (b"string", b"none"):  # none: expired since the SCAN
                self.done.other_keys += 1

    async def _strings(self, names: list[bytes]) -> None:
        for name, value in zip(names, await self.redis.mget(names) if names else [], strict=True):
            new = self._reencrypted(value)
            if new is not None and self._replaced(await self._string(keys=[name], args=[value, new])):
                self.done.strings += 1

    async def _hash(self, name: bytes) -> None:
        # Replacing a field's value adds no field, so HSCAN still sees every field once.
        async for field, value in self.redis.hscan_iter(name, count=self.batch):
            new = self._reencrypted(value)
            if new is not None and self._replaced(await self._hash_field(keys=[name], args=[field, value, new])):
                self.done.hash_fields += 1

    async def _list(self, name: bytes) -> None:
        """Rotate a list a chunk at a time, following its items if pushes or trims move them."""
        start = 0
        while True:
            items = await self.redis.lrange(name, start, start + self.batch - 1)
            shift = 0  # how far the items moved since this chunk was read, as the last replacement found
            for offset, value in enumerate(items):
                new = self._reencrypted(value)
                if new is None:
                    continue
                at = await self._list_item(keys=[name], args=[start + offset + shift, value, new])
                if self._replaced(at != -1):
                    self.done.list_items += 1
                    shift = at - start - offset
            if len(items) < self.batch:
                return
            start += len(items) + shift

    async def _zset(self, name: bytes) -> None:
        # Tokens are read first: members added while scanning could be returned again, and rotated again.
        tokens = [m async for m, _ in self.redis.zscan_iter(name, count=self.batch) if m.startswith(TOKEN_PREFIX)]
        for member in tokens:
            new = self._reencrypted(member)
            if new is not None and self._replaced(await self._zset_member(keys=[name], args=[member, new])):
                self.done.zset_members += 1

    async def _set(self, name: bytes) -> None:
        tokens = [m async for m in self.redis.sscan_iter(name, count=self.batch) if m.startswith(TOKEN_PREFIX)]
        for member in tokens:
            new = self._reencrypted(member)
            if new is not None and self._replaced(await self._set_member(keys=[name], args=[member, new])):
                self.done.set_members += 1

    def _reencrypted(self, value: bytes | None) -> bytes | None:
        """The token under the newest key; None for what is no token, or one no key opens (counted)."""
        if not value or not value.startswith(TOKEN_PREFIX):
            return None
        try:
            return self.vault.rotate(value)
        except InvalidToken:
            self.done.unreadable += 1
            return None

    def _replaced(self, replaced: Any) -> bool:
        """Whether the compare-and-set replaced the value; one that changed meanwhile is counted."""
        if not replaced:
            self.done.changed += 1
        return bool(replaced)


def rotation_summary(rotation: Rotation) -> str:
    """One paragraph for the operator: what was re-encrypted, what was left alone, and whether old keys can go."""
    r = rotation
    parts = [f"Scanned {_n(r.keys, 'key')} and re-encrypted {_n(r.rotated, 'sealed value')} under the newest "
             f"data key ({_n(r.strings, 'string')}, {_n(r.hash_fields, 'hash field')}, "
             f"{_n(r.list_items, 'list item')}, {_n(r.zset_members, 'sorted-set member')}, "
             f"{_n(r.set_members, 'set member')})."]
    if r.changed:
        parts.append(f"{_n(r.changed, 'value')} changed while this ran and {_was(r.changed)} left alone "
                     "(the live system writes with the newest key).")
    if r.other_keys:
        parts.append(f"{_n(r.other_keys, 'key')} of other types (streams and the like) {_was(r.other_keys)} not read.")
    if r.unreadable:
        parts.append(f"{_n(r.unreadable, 'sealed value')} {'opens' if r.unreadable == 1 else 'open'} with none of "
                     "the configured keys and stayed untouched: keep every old key in DATA_KEYS until each "
                     "is accounted for.")
    else:
        parts.append("Nothing in Redis needs an older key any more, provided every process already wrote with "
                     "the newest key while this ran; older keys can leave DATA_KEYS, but backups taken before "
                     "still need them.")
    return " ".join(parts)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _was(count: int) -> str:
    return "was" if count == 1 else "were"
