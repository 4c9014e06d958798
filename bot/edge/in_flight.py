"""How many turns a gateway has inside Rasa at once; the others wait their turn, in arrival order.

Rasa runs a turn's work in pieces between its waits (Redis, the action server), on one event loop. With
twenty turns inside, every piece of every turn queues behind the pieces of all the others, so each turn
takes as long as the whole crowd, and the unluckiest much longer. With two per Rasa process and the rest
waiting at the gateway, first come first served, the same machine answers as many turns per second with
a much shorter tail (docs/benchmarks-changes.md). A turn that waits longer than the gateway allows is
not sent: it is kept and replayed, like a turn Rasa could not take.

asyncio.Semaphore is not first come first served in Python 3.10: a newcomer can take a freed slot before
the waiter woken for it, which then queues again at the back. Here a freed slot is handed to the longest
waiting turn.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class NoSlot(Exception):
    """No slot came free in time."""


class Slots:
    """``size`` turns at a time; the rest wait first come, first served."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._free = size
        self._waiting: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def slot(self, wait_seconds: float) -> AsyncIterator[None]:
        """Hold a slot for the body.

        Raises:
            NoSlot: none came free within ``wait_seconds``.
        """
        await self._take(wait_seconds)
        try:
            yield
        finally:
            self._give_back()

    async def _take(self, wait_seconds: float) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(handed)
        try:
            await asyncio.wait_for(asyncio.shield(handed), wait_seconds)
        except BaseException as error:  # timed out or cancelled; the slot may have been handed over meanwhile
            if handed.done():
                self._give_back()
            else:
                handed.cancel()
                self._waiting.remove(handed)
            if isinstance(error, asyncio.TimeoutError):
                raise NoSlot from None
            raise

    def _give_back(self) -> None:
        while self._waiting:
            handed = self._waiting.popleft()
            if not handed.done():
                handed.set_result(None)  # the slot passes straight to the longest waiting turn
                return
        self._free += 1
