"""An agent works a handed-off conversation in a real browser, on the real stack.

Headless Chromium (Debian's package) driven by Selenium, the gateway, Rasa, the action
server and the Twilio stand-in as separate processes: a signed SMS hands off, the agent
signs in, claims, reads, replies (the stand-in receives the SMS through the twilio
library), the borrower's answer appears live, the agent hands back and the bot answers.

Screenshots of the queue and the conversation go to the test's folder, and to docs/
when UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from bot.core.crypto import pseudonym
from bot.core.settings import Settings
from bot.services import Services
from tests.integration.conftest import Borrower, text

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long console passphrase"


def after_click(browser: webdriver.Chrome) -> WebDriverWait:
    """A wait after a click that loads a page: while the old page goes, Chrome may answer that an element
    "does not belong to the document"; that is the page changing, so look again."""
    return WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,))


@pytest.fixture
async def agents(stack: Settings) -> AsyncIterator[Services]:
    svc = Services(stack)
    for username, role in (("alice", "agent"), ("sue", "supervisor")):
        if await svc.agents.role(username) is None:
            await svc.agents.add(username, PASSWORD, role)
    yield svc
    await svc.close()


def sign_in(browser: webdriver.Chrome, base: str, username: str) -> None:
    browser.get(base + "/agent/")
    WebDriverWait(browser, 10).until(ready.url_contains("/agent/login"))
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    after_click(browser).until(ready.presence_of_element_located((By.ID, "queue-rows")))


def wait_live(browser: webdriver.Chrome) -> None:
    WebDriverWait(browser, 10).until(ready.text_to_be_present_in_element((By.ID, "live"), "live"))


def screenshot(browser: webdriver.Chrome, folder: Path, name: str) -> None:
    path = folder / name
    browser.save_screenshot(str(path))
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copy(path, ROOT / "docs" / name)


async def standin_messages(http: aiohttp.ClientSession, stack: Settings, phone: str) -> list[str]:
    async with http.get(stack.twilio_api_base_url + "/standin/messages") as response:
        return [m["body"] for m in await response.json() if m["to"] == phone]


async def test_an_agent_takes_over_replies_and_hands_back(stack: Settings, http: aiohttp.ClientSession,
                                                          browser: webdriver.Chrome, agents: Services,
                                                          daytime: tuple[Borrower, Borrower], tmp_path: Path) -> None:
    borrower = daytime[0]
    base = f"http://127.0.0.1:{stack.gateway_port}"
    conversation = pseudonym(borrower.phone, stack.hmac_secret)
    handoff = await text(http, stack, borrower, "hi, I want to talk to a real person please")
    assert "colleague will reply" in handoff

    sign_in(browser, base, "alice")
    wait_live(browser)
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-conversation='{conversation}']")
    assert "D0" in row.text and "request human" in row.text
    screenshot(browser, tmp_path, "console-queue.png")
    row.find_element(By.CSS_SELECTOR, "button.claim").click()

    after_click(browser).until(ready.url_contains(f"/agent/c/{conversation}"))
    wait_live(browser)
    transcript = browser.find_element(By.ID, "transcript").text
    assert "talk to a real person" in transcript and "colleague will reply" in transcript
    assert "An agent took over" in transcript

    reply = "Hello, this is Alice. 您好，我是Alice，可以分期还款。"
    browser.find_element(By.ID, "reply-text").send_keys(reply)
    browser.find_element(By.ID, "send").click()
    after_click(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Sent."))
    assert reply in await standin_messages(http, stack, borrower.phone)
    wait_live(browser)

    browser.execute_script("window.notReloaded = true;")
    answer = '<img src=x onerror="alert(1)"> ok, 我明天还一半'
    assert await text(http, stack, borrower, answer) == ""  # the bot stays quiet: the agent has it
    WebDriverWait(browser, 15).until(ready.text_to_be_present_in_element((By.ID, "transcript"), answer))
    assert browser.execute_script("return window.notReloaded === true;")  # it arrived live, not by reload
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - escaped, so nothing ran
    assert "Agent alice" in browser.find_element(By.ID, "transcript").text
    screenshot(browser, tmp_path, "console-conversation.png")

    browser.find_element(By.ID, "hand-back").click()
    after_click(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"),
                                                                         "Handed back to the bot."))
    assert await agents.handoffs.item(conversation) is None
    answered = await text(http, stack, borrower, "how much do I owe?")
    assert answered and "birth" in answered.lower()  # the bot again, asking for verification first


async def test_a_supervisor_sees_who_holds_what(stack: Settings, http: aiohttp.ClientSession,
                                                browser: webdriver.Chrome, agents: Services,
                                                daytime: tuple[Borrower, Borrower]) -> None:
    borrower = daytime[1]
    conversation = pseudonym(borrower.phone, stack.hmac_secret)
    assert "工作人员" in await text(http, stack, borrower, "我要投诉，你们太过分了")
    assert await agents.handoffs.claim(conversation, "alice")
    sign_in(browser, f"http://127.0.0.1:{stack.gateway_port}", "sue")
    held = browser.find_element(By.ID, "held").text
    assert "D1" in held and "alice" in held and "complaint" in held
    browser.find_element(By.CSS_SELECTOR, f"tr[data-conversation='{conversation}'] a").click()
    after_click(browser).until(ready.presence_of_element_located((By.ID, "transcript")))
    assert "我要投诉" in browser.find_element(By.ID, "transcript").text
    assert "+8613799000001" in browser.page_source  # a supervisor's role sees the number
    assert await agents.handoffs.hand_back(conversation, "alice")
