"""A field officer records a visit on a phone-sized screen, on the real stack.

Headless Chromium emulating a 390 x 844 phone: sign in, the day's visits, arrival and consent,
the checklist (which only appears after consent), a draft that survives a lost connection, the
interview, the outcome, submission, and the report PDF. The checklist's screenshot goes to
docs/ when UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pypdf
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from bot.core.crypto import pseudonym
from bot.core.settings import Settings
from bot.domain.booking import Booking
from bot.services import Services
from tests.integration.conftest import Borrower
from tests.integration.test_console_browser import PASSWORD, screenshot
from tests.test_field_visits import next_working_day_slots

ADDRESS = "上海市静安区南京西路1266号"


@pytest.fixture
async def visit(stack: Settings, daytime: tuple[Borrower, Borrower]) -> AsyncIterator[tuple[Services, Booking]]:
    """A home visit for D1 (Chinese) on region SH's next working day, and its two officers' accounts."""
    svc = Services(stack)
    for username, staff_id in (("wang", "SH-0417"), ("chen", "SH-0522")):
        if await svc.agents.role(username) is None:
            await svc.agents.add(username, PASSWORD, "field", staff_id)
    slot = next_working_day_slots(svc.bookings, "SH")[-1]
    conversation = pseudonym(daytime[1].phone, stack.hmac_secret)
    booking = await svc.bookings.book(conversation, "D1", slot, {"place": "home", "address": ADDRESS, "language": "zh"},
                                      now=slot.start - timedelta(days=1))
    assert booking is not None and "SH-0417" in {s.staff_id for s in booking.staff}
    yield svc, booking
    await svc.bookings.cancel("D1")
    await svc.close()


def wait_for(browser: webdriver.Chrome, element_id: str, text: str, seconds: float = 10) -> None:
    def shows(driver: webdriver.Chrome) -> bool:
        try:
            return text in driver.find_element(By.ID, element_id).text
        except WebDriverException:  # the page re-rendered the element while it was read: look again
            return False

    WebDriverWait(browser, seconds).until(shows)


def after_load(browser: webdriver.Chrome, seconds: float = 10) -> WebDriverWait:
    """A wait across a page load: while the old page goes, Chrome may answer that a node "does not
    belong to the document"; that is the page changing, so look again."""
    return WebDriverWait(browser, seconds, ignored_exceptions=(WebDriverException,))


def tap(browser: webdriver.Chrome, css: str) -> None:
    """Scroll the control into view and tap it, as a thumb would. A node the page replaced while it
    was found is found again (the click had not happened, so nothing is tapped twice)."""
    def tapped(driver: webdriver.Chrome) -> bool:
        element = driver.find_element(By.CSS_SELECTOR, css)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()
        return True

    after_load(browser).until(tapped)


def fits_the_screen(browser: webdriver.Chrome) -> bool:
    return bool(browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth;"))


async def test_a_visit_is_recorded_on_a_phone(stack: Settings, phone_browser: webdriver.Chrome,
                                              visit: tuple[Services, Booking], tmp_path: Path) -> None:
    svc, booking = visit
    browser, base = phone_browser, f"http://127.0.0.1:{stack.gateway_port}"
    day = booking.slot.start.date().isoformat()
    browser.get(base + "/agent/")
    browser.find_element(By.NAME, "username").send_keys("wang")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    WebDriverWait(browser, 10).until(ready.url_contains("/agent/visits"))  # field staff land on their visits

    browser.get(f"{base}/agent/visits?day={day}")
    card = browser.find_element(By.CSS_SELECTOR, f"a[href='/agent/visits/{booking.booking_id}']")
    assert ADDRESS in card.text and "中文" in card.text and "not started" in card.text
    assert fits_the_screen(browser)
    card.click()

    # Consent first: no checklist on the page until the borrower agrees to the visit and to entry.
    after_load(browser).until(ready.presence_of_element_located((By.ID, "arrival-form")))
    assert not browser.find_elements(By.NAME, "id_card.result")
    for check in ("id_shown", "purpose_stated", "visit_agreed", "entry_agreed"):
        tap(browser, f"#{check}")
    for staff in booking.staff:
        tap(browser, f"input[name=staff_present][value='{staff.staff_id}']")
    tap(browser, "#consented")
    wait_for(browser, "visit-state", "draft")

    for item, result in (("id_card", "matches"), ("household_register", "discrepancy"),
                         ("marriage_certificate", "matches"), ("loan_contract", "matches"),
                         ("income_proof", "matches"), ("asset_proof", "not_available")):
        tap(browser, f"input[name='{item}.result'][value='{result}']")
    browser.find_element(By.NAME, "contract.term_months").send_keys("1")
    wait_for(browser, "save-status", "Saved")
    assert fits_the_screen(browser)
    browser.execute_script("document.querySelector('.arrived').scrollIntoView();")
    screenshot(browser, tmp_path, "field-checklist.png")

    # The connection drops while a note is typed: the note waits on the phone and is saved once back.
    browser.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    note = browser.find_element(By.NAME, "household_register.note")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", note)
    note.send_keys("户口簿地址与合同不同")
    wait_for(browser, "save-status", "Offline")
    assert "户口簿地址与合同不同" in browser.execute_script("return JSON.stringify(localStorage);")
    browser.set_network_conditions(offline=False, latency=0, download_throughput=-1, upload_throughput=-1)
    wait_for(browser, "save-status", "Saved")  # back online: the phone's copy goes to the server
    stored = await svc.field_visits.find(booking.booking_id)
    assert stored is not None and stored.record["checklist"]["household_register"] == {
        "result": "discrepancy", "note": "户口簿地址与合同不同"}

    browser.find_element(By.NAME, "interview.occupation").send_keys("餐厅厨师")
    browser.find_element(By.NAME, "interview.delinquency_reason").send_keys("餐厅停业两个月，收入中断")
    tap(browser, "input[name='interview.willingness'][value='willing']")
    tap(browser, "input[name='interview.ability'][value='partial']")
    tap(browser, "input[name='outcome.code'][value='promise']")
    promised = (datetime.now().astimezone().date() + timedelta(days=5)).isoformat()
    browser.execute_script("document.getElementsByName('outcome.date')[0].value = arguments[0];", promised)
    tap(browser, "#submit-visit")
    try:
        after_load(browser, 15).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Submitted"))
    except TimeoutException:
        flashes = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".flash")]
        pytest.fail(f"not submitted: {flashes} at {browser.current_url}")
    assert "submitted" in browser.find_element(By.ID, "visit-state").text
    drafts_left = "return Object.keys(localStorage).filter(function (k) { return k.startsWith('visit-draft:'); });"
    assert browser.execute_script(drafts_left) == []  # nothing personal stays on the phone

    # The report, fetched with the officer's own session, names the discrepancy.
    cookie = browser.get_cookie("__Host-console")
    assert cookie is not None
    async with aiohttp.ClientSession() as http, http.get(
            f"{base}/agent/visits/{booking.booking_id}/report.zh.pdf",
            headers={"Cookie": f"__Host-console={cookie['value']}"}) as response:
        assert response.status == 200 and response.content_type == "application/pdf"
        pdf = await response.read()
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert "户口簿地址与合同不同" in text and "餐厅厨师" in text and "王磊" in text
    assert (await svc.records.get_promise("D1") or {}).get("date") == promised
