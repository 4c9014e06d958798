"""import-ledger, screen, account: the bank's records in, a collection list and an account's view out."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.common import ROOT, rejected, settings, unreadable

if TYPE_CHECKING:
    import polars as pl


def add(commands: Any) -> None:
    imp = commands.add_parser("import-ledger", help="validate and upsert accounts and instalments")
    imp.add_argument("--accounts", type=Path, required=True)
    imp.add_argument("--installments", type=Path, required=True)
    imp.set_defaults(handler=lambda a: asyncio.run(_import_ledger(a)))
    scr = commands.add_parser("screen", help="rank accounts into a collection list with a strategy each, and a report; "
                                             "`screen train` learns the priority from the ledger's history")
    scr.add_argument("task", nargs="?", choices=("train",), help="train: fit the learned priority and save it")
    scr.add_argument("--accounts", type=Path, required=True)
    scr.add_argument("--installments", type=Path, required=True)
    scr.add_argument("--as-of", type=date.fromisoformat, help="YYYY-MM-DD; default: today in each borrower's zone")
    scr.add_argument("--out", type=Path, help="default: var/screening/<as-of or today>-<HHMMSS>")
    scr.add_argument("--no-records", action="store_true", help="skip promises, plans and contacts kept in Redis")
    scr.add_argument("--model", type=Path, help="the learned priority's file (default: models/screening-priority.json;"
                                                " screening uses it when it exists)")
    scr.add_argument("--rules", action="store_true", help="rank by the rules in policy/strategies.yml, not the model")
    scr.add_argument("--horizon", type=int, default=30, help="train: days after --as-of an account must pay in")
    scr.add_argument("--parts", type=int, help="screen in this many parts (default: by the size of the files)")
    scr.add_argument("--workers", action="store_true",
                     help="screen the parts as jobs on the campaign workers (`python -m bot worker`), which must "
                          "see this machine's var/screening folder")
    scr.set_defaults(handler=lambda a: _train(a) if a.task == "train" else _screen(a))
    view = commands.add_parser("account", help="show an account's ledger view: amounts, arrangements, bookings "
                                               "(several accounts: a JSON list)")
    view.add_argument("account_ids", nargs="+", metavar="account_id")
    view.add_argument("--as-of", type=date.fromisoformat)
    view.set_defaults(handler=lambda a: asyncio.run(_account(a)))


async def _import_ledger(args: argparse.Namespace) -> int:
    from bot.domain.ledger import LedgerImportError
    from bot.services import Services

    if unreadable(args.accounts, "imported") or unreadable(args.installments, "imported"):
        return 1
    async with Services(settings()) as svc:
        try:
            accounts, rows = await svc.ledger.import_files(args.accounts, args.installments, date.today())
        except LedgerImportError as exc:
            return rejected(exc)
    print(f"imported {accounts} account(s) and {rows} instalment row(s)")
    return 0


def _screen(args: argparse.Namespace) -> int:
    from bot.screening import priority as screening
    from bot.screening.model import ModelError

    if unreadable(args.accounts, "written") or unreadable(args.installments, "written"):
        return 1
    root = ROOT / "var" / "screening"
    out = args.out or root / f"{(args.as_of or date.today()).isoformat()}-{datetime.now():%H%M%S}"
    load = None if args.no_records else lambda ids: asyncio.run(_screening_facts(ids, args.as_of))
    if args.parts is not None and args.parts < 1:
        print("--parts must be a number from 1", file=sys.stderr)
        return 2
    previous = screening.latest_run(out.parent, exclude=out)
    try:
        model = None if args.rules else _saved_model(args.model)
        if args.workers:
            outputs = asyncio.run(_screen_on_workers(args, out, previous, model))
        else:
            outputs = screening.run(args.accounts, args.installments, out, args.as_of, load, previous=previous,
                                    model=model, parts=args.parts)
    except (screening.ScreeningInputError, screening.StrategyError, FileExistsError, ModelError,
            RuntimeError) as exc:
        return rejected(exc)
    for path in (outputs.collection_list, outputs.summary, outputs.report, *outputs.charts):
        print(path)
    return 0


async def _screen_on_workers(args: argparse.Namespace, out: Path, previous: Path | None, model: Any) -> Any:
    from arq import create_pool
    from arq.connections import RedisSettings

    from bot.campaigns.screening_jobs import PartJob, run_on_workers
    from bot.screening import model as priority_model

    model_path = (args.model or priority_model.DEFAULT_MODEL) if model else None
    job = PartJob(today=date.today().isoformat(), as_of=args.as_of.isoformat() if args.as_of else None,
                  model=str(Path(model_path).resolve()) if model_path else None, records=not args.no_records,
                  now=datetime.now(timezone.utc).isoformat())
    queue = await create_pool(RedisSettings.from_dsn(settings().redis_url))
    try:
        return await run_on_workers(queue, args.accounts.resolve(), args.installments.resolve(), out.resolve(),
                                    out.resolve().with_name(f".{out.name}.parts"), job, args.parts, previous,
                                    model.card if model else None)
    finally:
        await queue.close()


def _saved_model(path: Path | None) -> Any:
    """The learned priority at ``path`` (default: models/screening-priority.json when it exists), else None."""
    from bot.screening import model

    if path is None and not model.DEFAULT_MODEL.is_file():
        return None
    return model.load(path or model.DEFAULT_MODEL)


def _train(args: argparse.Namespace) -> int:
    from bot.screening import priority as screening
    from bot.screening import training

    if args.as_of is None:
        print("screen train needs --as-of: the day whose next --horizon days give the labels", file=sys.stderr)
        return 2
    if args.horizon < 1:
        print("--horizon must be a number of days from 1", file=sys.stderr)
        return 2
    if unreadable(args.accounts, "used") or unreadable(args.installments, "used"):
        return 1
    try:
        saved = training.train_from_ledger(args.accounts, args.installments, args.as_of, args.horizon,
                                           args.model or training.DEFAULT_MODEL)
    except (screening.ScreeningInputError, training.ModelError) as exc:
        return rejected(exc)
    print(saved.summary)
    for path in saved.paths:
        print(path)
    return 0


async def _screening_facts(account_ids: list[str], as_of: date | None) -> pl.DataFrame:
    from bot.screening.priority import load_facts
    from bot.services import Services

    async with Services(settings()) as svc:
        return await load_facts(svc, account_ids, as_of)


async def _account(args: argparse.Namespace) -> int:
    from bot.console.account_view import account_summary
    from bot.services import Services

    async with Services(settings()) as svc:
        summaries = [await account_summary(svc, account_id, args.as_of) for account_id in args.account_ids]
    missing = [a for a, s in zip(args.account_ids, summaries, strict=False) if s is None]
    if missing:
        print(f"no account {', '.join(map(repr, missing))} in the ledger", file=sys.stderr)
        return 1
    print(json.dumps(summaries[0] if len(summaries) == 1 else summaries, ensure_ascii=False, indent=2))
    return 0
