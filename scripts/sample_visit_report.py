"""Write the sample field visit report, both languages, HTML and PDF, from tests/sample_visit.py.

    .venv/bin/python scripts/sample_visit_report.py

Writes docs/visit-report-sample.{zh,en}.{html,pdf} and prints each PDF's size and how long
making it took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.field.report import LANGUAGES, render_html, render_pdf  # noqa: E402
from tests.sample_visit import GENERATED_AT, sample_visit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder to write to (default docs/)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    visit, account = sample_visit()
    render_pdf("<p>warm-up</p>")  # the first PDF pays for importing WeasyPrint and loading fonts
    for language in LANGUAGES:
        html = render_html(visit, account, language, GENERATED_AT)
        started = time.perf_counter()
        pdf = render_pdf(html)
        seconds = time.perf_counter() - started
        (args.out / f"visit-report-sample.{language}.html").write_text(html, encoding="utf-8")
        (args.out / f"visit-report-sample.{language}.pdf").write_bytes(pdf)
        print(f"visit-report-sample.{language}.pdf: {len(pdf):,} bytes, made in {seconds:.2f} s")


if __name__ == "__main__":
    main()
