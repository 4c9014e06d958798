"""deploy/: the compose file and the Procfile start commands that exist, with every setting endpoints.yml needs.

Docker cannot run on the development machine, so the compose file is checked here rather than started;
the same topology (two gateways, two Rasa servers, two workers, one Redis) runs as processes in
tests/integration/test_scale_out.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from bot.cli import command_line

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text(encoding="utf-8"))
PROCFILE = [line.split(":", 1) for line in (ROOT / "deploy" / "Procfile").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def _bot_arguments(argv: list[str]) -> list[str] | None:
    """What follows ``-m bot`` in a command, or None if it is not one of ours."""
    return argv[argv.index("bot") + 1:] if "-m" in argv and "bot" in argv else None


def test_every_bot_command_parses() -> None:
    commands = [service["command"] for service in COMPOSE["services"].values() if isinstance(
        service.get("command"), list) and "bot" in service["command"]]
    commands += [shlex.split(command) for _, command in PROCFILE]
    parsed = [_bot_arguments(argv) for argv in commands]
    assert len([p for p in parsed if p is not None]) >= 6
    for arguments in filter(None, parsed):
        command_line().parse_args(arguments)


def test_the_compose_file_sets_what_endpoints_yml_and_the_settings_need() -> None:
    needed = set(re.findall(r"\$\{(\w+)\}", (ROOT / "endpoints.yml").read_text(encoding="utf-8")))
    environment = COMPOSE["x-app"]["environment"]
    assert needed - {"DATA_KEYS", "RASA_TOKEN"} <= set(environment)  # those two are secrets, from .env
    rasa = {f"http://{name}:5005" for name in COMPOSE["services"] if name.startswith("rasa-")}
    assert set(environment["RASA_URL"].split(",")) == rasa and len(rasa) == 2
    assert sum(name.startswith("gateway-") for name in COMPOSE["services"]) == 2
    assert sum(name.startswith("worker-") for name in COMPOSE["services"]) == 2
    assert "--appendonly" in COMPOSE["services"]["redis"]["command"]


def test_only_the_gateways_publish_a_port() -> None:
    published = {name for name, service in COMPOSE["services"].items() if service.get("ports")}
    assert published == {"gateway-1", "gateway-2"}


def test_the_procfile_runs_each_rasa_on_its_own_port_on_loopback() -> None:
    rasa = [shlex.split(command) for name, command in PROCFILE if name.startswith("rasa")]
    assert len(rasa) == 2 and len({argv[argv.index("-p") + 1] for argv in rasa}) == 2
    assert all(argv[argv.index("-i") + 1] == "127.0.0.1" and "--auth-token" in argv for argv in rasa)
