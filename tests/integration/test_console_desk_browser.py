"""The desk's features in a real browser on the real stack: offers to the agent on shift, reply clocks and
the supervisor's list of late replies, who else is looking, quick replies with the account's figures,
search by phone number, and the transcript exported as PDF.

The stack's desk works round the clock here (tests/integration/conftest.py writes its SLA file), so the
clocks run whenever the suite does. Screenshots go to the test's folder, and to docs/ when
UPDATE_SCREENSHOTS=1 (`make screenshots`).
"""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import aiohttp
import pypdf
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from bot.core import keys
from bot.core.crypto import pseudonym
from bot.core.settings import Settings
from bot.services import Services
from tests.integration.conftest import EN_BIRTH, Borrower, _chromium, text
from tests.integration.test_console_browser import (
    after_click,
    agents,
    screenshot,
    sign_in,
    standin_messages,
    wait_live,
)

__all__ = ["agents"]  # the fixture, used by name below


def base_of(stack: Settings) -> str:
    return f"http://127.0.0.1:{stack.gateway_port}"


def sign_out(browser: webdriver.Chrome) -> None:
    browser.find_element(By.CSS_SELECTOR, "form[action='/agent/logout'] button").click()
    after_click(browser).until(ready.url_contains("/agent/login"))


def open_conversation(browser: webdriver.Chrome, base: str, conversation: str) -> None:
    browser.get(f"{base}/agent/c/{conversation}")
    after_click(browser).until(ready.presence_of_element_located((By.ID, "transcript")))
    wait_live(browser)


def hand_back(browser: webdriver.Chrome) -> None:
    browser.find_element(By.ID, "hand-back").click()
    after_click(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Handed back"))


async def test_a_complaint_is_offered_to_the_agent_on_shift_and_its_late_reply_listed(
        stack: Settings, http: aiohttp.ClientSession, browser: webdriver.Chrome, agents: Services,
        desk_borrowers: tuple[Borrower, Borrower], tmp_path: Path) -> None:
    borrower = desk_borrowers[1]
    base, conversation = base_of(stack), pseudonym(borrower.phone, stack.hmac_secret)
    sign_in(browser, base, "alice")
    browser.find_element(By.ID, "shift-toggle").click()
    after_click(browser).until(ready.text_to_be_present_in_element((By.ID, "shift-state"), "On shift"))
    wait_live(browser)
    assert "工作人员" in await text(http, stack, borrower, "我要投诉，你们太过分了")
    row = f"tr[data-conversation='{conversation}']"
    WebDriverWait(browser, 15).until(ready.presence_of_element_located((By.CSS_SELECTOR, row + ".offered-mine")))
    # Twenty minutes ago, as far as the clock is concerned: a complaint's first reply is due in 15.
    await agents.redis.hset(keys.handoff(conversation), "since", int(time.time()) - 20 * 60)
    browser.refresh()
    cell = after_click(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, row + " td.sla-breached")))
    assert "first reply: 20 of 15 working min · over" in cell.text
    assert browser.find_element(By.CSS_SELECTOR, row + " td.offer").text == "you"
    screenshot(browser, tmp_path, "console-queue-sla.png")

    browser.find_element(By.CSS_SELECTOR, row + " button.claim").click()
    after_click(browser).until(ready.url_contains(f"/agent/c/{conversation}"))
    browser.find_element(By.ID, "reply-text").send_keys("非常抱歉让您久等了，我是Alice，马上为您处理。")
    browser.find_element(By.ID, "send").click()
    after_click(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Sent."))
    hand_back(browser)
    browser.find_element(By.ID, "shift-toggle").click()
    after_click(browser).until(ready.text_to_be_present_in_element((By.ID, "shift-state"), "Off shift"))
    sign_out(browser)

    sign_in(browser, base, "sue")
    browser.find_element(By.ID, "nav-sla").click()
    table = after_click(browser).until(ready.presence_of_element_located((By.ID, "breaches")))
    late = [r.text for r in table.find_elements(By.CSS_SELECTOR, "tbody tr") if "D3" in r.text]
    assert late and "complaint" in late[0] and "first reply: 20 of 15 min" in late[0] and "alice" in late[0]
    screenshot(browser, tmp_path, "console-sla.png")


async def test_the_holder_sees_a_supervisor_looking_and_fills_in_a_reply_with_the_amount(
        stack: Settings, http: aiohttp.ClientSession, browser: webdriver.Chrome, agents: Services,
        desk_borrowers: tuple[Borrower, Borrower], tmp_path: Path) -> None:
    borrower = desk_borrowers[0]
    base, conversation = base_of(stack), pseudonym(borrower.phone, stack.hmac_secret)
    assert "colleague will reply" in await text(http, stack, borrower, "can i talk to a real person pls")
    assert await agents.handoffs.claim(conversation, "alice")
    sign_in(browser, base, "alice")
    open_conversation(browser, base, conversation)
    assert browser.find_element(By.ID, "figures-hint").is_displayed()  # no figures before verification

    second = _chromium(tmp_path / "chromium-supervisor")
    try:
        sign_in(second, base, "sue")
        open_conversation(second, base, conversation)
        WebDriverWait(browser, 15).until(ready.text_to_be_present_in_element((By.ID, "viewers"), "sue (supervisor)"))
        WebDriverWait(second, 15).until(ready.text_to_be_present_in_element((By.ID, "viewers"), "alice"))
    finally:
        second.quit()

    assert await text(http, stack, borrower, f"my date of birth is {EN_BIRTH:%B} {EN_BIRTH.day}, {EN_BIRTH.year}") == ""
    WebDriverWait(browser, 15).until(ready.text_to_be_present_in_element((By.ID, "transcript"), "date of birth"))
    browser.find_element(By.ID, "verify").click()
    after_click(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Verified"))
    amount = next(b for b in browser.find_elements(By.CSS_SELECTOR, ".quick-reply") if b.text == "amount")
    amount.click()
    box = browser.find_element(By.ID, "reply-text")
    filled = box.get_attribute("value") or ""
    assert "500.00 is overdue on your account" in filled
    box.send_keys(" Can you pay it this week?")
    screenshot(browser, tmp_path, "console-quick-replies.png")
    browser.find_element(By.ID, "send").click()
    after_click(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Sent."))
    assert filled + " Can you pay it this week?" in await standin_messages(http, stack, borrower.phone)
    hand_back(browser)


async def test_a_supervisor_finds_a_conversation_by_phone_and_exports_it_as_pdf(
        stack: Settings, http: aiohttp.ClientSession, browser: webdriver.Chrome, agents: Services,
        desk_borrowers: tuple[Borrower, Borrower], tmp_path: Path) -> None:
    borrower = desk_borrowers[0]
    base, conversation = base_of(stack), pseudonym(borrower.phone, stack.hmac_secret)
    assert "colleague will reply" in await text(http, stack, borrower, "I need a human please")
    sign_in(browser, base, "sue")
    browser.find_element(By.ID, "nav-search").click()
    field = after_click(browser).until(ready.presence_of_element_located((By.ID, "search-q")))
    field.send_keys("+86 137 9900 0002")
    browser.find_element(By.ID, "search").click()
    row = after_click(browser).until(ready.presence_of_element_located(
        (By.CSS_SELECTOR, f"#results tr[data-conversation='{conversation}']")))
    assert "D2" in row.text and "waiting" in row.text
    screenshot(browser, tmp_path, "console-search.png")
    row.find_element(By.LINK_TEXT, "open").click()
    after_click(browser).until(ready.presence_of_element_located((By.ID, "export")))
    encoded = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(document.getElementById("export").href, {credentials: "same-origin"})
          .then(r => r.arrayBuffer())
          .then(b => done(btoa(String.fromCharCode(...new Uint8Array(b)))));""")
    pdf = base64.b64decode(encoded)
    words = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert pdf.startswith(b"%PDF") and "D2" in words and "I need a human please" in words
    events = [fields for _, fields in await agents.redis.xrange(keys.AUDIT_STREAM)]
    assert any(e[b"event"] == b"export_transcript" and e[b"agent"] == b"sue" for e in events)
    assert any(e[b"event"] == b"search" and e[b"kind"] == b"phone" for e in events)
    assert await agents.handoffs.claim(conversation, "sue") and await agents.handoffs.hand_back(conversation, "sue")
