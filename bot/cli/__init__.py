"""`python -m bot`: one module per command group (ledger, campaigns, agents, privacy, servers, setup). Every
command takes its settings one way (bot.cli.common.settings). May import anything below.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bot.cli import agents, campaigns, ledger, privacy, servers, setup
from bot.cli.common import ROOT
from bot.core.crypto import MaskingFilter
from bot.core.envfile import load_env_file
from bot.core.settings import SettingsError

GROUPS = (ledger, privacy, campaigns, servers, setup, agents)


def main(argv: list[str] | None = None) -> int:
    args = command_line().parse_args(argv)
    load_env_file(Path(os.environ.get("BOT_ENV_FILE", ROOT / ".env")))
    _logging()
    try:
        return int(args.handler(args))
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


def command_line() -> argparse.ArgumentParser:
    """Every command and its arguments (deploy/ files are checked against it too)."""
    parser = argparse.ArgumentParser(prog="python -m bot")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add(commands)
    return parser


def _logging() -> None:
    handler = logging.StreamHandler()
    handler.addFilter(MaskingFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
