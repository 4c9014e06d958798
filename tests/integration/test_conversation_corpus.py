"""Whole conversations from tests/conversations/*.yml, each checked by the records it leaves.

Every conversation has an account of its own. Its messages go to /twilio/sms signed as Twilio
signs them; afterwards `python -m bot account` shows what is on record for every account, and
each conversation is judged on it:
- an unwanted record (a consequential record the conversation does not list) fails the run,
- so does a reply that discloses the debt before the turn the conversation verifies at,
- a missing record or a reply without its expected words makes the conversation not fully right;
  the run fails when under MIN_FULLY_RIGHT of a language's conversations are fully right.
The share per language is printed and written to results/conversations.md.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.core.settings import Settings
from bot.services import Services
from tests.integration.conftest import EN_BIRTH, LEDGER_DAY, ZH_BIRTH, Borrower, text
from tests.integration.test_conversations import DISCLOSURES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "conversations"
REPORT = ROOT / "results" / "conversations.md"
MIN_FULLY_RIGHT = 0.95
AT_ONCE = 4  # conversations in flight together: different borrowers, as in a campaign's replies
# Records that change an account. A handoff is not one: a person reads the conversation first.
CONSEQUENTIAL = ("promise", "plan", "grace", "visit", "dispute", "already_paid", "opted_out",
                 "number_under_review", "consent_granted", "consent_withdrawn")


@dataclass
class Conversation:
    name: str
    language: str
    turns: list[dict[str, Any]]
    records: set[str]
    maybe: set[str]
    verify_at: int | None
    promise_day: str | None  # filled (see fill) when the conversation runs
    account_id: str = ""
    phone: str = ""
    replies: list[str] = field(default_factory=list)


def load_corpus() -> list[Conversation]:
    found = []
    for language in ("zh", "en"):
        # BaseLoader keeps every value a string: a borrower's "yes" or "no" stays words.
        for n, entry in enumerate(yaml.load((CORPUS / f"{language}.yml").read_text(encoding="utf-8"),
                                            Loader=yaml.BaseLoader)):
            turns = [t if isinstance(t, dict) else {"user": t} for t in entry["turns"]]
            unknown = (set(entry.get("records", [])) | set(entry.get("maybe", []))) - set(CONSEQUENTIAL)
            assert not unknown, f"{entry['name']}: unknown record kinds {unknown}"
            prefix, phone = ("CZ", "+86135{:08d}") if language == "zh" else ("CE", "+1628555{:04d}")
            found.append(Conversation(entry["name"], language, turns, set(entry.get("records", [])),
                                      set(entry.get("maybe", [])), _number(entry.get("verify_at")),
                                      entry.get("promise_day"),
                                      f"{prefix}{n:03d}", phone.format(n)))
    return found


_PLACEHOLDER = re.compile(r"\{([dowcm])(\d+)\}")
_ORDINAL_WORDS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
                  "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth twenty-first "
                  "twenty-second twenty-third twenty-fourth twenty-fifth twenty-sixth twenty-seventh "
                  "twenty-eighth twenty-ninth thirtieth thirty-first").split()


def fill(text: str, today: date) -> str:
    """The corpus's relative days ({d5}, {o5}, {w5}, {c5}, {m40}; see en.yml) as the borrower would write them."""
    def day(found: re.Match[str]) -> str:
        when = today + timedelta(days=int(found[2]))
        n = when.day
        return {"d": str(n), "o": f"{n}{_suffix(n)}", "w": _ORDINAL_WORDS[n - 1], "c": _chinese(n),
                "m": f"{when:%B} {n}"}[found[1]]
    return _PLACEHOLDER.sub(day, text)


def _suffix(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _chinese(n: int) -> str:
    digits = "零一二三四五六七八九"
    tens, units = divmod(n, 10)
    return ("" if tens == 0 else "十" if tens == 1 else digits[tens] + "十") + ("" if units == 0 else digits[units])


def _number(value: str | None) -> int | None:
    return None if value is None else int(value)


def write_ledger(folder: Path, conversations: list[Conversation], today: date) -> tuple[Path, Path]:
    """The integration ledger's borrower for each conversation: ¥/$2,600.00 over three instalments."""
    accounts, installments = folder / "corpus-accounts.csv", folder / "corpus-installments.csv"
    with accounts.open("w", newline="", encoding="utf-8") as a, \
            installments.open("w", newline="", encoding="utf-8") as i:
        aw, iw = csv.writer(a), csv.writer(i)
        aw.writerow(["account_id", "name", "phone", "language", "timezone", "product", "currency", "id_last4",
                     "birth_date", "address", "employer", "region"])
        iw.writerow(["account_id", "installment_no", "due_date", "amount_due", "amount_paid", "paid_date"])
        for c in conversations:
            if c.language == "zh":
                aw.writerow([c.account_id, "王芳", c.phone, "zh", "Asia/Shanghai", "consumer", "CNY", "7789",
                             ZH_BIRTH.isoformat(), "", "", "SH"])
            else:
                aw.writerow([c.account_id, "Ann Lee", c.phone, "en", "America/Los_Angeles", "auto", "USD", "3321",
                             EN_BIRTH.isoformat(), "", "", "CA"])
            iw.writerow([c.account_id, 1, (today - timedelta(days=75)).isoformat(), "1000.00", "0.00", ""])
            iw.writerow([c.account_id, 2, (today - timedelta(days=45)).isoformat(), "1000.00", "400.00",
                         (today - timedelta(days=40)).isoformat()])
            iw.writerow([c.account_id, 3, (today - timedelta(days=15)).isoformat(), "1000.00", "0.00", ""])
            iw.writerow([c.account_id, 4, (today + timedelta(days=15)).isoformat(), "1000.00", "0.00", ""])
    return accounts, installments


def records_of(summary: dict[str, Any]) -> set[str]:
    """The consequential records `python -m bot account` shows for one account."""
    found = {kind for kind in ("promise", "visit") if summary.get(kind)}
    if summary.get("arrangement"):
        found.add(summary["arrangement"]["kind"])
    found |= set(summary["contact_holds"]) & {"dispute", "already_paid"}
    found |= {flag for flag in ("opted_out", "number_under_review") if summary.get(flag)}
    found |= {f"consent_{c['status']}" for c in summary["consents"].values() if c["status"] != "declined"}
    return found


def disclosure(reply: str) -> str | None:
    return next((word for word in DISCLOSURES if word in reply), None)


@dataclass
class Verdict:
    unwanted: set[str]
    missing: set[str]
    disclosed: list[str]
    wrong_replies: list[str]

    @property
    def fully_right(self) -> bool:
        return not (self.unwanted or self.missing or self.disclosed or self.wrong_replies)


def judge(c: Conversation, summary: dict[str, Any]) -> Verdict:
    found = records_of(summary)
    missing = c.records - found
    promised = (summary.get("promise") or {}).get("date")
    if c.promise_day and promised and str(date.fromisoformat(promised).day) != c.promise_day:
        missing.add(f"promise on day {c.promise_day} (recorded {promised})")
    disclosed, wrong = [], []
    for n, (turn, reply) in enumerate(zip(c.turns, c.replies, strict=False)):
        word = disclosure(reply)
        if word and (c.verify_at is None or n < c.verify_at):
            disclosed.append(f"turn {n}: {word!r} in {reply!r}")
        expected = turn.get("expect", [])
        for words in [expected] if isinstance(expected, str) else expected:
            if words not in reply:
                wrong.append(f"turn {n}: {words!r} not in {reply!r}")
    return Verdict(found - c.records - c.maybe, missing, disclosed, wrong)


async def converse(http: aiohttp.ClientSession, stack: Settings, c: Conversation, limit: asyncio.Semaphore) -> None:
    async with limit:
        borrower = Borrower(c.phone, c.language)
        today = borrower.today
        c.promise_day = fill(c.promise_day, today) if c.promise_day else None
        for turn in c.turns:
            turn["user"] = fill(turn["user"], today)
            c.replies.append(await text(http, stack, borrower, turn["user"]))


def account_views(env: dict[str, str], account_ids: list[str]) -> dict[str, dict[str, Any]]:
    shown = subprocess.run([sys.executable, "-m", "bot", "account", *account_ids], env=env, cwd=ROOT,
                           capture_output=True, text=True, check=True, timeout=300)
    views = json.loads(shown.stdout)
    return {v["account_id"]: v for v in (views if isinstance(views, list) else [views])}


def transcript(c: Conversation, verdict: Verdict) -> str:
    lines = [f"### {c.language}: {c.name} ({c.account_id})"]
    for turn, reply in zip(c.turns, c.replies, strict=False):
        lines += [f"> {turn['user']}", *(f"    {r}" for r in reply.splitlines())]
    for label, items in (("unwanted", verdict.unwanted), ("missing", verdict.missing),
                         ("disclosed", verdict.disclosed), ("reply", verdict.wrong_replies)):
        lines += [f"- {label}: {item}" for item in sorted(items)]
    return "\n".join(lines)


def report(conversations: list[Conversation], verdicts: list[Verdict]) -> tuple[str, dict[str, float]]:
    shares, rows = {}, ["| language | conversations | fully right | share | unwanted records | disclosures |",
                        "|---|---|---|---|---|---|"]
    for language in ("zh", "en"):
        mine = [v for c, v in zip(conversations, verdicts, strict=False) if c.language == language]
        right = sum(v.fully_right for v in mine)
        shares[language] = right / len(mine)
        rows.append(f"| {language} | {len(mine)} | {right} | {shares[language]:.3f} | "
                    f"{sum(len(v.unwanted) for v in mine)} | {sum(len(v.disclosed) for v in mine)} |")
    wrong = [transcript(c, v) for c, v in zip(conversations, verdicts, strict=False) if not v.fully_right]
    return "\n".join(["# Conversation corpus", "", "    make integration  # or make test", "", *rows, "",
                      *wrong]) + "\n", shares


async def test_the_corpus_leaves_only_the_records_each_conversation_asked_for(
        stack: Settings, stack_env: dict[str, str], http: aiohttp.ClientSession, tmp_path: Path) -> None:
    conversations = load_corpus()
    svc = Services(stack)
    try:
        await svc.ledger.import_files(*write_ledger(tmp_path, conversations, LEDGER_DAY), LEDGER_DAY)
    finally:
        await svc.close()
    limit = asyncio.Semaphore(AT_ONCE)
    await asyncio.gather(*(converse(http, stack, c, limit) for c in conversations))

    views = account_views(stack_env, [c.account_id for c in conversations])
    verdicts = [judge(c, views[c.account_id]) for c in conversations]
    written, shares = report(conversations, verdicts)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(written, encoding="utf-8")
    print("\n" + written.split("\n\n### ")[0])
    bad = [transcript(c, v) for c, v in zip(conversations, verdicts, strict=False) if v.unwanted or v.disclosed]
    assert not bad, "unwanted records or disclosures:\n\n" + "\n\n".join(bad)
    low = {language: share for language, share in shares.items() if share < MIN_FULLY_RIGHT}
    assert not low, f"fully right below {MIN_FULLY_RIGHT}: {low}; see {REPORT}"
