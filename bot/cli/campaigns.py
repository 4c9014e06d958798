"""campaign, remind-visits: outbound reminders, planned from a collection list or due tomorrow."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.common import rejected, settings, unreadable

if TYPE_CHECKING:
    from bot.services import Services


def add(commands: Any) -> None:
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
    commands.add_parser("remind-visits", help="text tomorrow's visits a reminder, within the contact policy") \
        .set_defaults(handler=lambda a: asyncio.run(_remind_visits(a)))


async def _campaign(args: argparse.Namespace) -> int:
    from bot.services import Services

    async with Services(settings()) as svc:
        if args.action == "list":
            return await _list(svc)
        if args.action == "status":
            return await _status(svc, args.campaign_id)
        return await _plan(svc, args)


async def _list(svc: Services) -> int:
    from bot.campaigns import campaign

    for found in await campaign.list_campaigns(svc):
        print(f"{found['campaign_id']}  {found['day']}  {found['accounts']:>8} accounts  {found['name']}")
    return 0


async def _status(svc: Services, campaign_id: str) -> int:
    from bot.campaigns import campaign

    try:
        print(json.dumps(await campaign.campaign_status(svc, campaign_id), ensure_ascii=False, indent=2))
    except KeyError:
        print(f"no campaign {campaign_id!r}; `python -m bot campaign list` shows them", file=sys.stderr)
        return 1
    return 0


async def _plan(svc: Services, args: argparse.Namespace) -> int:
    from arq import create_pool
    from arq.connections import RedisSettings

    from bot.campaigns import campaign

    if unreadable(args.list, "planned"):
        return 1
    try:
        segment = campaign.parse_segment(args.segment)
        config = svc.settings.campaign
        if args.dry_run:
            for preview in await campaign.preview_campaign(svc, args.list, segment, config):
                print(_preview_line(preview))
            return 0
        queue = await create_pool(RedisSettings.from_dsn(svc.settings.redis_url))
        try:
            planned = await campaign.plan_campaign(svc, args.list, segment, args.name, queue)
        finally:
            await queue.close()
    except (campaign.CampaignListError, ValueError) as exc:
        return rejected(exc)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(planned.counts.items()))
    print(f"campaign {planned.campaign_id} ({planned.name}): {counts or 'no accounts'}; "
          f"{planned.enqueued} job(s) enqueued; `python -m bot campaign status {planned.campaign_id}`")
    return 0


def _preview_line(preview: Any) -> str:
    target, decision = preview.target, preview.decision
    answer = "" if decision is None else ("allowed: " if decision.allowed else "blocked: ") + \
        decision.reason.removeprefix("allowed: ")
    return f"{target.account_id}\t{preview.channel}\t{preview.when}\t{target.strategy}" \
           f"\tpriority {target.priority:g}\t{answer}"


async def _remind_visits(_: argparse.Namespace) -> int:
    from bot.contact.outbound import Sender, twilio_client
    from bot.dialogue.visits import send_reminders
    from bot.services import Services

    async with Services(settings()) as svc:
        sender = Sender(twilio_client(svc.settings), svc.settings, svc.policy, svc.redis)
        results = await send_reminders(svc, sender)
    for outcome in sorted({r.outcome for r in results}):
        print(f"{outcome}: {sum(1 for r in results if r.outcome == outcome)}")
    return 0
