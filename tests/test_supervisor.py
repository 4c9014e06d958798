"""The supervisor leaves nothing behind: taken ports refuse to start, children die with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from bot.ops.supervisor import PortTaken, check_ports_free


def test_a_port_someone_listens_on_is_an_error_naming_it_and_its_component() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortTaken, match=f"port {port} \\(the gateway\\) is already in use"):
            check_ports_free({"gateway": port})


def test_free_ports_pass() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_ports_free({"gateway": port})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().split()[2] != "Z"  # a zombie has already died


def test_a_child_dies_when_its_supervisor_is_killed_with_sigkill() -> None:
    supervisor = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import asyncio, os, sys
        from bot.ops.supervisor import Stack

        async def main():
            stack = Stack()
            await stack.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ), None)
            print(stack.children[0][1].pid, flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
    """)], stdout=subprocess.PIPE, text=True)
    assert supervisor.stdout is not None
    child = int(supervisor.stdout.readline())
    assert _alive(child)
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait(10)
    for _ in range(100):  # the kernel's SIGTERM reaches it at once; allow for a slow machine
        if not _alive(child):
            break
        time.sleep(0.05)
    assert not _alive(child)
