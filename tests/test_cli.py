"""The command line as an operator meets it: exit codes and messages."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from cryptography.fernet import Fernet

from bot.core import keys
from bot.core.crypto import Vault
from bot.services import Services
from tests.conftest import ROOT, SAMPLES


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=60)


def test_import_ledger_reports_every_bad_row_and_fails(test_env: dict[str, str], tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.csv"
    lines = (SAMPLES / "accounts.csv").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace("+8613900139000", "13900139000")
    lines[3] = lines[3].replace("1979-07-04", "1979-02-30")
    accounts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli(test_env, "import-ledger", "--accounts", str(accounts),
                     "--installments", str(SAMPLES / "installments.csv"))
    assert result.returncode == 1
    assert "accounts.csv:3: phone: must be E.164" in result.stderr
    assert "accounts.csv:4: birth_date: 1979-02-30 is not a real calendar date" in result.stderr
    assert "nothing was imported" in result.stderr


def test_import_ledger_succeeds_on_the_samples(test_env: dict[str, str]) -> None:
    result = run_cli(test_env, "import-ledger", "--accounts", str(SAMPLES / "accounts.csv"),
                     "--installments", str(SAMPLES / "installments.csv"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported 4 account(s) and 14 instalment row(s)"


def test_a_missing_setting_is_named(test_env: dict[str, str]) -> None:
    env = {k: v for k, v in test_env.items() if k != "HMAC_SECRET"}
    result = run_cli(env, "import-ledger", "--accounts", str(SAMPLES / "accounts.csv"),
                     "--installments", str(SAMPLES / "installments.csv"))
    assert result.returncode == 2
    assert result.stderr.strip() == "configuration error: HMAC_SECRET is not set; see .env.example"


def test_a_missing_file_is_named(test_env: dict[str, str]) -> None:
    result = run_cli(test_env, "import-ledger", "--accounts", "nowhere.csv", "--installments", "b.csv")
    assert result.returncode == 1
    assert result.stderr.strip() == "rejected: nowhere.csv is not a readable file; nothing was imported"


def test_the_ledger_view_of_an_account(test_env: dict[str, str]) -> None:
    import json

    imported = run_cli(test_env, "import-ledger", "--accounts", str(SAMPLES / "accounts.csv"),
                       "--installments", str(SAMPLES / "installments.csv"))
    assert imported.returncode == 0, imported.stderr
    result = run_cli(test_env, "account", "US001", "--as-of", "2026-11-29")
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["overdue"] == {"amount": "824.74", "instalments": 2, "oldest_due": "2026-10-01",
                               "days_past_due": 59, "bucket": "31-60"}
    assert "John" not in result.stdout and "+1415" not in result.stdout
    missing = run_cli(test_env, "account", "NOPE")
    assert missing.returncode == 1 and missing.stderr.strip() == "no account 'NOPE' in the ledger"


def run_with_input(env: dict[str, str], text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=60, input=text)


@pytest.mark.usefixtures("services")  # an empty Redis: other modules add accounts too
def test_agent_accounts_are_added_listed_and_removed(test_env: dict[str, str]) -> None:
    added = run_with_input(test_env, "a sufficiently long pass\n", "agent", "add", "carol", "--role", "supervisor",
                           "--password-stdin")
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("created supervisor carol; sign in at https://bot.example-bank.test/agent/")
    again = run_with_input(test_env, "another long password\n", "agent", "add", "carol", "--role", "agent",
                           "--password-stdin")
    assert (again.returncode, again.stderr.strip()) == (1, "rejected: an account named 'carol' already exists")
    assert "carol\tsupervisor" in run_cli(test_env, "agent", "list").stdout
    assert run_cli(test_env, "agent", "remove", "carol").returncode == 0
    assert "carol" not in run_cli(test_env, "agent", "list").stdout
    assert run_cli(test_env, "agent", "remove", "carol").returncode == 1


@pytest.mark.usefixtures("services")  # an empty Redis: other modules add accounts too
def test_a_short_password_or_bad_name_creates_nothing(test_env: dict[str, str]) -> None:
    short = run_with_input(test_env, "short\n", "agent", "add", "dave", "--role", "agent", "--password-stdin")
    assert (short.returncode, short.stderr.strip()) == (1, "rejected: password must be at least 12 characters")
    bad = run_with_input(test_env, "a sufficiently long pass\n", "agent", "add", "Dave Smith", "--role", "agent",
                         "--password-stdin")
    assert bad.returncode == 1 and "username must be" in bad.stderr
    assert run_cli(test_env, "agent", "add", "erin", "--role", "admin").returncode == 2  # argparse: no such role


@pytest.mark.usefixtures("services")  # an empty Redis: other modules add accounts too
def test_field_accounts_name_a_booked_staff_id(test_env: dict[str, str]) -> None:
    password = "a sufficiently long pass\n"
    added = run_with_input(test_env, password, "agent", "add", "wang", "--role", "field", "--staff-id", "SH-0417",
                           "--password-stdin")
    assert added.returncode == 0, added.stderr
    assert "wang\tfield\tSH-0417" in run_cli(test_env, "agent", "list").stdout
    unknown = run_with_input(test_env, password, "agent", "add", "ghost", "--role", "field", "--staff-id", "XX-0001",
                             "--password-stdin")
    assert unknown.returncode == 1 and "on no team" in unknown.stderr
    missing = run_with_input(test_env, password, "agent", "add", "chen", "--role", "field", "--password-stdin")
    assert missing.returncode == 1 and "needs its staff id" in missing.stderr
    agent = run_with_input(test_env, password, "agent", "add", "zoe", "--role", "agent", "--staff-id", "SH-0522",
                           "--password-stdin")
    assert agent.returncode == 1 and "only a field account" in agent.stderr
    assert "ghost" not in run_cli(test_env, "agent", "list").stdout


def test_retention_sweeps_once_and_says_what_went(test_env: dict[str, str]) -> None:
    swept = run_cli(test_env, "retention")
    assert swept.returncode == 0, swept.stderr
    assert swept.stdout.startswith("deleted 0 audit events, 0 contact decisions and 0 visit outcomes")


def test_rotate_keys_re_encrypts_the_ledger_under_the_new_key(test_env: dict[str, str], services: Services) -> None:
    new_key = Fernet.generate_key().decode()
    rotated = run_cli({**test_env, "DATA_KEYS": f"{new_key},{test_env['DATA_KEYS']}"}, "rotate-keys")
    assert rotated.returncode == 0, rotated.stderr
    only_new = Vault((new_key,))
    sealed = asyncio.run(_raw(test_env["REDIS_URL"], keys.account("CN001")))
    assert only_new.open(sealed)["name"] == "张伟"
    # A value no configured key opens is reported, and the command fails.
    stranger = run_cli({**test_env, "DATA_KEYS": Fernet.generate_key().decode()}, "rotate-keys")
    assert stranger.returncode == 1 and "none of the configured keys" in stranger.stdout


async def _raw(url: str, key: str) -> bytes:
    client = aioredis.from_url(url)
    try:
        value: bytes = await client.get(key)
        return value
    finally:
        await client.close()


def test_privacy_export_then_delete_an_account(test_env: dict[str, str], services: Services, tmp_path: Path) -> None:
    out = tmp_path / "cn001.json"
    exported = run_cli(test_env, "privacy", "export", "CN001", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "张伟" in out.read_text(encoding="utf-8") and out.stat().st_mode & 0o077 == 0
    deleted = run_cli(test_env, "privacy", "delete", "CN001", "--requested-by", "ticket-4711")
    assert deleted.returncode == 0 and deleted.stdout.startswith("deleted account CN001:")
    assert asyncio.run(_raw(test_env["REDIS_URL"], keys.account("CN001"))) is None
    again = run_cli(test_env, "privacy", "delete", "CN001", "--requested-by", "ticket-4711")
    assert again.returncode == 1 and "no account" in again.stderr
    assert run_cli(test_env, "privacy", "export", "nobody").returncode == 1
    assert run_cli(test_env, "privacy", "delete", "CN002").returncode == 2  # argparse: who asked is required
