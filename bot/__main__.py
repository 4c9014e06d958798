"""Command line: python -m bot <command>."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet

from bot.core.crypto import MaskingFilter
from bot.core.envfile import load_env_file
from bot.core.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    import polars as pl

    from bot.services import Services

ROOT = Path(__file__).resolve().parent.parent


def _logging() -> None:
    handler = logging.StreamHandler()
    handler.addFilter(MaskingFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _rejected(exc: Exception) -> int:
    """Say why the input was refused, with every bad row the error lists; the exit code for it."""
    print(f"rejected: {exc}", file=sys.stderr)
    for error in getattr(exc, "errors", ()):
        print(f"  {error}", file=sys.stderr)
    return 1


async def _import_ledger(args: argparse.Namespace) -> int:
    from bot.domain.ledger import LedgerImportError
    from bot.services import Services

    for path in (args.accounts, args.installments):
        if not path.is_file():
            print(f"rejected: {path} is not a readable file; nothing was imported", file=sys.stderr)
            return 1
    svc = Services(load_settings())
    try:
        accounts, rows = await svc.ledger.import_files(args.accounts, args.installments, date.today())
    except LedgerImportError as exc:
        return _rejected(exc)
    finally:
        await svc.close()
    print(f"imported {accounts} account(s) and {rows} instalment row(s)")
    return 0


def _screen(args: argparse.Namespace) -> int:
    from datetime import datetime

    from bot.screening import priority as screening

    for path in (args.accounts, args.installments):
        if not path.is_file():
            print(f"rejected: {path} is not a readable file; nothing was written", file=sys.stderr)
            return 1
    root = ROOT / "var" / "screening"
    out = args.out or root / f"{(args.as_of or date.today()).isoformat()}-{datetime.now():%H%M%S}"
    load = None if args.no_records else lambda ids: asyncio.run(_screening_facts(ids, args.as_of))
    try:
        outputs = screening.run(args.accounts, args.installments, out, args.as_of, load,
                                previous=screening.latest_run(out.parent, exclude=out))
    except screening.ScreeningInputError as exc:
        return _rejected(exc)
    except (screening.StrategyError, FileExistsError) as exc:
        return _rejected(exc)
    for path in (outputs.collection_list, outputs.summary, outputs.report, *outputs.charts):
        print(path)
    return 0


async def _screening_facts(account_ids: list[str], as_of: date | None) -> pl.DataFrame:
    from bot.screening.priority import load_facts
    from bot.services import Services

    svc = Services(load_settings())
    try:
        return await load_facts(svc, account_ids, as_of)
    finally:
        await svc.close()


async def _account(args: argparse.Namespace) -> int:
    import json

    from bot.console.account_view import account_summary
    from bot.services import Services

    svc = Services(load_settings())
    try:
        summaries = [await account_summary(svc, account_id, args.as_of) for account_id in args.account_ids]
    finally:
        await svc.close()
    missing = [a for a, s in zip(args.account_ids, summaries, strict=False) if s is None]
    if missing:
        print(f"no account {', '.join(map(repr, missing))} in the ledger", file=sys.stderr)
        return 1
    print(json.dumps(summaries[0] if len(summaries) == 1 else summaries, ensure_ascii=False, indent=2))
    return 0


async def _remind_visits(_: argparse.Namespace) -> int:
    from bot.contact.outbound import Sender, twilio_client
    from bot.dialogue.visits import send_reminders
    from bot.services import Services

    svc = Services(load_settings())
    try:
        sender = Sender(twilio_client(svc.settings), svc.settings, svc.policy, svc.redis)
        results = await send_reminders(svc, sender)
    finally:
        await svc.close()
    for outcome in sorted({r.outcome for r in results}):
        print(f"{outcome}: {sum(1 for r in results if r.outcome == outcome)}")
    return 0


async def _privacy(args: argparse.Namespace) -> int:
    """A borrower's request: export everything held (JSON), or delete it (audited)."""
    from bot.services import Services

    svc = Services(_local_settings())
    try:
        done = await (_export(svc, args) if args.action == "export" else _delete(svc, args))
    finally:
        await svc.close()
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

    svc = Services(_local_settings())
    try:
        rotation = await rotate_all(svc.redis, svc.vault)
    finally:
        await svc.close()
    print(rotation_summary(rotation))
    return 1 if rotation.unreadable else 0


async def _retention(_: argparse.Namespace) -> int:
    """Trim the audit and decision streams and visit outcomes to their retention periods, once."""
    from bot.privacy.retention import sweep
    from bot.services import Services

    svc = Services(_local_settings())
    try:
        swept = await sweep(svc)
    finally:
        await svc.close()
    print(f"deleted {swept.audit_events} audit events, {swept.contact_decisions} contact decisions and "
          f"{swept.visit_outcomes} visit outcomes past their retention periods")
    return 0


def _gateway(_: argparse.Namespace) -> int:
    import uvloop
    from aiohttp import web

    from bot.edge.gateway import init_app

    settings = load_settings()
    # libuv's loop, as under Rasa's and the action server's Sanic. The access log leaves the time to the
    # log's own (aiohttp's %t cost 1% of the gateway's CPU) and says how long each request took.
    web.run_app(init_app(settings), host=_gateway_host(), port=settings.gateway_port, print=None,
                loop=uvloop.new_event_loop(), access_log_format='%a %Tfs "%r" %s %b')
    return 0


def _gateway_host() -> str:
    return os.environ.get("GATEWAY_HOST", "127.0.0.1")


def _standin(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.ops import twilio_standin

    settings = load_settings()
    app = twilio_standin.init_app(settings.twilio_account_sid, settings.twilio_auth_token)
    # Callbacks are signed for the public URL but delivered to the gateway on this machine.
    app[twilio_standin.STATE].deliver_via = (settings.public_base_url, f"http://127.0.0.1:{settings.gateway_port}")
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)
    return 0


def _actions(args: argparse.Namespace) -> int:
    """The action server on loopback, answering only Rasa (which sends RASA_TOKEN as ``?token=``)."""
    from rasa_sdk.endpoint import create_app

    from bot.core.heap import freeze_startup_heap
    from bot.rasa_ext.internal_auth import require_token

    settings = load_settings()  # fail at start, naming the setting, rather than on the first turn
    app = create_app("actions", cors_origins=[])
    app.register_middleware(require_token(settings.rasa_token), "request")
    app.register_listener(lambda app, loop: freeze_startup_heap(), "after_server_start")
    app.run(args.host, args.port, workers=1, access_log=False)
    return 0


def _run(args: argparse.Namespace) -> int:
    from bot.ops.supervisor import Options, run_until_stopped

    options = Options(ledger=(args.accounts, args.installments) if args.accounts else None)
    options.log_dir = options.var_dir / "logs"  # the components' own output, third parties' warnings included
    options.more_rasa_ports = tuple(range(options.rasa_port + 1, options.rasa_port + args.rasa_processes))
    options.gateway_port = _local_settings().gateway_port  # validates every setting before starting
    return asyncio.run(run_until_stopped(options))


def _local_settings() -> Settings:
    """Settings as `run` gives them to its children: its own Redis unless REDIS_URL is set."""
    from bot.ops.supervisor import DEFAULT_REDIS_PORT

    return load_settings({"REDIS_URL": f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0", **os.environ})


def _chat(args: argparse.Namespace) -> int:
    from bot.ops.chat import chat

    asyncio.run(chat(_local_settings(), args.phone))
    return 0


def _init_env(args: argparse.Namespace) -> int:
    """Write a development .env with fresh secrets, unless one exists."""
    target: Path = args.path
    if target.exists():
        return 0
    target.write_text("\n".join([
        "# Development secrets, generated by `python -m bot init-env`. Never commit.",
        f"TWILIO_AUTH_TOKEN={secrets.token_hex(16)}",
        f"DATA_KEYS={Fernet.generate_key().decode()}",
        f"HMAC_SECRET={secrets.token_urlsafe(32)}",
        f"RASA_TOKEN={secrets.token_urlsafe(24)}",
        "",
    ]), encoding="utf-8")
    target.chmod(0o600)
    print(f"wrote {target} with fresh development secrets")
    return 0


def _new_key(_: argparse.Namespace) -> int:
    print(Fernet.generate_key().decode())
    return 0


async def _campaign(args: argparse.Namespace) -> int:
    import json

    from arq import create_pool
    from arq.connections import RedisSettings

    from bot.campaigns import campaign
    from bot.services import Services

    svc = Services(load_settings())
    try:
        if args.action == "list":
            for found in await campaign.list_campaigns(svc):
                print(f"{found['campaign_id']}  {found['day']}  {found['accounts']:>8} accounts  {found['name']}")
            return 0
        if args.action == "status":
            try:
                print(json.dumps(await campaign.campaign_status(svc, args.campaign_id), ensure_ascii=False, indent=2))
            except KeyError:
                print(f"no campaign {args.campaign_id!r}; `python -m bot campaign list` shows them", file=sys.stderr)
                return 1
            return 0
        if not args.list.is_file():
            print(f"rejected: {args.list} is not a readable file; nothing was planned", file=sys.stderr)
            return 1
        try:
            segment = campaign.parse_segment(args.segment)
            config = campaign.load_config(os.environ)
            if args.dry_run:
                for preview in await campaign.preview_campaign(svc, args.list, segment, config):
                    target, decision = preview.target, preview.decision
                    answer = "" if decision is None else ("allowed: " if decision.allowed else "blocked: ") + \
                        decision.reason.removeprefix("allowed: ")
                    print(f"{target.account_id}\t{preview.channel}\t{preview.when}\t{target.strategy}"
                          f"\tpriority {target.priority:g}\t{answer}")
                return 0
            queue = await create_pool(RedisSettings.from_dsn(svc.settings.redis_url))
            try:
                planned = await campaign.plan_campaign(svc, args.list, segment, args.name, queue)
            finally:
                await queue.close()
        except campaign.CampaignListError as exc:
            return _rejected(exc)
        except ValueError as exc:
            return _rejected(exc)
    finally:
        await svc.close()
    counts = ", ".join(f"{n} {s}" for s, n in sorted(planned.counts.items()))
    print(f"campaign {planned.campaign_id} ({planned.name}): {counts or 'no accounts'}; "
          f"{planned.enqueued} job(s) enqueued; `python -m bot campaign status {planned.campaign_id}`")
    return 0


async def _agent(args: argparse.Namespace) -> int:
    """Console accounts: add (password from stdin or asked twice), list, remove."""
    import getpass

    from bot.domain.agents import AgentError
    from bot.services import Services

    svc = Services(_local_settings())
    try:
        if args.action == "list":
            for username in await svc.agents.usernames():
                print("\t".join(filter(None, [username, await svc.agents.role(username),
                                               await svc.agents.staff_id(username)])))
            return 0
        if args.action == "remove":
            if not await svc.agents.remove(args.username):
                print(f"no account named {args.username!r}", file=sys.stderr)
                return 1
            print(f"removed {args.username}; their sessions end at their next request")
            return 0
        if args.staff_id and not _booked_staff(args.staff_id):
            print(f"staff id {args.staff_id!r} is on no team in policy/field_teams.yml", file=sys.stderr)
            return 1
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("password: ")
            if getpass.getpass("again: ") != password:
                print("the passwords differ; nothing was created", file=sys.stderr)
                return 1
        try:
            await svc.agents.add(args.username, password, args.role, args.staff_id)
        except AgentError as exc:
            return _rejected(exc)
    finally:
        await svc.close()
    print(f"created {args.role} {args.username}; sign in at {svc.settings.public_base_url}/agent/")
    return 0


def _booked_staff(staff_id: str) -> bool:
    from bot.domain.booking import load_field_teams

    return load_field_teams().region_of_staff(staff_id) is not None


def _worker(_: argparse.Namespace) -> int:
    from bot.campaigns.worker import run

    try:
        run()
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


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
    imp = commands.add_parser("import-ledger", help="validate and upsert accounts and instalments")
    imp.add_argument("--accounts", type=Path, required=True)
    imp.add_argument("--installments", type=Path, required=True)
    imp.set_defaults(handler=lambda a: asyncio.run(_import_ledger(a)))
    scr = commands.add_parser("screen", help="rank accounts into a collection list with a strategy each, and a report")
    scr.add_argument("--accounts", type=Path, required=True)
    scr.add_argument("--installments", type=Path, required=True)
    scr.add_argument("--as-of", type=date.fromisoformat, help="YYYY-MM-DD; default: today in each borrower's zone")
    scr.add_argument("--out", type=Path, help="default: var/screening/<as-of or today>-<HHMMSS>")
    scr.add_argument("--no-records", action="store_true", help="skip promises, plans and contacts kept in Redis")
    scr.set_defaults(handler=_screen)
    view = commands.add_parser("account", help="show an account's ledger view: amounts, arrangements, bookings "
                                               "(several accounts: a JSON list)")
    view.add_argument("account_ids", nargs="+", metavar="account_id")
    view.add_argument("--as-of", type=date.fromisoformat)
    view.set_defaults(handler=lambda a: asyncio.run(_account(a)))
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
    commands.add_parser("remind-visits", help="text tomorrow's visits a reminder, within the contact policy") \
        .set_defaults(handler=lambda a: asyncio.run(_remind_visits(a)))
    commands.add_parser("gateway", help="serve the Twilio webhooks").set_defaults(handler=_gateway)
    act = commands.add_parser("actions", help="serve the Rasa custom actions on loopback")
    act.add_argument("--port", type=int, default=5055)
    act.add_argument("--host", default="127.0.0.1", help="only on a private network, such as a compose file's")
    act.set_defaults(handler=_actions)
    standin = commands.add_parser("twilio-standin", help="serve the local stand-in of Twilio's REST API")
    standin.add_argument("--port", type=int, default=8081)
    standin.set_defaults(handler=_standin)
    run = commands.add_parser("run", help="start every component and wait for Ctrl-C")
    run.add_argument("--accounts", type=Path)
    run.add_argument("--installments", type=Path)
    run.add_argument("--rasa-processes", type=int, default=1, choices=range(1, 17), metavar="N",
                     help="Rasa servers sharing Redis, on consecutive ports from 5005 (one core each; default 1)")
    run.set_defaults(handler=_run)
    talk = commands.add_parser("chat", help="text the bot as a borrower, signed like Twilio")
    talk.add_argument("--phone", required=True)
    talk.set_defaults(handler=_chat)
    env = commands.add_parser("init-env", help="write a development .env with fresh secrets")
    env.add_argument("--path", type=Path, default=ROOT / ".env")
    env.set_defaults(handler=_init_env)
    commands.add_parser("new-key", help="print a new DATA_KEYS key").set_defaults(handler=_new_key)
    camp = commands.add_parser("campaign", help="plan a reminder campaign from a collection list; its status")
    camp_actions = camp.add_subparsers(dest="action", required=True)
    plan = camp_actions.add_parser("plan", help="schedule contacts per strategy for the workers")
    plan.add_argument("--list", type=Path, required=True, help="the collection list CSV from `screen`")
    plan.add_argument("--segment", action="append", default=[], metavar="COLUMN=V1,V2",
                      help="keep rows whose COLUMN is one of the values; repeat for more columns")
    plan.add_argument("--name")
    plan.add_argument("--dry-run", action="store_true", help="show who would be contacted, when and why; send nothing")
    camp_actions.add_parser("status", help="planned, sent, delivered, failed, blocked, replies") \
        .add_argument("campaign_id")
    camp_actions.add_parser("list", help="every campaign, newest first")
    camp.set_defaults(handler=lambda a: asyncio.run(_campaign(a)))
    agent = commands.add_parser("agent", help="console accounts: add, list, remove")
    agent_actions = agent.add_subparsers(dest="action", required=True)
    add = agent_actions.add_parser("add", help="create an account with a role")
    add.add_argument("username")
    add.add_argument("--role", choices=("agent", "supervisor", "field"), required=True)
    add.add_argument("--staff-id", default="", help="field staff: their staff id in policy/field_teams.yml")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    agent_actions.add_parser("list", help="every account and its role")
    agent_actions.add_parser("remove", help="delete an account").add_argument("username")
    agent.set_defaults(handler=lambda a: asyncio.run(_agent(a)))
    commands.add_parser("worker", help="run a campaign worker (arq); start as many as needed") \
        .set_defaults(handler=_worker)
    return parser


if __name__ == "__main__":
    sys.exit(main())
