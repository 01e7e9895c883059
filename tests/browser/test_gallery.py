"""The gallery, the page marketers use, in a real browser (Debian's Chromium through Playwright) on the
running stack: a variation made from the form is drawn live without a reload; every derivative decodes at
its natural size inside a mock of its platform, the story's safe zones drawn; the API's 422 lands next to
the field it names; regenerate, retry and cancel show live; nothing overflows a phone's width."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from streams import messages as m
from tests.browser.conftest import SCREENSHOTS
from tests.builders import create_body, generation_body
from tests.e2e.test_http import wait_for
from tests.e2e.test_retry import left_partial

expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed").expect
DRAWN = 120_000  # ms: a drawing of a few steps of the tiny model, with the worker shared by other tests
# every derivative and master on the page, with how it decoded
DECODED = """() => [...document.querySelectorAll('img[data-testid="derivative"], img[data-testid="master"]')]
  .map((img) => ({name: img.dataset.derivative || img.dataset.family, complete: img.complete,
                  width: img.naturalWidth, height: img.naturalHeight}))"""
OVERFLOW = "() => [document.documentElement.scrollWidth, window.innerWidth]"


def showing(first: int, last: int, total: int) -> str:
    return f"Showing {first}\u2013{last} of {total}"  # an en dash, as the page writes a range


def run(coroutine: Any) -> Any:
    """An asyncio coroutine (the Kafka helpers) run in a thread of its own, beside Playwright's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def watch_status(page: Any) -> None:
    """Record every text the variation's status shows from now on (the page keeps its element)."""
    page.evaluate("""() => {
      const badge = document.querySelector('[data-testid="status"]');
      window.statusesShown = [badge.textContent];
      new MutationObserver(() => {
        if (window.statusesShown.at(-1) !== badge.textContent) window.statusesShown.push(badge.textContent);
      }).observe(badge, {childList: true, characterData: true, subtree: true});
    }""")


def statuses(page: Any) -> list[str]:
    return page.evaluate("window.statusesShown")


def parameter(page: Any, term: str) -> Any:
    return page.get_by_test_id("parameters").locator("div", has=page.locator("dt", has_text=term)).locator("dd")


def live(page: Any) -> dict[str, int]:
    line = page.get_by_test_id("live")
    return {"updates": int(line.get_attribute("data-updates")), "steps": int(line.get_attribute("data-steps"))}


def progress(page: Any) -> dict[str, tuple[float, float]]:
    bars = page.eval_on_selector_all(
        'progress[data-testid="progress"]', "(bars) => bars.map((b) => [b.dataset.family, b.value, b.max])"
    )
    return {family: (value, top) for family, value, top in bars}


def decode_every_image(page: Any) -> list[dict[str, Any]]:
    """Every image decoded, each lazily loaded one scrolled into view until it has."""
    page.wait_for_function(
        """() => {
      const waiting = [...document.querySelectorAll('img[data-testid="derivative"], img[data-testid="master"]')]
        .filter((img) => !img.complete || img.naturalWidth === 0);
      waiting[0]?.scrollIntoView();
      return waiting.length === 0;
    }""",
        timeout=30_000,
        polling=50,
    )
    return page.evaluate(DECODED)


def sizes(variation: dict[str, Any]) -> dict[str, tuple[int, int]]:
    found = {f["name"]: (f["width"], f["height"]) for f in variation["families"]}
    return found | {d["name"]: (d["width"], d["height"]) for f in variation["families"] for d in f["derivatives"]}


def post(api: httpx.Client, name: str, families: list[str], steps: int = 1, **extra: Any) -> str:
    """Post a small variation (once: the same request again is accepted as the same one); its id."""
    generation = generation_body(f"{name.replace('-', ' ')} at noon", 3, steps=steps)
    r = api.post("/api/images/variations", json=create_body(name, generation, families=families, **extra))
    assert r.status_code == 202, r.text
    return r.json()["id"]


def drawn(api: httpx.Client, name: str, families: list[str], steps: int = 1, **extra: Any) -> dict[str, Any]:
    """A small variation, drawn by the stack."""
    return wait_for(api, post(api, name, families, steps, **extra))


def test_a_variation_made_from_the_form_is_drawn_live_on_the_page_without_a_reload(page: Any, api: httpx.Client):
    # a marketer opens the site, goes to the form, fills it and sends it with the keyboard
    page.goto("/")
    assert page.url.endswith("/gallery/"), page.url
    page.get_by_role("link", name="Create").click()
    form = page.locator("#create")
    expect(form.get_by_label("landscape")).to_be_visible()
    form.get_by_label("Name", exact=True).fill("gallery-harbour")
    form.get_by_label("Category", exact=True).fill("browser")
    form.get_by_label("landscape").check()
    form.get_by_label("portrait").check()
    form.get_by_label("Model").select_option("tiny")
    prompt = "a harbour at dawn <b>not bold</b> & gulls"  # markup in the data stays text on the page
    form.get_by_label("Prompt", exact=True).fill(prompt)
    form.get_by_label("Negative prompt").fill("text, watermark")
    form.get_by_label("Fix the seed").check()
    form.get_by_label("Seed", exact=True).fill("11")
    form.get_by_label("Steps").fill("3")
    form.get_by_label("Guidance").fill("5")
    tabs = 0
    while page.evaluate("document.activeElement.id") != "create-button":
        page.keyboard.press("Tab")
        tabs += 1
        assert tabs < 10, "Tab never reached the create button"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"  # the focus shows
    began = time.monotonic()
    page.keyboard.press("Enter")

    # the variation's view follows it: status and per-family progress change as the events arrive
    page.wait_for_url("**/gallery/#/v/*")
    vid = page.url.rsplit("/", 1)[1]
    assert vid == str(m.variation_id("gallery-harbour"))  # the page's uuid5, which it followed before posting
    watch_status(page)
    expect(page.get_by_test_id("status")).to_have_text("completed", timeout=DRAWN)
    took = time.monotonic() - began
    assert statuses(page)[-2:] == ["generating", "completed"], statuses(page)
    expect(page.get_by_test_id("family-status")).to_have_text(["completed", "completed"])
    assert progress(page) == {"landscape": (3, 3), "portrait": (3, 3)}
    seen = live(page)
    assert seen["steps"] == 2 * 3, seen  # every denoising step of both families arrived over the stream
    assert len(page.loads) == 1, page.loads  # one page load: everything since came live

    # every derivative decoded at its natural size, inside its platform's mock; masters too
    variation = api.get(f"/api/images/variations/{vid}").json()
    expected = sizes(variation)
    decoded = decode_every_image(page)
    wrong = [i for i in decoded if (i["width"], i["height"]) != expected[i["name"]]]
    assert not wrong, wrong
    derivatives = [i for i in decoded if i["name"] not in ("landscape", "portrait")]
    assert {i["name"] for i in derivatives} == set(expected) - {"landscape", "portrait"}
    assert page.locator("b", has_text="not bold").count() == 0
    alts = page.eval_on_selector_all("#variation-view img", "(images) => images.map((i) => i.alt)")
    assert alts and all(alt.startswith(prompt) for alt in alts), alts  # the prompt describes every image
    expect(page.get_by_test_id("parameters")).to_contain_text(prompt)
    for shown in ("11", "tiny", "text, watermark", "5"):
        expect(page.get_by_test_id("parameters")).to_contain_text(shown)
    crops = sum(1 for f in variation["families"] for d in f["derivatives"] if d["cropBox"])
    expect(page.get_by_test_id("crop-box")).to_have_count(crops)

    # the story's mock draws the family table's safe zones where the platform's UI covers the picture
    table = {d["name"]: d for f in api.get("/api/images/families").json()["families"] for d in f["derivatives"]}
    story = page.locator('[data-mock="instagram-story"]')
    story.scroll_into_view_if_needed()
    zones = story.get_by_test_id("safe-zone")
    expect(zones).to_have_count(len(table["instagram-story"]["safeZones"]))
    frame = story.locator(".frame").bounding_box()
    for zone, spec in zip(zones.all(), table["instagram-story"]["safeZones"], strict=True):
        box = zone.bounding_box()
        assert abs((box["y"] - frame["y"]) / frame["height"] - spec["top"]) < 0.01, (box, frame, spec)
        assert abs(box["height"] / frame["height"] - spec["height"]) < 0.01, (box, frame, spec)
    story.screenshot(path=SCREENSHOTS / "gallery-story-mock.png")
    youtube = page.locator('[data-mock="youtube-thumbnail"]')
    expect(youtube.get_by_test_id("safe-zone")).to_have_count(1)
    expect(youtube.locator(".duration")).to_be_visible()

    # the meta tags are the ones examples/seo_consumer.py prints for these images
    tags = page.get_by_test_id("meta-tags").inner_text().splitlines()
    urls = {d["name"]: d["url"] for f in variation["families"] for d in f["derivatives"]}
    alt = prompt.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert tags == [
        f'<meta property="og:image" content="{urls["banner"]}">',
        '<meta property="og:image:width" content="1200">',
        '<meta property="og:image:height" content="675">',
        '<meta property="og:image:type" content="image/webp">',
        f'<meta property="og:image:alt" content="{alt}">',
        '<meta name="twitter:card" content="summary_large_image">',
        f'<meta name="twitter:image" content="{urls["x-large-card"]}">',
        f'<meta name="twitter:image:alt" content="{alt}">',
    ], tags
    page.screenshot(path=SCREENSHOTS / "gallery-variation.png", full_page=True)
    zone_count = len(table["instagram-story"]["safeZones"])
    print(
        f"\nvariation completed in {took:.1f} s with {seen['updates']} SSE updates ({seen['steps']} steps), "
        f"{len(page.loads)} page load, {tabs} Tab presses to the create button; {len(derivatives)} derivatives "
        f"and {len(decoded) - len(derivatives)} masters decoded at natural size, {crops} crop boxes; "
        f"{zone_count} safe zones drawn on the story; {len(tags)} meta tags"
    )


def test_the_gallery_lists_newest_first_searches_and_pages(page: Any, api: httpx.Client) -> None:
    names = [f"gallery-pier-{i}" for i in (1, 2, 3)]
    for name in names:  # each recorded before the next is posted: newest is last posted (ids hash to partitions)
        wait_for(api, post(api, name, ["square"], category="piers"), lambda v: True)
    for name in names:
        wait_for(api, str(m.variation_id(name)))
    page.goto("/gallery/#/?category=piers&limit=2")
    cards = page.get_by_test_id("variation-card")
    expect(page.locator("#gallery-count")).to_have_text(showing(1, 2, 3))
    expect(cards).to_have_count(2)
    assert [c.get_attribute("data-name") for c in cards.all()] == names[::-1][:2]  # newest first
    expect(cards.first.get_by_test_id("card-status")).to_have_text("completed")
    thumbs = cards.first.locator(".thumbs img")
    expect(thumbs).to_have_count(1)
    assert thumbs.first.get_attribute("loading") == "lazy"
    expect(thumbs.first).to_have_attribute("alt", "gallery pier 3 at noon (square)")
    page.get_by_role("button", name="Older").click()
    expect(page.locator("#gallery-count")).to_have_text(showing(3, 3, 3))
    assert [c.get_attribute("data-name") for c in cards.all()] == names[:1]
    expect(page.get_by_role("button", name="Older")).to_be_disabled()

    # a search by name from the form, over every category
    search = page.locator("#search")
    search.get_by_label("Category", exact=True).fill("")
    search.get_by_label("Name or category").fill("pier-2")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#gallery-count")).to_have_text(showing(1, 1, 1))
    assert [c.get_attribute("data-name") for c in cards.all()] == ["gallery-pier-2"]
    search.get_by_label("Name or category").fill("")
    page.get_by_role("button", name="Search").click()
    page.wait_for_function("() => Number(document.getElementById('gallery-count').dataset.total) >= 3")
    total = int(page.locator("#gallery-count").get_attribute("data-total"))
    page.screenshot(path=SCREENSHOTS / "gallery-list.png", full_page=True)
    assert len(page.loads) == 1, page.loads
    print(f"\ngallery: 3 piers in 2 pages of 2, 1 found by name, {total} variations in all")


def test_an_invalid_form_shows_the_api_s_errors_next_to_their_fields(page: Any) -> None:
    page.goto("/gallery/#/new")
    form = page.locator("#create")
    expect(form.get_by_label("square")).to_be_visible()
    form.get_by_label("Name", exact=True).fill("Spring Sale")  # not URL-safe
    form.get_by_label("Prompt", exact=True).fill("")
    page.get_by_role("button", name="Create variation").click()
    unlabelled = page.eval_on_selector_all(
        "#create input, #create select, #create textarea",
        "(controls) => controls.filter((c) => !c.labels.length).map((c) => c.id)",
    )
    assert not unlabelled, unlabelled
    expect(page.get_by_test_id("field-error")).to_have_count(3)
    fields = {e.get_attribute("data-field"): e for e in page.get_by_test_id("field-error").all()}
    assert set(fields) == {"name", "families", "generation.prompt"}, set(fields)
    for field, control in (("name", "#f-name"), ("generation.prompt", "#f-prompt"), ("families", "#f-family-square")):
        error_id = fields[field].get_attribute("id")
        assert page.get_attribute(control, "aria-invalid") == "true", control
        assert error_id in page.get_attribute(control, "aria-describedby").split(), control
    expect(page.locator("#f-name").locator("xpath=..").get_by_test_id("field-error")).to_contain_text("pattern")
    expect(page.locator("#f-families").get_by_test_id("field-error")).to_be_visible()
    expect(page.locator("#form-errors")).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "f-name"  # the first field to fix has the focus
    page.screenshot(path=SCREENSHOTS / "gallery-form-errors.png", full_page=True)

    # fixed, but the prompt names a term the brand policy blocks: only the prompt's error is left
    form.get_by_label("Name", exact=True).fill("gallery-gore")
    form.get_by_label("square").check()
    form.get_by_label("Prompt", exact=True).fill("a gore scene")
    page.get_by_role("button", name="Create variation").click()
    expect(page.get_by_test_id("field-error")).to_have_count(1)
    expect(page.locator("#f-prompt-error")).to_contain_text("brand policy")
    assert page.get_attribute("#f-name", "aria-invalid") is None
    assert page.url.endswith("#/new") and len(page.loads) == 1
    print("\n3 field errors from the API's 422 shown next to name, families and prompt; then the brand policy's")


def test_regenerate_retry_and_cancel_show_live_on_the_page(page: Any, api: httpx.Client, services, stack) -> None:
    # a variation left partial: its portrait failed, as a crashed drawing reports it (tests/e2e/test_retry.py)
    vid = run(left_partial(api, services, stack, "gallery-lighthouse", "a lighthouse in fog"))

    page.goto(f"/gallery/#/v/{vid}")
    status = page.get_by_test_id("status")
    expect(status).to_have_text("partial")
    portrait = page.locator('section[data-family="portrait"]')
    expect(portrait.get_by_test_id("family-status")).to_have_text("failed")
    expect(portrait).to_contain_text("the drawing crashed")
    expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
    began = time.monotonic()
    watch_status(page)
    portrait.get_by_role("button", name="Retry portrait").click()
    expect(status).to_have_text("completed", timeout=DRAWN)
    assert statuses(page) == ["partial", "generating", "completed"], statuses(page)
    expect(portrait.get_by_test_id("family-status")).to_have_text("completed")
    retried = time.monotonic() - began

    began = time.monotonic()
    watch_status(page)
    page.get_by_role("button", name="Regenerate").click()
    expect(parameter(page, "Round")).to_have_text("2", timeout=DRAWN)
    expect(status).to_have_text("completed", timeout=DRAWN)
    regenerated = time.monotonic() - began
    assert statuses(page) == ["completed", "generating", "completed"], statuses(page)
    assert progress(page) == {"square": (2, 2), "portrait": (2, 2)}

    # a long drawing, cancelled from the page once its steps show
    long = "gallery-comet"
    generation = generation_body("a comet over snow", 5, steps=150)
    r = api.post("/api/images/variations", json=create_body(long, generation, families=["hero"]))
    assert r.status_code == 202, r.text
    page.goto(f"/gallery/#/v/{r.json()['id']}")
    page.wait_for_function("() => document.querySelector('progress[data-family=\"hero\"]')?.value >= 2", timeout=DRAWN)
    page.get_by_role("button", name="Cancel").click()
    expect(status).to_have_text("cancelled", timeout=DRAWN)
    hero = page.locator('section[data-family="hero"]')
    expect(hero.get_by_test_id("family-status")).to_have_text("cancelled")
    # "cancelled while drawing" until the worker says at which step it let go (FamilyCancelled)
    expect(hero).to_contain_text("stopped at step", timeout=DRAWN)
    stopped = hero.locator(".error").inner_text()
    assert len(page.loads) == 1, page.loads
    print(
        f"\nretried portrait completed in {retried:.1f} s, regenerated in {regenerated:.1f} s, "
        f"cancelled comet {stopped}; {live(page)['updates']} SSE updates on the last view, 1 page load"
    )


def test_the_picture_forming_is_shown_where_the_master_will_be(page: Any, api: httpx.Client) -> None:
    long = "gallery-aurora"
    generation = generation_body("an aurora over a frozen lake", 6, steps=150)
    r = api.post("/api/images/variations", json=create_body(long, generation, families=["landscape"]))
    assert r.status_code == 202, r.text
    vid = r.json()["id"]
    page.goto(f"/gallery/#/v/{vid}")
    landscape = page.locator('section[data-family="landscape"]')
    shown = landscape.get_by_test_id("preview")
    # a preview every 4 steps (at most twice a second), in place of the master, which is not there yet
    page.wait_for_function(
        "() => Number(document.querySelector('img[data-preview-of=\"landscape\"]')?.dataset.step) >= 4",
        timeout=DRAWN,
    )
    first = int(shown.get_attribute("data-step"))
    assert shown.get_attribute("src").startswith("data:image/webp;base64,")
    page.wait_for_function(
        f"() => Number(document.querySelector('img[data-preview-of=\"landscape\"]')?.dataset.step) > {first}",
        timeout=DRAWN,
    )
    later = int(shown.get_attribute("data-step"))
    assert later % 4 == 0 and later > first  # it changes as the drawing goes on, in place
    assert shown.evaluate("(img) => img.decode().then(() => [img.naturalWidth, img.naturalHeight])") == [256, 146]
    expect(landscape.locator("figcaption")).to_contain_text("of 150")
    assert landscape.get_by_test_id("master").count() == 0
    page.screenshot(path=SCREENSHOTS / "gallery-preview.png", full_page=True)
    served = api.get(f"/api/images/variations/{vid}/families/landscape/preview")
    assert served.status_code == 200 and int(served.headers["x-preview-step"].split("/")[0]) >= later
    page.get_by_role("button", name="Cancel").click()  # the worker is shared: let it go
    expect(page.get_by_test_id("status")).to_have_text("cancelled", timeout=DRAWN)
    assert landscape.get_by_test_id("preview").count() == 0  # no longer forming
    print(f"\npreviews at steps {first} and {later} of 150, in place, without a reload")


def test_nothing_overflows_a_phone_s_width(browser: Any, api: httpx.Client, services) -> None:
    variation = drawn(api, "gallery-pier-1", ["square"], category="piers")
    context = browser.new_context(
        base_url=services.api_url,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    phone = context.new_page()
    harbour = api.get(f"/api/images/variations/{m.variation_id('gallery-harbour')}")
    shown = [f"#/v/{variation['id']}", "#/", "#/new"]
    if harbour.status_code == 200:
        shown.insert(0, f"#/v/{harbour.json()['id']}")  # the story's mocks, when the first story ran
    try:
        widths = {}
        for where in shown:
            phone.goto(f"/gallery/{where}")
            expect(phone.locator("#main")).to_be_visible()
            if where.startswith("#/v/"):
                expect(phone.get_by_test_id("status")).to_have_text("completed")
                decode_every_image(phone)
            elif where == "#/":
                expect(phone.get_by_test_id("variation-card").first).to_be_visible()
            else:
                expect(phone.locator("#create").get_by_label("square")).to_be_visible()
            widths[where] = phone.evaluate(OVERFLOW)
            slug = {"#/": "list", "#/new": "form"}.get(where) or f"variation-{phone.title().split(' ')[0]}"
            phone.screenshot(path=SCREENSHOTS / f"gallery-phone-{slug}.png", full_page=True)
    finally:
        context.close()
    assert all(scroll <= inner for scroll, inner in widths.values()), widths
    print(f"\nat 390 px wide nothing overflows: {json.dumps({k: v[0] for k, v in widths.items()})}")
