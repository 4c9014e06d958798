"""privacy, rotate-keys, retention: a borrower's data exported or deleted, keys rotated, old records trimmed."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.common import settings

if TYPE_CHECKING:
    from bot.services import Services


def add(commands: Any) -> None:
    privacy = commands.add_parser("privacy", help="a borrower's data: export it or delete it")
    privacy_actions = privacy.add_subparsers(dest="action", required=True)
    export = privacy_actions.add_parser("export", help="everything held about the account, as JSON")
    export.add_argument("account_id")
    export.add_argument("--out", type=Path, help="write to this file (mode 0600) instead of stdout")
    delete = privacy_actions.add_parser("delete", help="delete everything held about the account (audited)")
    delete.add_argument("account_id")
    delete.add_argument("--requested-by", required=True, help="who asked for it, for the audit (a name or ticket)")
    privacy.set_defaults(handler=lambda a: asyncio.run(_privacy(a)))
    commands.add_parser("rotate-keys", help="re-encrypt everything at rest under the first key in DATA_KEYS") \
        .set_defaults(handler=lambda a: asyncio.run(_rotate_keys(a)))
    commands.add_parser("retention", help="trim the audit and decision streams and old visit outcomes now") \
        .set_defaults(handler=lambda a: asyncio.run(_retention(a)))


async def _privacy(args: argparse.Namespace) -> int:
    """A borrower's request: export everything held (JSON), or delete it (audited)."""
    from bot.services import Services

    async with Services(settings()) as svc:
        done = await (_export(svc, args) if args.action == "export" else _delete(svc, args))
    if not done:
        print(f"no account {args.account_id!r}", file=sys.stderr)
        return 1
    return 0


async def _export(svc: Services, args: argparse.Namespace) -> bool:
    from bot.privacy.data_requests import export_account, to_json

    export = await export_account(svc, args.account_id)
    if export is None:
        return False
    _write_private(args.out, to_json(export))
    print(f"exported account {args.account_id} to {args.out or 'stdout'}", file=sys.stderr)
    return True


async def _delete(svc: Services, args: argparse.Namespace) -> bool:
    from bot.privacy.data_requests import delete_account

    deletion = await delete_account(svc, args.account_id, args.requested_by)
    if deletion is None:
        return False
    print(f"deleted account {args.account_id}: {deletion.total_keys} keys; the deletion is audited")
    return True


def _write_private(path: Path | None, text: str) -> None:
    """To stdout, or to a file only its owner can read."""
    if path is None:
        print(text)
        return
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text + "\n", encoding="utf-8")


async def _rotate_keys(_: argparse.Namespace) -> int:
    """Re-encrypt every sealed value under the first key in DATA_KEYS; non-zero if any value no key opens."""
    from bot.privacy.rotation import rotate_all, rotation_summary
    from bot.services import Services

    async with Services(settings()) as svc:
        rotation = await rotate_all(svc.redis, svc.vault)
    print(rotation_summary(rotation))
    return 1 if rotation.unreadable else 0


async def _retention(_: argparse.Namespace) -> int:
    """Trim the audit and decision streams and visit outcomes to their retention periods, once."""
    from bot.privacy.retention import sweep
    from bot.services import Services

    async with Services(settings()) as svc:
        swept = await sweep(svc)
    print(f"deleted {swept.audit_events} audit events, {swept.contact_decisions} contact decisions and "
          f"{swept.visit_outcomes} visit outcomes past their retention periods")
    return 0
