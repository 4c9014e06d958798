"""Field visits in the console: who may see and fill them, consent before entry, draft, submit, addendum,
the encrypted reports and their retention.

The gateway runs in-process as in tests/test_console.py; the visit is booked through bot.domain.booking on
the real Redis. The phone-sized browser test is tests/integration/test_field_browser.py.
"""

# ruff: noqa: F811 - `world` is test_console's fixture, imported so that pytest finds it here

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pypdf
import pytest

from bot.core import keys
from bot.core.crypto import pseudonym
from bot.domain.booking import Booking, Bookings, Slot, slots_on
from bot.field import report as visit_report
from bot.field.visits import CHECKLIST, FieldVisits
from tests.test_console import PASSWORD, Desk, World, audit_events, flash, world  # noqa: F401 - the fixture

ACCOUNT = "CN001"  # 张伟, region SH in samples/accounts.csv
ADDRESS = "上海市浦东新区世纪大道100号"


class FieldDesk(Desk):
    """A field officer's or supervisor's phone: the CSRF token comes from the visits page."""

    async def login(self, username: str, password: str = PASSWORD) -> Any:
        page = await self.client.get("/agent/login")
        token = page.cookies["__Host-console-login"].value
        response = await self.client.post("/agent/login", allow_redirects=False, headers={
            "Cookie": f"__Host-console-login={token}"}, data={"username": username, "password": password,
                                                              "csrf": token})
        self.cookie = response.cookies["__Host-console"].value
        html = await (await self.get("/agent/visits")).text()
        self.csrf = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        return response


@pytest.fixture
async def booked(world: World) -> AsyncIterator[tuple[World, Booking]]:
    """A home visit for CN001 on the next working day, by team SH-T1 (SH-0417, SH-0522); field accounts."""
    svc = world.services
    for username, staff_id in (("wang", "SH-0417"), ("chen", "SH-0522"), ("liu", "SH-0608")):
        await svc.agents.add(username, PASSWORD, "field", staff_id)
    slot = next_working_day_slots(svc.bookings, "SH")[0]
    account = await svc.ledger.get(ACCOUNT)
    assert account is not None
    conversation = pseudonym(account.phone, svc.settings.hmac_secret)
    details = {"place": "home", "address": ADDRESS, "language": "zh"}
    booking = await svc.bookings.book(conversation, ACCOUNT, slot, details, now=slot.start - timedelta(days=1))
    assert booking is not None and {s.staff_id for s in booking.staff} == {"SH-0417", "SH-0522"}
    yield world, booking


def next_working_day_slots(bookings: Bookings, region_code: str) -> list[Slot]:
    """The region's visit slots on its next working day after today."""
    region = bookings.field_teams.region(region_code)
    assert region is not None
    day = datetime.now(region.zone).date() + timedelta(days=1)
    while not slots_on(region, day):
        day += timedelta(days=1)
    return slots_on(region, day)


async def desk(world: World, username: str) -> FieldDesk:
    field_desk = FieldDesk(world.client)
    await field_desk.login(username)
    return field_desk


def arrival_form(**overrides: str) -> dict[str, Any]:
    form: dict[str, Any] = {"result": "consented", "id_shown": "yes", "purpose_stated": "yes", "visit_agreed": "yes",
                            "entry_agreed": "yes"}
    form.update(overrides)
    return form


async def arrive(field_desk: FieldDesk, booking: Booking, staff: tuple[str, ...] = ("SH-0417", "SH-0522"),
                 **overrides: str) -> Any:
    data = [("csrf", field_desk.csrf), *arrival_form(**overrides).items(), *(("staff_present", s) for s in staff)]
    return await field_desk.client.post(f"/agent/visits/{booking.booking_id}/arrival", data=data, allow_redirects=False,
                                        headers={"Cookie": f"__Host-console={field_desk.cookie}"})


def complete_form(promise_day: str, version: int) -> dict[str, str]:
    form = {f"{item}.result": "matches" for item in CHECKLIST}
    form.update({"household_register.result": "discrepancy", "household_register.note": "户口本地址与申报不符",
                 "asset_proof.result": "not_available", "contract.amount": "12000.00", "contract.term_months": "12",
                 "contract.annual_rate": "7.2", "income_proof.stamp": "yes", "income_proof.signer": "人事部 李明",
                 "interview.occupation": "软件工程师", "interview.monthly_income": "15000",
                 "interview.delinquency_reason": "家人住院，医疗开支大", "interview.willingness": "willing",
                 "interview.ability": "partial", "outcome.code": "promise", "outcome.date": promise_day,
                 "version": str(version)})
    return form


async def version(world: World, booking: Booking) -> int:
    return int(await world.services.redis.hget(keys.field_visit(booking.booking_id), "version") or 0)


def promise_day(days: int = 3) -> str:
    """A day ``days`` after today where 张伟 lives."""
    return (datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=days)).isoformat()


async def submitted(world: World, booking: Booking) -> FieldDesk:
    wang = await desk(world, "wang")
    assert (await arrive(wang, booking)).status == 303
    response = await wang.post(f"/agent/visits/{booking.booking_id}/submit",
                               **complete_form(promise_day(), await version(world, booking)))
    assert flash(response).startswith("Submitted"), flash(response)
    return wang


# --- who sees what -------------------------------------------------------------------------------


async def test_field_staff_see_only_their_own_visits(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    day = booking.slot.start.date().isoformat()
    for username in ("wang", "chen"):
        page = await (await (await desk(world, username)).get(f"/agent/visits?day={day}")).text()
        assert booking.booking_id in page and ADDRESS in page and "张伟" in page
    liu = await desk(world, "liu")  # a field officer of another team
    assert booking.booking_id not in await (await liu.get(f"/agent/visits?day={day}")).text()
    assert (await liu.get(f"/agent/visits/{booking.booking_id}")).status == 403
    assert (await arrive(liu, booking, staff=("SH-0608", "SH-0731"))).status == 403
    assert await world.services.field_visits.find(booking.booking_id) is None
    assert any(e["event"] == "denied" and e.get("booking") == booking.booking_id for e in await audit_events(world))


async def test_field_staff_cannot_open_the_queue_or_conversations(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await desk(world, "wang")
    assert (await wang.get("/agent/")).headers["Location"] == "/agent/visits"
    for path in ("/agent/queue/rows", f"/agent/c/{booking.conversation_id}", "/agent/ws"):
        assert (await wang.get(path)).status == 403, path
    assert (await wang.post(f"/agent/c/{booking.conversation_id}/claim")).status == 403


async def test_agents_see_no_visits(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    alice = Desk(world.client)
    await alice.login("alice")
    for path in ("/agent/visits", f"/agent/visits/{booking.booking_id}"):
        assert (await alice.get(path)).status == 403, path


async def test_supervisors_read_every_visit_but_only_its_staff_fill_it_in(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    sue = await desk(world, "sue")
    day = booking.slot.start.date().isoformat()
    assert booking.booking_id in await (await sue.get(f"/agent/visits?day={day}")).text()
    assert (await sue.get(f"/agent/visits/{booking.booking_id}")).status == 200
    assert (await arrive(sue, booking)).status == 403


async def test_no_visit_page_without_a_session(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    for path in ("/agent/visits", f"/agent/visits/{booking.booking_id}",
                 f"/agent/visits/{booking.booking_id}/report.zh.pdf"):
        response = await world.client.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/agent/login", path
    for action in ("arrival", "draft", "submit", "addendum"):
        assert (await world.client.post(f"/agent/visits/{booking.booking_id}/{action}")).status == 401


async def test_an_unknown_visit_is_not_found(booked: tuple[World, Booking]) -> None:
    world, _ = booked
    assert (await (await desk(world, "wang")).get("/agent/visits/v0000000000000000")).status == 404


# --- consent before entry ------------------------------------------------------------------------


async def test_no_checklist_before_consent_to_entry(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await desk(world, "wang")
    page = await (await wang.get(f"/agent/visits/{booking.booking_id}")).text()
    assert 'id="arrival-form"' in page and "id_card.result" not in page
    response = await wang.post(f"/agent/visits/{booking.booking_id}/draft", headers={"Accept": "application/json"},
                               **{"id_card.result": "matches", "version": "0"})
    assert response.status == 400 and "how the visit began" in (await response.json())["error"]
    assert await world.services.field_visits.find(booking.booking_id) is None


@pytest.mark.parametrize(("overrides", "staff", "problem"), [
    ({"entry_agreed": ""}, ("SH-0417", "SH-0522"), "entry_agreed"),
    ({"id_shown": ""}, ("SH-0417", "SH-0522"), "id_shown"),
    ({}, ("SH-0417",), "at least 2 staff"),
    ({}, ("SH-0417", "SH-0417"), "at least 2 staff"),
    ({}, ("SH-0417", "SH-0608"), "only the staff booked"),
    ({"result": "maybe"}, ("SH-0417", "SH-0522"), "say whether"),
])
async def test_arrival_needs_every_confirmation_and_two_booked_staff(
        booked: tuple[World, Booking], overrides: dict[str, str], staff: tuple[str, ...], problem: str) -> None:
    world, booking = booked
    response = await arrive(await desk(world, "wang"), booking, staff, **overrides)
    assert problem in flash(response)
    assert await world.services.field_visits.find(booking.booking_id) is None


async def test_a_refused_visit_records_no_findings_and_cannot_end_in_a_promise(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await desk(world, "wang")
    assert "at least 2 staff" in flash(await arrive(wang, booking, staff=("SH-0417",), result="refused"))
    assert "Arrival recorded" in flash(await arrive(wang, booking, result="refused"))  # no confirmations needed
    page = await (await wang.get(f"/agent/visits/{booking.booking_id}")).text()
    assert "id_card.result" not in page and "did not go ahead" in page
    found = await wang.post(f"/agent/visits/{booking.booking_id}/draft", headers={"Accept": "application/json"},
                            **{"interview.occupation": "司机", "version": "1"})
    assert found.status == 400
    promised = await wang.post(f"/agent/visits/{booking.booking_id}/submit",
                               **{"outcome.code": "promise", "outcome.date": promise_day(), "version": "1"})
    assert "needs a visit that went ahead" in flash(promised)
    follow_up = await wang.post(f"/agent/visits/{booking.booking_id}/submit",
                                **{"outcome.code": "follow_up_visit", "outcome.date": promise_day(7),
                                   "version": str(await version(world, booking))})  # the failed submit saved
    assert flash(follow_up).startswith("Submitted")


# --- draft, submit, addendum ---------------------------------------------------------------------


async def test_drafts_save_as_the_visitor_goes_and_a_stale_copy_is_refused(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang, chen = await desk(world, "wang"), await desk(world, "chen")
    await arrive(wang, booking)
    path = f"/agent/visits/{booking.booking_id}/draft"
    saved = await wang.post(path, headers={"Accept": "application/json"},
                            **{"id_card.result": "matches", "id_card.note": "原件", "version": "1"})
    assert saved.status == 200 and (await saved.json())["version"] == 2
    stale = await chen.post(path, headers={"Accept": "application/json"}, **{"id_card.result": "discrepancy",
                                                                             "version": "1"})
    assert stale.status == 409
    visit = await world.services.field_visits.find(booking.booking_id)
    assert visit is not None and visit.state == "draft" and visit.record["checklist"]["id_card"] == {
        "result": "matches", "note": "原件"}
    page = await (await chen.get(f"/agent/visits/{booking.booking_id}")).text()
    assert 'value="matches" checked' in page and "原件" in page  # the other phone reads what was saved
    assert "by 王磊 SH-0417" in page and "present: 王磊 SH-0417, 陈静 SH-0522" in page


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("outcome.date", "2026-02-30", "real date"),
    ("id_card.result", "looks fine", "must be one of"),
    ("contract.amount", "12,000元", "an amount"),
    ("contract.term_months", "-3", "whole number"),
    ("id_card.note", "x" * 1001, "at most 1000"),
])
async def test_malformed_fields_are_refused_and_nothing_is_saved(booked: tuple[World, Booking], field: str,
                                                                 value: str, problem: str) -> None:
    world, booking = booked
    wang = await desk(world, "wang")
    await arrive(wang, booking)
    response = await wang.post(f"/agent/visits/{booking.booking_id}/draft", headers={"Accept": "application/json"},
                               **{field: value, "version": "1"})
    assert response.status == 400 and problem in (await response.json())["error"]
    assert await version(world, booking) == 1


async def test_an_incomplete_record_cannot_be_submitted(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await desk(world, "wang")
    await arrive(wang, booking)
    response = await wang.post(f"/agent/visits/{booking.booking_id}/submit",
                               **{"id_card.result": "matches", "outcome.code": "promise", "version": "1"})
    message = flash(response)
    assert "household_register.result" in message and "interview.willingness" in message
    assert "outcome.date: required" in message
    visit = await world.services.field_visits.find(booking.booking_id)
    assert visit is not None and visit.state == "draft"  # what was filled in is kept


async def test_a_promise_beyond_the_allowed_window_is_refused(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await desk(world, "wang")
    await arrive(wang, booking)
    response = await wang.post(f"/agent/visits/{booking.booking_id}/submit", **complete_form(promise_day(60), 1))
    assert "outcome.date: must be from" in flash(response)


async def test_a_submitted_record_is_final_and_corrected_by_addenda(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await submitted(world, booking)
    again = await wang.post(f"/agent/visits/{booking.booking_id}/draft", headers={"Accept": "application/json"},
                            **{"id_card.result": "discrepancy", "version": str(await version(world, booking))})
    assert again.status == 409
    assert (await arrive(wang, booking)).status == 303  # refused as stale, nothing changes
    sue = await desk(world, "sue")
    assert flash(await sue.post(f"/agent/visits/{booking.booking_id}/addendum",
                                text="户口本已补交，地址一致")).startswith("Addendum")
    assert "1 to 2000" in flash(await wang.post(f"/agent/visits/{booking.booking_id}/addendum", text=""))
    visit = await world.services.field_visits.find(booking.booking_id)
    assert visit is not None and visit.state == "submitted"
    assert visit.record["checklist"]["id_card"]["result"] == "matches"
    assert [(a["by"], a["text"]) for a in visit.addenda] == [("sue", "户口本已补交，地址一致")]
    events = [e["event"] for e in await audit_events(world)]
    assert {"visit_arrival", "visit_submitted", "visit_addendum", "view_visits"} <= set(events)


async def test_an_addendum_needs_a_submitted_record(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await desk(world, "wang")
    await arrive(wang, booking)
    response = await wang.post(f"/agent/visits/{booking.booking_id}/addendum", text="更正")
    assert "only a submitted record" in flash(response)


async def test_a_promise_outcome_is_recorded_for_reminders_and_screening(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    await submitted(world, booking)
    promise = await world.services.records.get_promise(ACCOUNT)
    assert promise is not None and promise["date"] == promise_day()
    outcomes = await world.services.field_visits.outcomes(ACCOUNT)
    assert [(o["code"], o["went_ahead"]) for o in outcomes] == [("promise", True)]


async def test_the_console_shows_the_visit_outcome_beside_the_conversation(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    await submitted(world, booking)
    sue = Desk(world.client)
    await sue.login("sue")
    page = await (await sue.get(f"/agent/c/{booking.conversation_id}")).text()
    assert f"promise ({promise_day()})" in page.split('id="visit-outcomes">', 1)[1].split("</dd>", 1)[0]
    assert "户口本地址与申报不符" not in page  # what the visitors wrote stays in the record


async def test_a_payment_on_the_spot_is_a_claim_an_agent_checks(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await desk(world, "wang")
    await arrive(wang, booking)
    form = {**complete_form(promise_day(), 1), "outcome.code": "paid_on_spot", "outcome.amount": "800.00",
            "outcome.date": ""}
    assert flash(await wang.post(f"/agent/visits/{booking.booking_id}/submit", **form)).startswith("Submitted")
    assert await world.services.redis.hexists(keys.paid_claim(ACCOUNT), "at")
    item = await world.services.handoffs.item(booking.conversation_id)
    assert item is not None and item.reason == "already_paid"


async def test_a_cancelled_or_rescheduled_booking_takes_no_more_entries(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await desk(world, "wang")
    assert (await arrive(wang, booking)).status == 303
    await world.services.bookings.cancel(ACCOUNT)
    path = f"/agent/visits/{booking.booking_id}"
    assert (await wang.post(f"{path}/submit", **complete_form(promise_day(), 1))).status == 410
    assert (await wang.post(f"{path}/draft", **{"id_card.result": "matches", "version": "1"})).status == 410
    assert (await wang.get(path)).status == 200  # what was recorded can still be read
    assert await world.services.records.get_promise(ACCOUNT) is None


async def test_nothing_is_saved_before_arrival_and_no_payment_after_a_refusal(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await desk(world, "wang")
    path = f"/agent/visits/{booking.booking_id}/draft"
    early = await wang.post(path, headers={"Accept": "application/json"},
                            **{"outcome.code": "legal_review", "version": "0"})
    assert early.status == 400 and await world.services.field_visits.find(booking.booking_id) is None
    await arrive(wang, booking, result="refused")
    paid = await wang.post(path, headers={"Accept": "application/json"},
                           **{"outcome.amount": "5000", "outcome.months": "6", "version": "1"})
    assert paid.status == 400 and "consent to entry" in (await paid.json())["error"]


async def test_a_whole_record_in_chinese_fits_in_one_form(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await desk(world, "wang")
    await arrive(wang, booking)
    long_text = "借款人说明情况" * 142  # 994 characters, nine bytes each once %-encoded
    form = {f"{item}.note": long_text for item in CHECKLIST}
    form.update({f"interview.{name}": long_text for name in ("occupation", "family_members", "summary")})
    form["version"] = "1"
    response = await wang.post(f"/agent/visits/{booking.booking_id}/draft", headers={"Accept": "application/json"},
                               **form)
    assert response.status == 200, await response.text()
    visit = await world.services.field_visits.find(booking.booking_id)
    assert visit is not None and visit.record["interview"]["summary"] == long_text


async def test_an_outcome_whose_report_failed_is_settled_on_the_next_read(booked: tuple[World, Booking],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    world, booking = booked

    def broken(*_: Any) -> dict[str, bytes]:
        raise OSError("no fonts")

    monkeypatch.setattr(visit_report, "render_all", broken)
    wang = await submitted(world, booking)
    visit = await world.services.field_visits.find(booking.booking_id)
    assert visit is not None and visit.state == "submitted" and not visit.settled
    assert await world.services.records.get_promise(ACCOUNT) is not None  # the outcome applied all the same
    monkeypatch.undo()
    assert (await wang.get(f"/agent/visits/{booking.booking_id}")).status == 200
    visit = await world.services.field_visits.find(booking.booking_id)
    assert visit is not None and visit.settled
    assert await world.services.field_visits.report(booking.booking_id, "en.pdf")


# --- the report ----------------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


async def test_the_report_is_stored_encrypted_and_each_read_is_audited(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await submitted(world, booking)
    stored = await world.services.redis.hgetall(keys.field_visit_report(booking.booking_id))
    assert set(stored) == {b"zh.pdf", b"zh.html", b"en.pdf", b"en.html"}
    assert all(b"%PDF" not in value and "张伟".encode() not in value for value in stored.values())
    raw = await world.services.redis.hget(keys.field_visit(booking.booking_id), "record")
    assert "张伟".encode() not in raw and ADDRESS.encode() not in raw
    response = await wang.get(f"/agent/visits/{booking.booking_id}/report.zh.pdf")
    assert response.status == 200 and response.content_type == "application/pdf"
    text = pdf_text(await response.read())
    assert "张伟" in text and "王磊" in text and "户口本地址与申报不符" in text
    html = await (await wang.get(f"/agent/visits/{booking.booking_id}/report.en.html")).text()
    assert "Zhang" in html or "张伟" in html
    reads = [e for e in await audit_events(world) if e["event"] == "view_visit_report"]
    assert [e["report"] for e in reads] == ["zh.pdf", "en.html"] and all(e["agent"] == "wang" for e in reads)


async def test_the_html_report_may_not_run_or_load_anything(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await submitted(world, booking)
    response = await wang.get(f"/agent/visits/{booking.booking_id}/report.zh.html")
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_reports_are_for_the_visits_staff_and_supervisors_only(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    await submitted(world, booking)
    path = f"/agent/visits/{booking.booking_id}/report.en.pdf"
    assert (await (await desk(world, "liu")).get(path)).status == 403
    assert (await (await desk(world, "chen")).get(path)).status == 200
    assert (await (await desk(world, "sue")).get(path)).status == 200
    alice = Desk(world.client)
    await alice.login("alice")
    assert (await alice.get(path)).status == 403


async def test_no_report_before_submission(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    wang = await desk(world, "wang")
    await arrive(wang, booking)
    assert (await wang.get(f"/agent/visits/{booking.booking_id}/report.zh.pdf")).status == 404


# --- retention -----------------------------------------------------------------------------------


async def test_records_and_reports_are_kept_for_the_configured_period(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    await submitted(world, booking)
    retention = world.services.settings.visit_record_retention_days * 86400
    for key in (keys.field_visit(booking.booking_id), keys.field_visit_report(booking.booking_id),
                keys.field_visit_outcomes(ACCOUNT)):
        assert retention - 60 < await world.services.redis.ttl(key) <= retention, key


async def test_visit_outcomes_older_than_the_retention_period_are_neither_shown_nor_kept(
        booked: tuple[World, Booking]) -> None:
    world, booking = booked
    svc = world.services
    old = {"code": "legal_review", "at": svc.field_visits.oldest_kept() - 60, "booking_id": "v_old",
           "went_ahead": False, "date": ""}
    await svc.redis.zadd(keys.field_visit_outcomes(ACCOUNT), {svc.vault.seal(old): old["at"]})
    assert await svc.field_visits.outcomes(ACCOUNT) == []
    await submitted(world, booking)
    assert [o["code"] for o in await svc.field_visits.outcomes(ACCOUNT)] == ["promise"]
    assert await svc.redis.zcard(keys.field_visit_outcomes(ACCOUNT)) == 1  # the old one was trimmed


async def test_records_reports_and_addenda_are_deleted_when_retention_ends(booked: tuple[World, Booking]) -> None:
    world, booking = booked
    svc = world.services
    visits = FieldVisits(svc.redis, svc.vault, retention_seconds=1)
    visit = await visits.arrive(await visits.get(booking), {"result": "not_home"}, {}, "SH-0417")
    visit = await visits.save_draft(visit, {"outcome": {"code": "follow_up_visit", "date": promise_day(7)}}, "wang")
    visit = await visits.submit(visit, "wang", datetime.now(ZoneInfo("Asia/Shanghai")).date(), 14)
    await visits.add_addendum(visit, "邻居说他出差了", "wang")
    await visits.store_reports(booking.booking_id, {"zh.pdf": b"%PDF-1.7 sample"})
    assert await visits.report(booking.booking_id, "zh.pdf") == b"%PDF-1.7 sample"
    for _ in range(40):
        if not await svc.redis.exists(keys.field_visit(booking.booking_id)):
            break
        await asyncio.sleep(0.1)
    assert await visits.find(booking.booking_id) is None
    assert await visits.report(booking.booking_id, "zh.pdf") is None
    assert not await svc.redis.exists(keys.field_visit_addenda(booking.booking_id))
    wang = await desk(world, "wang")
    # the booking stands, its record is gone
    assert (await wang.get(f"/agent/visits/{booking.booking_id}/report.zh.pdf")).status == 404
