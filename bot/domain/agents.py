"""Console accounts and sessions: argon2 password hashes, roles, login limits, CSRF tokens.

A session is a random token in a cookie; Redis keeps only its SHA-256, so a copy
of the database holds no usable session. Failed logins are counted per username
and per client address, and a locked login is refused before the password is checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.core import audit, keys

ROLES = ("agent", "supervisor", "field")  # field: visiting staff, who see only their own visits
USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
STAFF_ID = re.compile(r"[A-Za-z0-9-]{1,32}")
MIN_PASSWORD_LENGTH = 12
SESSION_IDLE_SECONDS = 30 * 60
SESSION_MAX_SECONDS = 12 * 3600
FAILURE_WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_USERNAME = 5
MAX_FAILURES_PER_ADDRESS = 20
DEFAULT_CAPACITY = 3  # conversations an agent holds at once
LANGUAGES = ("zh", "en")  # the languages borrowers write in


class AgentError(ValueError):
    """An account cannot be created as asked; the message says why."""


class LoginRefused(Exception):
    """Wrong username or password, or too many failures: ``locked`` says which."""

    def __init__(self, locked: bool) -> None:
        super().__init__("too many failed logins, try again later" if locked else "wrong username or password")
        self.locked = locked


@dataclass(frozen=True)
class Desk:
    """An agent's side of assignment: role, capacity, languages, on shift or not."""

    username: str
    role: str
    capacity: int
    languages: tuple[str, ...]
    on_shift: bool


def _check_desk(capacity: int, languages: tuple[str, ...]) -> None:
    if capacity < 1:
        raise AgentError("capacity must be at least 1 conversation")
    if not languages or set(languages) - set(LANGUAGES):
        raise AgentError(f"languages must be some of {', '.join(LANGUAGES)}")


@dataclass(frozen=True)
class Session:
    """A signed-in agent: who, in which role, and the CSRF token their forms carry."""

    username: str
    role: str
    csrf: str
    started: int
    staff_id: str = ""  # field staff: the staff id on their bookings (policy/field_teams.yml)

    @property
    def supervisor(self) -> bool:
        return self.role == "supervisor"

    @property
    def field(self) -> bool:
        return self.role == "field"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Agents:
    """Agent accounts and their sessions in Redis."""

    def __init__(self, redis: Any, hasher: PasswordHasher | None = None) -> None:
        self._redis = redis
        self._hasher = hasher or PasswordHasher()
        # Checked against when the username is unknown, so that timing does not tell which names exist.
        self._dummy_hash = ""

    async def add(self, username: str, password: str, role: str, staff_id: str = "",
                  capacity: int = DEFAULT_CAPACITY, languages: tuple[str, ...] = LANGUAGES) -> None:
        """Create an account; field staff name the staff id their visits are booked under. ``capacity``: how
        many conversations the agent holds at once; ``languages``: those they answer borrowers in.

        Raises:
            AgentError: a malformed username, a short password, an unknown role, a field account without
                a staff id (or another role with one), or a taken username.
        """
        if not USERNAME.fullmatch(username):
            raise AgentError("username must be 2-32 lowercase letters, digits, '.', '_' or '-', starting with a letter")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise AgentError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
        if role not in ROLES:
            raise AgentError(f"role must be one of {', '.join(ROLES)}")
        if (role == "field") != bool(staff_id) or (staff_id and not STAFF_ID.fullmatch(staff_id)):
            raise AgentError("a field account needs its staff id (such as SH-0417), and only a field account has one")
        _check_desk(capacity, languages)
        hashed = await asyncio.to_thread(self._hasher.hash, password)
        created = await self._redis.hsetnx(keys.agent(username), "password", hashed)
        if not created:
            raise AgentError(f"an account named {username!r} already exists")
        async with self._redis.pipeline(transaction=True) as tx:
            tx.hset(keys.agent(username), mapping={"role": role, "staff_id": staff_id, "created": int(time.time()),
                                                   "capacity": capacity, "languages": ",".join(languages)})
            tx.sadd(keys.AGENTS, username)
            audit.record(tx, "agent_added", agent=username, role=role)
            await tx.execute()

    async def role(self, username: str) -> str | None:
        value = await self._redis.hget(keys.agent(username), "role")
        return value.decode() if value else None

    async def staff_id(self, username: str) -> str:
        return (await self._redis.hget(keys.agent(username), "staff_id") or b"").decode()

    async def usernames(self) -> list[str]:
        return sorted(u.decode() for u in await self._redis.smembers(keys.AGENTS))

    async def desk(self, username: str) -> Desk | None:
        """How much the agent takes on, in which languages, and whether they are on shift now."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.agent(username), ["role", "capacity", "languages"])
            pipe.sismember(keys.ON_SHIFT, username)
            (role, capacity, languages), on_shift = await pipe.execute()
        if role is None:
            return None
        return Desk(username, role.decode(), int(capacity or DEFAULT_CAPACITY),
                    tuple((languages or b"").decode().split(",")) if languages else LANGUAGES, bool(on_shift))

    async def set_desk(self, username: str, capacity: int, languages: tuple[str, ...]) -> None:
        """Raises AgentError: an unknown account, a capacity below 1, an unknown language."""
        _check_desk(capacity, languages)
        if await self.role(username) is None:
            raise AgentError(f"no account named {username!r}")
        await self._redis.hset(keys.agent(username), mapping={"capacity": capacity, "languages": ",".join(languages)})
        await self._audit("agent_desk_changed", username)

    async def shift(self, username: str, on: bool) -> None:
        """Start or end the agent's shift: new hand-offs are offered only to agents on shift."""
        await (self._redis.sadd if on else self._redis.srem)(keys.ON_SHIFT, username)
        await self._audit("shift_started" if on else "shift_ended", username)

    async def login(self, username: str, password: str, address: str) -> str:
        """Check the password and open a session; returns the session token for the cookie.

        Raises:
            LoginRefused: wrong credentials, or locked after too many failures.
        """
        digests = (("user", _digest(username)), ("addr", _digest(address)))
        counters = (keys.login_failures(*digests[0]), keys.login_failures(*digests[1]))
        failures = [int(v or 0) for v in await self._redis.mget(counters)]
        if failures[0] >= MAX_FAILURES_PER_USERNAME or failures[1] >= MAX_FAILURES_PER_ADDRESS:
            by = 0 if failures[0] >= MAX_FAILURES_PER_USERNAME else 1
            await self._audit_lock(counters[by], keys.login_locked(*digests[by]), username)
            raise LoginRefused(locked=True)
        record = await self._redis.hgetall(keys.agent(username)) if USERNAME.fullmatch(username) else {}
        if not self._dummy_hash:
            self._dummy_hash = await asyncio.to_thread(self._hasher.hash, secrets.token_hex(16))
        hashed = record.get(b"password", b"").decode() if b"role" in record else ""  # half-created: no login
        if not await asyncio.to_thread(self._verify, hashed, password):
            await self._failed(counters, username)
            raise LoginRefused(locked=False)
        await self._redis.delete(counters[0])
        return await self._open_session(username, record[b"role"].decode(), record.get(b"staff_id", b"").decode())

    async def _audit_lock(self, counter: str, marker: str, username: str) -> None:
        """Audit a lock once, for as long as it lasts: knocking on a locked door must not grow the audit stream."""
        lasts = await self._redis.pttl(counter)
        if await self._redis.set(marker, 1, nx=True, px=max(lasts, 1000)):
            await self._audit("login_locked", username if USERNAME.fullmatch(username) else "(malformed)")

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed or self._dummy_hash, password) and bool(hashed)
        except (VerificationError, InvalidHashError):
            return False

    async def _failed(self, counters: tuple[str, str], username: str) -> None:
        async with self._redis.pipeline(transaction=True) as tx:
            for counter in counters:
                tx.incr(counter)
                tx.expire(counter, FAILURE_WINDOW_SECONDS)
            await tx.execute()
        await self._audit("login_failed", username if USERNAME.fullmatch(username) else "(malformed)")

    async def _open_session(self, username: str, role: str, staff_id: str) -> str:
        token = secrets.token_urlsafe(32)
        async with self._redis.pipeline(transaction=True) as tx:
            tx.hset(keys.agent_session(_digest(token)), mapping={
                "username": username, "role": role, "csrf": secrets.token_urlsafe(32), "started": int(time.time()),
                "staff_id": staff_id,
            })
            tx.expire(keys.agent_session(_digest(token)), SESSION_IDLE_SECONDS)
            await tx.execute()
        await self._audit("login", username)
        return token

    async def session(self, token: str, refresh: bool = True) -> Session | None:
        """The live session for a cookie's token; None if expired or unknown.

        Args:
            refresh: restart the idle timer (a request from the agent, not a background check).
        """
        if not token:
            return None
        key = keys.agent_session(_digest(token))
        record = await self._redis.hgetall(key)
        if not record:
            return None
        session = Session(record[b"username"].decode(), record[b"role"].decode(), record[b"csrf"].decode(),
                          int(record[b"started"]), record.get(b"staff_id", b"").decode())
        # An account removed or demoted since login loses its session at once.
        if time.time() - session.started > SESSION_MAX_SECONDS or await self.role(session.username) != session.role:
            await self._redis.delete(key)
            return None
        if refresh:
            await self._redis.expire(key, SESSION_IDLE_SECONDS)
        return session

    async def logout(self, token: str, username: str) -> None:
        await self._redis.delete(keys.agent_session(_digest(token)))
        await self._audit("logout", username)

    async def remove(self, username: str) -> bool:
        """Delete an account; its open sessions end at their next request. True if it existed."""
        async with self._redis.pipeline(transaction=True) as tx:
            tx.delete(keys.agent(username))
            tx.srem(keys.AGENTS, username)
            tx.srem(keys.ON_SHIFT, username)
            removed, *_ = await tx.execute()
        if removed:
            await self._audit("agent_removed", username)
        return bool(removed)

    async def _audit(self, event: str, username: str) -> None:
        await audit.record(self._redis, event, agent=username)
