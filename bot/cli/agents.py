"""agent: the console's accounts (agents, supervisors, field staff) added, listed, removed."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import TYPE_CHECKING, Any

from bot.cli.common import rejected, settings

if TYPE_CHECKING:
    from bot.services import Services


def add(commands: Any) -> None:
    agent = commands.add_parser("agent", help="console accounts: add, list, remove")
    agent_actions = agent.add_subparsers(dest="action", required=True)
    new = agent_actions.add_parser("add", help="create an account with a role")
    new.add_argument("username")
    new.add_argument("--role", choices=("agent", "supervisor", "field"), required=True)
    new.add_argument("--staff-id", default="", help="field staff: their staff id in policy/field_teams.yml")
    new.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    new.add_argument("--capacity", type=int, default=3, help="conversations the agent holds at once (default 3)")
    new.add_argument("--languages", default="zh,en", help="languages they answer borrowers in (default zh,en)")
    agent_actions.add_parser("list", help="every account and its role")
    agent_actions.add_parser("remove", help="delete an account").add_argument("username")
    agent.set_defaults(handler=lambda a: asyncio.run(_agent(a)))


async def _agent(args: argparse.Namespace) -> int:
    """Console accounts: add (password from stdin or asked twice), list, remove."""
    from bot.services import Services

    async with Services(settings()) as svc:
        if args.action == "list":
            return await _list(svc)
        if args.action == "remove":
            return await _remove(svc, args.username)
        return await _add(svc, args)


async def _list(svc: Services) -> int:
    for username in await svc.agents.usernames():
        print("\t".join(filter(None, [username, await svc.agents.role(username),
                                       await svc.agents.staff_id(username)])))
    return 0


async def _remove(svc: Services, username: str) -> int:
    if not await svc.agents.remove(username):
        print(f"no account named {username!r}", file=sys.stderr)
        return 1
    print(f"removed {username}; their sessions end at their next request")
    return 0


async def _add(svc: Services, args: argparse.Namespace) -> int:
    from bot.domain.agents import AgentError

    if args.staff_id and not _booked_staff(args.staff_id):
        print(f"staff id {args.staff_id!r} is on no team in policy/field_teams.yml", file=sys.stderr)
        return 1
    password = _password(args.password_stdin)
    if password is None:
        print("the passwords differ; nothing was created", file=sys.stderr)
        return 1
    try:
        await svc.agents.add(args.username, password, args.role, args.staff_id, args.capacity,
                             tuple(args.languages.split(",")))
    except AgentError as exc:
        return rejected(exc)
    print(f"created {args.role} {args.username}; sign in at {svc.settings.public_base_url}/agent/")
    return 0


def _password(from_stdin: bool) -> str | None:
    """The first line of stdin, or asked twice (None when the two differ)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("password: ")
    return password if getpass.getpass("again: ") == password else None


def _booked_staff(staff_id: str) -> bool:
    from bot.domain.booking import load_field_teams

    return load_field_teams().region_of_staff(staff_id) is not None
