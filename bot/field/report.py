"""The written report of a field verification visit, in Chinese and English, as HTML and PDF.

One report per language from bot/field/templates/visit_report.html, every word of it from
bot/field/templates/visit_report_labels.yml. Amounts, dates and times go through Babel in the
language's locale; times are shown in the visit's own time zone. The HTML stands alone (inline
style, no scripts, nothing fetched), so WeasyPrint lays it out the same anywhere. Rendering is
pure and synchronous: the caller runs ``render_all`` in a thread, since making PDFs is CPU-bound.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import yaml
from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_percent
from babel.units import format_unit

from bot.core.formatting import locale_for, long_date, money
from bot.domain.ledger import Account
from bot.field.visits import (
    ARRIVAL_CHECKS,
    CHECKLIST,
    INTERVIEW,
    WHOLE_NUMBER,
    Visit,
    discrepancies,
    ledger_figures,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "visit_report.html"
LABELS_FILE = TEMPLATES / "visit_report_labels.yml"
LANGUAGES = ("zh", "en")  # the borrower's and the bank's: every report is made in both
DASH = "—"  # what an empty or missing value shows
_MONEY_ANSWERS = ("monthly_income", "monthly_expenses")


@functools.lru_cache(maxsize=1)
def labels() -> dict[str, dict[str, str]]:
    """Every word of the report: key → {"en": ..., "zh": ...}, read once."""
    return dict(yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined)


@functools.lru_cache(maxsize=4)
def _datetime_pattern(locale: str) -> str:
    """The locale's long date and short time, joined its way: 2026年12月5日 09:00, December 5, 2026, 9:00 AM."""
    cldr = Locale.parse(locale)
    return str(cldr.datetime_formats["medium"]).format(cldr.time_formats["short"].pattern,
                                                       cldr.date_formats["long"].pattern)


@dataclass(frozen=True)
class _Words:
    """Labels and values in one language, times in the visit's zone, amounts in the account's currency."""

    language: str
    zone: ZoneInfo
    currency: str
    staff_names: Mapping[str, str]  # staff id → name

    def label(self, key: str) -> str:
        return labels()[key][self.language]

    def code(self, group: str, code: str | None) -> str:
        """The label of a code such as result "discrepancy"; a dash when none was chosen."""
        return self.label(f"{group}.{code}") if code else DASH

    def text(self, value: Any) -> str:
        return (str(value).strip() if value is not None else "") or DASH

    def moment(self, value: datetime | int | float | None) -> str:
        """A time (aware, or epoch seconds as the record keeps them) in the visit's zone."""
        if value is None or value == "":
            return DASH
        moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, self.zone)
        locale = locale_for(self.language)
        # CLDR's narrow no-break space before AM/PM is missing from CJK fonts.
        return format_datetime(moment, _datetime_pattern(locale), tzinfo=self.zone, locale=locale) \
            .replace("\u202f", " ")

    def day(self, value: str | None) -> str:
        return long_date(date.fromisoformat(value), self.language) if value else DASH

    def money(self, value: str | Decimal | None) -> str:
        figure = value if isinstance(value, Decimal) else _decimal(value or "")
        return DASH if figure is None else money(figure, self.currency, self.language)

    def months(self, value: Any) -> str:
        count = _whole(value)
        return DASH if count is None else format_unit(count, "duration-month", locale=locale_for(self.language))

    def rate(self, value: str | None) -> str:
        figure = _decimal(value or "")
        return DASH if figure is None else format_percent(figure / 100, format="#,##0.####%",
                                                          locale=locale_for(self.language))

    def person(self, staff_id: str | None) -> str:
        """王磊 (SH-0417) for a staff member on the visit, else the id as recorded."""
        if not staff_id:
            return DASH
        name = self.staff_names.get(staff_id)
        return f"{name} ({staff_id})" if name else staff_id


def _ledger_term(record: Mapping[str, Any], account: Account) -> int:
    return int((record.get("ledger") or {}).get("term", len(account.installments)))


def _decimal(value: str) -> Decimal | None:
    try:
        return Decimal(value) if value else None
    except InvalidOperation:
        return None


def _whole(value: Any) -> int | None:
    """A count the record may hold as a number or as text; None when empty or not a whole number."""
    text = str(value).strip() if value is not None else ""
    return int(text) if WHOLE_NUMBER.fullmatch(text) else None


def render_html(visit: Visit, account: Account, language: str, generated_at: datetime) -> str:
    """The visit's report as one self-contained HTML document.

    Args:
        language: "zh" or "en".
        generated_at: when the report is made (aware); shown in the visit's time zone.

    Raises:
        ValueError: ``language`` is not one of LANGUAGES.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r} must be one of {', '.join(LANGUAGES)}")
    booking = visit.booking
    words = _Words(language, ZoneInfo(visit.record["booking"]["timezone"]), account.currency,
                   {s.staff_id: s.name for s in booking.staff})
    record = visit.record
    context = {
        "lang": language, "t": words.label, "booking_id": visit.booking_id,
        "state": words.code("state", visit.state), "went_ahead": bool(visit.went_ahead),
        "visit": _visit_section(visit, account, words),
        "arrival": _arrival_section(record.get("arrival") or {}, words),
        "checklist": _checklist_rows(record, words),
        "discrepancies": [words.code("checklist", item)
                          for item in discrepancies(record, _ledger_term(record, account))],
        "figures": _figures(record, account, booking.slot.start.date(), words),
        "income_proof": _income_proof(record.get("income_proof") or {}, words),
        "interview": _interview_rows(record.get("interview") or {}, words),
        "outcome": _outcome_rows(record.get("outcome") or {}, words),
        "history": _history_rows(visit, words),
        "addenda": [{"at": words.moment(a.get("at")), "by": words.person(a.get("by")),
                     "text": words.text(a.get("text"))} for a in visit.addenda],
        "generated_at": words.moment(generated_at),
    }
    return _environment().get_template(TEMPLATE).render(context)


def _visit_section(visit: Visit, account: Account, words: _Words) -> dict[str, Any]:
    booking = visit.booking
    present = set((visit.record.get("arrival") or {}).get("staff_present", []))
    place = booking.details.get("place")
    return {
        "rows": [
            (words.label("field.booking_id"), booking.booking_id),
            (words.label("field.account_id"), account.account_id),
            (words.label("field.borrower"), words.text(account.name)),
            (words.label("field.place"), words.code("place", place)),
            (words.label("field.address"), words.text(booking.details.get("address"))),
            (words.label("field.time"), f"{words.moment(booking.slot.start)} ({booking.slot.start.tzinfo})"),
            (words.label("field.region"), booking.slot.region),
            (words.label("field.team"), booking.team_id),
        ],
        "staff": [{"name": s.name, "staff_id": s.staff_id,
                   "present": words.label("yes" if s.staff_id in present else "no")} for s in booking.staff],
    }


def _arrival_section(arrival: Mapping[str, Any], words: _Words) -> dict[str, Any]:
    """The four confirmations when the visit began, or why it did not go ahead."""
    result = arrival.get("result") or ("consented" if arrival else "none")
    return {
        "result": result,
        "statement": words.label(f"arrival.{result}") if result != "consented" else "",
        "checks": [(words.label(f"arrival.{check}"), words.label("yes" if arrival.get(check) is True else "no"))
                   for check in ARRIVAL_CHECKS],
        "at": words.moment(arrival.get("at")),
        "by": words.person(arrival.get("by")),
    }


def _checklist_rows(record: Mapping[str, Any], words: _Words) -> list[dict[str, Any]]:
    checklist = record.get("checklist") or {}
    rows = []
    for item in CHECKLIST:
        found = checklist.get(item) or {}
        rows.append({"label": words.code("checklist", item), "result": words.code("result", found.get("result")),
                     "discrepancy": found.get("result") == "discrepancy", "note": words.text(found.get("note"))})
    return rows


def _figures(record: Mapping[str, Any], account: Account, visit_day: date, words: _Words) -> list[dict[str, Any]]:
    """The contract as read on site beside the ledger as it stood then: amount, term (a mismatch flagged),
    rate, overdue."""
    contract = record.get("contract") or {}
    ledger = record.get("ledger") or ledger_figures(account, visit_day)
    term = _whole(contract.get("term_months"))
    return [
        {"label": words.label("figure.amount"), "on_site": words.money(contract.get("amount")),
         "ledger": words.money(ledger["scheduled"]), "mismatch": False},
        {"label": words.label("figure.term"), "on_site": words.months(term), "ledger": words.months(ledger["term"]),
         "mismatch": term is not None and term != ledger["term"]},
        {"label": words.label("figure.annual_rate"), "on_site": words.rate(contract.get("annual_rate")),
         "ledger": DASH, "mismatch": False},
        {"label": words.label("figure.overdue"), "on_site": DASH, "ledger": words.money(ledger["overdue"]),
         "mismatch": False},
    ]


def _income_proof(proof: Mapping[str, Any], words: _Words) -> list[tuple[str, str]]:
    stamp = proof.get("stamp")
    return [(words.label("field.stamp"), words.label(stamp) if stamp in ("yes", "no") else DASH),
            (words.label("field.signer"), words.text(proof.get("signer")))]


def _interview_rows(interview: Mapping[str, Any], words: _Words) -> list[tuple[str, str]]:
    rows = []
    for name in INTERVIEW:
        value = interview.get(name)
        if name in _MONEY_ANSWERS:
            shown = words.money(value)
        elif name in ("willingness", "ability"):
            shown = words.code(name, value)
        else:
            shown = words.text(value)
        rows.append((words.label(f"interview.{name}"), shown))
    return rows


def _outcome_rows(outcome: Mapping[str, Any], words: _Words) -> list[tuple[str, str]]:
    """The outcome, then whichever of its amount, date and months were given, then the next step."""
    rows = [(words.label("field.outcome"), words.code("outcome", outcome.get("code")))]
    if outcome.get("amount"):
        rows.append((words.label("field.amount"), words.money(outcome["amount"])))
    if outcome.get("date"):
        rows.append((words.label("field.date"), words.day(outcome["date"])))
    if outcome.get("months"):
        rows.append((words.label("field.months"), words.months(outcome["months"])))
    rows.append((words.label("field.next_step"), words.text(outcome.get("next_step"))))
    return rows


def _history_rows(visit: Visit, words: _Words) -> list[tuple[str, str]]:
    record = visit.record
    return [
        (words.label("field.state"), words.code("state", visit.state)),
        (words.label("field.submitted_at"), words.moment(record.get("submitted_at"))),
        (words.label("field.submitted_by"), words.person(record.get("submitted_by"))),
        (words.label("field.updated_at"), words.moment(record.get("updated_at"))),
        (words.label("field.updated_by"), words.person(record.get("updated_by"))),
    ]


# One PDF at a time in a process: WeasyPrint is CPU-bound, and the gateway has borrowers to answer.
RENDERING = asyncio.Lock()


def render_pdf(html: str) -> bytes:
    """The HTML report as a PDF (A4, page numbers), laid out by WeasyPrint.

    Nothing is fetched, not even a local file: should a value ever reach the page unescaped, it
    still could not pull a file or a URL into the report.
    """
    import weasyprint  # slow to import, and only the report needs it

    no_fetching = weasyprint.urls.URLFetcher(allowed_protocols=())
    return bytes(weasyprint.HTML(string=html, url_fetcher=no_fetching).write_pdf())


def render_all(visit: Visit, account: Account, generated_at: datetime) -> dict[str, bytes]:
    """The report in both languages, both formats: {"zh.html", "zh.pdf", "en.html", "en.pdf"} → bytes.

    CPU-bound and synchronous; run it in a thread (``asyncio.to_thread``) from async code.
    """
    reports: dict[str, bytes] = {}
    for language in LANGUAGES:
        html = render_html(visit, account, language, generated_at)
        reports[f"{language}.html"] = html.encode("utf-8")
        reports[f"{language}.pdf"] = render_pdf(html)
    return reports
