"""The emulator's live page in a real headless Chromium: rows appear as a Tracker sends, filters,
a payload opened with no secret anywhere in the page, a rejection with its reason, and markup in a
payload shown as text. With PLAYHOOKS_SCREENSHOT=docs/live-page.png it also saves the README's picture.

Debian's chromium and chromium-driver drive it (Selenium cannot download a browser here); where
they are missing the test is skipped, saying how to install them, and under CI it fails.
"""

import json
import os
import shutil
import sys

import pytest
import urllib3

import playhooks
from playhooks.emulator import Emulator
from playhooks.testing import ManualClock

from helpers import API_KEY, FAST, PLAYER, ROOT, SECRET_KEY, sinks

pytestmark = pytest.mark.skipif(sys.version_info < (3, 10), reason="the browser tests use Selenium, pinned for Python 3.10 and later")

CHROMIUM = os.environ.get("PLAYHOOKS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PLAYHOOKS_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 20  # seconds any one thing may take to show
EVENTS = "/Server/WriteCharacterEvent"
# A few players' sessions, in minutes, and the events each sends: a dozen in all.
PLAYS = [
    ("ada", 4, ["level_started", "coin_collected", "coin_collected", "level_completed"]),
    ("brook", 12, ["level_started", "coin_collected", "player_died"]),
    ("cass", 27, ["level_started", "coin_collected", "coin_collected", "coin_collected", "level_completed"]),
]


def _missing():
    """Why the browser cannot be driven here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)) and not shutil.which(os.path.basename(path)):
            return f"{path} is missing: install Debian's browser and its driver (sudo apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is missing: pip install -e '.[test]'"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if os.path.isfile(CHROMIUM) else shutil.which(os.path.basename(CHROMIUM))
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1320", "--lang=en-GB"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP violations are console errors
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER if os.path.isfile(CHROMEDRIVER) else shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def until(driver, condition, message):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(lambda _: condition(), message)


def rows(driver, visible_only=True):
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, "#rows tr")
    return [row for row in found if row.is_displayed()] if visible_only else found


def text(driver, element_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def play(emulator, spool):
    """The players' sessions, sent by a real Tracker over HTTP, delivered when this returns."""
    clock = ManualClock()
    tracker = playhooks.Tracker(sinks(emulator), spool_dir=spool, clock=clock, retry=FAST)
    try:
        for user, minutes, events in PLAYS:
            session = tracker.on_session_start(user, **PLAYER)
            for number, name in enumerate(events):
                clock.advance(20)
                tracker.on_character_event(name, body={"level": number + 1, "user": user}, session=session)
            clock.advance(minutes * 60 - 20 * len(events))
            tracker.on_session_end(session)
        assert 0 == tracker.flush(timeout=WAIT)
    finally:
        tracker.close(timeout=5)


def test_the_live_page_shows_requests_as_they_arrive(browser, spool):
    """Open the page, play, watch rows come without a reload, filter, open a payload, see a rejection."""
    from selenium.webdriver.common.by import By

    with Emulator(playcamp_keys=[API_KEY], playfab_secret_keys=[SECRET_KEY]) as emulator, urllib3.PoolManager(retries=False) as http:
        browser.get(emulator.page_url)
        until(browser, lambda: browser.find_element(By.ID, "connection").get_attribute("data-state") == "live", "the page never polled")
        assert [] == rows(browser, visible_only=False)

        play(emulator, spool)
        sent = len(emulator.activity(limit=500))
        until(browser, lambda: len(rows(browser)) == sent, f"the page never showed the {sent} requests sent")
        until(browser, lambda: text(browser, "total-events") == "12", "the dashboard never counted 12 events")
        assert ("3", "43 min 0 s") == (text(browser, "total-sessions"), text(browser, "total-playtime"))

        # A request refused for its key, and one whose payload carries markup: both rows, as text.
        http.request("POST", emulator.url + EVENTS, body=b"{}", headers={"X-SecretKey": "not-the-key", "Content-Type": "application/json"})
        hostile = {"CharacterId": "C", "PlayFabId": "P", "EventName": '<img src=x id="injected">', "Body": {}}
        http.request("POST", emulator.url + EVENTS, body=json.dumps(hostile), headers={"X-SecretKey": SECRET_KEY, "Content-Type": "application/json"})
        until(browser, lambda: len(rows(browser)) == sent + 2, "the page never showed the refused requests")
        refused = [row.text for row in rows(browser) if "NotAuthorized" in row.text]
        assert 1 == len(refused) and "401" in refused[0] and "Invalid secret key" in refused[0]
        assert [] == browser.find_elements(By.ID, "injected")
        assert any('<img src=x id="injected">' in row.text for row in rows(browser))

        # Filter by event name: only the coins stay.
        browser.find_element(By.ID, "filter-event").send_keys("coin")
        until(browser, lambda: len(rows(browser)) == 6, "the event filter did not leave the 6 coin events")
        assert all("coin_collected" in row.text for row in rows(browser))

        # Open one: its payload, and no secret anywhere in the page.
        rows(browser)[0].click()
        until(browser, lambda: "coin_collected" in text(browser, "detail-payload"), "the payload did not open")
        assert '"PlayFabId": "%s"' % PLAYER["playfab_id"] in text(browser, "detail-payload")
        source = browser.page_source
        assert [] == [secret for secret in (API_KEY, API_KEY.split(":")[1], SECRET_KEY) if secret in source]

        # Rejected only: the refused two.
        browser.find_element(By.CSS_SELECTOR, "button[type=reset]").click()
        until(browser, lambda: len(rows(browser)) == sent + 2, "clearing the filters did not show every row")
        browser.find_element(By.CSS_SELECTOR, "#filter-status option[value='outcome:rejected']").click()
        until(browser, lambda: len(rows(browser)) == 2, "the status filter did not leave the 2 rejections")

        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert [] == errors  # a Content-Security-Policy violation, or a script error, would be here

        screenshot = os.environ.get("PLAYHOOKS_SCREENSHOT")
        if screenshot:
            save_screenshot(browser, emulator, http, spool + "-screenshot", os.path.join(ROOT, screenshot))


def save_screenshot(browser, emulator, http, spool, path):
    """The README's picture: every row, a payload open. Only when PLAYHOOKS_SCREENSHOT asks for it."""
    from selenium.webdriver.common.by import By

    emulator.reset()  # the picture shows a plain run: sessions, a dozen events, one rejection
    browser.refresh()
    until(browser, lambda: browser.find_element(By.ID, "connection").get_attribute("data-state") == "live", "the page never polled")
    play(emulator, spool)
    http.request("POST", emulator.url + EVENTS, body=b"{}", headers={"X-SecretKey": "not-the-key", "Content-Type": "application/json"})
    sent = len(emulator.activity(limit=500))
    until(browser, lambda: len(rows(browser)) == sent, "the page never showed the requests")
    [row for row in rows(browser) if "level_completed" in row.text][0].click()
    until(browser, lambda: "level_completed" in text(browser, "detail-payload"), "the payload did not open")
    until(browser, lambda: not browser.find_elements(By.CSS_SELECTOR, "#rows tr.fresh"), "the new rows' highlight never faded")
    browser.save_screenshot(path)
