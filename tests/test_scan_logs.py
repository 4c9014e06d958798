"""The log scan `make test` runs finds a borrower's details in a log, and passes clean logs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SAMPLES


def scan(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "scan_logs.py"), str(folder),
                           "--ledger", str(SAMPLES / "accounts.csv")], capture_output=True, text=True, check=False)


def test_a_name_phone_or_address_in_any_log_fails_the_scan(tmp_path: Path) -> None:
    (tmp_path / "clean.log").write_text("INFO bot.edge.gateway: turn for c_0123 took 40 ms\n", encoding="utf-8")
    assert scan(tmp_path).returncode == 0
    for n, leak in enumerate(("replied to 张伟", "sent to 8613800138000", "visit at 上海市浦东新区世纪大道100号")):
        (tmp_path / "nested").mkdir(exist_ok=True)
        (tmp_path / "nested" / f"leak{n}.log").write_text(f"DEBUG bot.x: {leak}\n", encoding="utf-8")
        found = scan(tmp_path)
        assert found.returncode == 1 and f"leak{n}.log:1" in found.stderr
        assert "张伟" not in found.stderr and "13800138000" not in found.stderr  # the report does not repeat it
        (tmp_path / "nested" / f"leak{n}.log").unlink()


def test_no_logs_is_a_failure_not_a_pass(tmp_path: Path) -> None:
    assert scan(tmp_path).returncode == 1
