"""gateway, actions, twilio-standin, worker, run, chat: the processes of the system, and talking to it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from bot.cli.common import settings


def add(commands: Any) -> None:
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
    commands.add_parser("worker", help="run a campaign worker (arq); start as many as needed") \
        .set_defaults(handler=_worker)


def _gateway(_: argparse.Namespace) -> int:
    import uvloop
    from aiohttp import web

    from bot.edge.gateway import init_app

    config = settings()
    # libuv's loop, as under Rasa's and the action server's Sanic. The access log leaves the time to the
    # log's own (aiohttp's %t formats a date per request) and says how long each request took.
    web.run_app(init_app(config), host=config.gateway_host, port=config.gateway_port, print=None,
                loop=uvloop.new_event_loop(), access_log_format='%a %Tfs "%r" %s %b')
    return 0


def _standin(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.ops import twilio_standin

    config = settings()
    app = twilio_standin.init_app(config.twilio_account_sid, config.twilio_auth_token)
    # Callbacks are signed for the public URL but delivered to the gateway on this machine.
    app[twilio_standin.STATE].deliver_via = (config.public_base_url, f"http://127.0.0.1:{config.gateway_port}")
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)
    return 0


def _actions(args: argparse.Namespace) -> int:
    """The action server on loopback, answering only Rasa (which sends RASA_TOKEN as ``?token=``)."""
    from rasa_sdk.endpoint import create_app

    from bot.core.heap import freeze_startup_heap
    from bot.rasa_ext.internal_auth import require_token

    config = settings()  # fail at start, naming the setting, rather than on the first turn
    app = create_app("actions", cors_origins=[])
    app.register_middleware(require_token(config.rasa_token), "request")
    app.register_listener(lambda app, loop: freeze_startup_heap(), "after_server_start")
    app.run(args.host, args.port, workers=1, access_log=False)
    return 0


def _run(args: argparse.Namespace) -> int:
    from bot.ops.supervisor import Options, run_until_stopped

    options = Options(ledger=(args.accounts, args.installments) if args.accounts else None)
    options.log_dir = options.var_dir / "logs"  # the components' own output, third parties' warnings included
    options.more_rasa_ports = tuple(range(options.rasa_port + 1, options.rasa_port + args.rasa_processes))
    options.gateway_port = settings().gateway_port  # validates every setting before starting
    return asyncio.run(run_until_stopped(options))


def _chat(args: argparse.Namespace) -> int:
    from bot.ops.chat import chat

    asyncio.run(chat(settings(), args.phone))
    return 0


def _worker(_: argparse.Namespace) -> int:
    from bot.campaigns.worker import run

    try:
        run()
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return 0
