"""The gallery's A/B sets and its sign-in, in Chromium on the running stack: a set's variants side by side
with a winner chosen and marked; the gallery behind API keys (sign-in, a read key's page without its
actions, a submit key creating, sign-out, a tampered cookie refused); the mock-ups of the link preview,
cover, profile picture and X summary card; and a variation id that never appears, given up on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from imagegen.devstack import DevStack
from imagegen.services import Services
from tests.browser.conftest import SCREENSHOTS
from tests.browser.test_gallery import DRAWN, decode_every_image, drawn
from tests.builders import create_body, generation_body
from tests.e2e.test_access import KEYS, api_process
from tests.e2e.test_variant_sets import settled

expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed").expect
SET = "ab-balloons"


def test_a_set_page_shows_its_variants_side_by_side_and_marks_the_winner_chosen(page: Any, api: httpx.Client) -> None:
    body = create_body(SET, generation_body("hot air balloons at dawn", 900), families=["square"], variants=3)
    assert api.post("/api/images/variations", json=body).status_code == 202
    settled(api, lambda s: s["statuses"] == {"completed": 3}, name=SET)
    page.goto(f"/gallery/#/s/{SET}")
    variants = page.get_by_test_id("variant")
    expect(variants).to_have_count(3)
    expect(page.get_by_test_id("winner")).to_have_text("No winner chosen yet.")
    expect(page.get_by_test_id("who")).to_be_hidden()  # no keys configured: nobody to sign in as
    tops = {round(variants.nth(i).bounding_box()["y"]) for i in range(3)}
    assert len(tops) == 1, f"the variants are not side by side: {tops}"
    seeds = [variants.nth(i).locator(".meta").inner_text() for i in range(3)]
    assert [s.split("seed ")[1] for s in seeds] == ["900", "901", "902"]
    # each variant's master side by side, and each as the family's first derivative in its mock-up
    expect(page.locator('.set-family[data-family="square"] .variant-image img')).to_have_count(3)
    page.locator(".set-mocks summary").first.click()
    mocked = page.locator('.set-mocks [data-testid="mock"]')
    expect(mocked).to_have_count(3)
    assert {mocked.nth(i).get_attribute("data-mock") for i in range(3)} == {"instagram-post"}  # the first by name

    page.fill("#win-reason", "CTR 5.2 % vs 4.0 %")
    page.get_by_test_id("choose-2").click()
    winner = page.get_by_test_id("winner")
    expect(winner).to_have_attribute("data-variant", "2", timeout=30_000)
    expect(winner).to_contain_text("CTR 5.2 % vs 4.0 %")
    expect(page.locator('[data-testid="variant"][data-variant="2"]')).to_have_class("variant is-winner")
    expect(page.locator('[data-testid="variant"][data-variant="2"] .badge')).to_have_text("Winner")
    expect(page.get_by_test_id("choices").locator("li")).to_have_count(1)
    page.locator(".winner-line summary").click()
    expect(page.get_by_test_id("set-urls")).to_contain_text(f"/api/images/sets/{SET}/og-square")
    page.screenshot(path=SCREENSHOTS / "gallery-set-winner.png", full_page=True)

    page.get_by_test_id("choose-3").click()
    expect(winner).to_have_attribute("data-variant", "3", timeout=30_000)
    expect(page.get_by_test_id("choices").locator("li")).to_have_count(2)
    expect(page.get_by_test_id("choices").locator("li").first).to_have_attribute("data-variant", "3")  # newest first
    assert api.get(f"/api/images/sets/{SET}/og-square").headers["x-variant"] == "3"
    # a variant's own page links back to its set
    page.locator('[data-testid="variant"][data-variant="1"] h3 a').click()
    expect(page.get_by_test_id("set-link")).to_have_text(SET)


def test_the_create_form_makes_a_set_and_opens_its_page(page: Any) -> None:
    page.goto("/gallery/#/new")
    page.fill("#f-name", "ab-form-kites")
    page.fill("#f-prompt", "kites over a beach")
    page.check("#f-family-square")
    page.fill("#f-steps", "1")
    page.fill("#f-variants", "2")
    page.click("#create-button")
    page.wait_for_url("**/gallery/#/s/ab-form-kites", timeout=30_000)
    expect(page.get_by_test_id("variant")).to_have_count(2, timeout=30_000)


@pytest.fixture(scope="module")
def keyed(stack: DevStack, services: Services) -> Iterator[httpx.Client]:
    """An api with API keys configured, on the session's stack (its worker and projector draw and record)."""
    yield from api_process(stack, "api-gallery-keys")


@pytest.fixture
def keyed_page(browser: Any, keyed: httpx.Client) -> Iterator[Any]:
    context = browser.new_context(base_url=str(keyed.base_url), viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"the page's scripts failed: {errors}"


def sign_in(page: Any, key: str) -> None:
    page.fill("#k-key", key)
    page.click("#signin-button")


def test_the_gallery_behind_keys_signs_in_shows_a_read_key_no_actions_lets_a_submit_key_create(
    keyed_page: Any, keyed: httpx.Client
) -> None:
    page = keyed_page
    page.goto("/gallery/")
    expect(page.locator("#signin-view")).to_be_visible()
    expect(page.locator("#gallery-view")).to_be_hidden()
    page.screenshot(path=SCREENSHOTS / "gallery-sign-in.png")
    sign_in(page, "igk_not-a-key")
    expect(page.get_by_test_id("signin-error")).to_have_text("Not a key this imagegen knows.")

    # a read key: the gallery shows, the actions do not act
    sign_in(page, KEYS["cms"][0])
    expect(page.locator("#gallery-view")).to_be_visible()
    expect(page.get_by_test_id("who")).to_contain_text("cms (read)")
    cookie = next(c for c in page.context.cookies() if c["name"] == "imagegen_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and KEYS["cms"][0] not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # the page's scripts cannot read it
    page.goto("/gallery/#/new")
    expect(page.locator("#create-button")).to_be_disabled()
    expect(page.get_by_test_id("readonly")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "gallery-read-key.png")
    # and the API refuses a change made with the session all the same
    refused = page.evaluate(
        """async () => (await fetch('/api/images/variations', {method: 'POST', headers: {'content-type':
        'application/json'}, body: '{}'})).status"""
    )
    assert refused == 403

    # signed out: the sign-in form again, and the old cookie no longer opens anything
    page.click("#sign-out")
    expect(page.locator("#signin-view")).to_be_visible()
    old = {"imagegen_session": cookie["value"]}
    assert httpx.get(f"{keyed.base_url}/api/images/variations", cookies=old).status_code == 401

    # a submit key creates from the form, and the page follows the drawing
    sign_in(page, KEYS["ci"][0])
    expect(page.get_by_test_id("who")).to_contain_text("ci (submit)")
    page.goto("/gallery/#/new")
    page.fill("#f-name", "keyed-gallery-lamp")
    page.fill("#f-prompt", "a desk lamp")
    page.check("#f-family-facebook-og")
    page.fill("#f-steps", "1")
    page.click("#create-button")
    expect(page.get_by_test_id("status")).to_have_text("completed", timeout=DRAWN)
    expect(page.locator('[data-key="regenerate"]')).to_be_enabled()
    page.screenshot(path=SCREENSHOTS / "gallery-submit-key.png", full_page=True)

    # a cookie altered by a single character is refused
    signed = next(c for c in page.context.cookies() if c["name"] == "imagegen_session")
    value = signed["value"]
    tampered = value[:-1] + ("A" if value[-1] != "A" else "B")
    page.context.add_cookies([{**signed, "value": tampered}])
    assert page.evaluate("async () => (await fetch('/api/images/variations')).status") == 401
    page.reload()
    expect(page.locator("#signin-view")).to_be_visible()


def test_the_link_preview_cover_profile_and_x_summary_mock_ups_show_their_derivatives(
    page: Any, api: httpx.Client
) -> None:
    found = drawn(api, "mockups-harbour", ["square", "hero"])
    page.goto(f"/gallery/#/v/{found['id']}")
    expect(page.get_by_test_id("status")).to_have_text("completed", timeout=DRAWN)
    kinds = {"og-square": "link", "twitter-card": "x-summary", "profile": "avatar", "facebook-cover": "cover"}
    for name, kind in kinds.items():
        shown = page.locator(f'[data-testid="mock"][data-mock="{name}"]')
        expect(shown).to_have_attribute("data-kind", kind)
        expect(shown.locator("figcaption")).to_contain_text(name)
    expect(page.locator('[data-mock="twitter-card"] .x-summary .x-thumb img')).to_have_count(1)
    expect(page.locator('[data-mock="profile"] .frame.round img')).to_have_count(1)
    expect(page.locator('[data-mock="og-square"] .link-card .title')).to_have_text("mockups-harbour")
    expect(page.locator('[data-mock="facebook-cover"] .cover-page')).to_contain_text("Your brand")
    decoded = {d["name"]: (d["width"], d["height"]) for d in decode_every_image(page)}
    sizes = {d["name"]: (d["width"], d["height"]) for f in found["families"] for d in f["derivatives"]}
    assert all(decoded[name] == sizes[name] for name in kinds), decoded
    page.locator('[data-mock="facebook-cover"]').screenshot(path=SCREENSHOTS / "gallery-mock-cover.png")


def test_a_variation_that_never_appears_is_given_up_on_and_said_so(page: Any) -> None:
    unknown = "00000000-0000-5000-8000-000000000017"
    page.goto(f"/gallery/#/v/{unknown}")
    expect(page.get_by_text("Waiting for the variation to be recorded…")).to_be_visible()
    expect(page.get_by_test_id("not-found")).to_contain_text(f"No variation {unknown} was recorded", timeout=40_000)
