"""Starts every component in order, waits until the system is healthy, stops them together.

Used by ``make run`` and by the integration tests, so both run the same system.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

import aiohttp

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 240.0
DEFAULT_REDIS_PORT = 6390
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class PortTaken(RuntimeError):
    """A port a component needs is already in use (often a stack left from an earlier run)."""


@dataclass
class Options:
    """What to start and where."""

    gateway_port: int = 8080
    rasa_port: int = 5005
    action_port: int = 5055
    standin_port: int = 8081
    redis_port: int = DEFAULT_REDIS_PORT
    var_dir: Path = ROOT / "var"
    log_dir: Path | None = None
    model: Path = ROOT / "models"
    endpoints: Path = ROOT / "endpoints.yml"
    ledger: tuple[Path, Path] | None = None
    worker: bool = True
    # More Rasa servers beside the first (rasa_port), sharing the Redis tracker and lock stores: one
    # Rasa process uses one core. The gateway spreads conversations over all of them.
    more_rasa_ports: tuple[int, ...] = ()

    @property
    def rasa_urls(self) -> str:
        return ",".join(f"http://127.0.0.1:{port}" for port in (self.rasa_port, *self.more_rasa_ports))


@dataclass
class Stack:
    """The running child processes, newest last."""

    children: list[tuple[str, asyncio.subprocess.Process]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)
    # How each was started, for restart().
    commands: dict[str, tuple[list[str], dict[str, str], Path | None]] = field(default_factory=dict)

    async def start(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path | None) -> None:
        self.commands[name] = (argv, env, log_dir)
        output: IO[bytes] | None = None
        if log_dir:
            output = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
            self.logs.append(output)
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=output,
            stderr=asyncio.subprocess.STDOUT if output else None, start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        self.children.append((name, process))

    async def kill(self, name: str) -> None:
        """Kill one component at once, as a crash would (SIGKILL, no clean-up)."""
        for child in [c for c in self.children if c[0] == name]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child[1].pid, signal.SIGKILL)
            await child[1].wait()
            self.children.remove(child)

    async def restart(self, name: str) -> None:
        """Kill it (if it runs) and start it again as before; wait for it with ``ready``."""
        await self.kill(name)
        await self.start(name, *self.commands[name])

    def dead(self) -> str | None:
        return next((name for name, p in self.children if p.returncode is not None), None)

    async def stop(self) -> None:
        for name, process in reversed(self.children):
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except asyncio.TimeoutError:
                    log.warning("%s did not stop in 15 s; killing it", name)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    await process.wait()
        for output in self.logs:
            output.close()


def _die_with_parent(parent: int):  # type: ignore[no-untyped-def]
    """A child's first step: the kernel sends it SIGTERM when the supervisor dies, even by SIGKILL.

    Without it a killed supervisor leaves every component running, and the next run talks to them.
    """
    def arrange() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)
    return arrange


def check_ports_free(ports: dict[str, int]) -> None:
    """Fail before starting anything when a component's port is taken.

    Raises:
        PortTaken: naming the first taken port and whose it would have been.
    """
    for name, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the servers themselves bind: a port in TIME_WAIT is free, one listened on is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise PortTaken(
                    f"port {port} (the {name}) is already in use on 127.0.0.1: stop what listens there "
                    f"(an earlier `make run`? see `ss -ltnp 'sport = :{port}'`) or choose another port"
                ) from None


def _ports(options: Options, own_redis: bool, standin: bool) -> dict[str, int]:
    ports = {"gateway": options.gateway_port, "action server": options.action_port,
             "rasa server": options.rasa_port}
    ports.update({f"rasa server {n}": port for n, port in enumerate(options.more_rasa_ports, start=2)})
    if own_redis:
        ports["redis-server"] = options.redis_port
    if standin:
        ports["Twilio stand-in"] = options.standin_port
    return ports


def component_env(options: Options, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every child gets: settings plus the pieces Rasa's endpoints.yml needs."""
    env = dict(os.environ if base is None else base)
    env.setdefault("REDIS_URL", f"redis://127.0.0.1:{options.redis_port}/0")
    redis = urlparse(env["REDIS_URL"])
    env.update({
        "REDIS_HOST": redis.hostname or "127.0.0.1",
        "REDIS_PORT": str(redis.port or 6379),
        "REDIS_DB": (redis.path or "/0").lstrip("/") or "0",
        "REDIS_PASSWORD": redis.password or "",
        "GATEWAY_PORT": str(options.gateway_port),
        "RASA_TELEMETRY_ENABLED": "false",
        "SANIC_HOST": "127.0.0.1",
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",  # logs reach their files as they happen
    })
    env.setdefault("CONVERSATION_RETENTION_DAYS", "90")  # endpoints.yml needs it; bot.core.settings checks it
    env.setdefault("RASA_URL", options.rasa_urls)
    env.setdefault("ACTION_SERVER_URL", f"http://127.0.0.1:{options.action_port}")
    return env


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


async def _start_redis(stack: Stack, options: Options, env: dict[str, str]) -> None:
    data = options.var_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    await stack.start("redis", [
        "redis-server", "--port", str(options.redis_port), "--bind", "127.0.0.1",
        "--dir", str(data), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
    ], _real_clock(env), options.log_dir)
    await _wait_for(lambda: _redis_ready(env["REDIS_URL"]), stack, "redis")


def _real_clock(env: dict[str, str]) -> dict[str, str]:
    """redis-server's jemalloc cannot start under libfaketime (`make test-clock`); it keeps the real clock."""
    return {k: v for k, v in env.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}


async def _start_standin(stack: Stack, options: Options, env: dict[str, str]) -> None:
    """No Twilio account: the twilio library talks to the local stand-in instead."""
    env["TWILIO_API_BASE_URL"] = f"http://127.0.0.1:{options.standin_port}"
    await stack.start("twilio-standin", [sys.executable, "-m", "bot", "twilio-standin", "--port",
                                         str(options.standin_port)], env, options.log_dir)
    await _wait_for(lambda: _http_ready(env["TWILIO_API_BASE_URL"] + "/standin/messages"), stack, "twilio-standin")


async def _redis_ready(url: str) -> bool:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        return bool(await client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False
    finally:
        await client.close()


async def _http_ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, \
                session.get(url) as response:
            return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


async def _warm_up_rasa(base_url: str, token: str) -> bool:
    """Parse one message in each language: the first parse loads Jieba's dictionary (~1 s)."""
    url = f"{base_url}/model/parse"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            for text in ("你好", "hello"):
                async with session.post(url, params={"token": token}, json={"text": text}) as r:
                    if r.status != 200:
                        return False
        return True
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


async def ready(stack: Stack, name: str) -> None:
    """Wait until a (re)started component answers, as start_all does."""
    argv, env, _ = stack.commands[name]
    checks = {
        "redis": lambda: _redis_ready(env["REDIS_URL"]),
        "rasa": lambda: _warm_up_rasa(f"http://127.0.0.1:{argv[argv.index('-p') + 1]}", env["RASA_TOKEN"]),
        "actions": lambda: _http_ready(env["ACTION_SERVER_URL"] + "/health"),
        "gateway": lambda: _http_ready(f"http://127.0.0.1:{env['GATEWAY_PORT']}/healthz"),
    }
    await _wait_for(checks[name.split("-")[0]], stack, name)


async def _wait_for(check, stack: Stack, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
    while not await check():
        if (dead := stack.dead()) is not None:
            raise RuntimeError(f"{dead} exited while waiting for {what}; see its log")
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"{what} not ready after {READY_TIMEOUT:.0f} s")
        await asyncio.sleep(0.5)


async def _import_ledger(env: dict[str, str], ledger: tuple[Path, Path]) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "import-ledger", "--accounts", str(ledger[0]),
        "--installments", str(ledger[1]), cwd=ROOT, env=env,
    )
    if await process.wait() != 0:
        raise RuntimeError("the sample ledger did not import")


# field1 visits with team SH-T1 in policy/field_teams.yml (the sample borrowers CN001 and CN002 live in SH).
DEMO_ACCOUNTS = (("agent1", "agent", ""), ("supervisor1", "supervisor", ""), ("field1", "field", "SH-0417"))


async def _console_accounts(options: Options) -> Path:
    """Console accounts for a newcomer to sign in with, created once; their passwords in a private file."""
    path = options.var_dir / "console-accounts.txt"
    for username, role, staff_id in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(12)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "agent", "add", username, "--role", role, "--password-stdin",
            *(("--staff-id", staff_id) if staff_id else ()),
            cwd=ROOT, env=component_env(options), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await process.communicate(password.encode() + b"\n")
        if process.returncode == 0:  # not created when it already exists: the file has its password
            with path.open("a", encoding="utf-8") as file:
                file.write(f"{username}\t{role}\t{password}\n")
            path.chmod(0o600)
    return path


async def start_all(options: Options, base_env: dict[str, str] | None = None) -> Stack:
    """Start redis (unless REDIS_URL is set), the action server, Rasa, the gateway and a campaign worker."""
    stack = Stack()
    own_redis = "REDIS_URL" not in (os.environ if base_env is None else base_env)
    env = component_env(options, base_env)
    check_ports_free(_ports(options, own_redis, standin=not env.get("TWILIO_ACCOUNT_SID")))
    options.var_dir.mkdir(parents=True, exist_ok=True)
    if options.log_dir:
        options.log_dir.mkdir(parents=True, exist_ok=True)
    try:
        if own_redis:
            await _start_redis(stack, options, env)
        if options.ledger:
            await _import_ledger(env, options.ledger)
        await stack.start("actions", [sys.executable, "-m", "bot", "actions", "--port", str(options.action_port)],
                          env, options.log_dir)
        rasa_names = ["rasa", *(f"rasa-{n}" for n in range(2, 2 + len(options.more_rasa_ports)))]
        for name, port in zip(rasa_names, (options.rasa_port, *options.more_rasa_ports), strict=True):
            await stack.start(name, [
                _bin("rasa"), "run", "--enable-api", "--auth-token", env["RASA_TOKEN"], "-i", "127.0.0.1",
                "-p", str(port), "--model", str(options.model), "--endpoints", str(options.endpoints),
                "--credentials", "credentials.yml",
            ], env, options.log_dir)
        for name in rasa_names:
            await ready(stack, name)
        if not env.get("TWILIO_ACCOUNT_SID"):
            await _start_standin(stack, options, env)
        await stack.start("gateway", [sys.executable, "-m", "bot", "gateway"], env, options.log_dir)
        await _wait_for(lambda: _http_ready(f"http://127.0.0.1:{options.gateway_port}/healthz"), stack, "gateway")
        if options.worker:  # campaigns' contacts; more workers on more machines share the same queue
            await stack.start("worker", [sys.executable, "-m", "bot", "worker"], env, options.log_dir)
    except BaseException:
        await stack.stop()
        raise
    return stack


async def run_until_stopped(options: Options) -> int:
    """Start everything, print where to talk to the bot, stop on SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(start_all(options))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # stopped while starting: start_all cleans up what it started
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        return 0
    stopping.cancel()
    try:
        stack = starting.result()
    except RuntimeError as error:  # a taken port, a component that exited: start_all stopped the rest
        print(f"not started: {error}", file=sys.stderr)
        return 1
    try:
        accounts = await _console_accounts(options)
        print(_banner(options, accounts), flush=True)
        while not stop.is_set() and stack.dead() is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1)
        dead = stack.dead()
    finally:  # whatever fails once components run, none of them is left behind
        await stack.stop()
    if dead and not stop.is_set():
        print(f"{dead} stopped unexpectedly; everything was shut down", file=sys.stderr)
        return 1
    return 0


def _banner(options: Options, accounts: Path) -> str:
    base = f"http://127.0.0.1:{options.gateway_port}"
    return "\n".join([
        "",
        "The collections bot is running.",
        f"  health:   {base}/healthz",
        f"  logs:     {options.log_dir or 'this terminal'}",
        f"  webhook:  {base}/twilio/sms  (Twilio signs against PUBLIC_BASE_URL)",
        "  talk to it as a sample borrower:",
        "    .venv/bin/python -m bot chat --phone +8613800138000   (Chinese; verify with 1985年3月12日 or 561X)",
        "    .venv/bin/python -m bot chat --phone +14155550123     (English; verify with 07/04/1979 or 4421)",
        f"  agent console: {base}/agent/  (accounts and passwords in {accounts}; add one with",
        "    .venv/bin/python -m bot agent add NAME --role agent|supervisor)",
        "  no TWILIO_ACCOUNT_SID: outbound SMS and calls go to the local Twilio stand-in",
        "  screen the sample ledger and run a campaign on its collection list:",
        "    .venv/bin/python -m bot screen --accounts samples/accounts.csv --installments samples/installments.csv",
        "    .venv/bin/python -m bot campaign plan --list var/screening/<run>/collection_list.csv --dry-run",
        "  stop with Ctrl-C",
        "",
    ])
