"""Field visits in the console, for the visiting staff's phones: the day's visits, the record, the report.

Field staff (role ``field``) see only visits booked with their staff id; supervisors see every
visit and read every record and report, and may add addenda; agents see none of it. The record
itself is bot/field/visits.py; the report bot/field/report.py. Every view of a record or report
and every change is audited.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.console.desk import audit_event, flash_text, render, services_of, session_of, shown_flash
from bot.dialogue.conversation import local_today
from bot.domain.arrangements import total_paid
from bot.domain.booking import Booking
from bot.domain.ledger import Account, overdue
from bot.field import report as visit_report
from bot.field.visits import (
    ABILITY,
    ARRIVAL_CHECKS,
    CHECKLIST,
    INTERVIEW,
    OUTCOMES,
    RESULTS,
    WILLINGNESS,
    StaleVisit,
    Visit,
    VisitError,
    ledger_figures,
    read_arrival,
    read_draft,
)
from bot.services import Services

log = logging.getLogger(__name__)

BOOKING = r"{booking:v[0-9a-f]{16}}"
REPORTS = {"pdf": "application/pdf", "html": "text/html"}
# The stored HTML report has its own inline style and no script; nothing else may load.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"


def add_to(app: web.Application) -> None:
    app.router.add_get("/agent/visits", visits_page)
    app.router.add_get(f"/agent/visits/{BOOKING}", visit_page)
    app.router.add_post(f"/agent/visits/{BOOKING}/arrival", arrival)
    app.router.add_post(f"/agent/visits/{BOOKING}/draft", draft)
    app.router.add_post(f"/agent/visits/{BOOKING}/submit", submit)
    app.router.add_post(f"/agent/visits/{BOOKING}/addendum", addendum)
    app.router.add_get(f"/agent/visits/{BOOKING}/report.{{language:zh|en}}.{{kind:pdf|html}}", report)


# --- the day's visits ----------------------------------------------------------------------------


async def visits_page(request: web.Request) -> web.Response:
    """A day's visits: a field officer's own, or every team's for a supervisor."""
    svc, session = services_of(request), session_of(request)
    zone = _home_zone(svc, session.staff_id)
    try:
        day = date.fromisoformat(request.query["day"]) if request.query.get("day") else datetime.now(zone).date()
    except ValueError:
        raise web.HTTPBadRequest(text="day must be a date such as 2026-12-01") from None
    bookings = [b for b in await svc.bookings.bookings_on(day)
                if session.supervisor or session.staff_id in {s.staff_id for s in b.staff}]
    rows = [await _row(svc, booking) for booking in bookings]
    await audit_event(request, "view_visits", day=day.isoformat())
    return render(request, "visits.html", day=day, rows=rows, previous=day - timedelta(days=1),
                  next=day + timedelta(days=1), flash=shown_flash(request))


async def _row(svc: Services, booking: Booking) -> dict[str, Any]:
    account = await svc.ledger.get(booking.account_id)
    visit = await svc.field_visits.find(booking.booking_id)
    return {"booking": booking, "name": account.name if account else "", "state": visit.state if visit else "new",
            "language": booking.details.get("language") or (account.language if account else "")}


def _home_zone(svc: Services, staff_id: str) -> ZoneInfo:
    """The time zone of the officer's region: "today" is their today (a supervisor's, the bank's)."""
    region = svc.bookings.field_teams.region_of_staff(staff_id)
    return region.zone if region else svc.settings.bank_zone


# --- one visit -----------------------------------------------------------------------------------


async def _visit(request: web.Request, write: bool = False) -> tuple[Visit, Account]:
    """The visit and its account, if this session may see it (or fill it in, with ``write``).

    Raises:
        web.HTTPNotFound: no such booking or visit record.
        web.HTTPForbidden: not one of the visit's staff (a supervisor reads, and only staff write).
        web.HTTPGone: writing to a visit whose booking was cancelled or rescheduled.
    """
    svc, session = services_of(request), session_of(request)
    booking_id = request.match_info["booking"]
    visit = await svc.field_visits.find(booking_id)
    if visit is None:
        booking = await svc.bookings.booking(booking_id)
        if booking is None:
            raise web.HTTPNotFound(text="no such visit")
        visit = await svc.field_visits.get(booking)
    if session.staff_id not in visit.staff_ids() and not (session.supervisor and not write):
        await audit_event(request, "denied", booking=booking_id)
        raise web.HTTPForbidden(text="only the staff booked on this visit can " + ("fill it in" if write else "see it"))
    if write and await svc.bookings.booking(booking_id) is None:  # cancelled or moved: its new booking is the visit
        raise web.HTTPGone(text="this visit was cancelled or rescheduled; open the visit from today's list")
    account = await svc.ledger.get(visit.record["booking"]["account_id"])
    if account is None:
        raise web.HTTPNotFound(text="the visit's account is no longer in the ledger")
    return visit, account


async def visit_page(request: web.Request) -> web.Response:
    visit, account = await _visit(request)
    await _settle(services_of(request), visit, account)
    await audit_event(request, "view_visit", booking=visit.booking_id, account_id=account.account_id)
    session = session_of(request)
    booking = visit.booking
    zone = booking.slot.start.tzinfo
    return render(
        request, "visit.html", visit=visit, booking=booking, account=account,
        ledger=visit.record.get("ledger") or ledger_figures(account, booking.slot.start.date()),
        mine=session.staff_id in visit.staff_ids(), flash=shown_flash(request), labels=visit_report.labels(),
        checks=ARRIVAL_CHECKS, checklist=CHECKLIST, results=RESULTS, interview=INTERVIEW, willingness=WILLINGNESS,
        ability=ABILITY, outcomes=OUTCOMES, zone=zone, today=local_today(account),
    )


async def arrival(request: web.Request) -> web.Response:
    """How the visit began: ID shown, purpose said, the borrower's consent to the visit and to entry."""
    visit, account = await _visit(request, write=True)
    form = await request.post()
    figures = ledger_figures(account, visit.booking.slot.start.date())
    try:
        await services_of(request).field_visits.arrive(visit, read_arrival(form, visit.booking), figures,
                                                      _recorder(request))
    except VisitError as exc:
        raise _back(visit, "invalid", detail=str(exc)) from None
    except StaleVisit:
        raise _back(visit, "visit_stale") from None
    raise _back(visit, "visit_arrived")


async def draft(request: web.Request) -> web.Response:
    """Save what is filled in so far: JSON for the page's autosave, a redirect for the plain form."""
    visit, account = await _visit(request, write=True)
    wants_json = "application/json" in request.headers.get("Accept", "")
    try:
        saved = await _save(request, visit)
    except VisitError as exc:
        if wants_json:
            return web.json_response({"error": str(exc)}, status=400)
        raise _back(visit, "invalid", detail=str(exc)) from None
    except StaleVisit:
        if wants_json:  # the same words the redirect shows (bot/console/templates/flash.yml)
            return web.json_response({"error": flash_text({"m": "visit_stale"})}, status=409)
        raise _back(visit, "visit_stale") from None
    if wants_json:
        return web.json_response({"version": saved.version, "saved_at": datetime.now(_zone(saved)).strftime("%H:%M")})
    raise _back(saved, "visit_saved")


async def _save(request: web.Request, visit: Visit) -> Visit:
    form = await request.post()
    if str(form.get("version", "")) != str(visit.version):
        raise StaleVisit
    return await services_of(request).field_visits.save_draft(visit, read_draft(form), _recorder(request))


async def submit(request: web.Request) -> web.Response:
    """Save the form, make the record final, apply its outcome, and write the reports."""
    visit, account = await _visit(request, write=True)
    svc = services_of(request)
    try:
        saved = await _save(request, visit)
        submitted = await svc.field_visits.submit(saved, _recorder(request), local_today(account),
                                                  svc.settings.promise_max_days)
    except VisitError as exc:
        raise _back(visit, "invalid", detail=str(exc)) from None
    except StaleVisit:
        raise _back(visit, "visit_stale") from None
    await _settle(svc, submitted, account)
    raise _back(submitted, "visit_submitted")


async def _settle(svc: Services, visit: Visit, account: Account) -> None:
    """Apply a submitted visit's outcome and write its reports, once both are done; until then, again
    on the next read (each step is safe to repeat)."""
    if visit.state != "submitted" or visit.settled:
        return
    await _apply_outcome(svc, visit, account)
    if await _write_reports(svc, visit, account):
        await svc.field_visits.settled(visit)


async def _apply_outcome(svc: Services, visit: Visit, account: Account) -> None:
    """A promise is recorded like the bot's; a payment on the spot is a claim an agent checks against the ledger."""
    outcome, booking = visit.record["outcome"], visit.booking
    if outcome["code"] == "promise":
        await svc.records.promise(account.account_id, booking.conversation_id, date.fromisoformat(outcome["date"]),
                                  overdue(account, local_today(account)).amount, total_paid(account))
    elif outcome["code"] == "paid_on_spot":
        await svc.records.paid_claim(account.account_id, booking.conversation_id)


async def addendum(request: web.Request) -> web.Response:
    """A correction to a submitted record, by its staff or a supervisor; the reports are written again."""
    visit, account = await _visit(request)
    form = await request.post()
    try:
        visit = await services_of(request).field_visits.add_addendum(visit, str(form.get("text", "")),
                                                                     _recorder(request))
    except VisitError as exc:
        raise _back(visit, "invalid", detail=str(exc)) from None
    await _write_reports(services_of(request), visit, account)
    raise _back(visit, "visit_addendum")


async def report(request: web.Request) -> web.Response:
    """The written report of a submitted visit, decrypted for its staff and supervisors; each read audited."""
    visit, account = await _visit(request)
    if visit.state != "submitted":
        raise web.HTTPNotFound(text="the report is written when the visit is submitted")
    language, kind = request.match_info["language"], request.match_info["kind"]
    svc = services_of(request)
    await _settle(svc, visit, account)
    name = f"{language}.{kind}"
    data = await svc.field_visits.report(visit.booking_id, name)
    if data is None:  # settled, but the reports were lost since
        data = (await _write_reports(svc, visit, account)).get(name)
    if data is None:
        raise web.HTTPServiceUnavailable(text="the report could not be written; try again shortly")
    await audit_event(request, "view_visit_report", booking=visit.booking_id, report=name)
    response = web.Response(body=data, content_type=REPORTS[kind], charset="utf-8" if kind == "html" else None)
    response.headers["Content-Disposition"] = (
        f'{"attachment" if kind == "pdf" else "inline"}; filename="visit-{visit.booking_id}-{language}.{kind}"')
    response.headers["Content-Security-Policy"] = REPORT_CSP
    return response


async def _write_reports(svc: Services, visit: Visit, account: Account) -> dict[str, bytes]:
    """Render the zh and en reports off the event loop and keep them sealed; {} if rendering failed."""
    try:
        async with visit_report.RENDERING:
            reports = await asyncio.to_thread(visit_report.render_all, visit, account,
                                              datetime.now(ZoneInfo(account.timezone)))
    except Exception as exc:  # noqa: BLE001 - the record is safe; the report is written again when read
        log.error("visit report for %s not written: %s", visit.booking_id, type(exc).__name__)
        return {}
    await svc.field_visits.store_reports(visit.booking_id, reports)
    return reports


def _recorder(request: web.Request) -> str:
    """Who the record names: an officer by staff id (the report gives their name), a supervisor by username."""
    session = session_of(request)
    return session.staff_id or session.username


def _zone(visit: Visit) -> ZoneInfo:
    return ZoneInfo(visit.record["booking"]["timezone"])


def _back(visit: Visit, code: str, **values: object) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/agent/visits/{visit.booking_id}?" + urlencode({"m": code, **values}))
