"""The web UI in a real headless Chromium against a live server with the demo tiny models.

Each page is checked with axe-core (no serious or critical violation) at 390 and 1280 px, and
photographed into var/ui-screenshots; REPIC_UI_README_SHOTS copies the README's ones."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect

from app.http.problems import install_problem_handlers
from app.http.ui import install_ui
from tests.web.conftest import ROOT, SHOTS, Live

pytestmark = pytest.mark.browser

AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (390, 1280)
XSS = "<img src=x onerror=alert(1)>"
OpenPage = Callable[..., Page]
SEEDED = [("rex", "dog"), ("mia", "cat"), ("luna", "dog"), ("tofu", "rabbit"), ("pip", None)]


def _post_concept(
    live: Live, name: str, category: str | None, seeds: list[int], info: str = ""
) -> int:
    files = [
        ("images", (f"p{s}.jpg", (live.photos / f"photo-{s}.jpg").read_bytes(), "image/jpeg"))
        for s in seeds
    ]
    data = {"name": name, "info": info, **({"category": category} if category else {})}
    resp = httpx.post(
        f"{live.url}/concepts",
        data=data,
        files=files,
        headers={"Authorization": f"Bearer {live.key}"},
        timeout=60,
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


@pytest.fixture(scope="module")
def seeded(live: Live) -> dict[str, int]:
    """A few concepts registered through the API, so pages have something to show."""
    ids = {
        name: _post_concept(live, name, cat, [i + 1, i + 2]) for i, (name, cat) in enumerate(SEEDED)
    }
    ids["xss"] = _post_concept(live, "sneaky", "test", [8], info=XSS)
    return ids


@pytest.fixture
def open_page(browser: Browser, live: Live, request: pytest.FixtureRequest) -> Iterator[OpenPage]:
    """New pages at a width; afterwards, none may have run alert() or broken its own CSP."""
    pages: list[Page] = []
    alerts: list[str] = []
    csp_errors: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        alerts.append(dialog.message)
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            csp_errors.append(message.text)

    def make(width: int = 1280) -> Page:
        context = browser.new_context(viewport={"width": width, "height": 900})
        context.add_init_script(path=str(AXE))  # CDP-injected: the page's own CSP stays on
        page = context.new_page()
        page.on("dialog", on_dialog)
        page.on("console", on_console)
        page.goto(live.url + "/")
        request.node.ui_page = page
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.context.close()
    assert not alerts, alerts
    assert not csp_errors, csp_errors


def sign_in(page: Page, key: str) -> None:
    """By keyboard: the key field has the focus, Enter submits."""
    page.keyboard.type(key)
    page.keyboard.press("Enter")


def check_page(page: Page, name: str, width: int) -> list[dict[str, object]]:
    """axe-core's serious/critical violations (asserted empty), no sideways scroll, a screenshot."""
    page.wait_for_load_state("networkidle")
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    bad = [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
    (SHOTS / f"axe-{name}-{width}.json").write_text(
        json.dumps(
            [
                {"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"])}
                for v in results["violations"]
            ],
            indent=1,
        )
    )
    page.screenshot(path=SHOTS / f"{name}-{width}.png", full_page=True)
    assert not bad, [(v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in bad]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, (
        f"{name} scrolls sideways"
    )
    return bad


def choose_photo(page: Page, photo: Path) -> None:
    """Pick the playground's photo, once the page has settled (no load still under way), and wait
    until the page took it: the Caption button is enabled only then."""
    page.wait_for_load_state("networkidle")
    page.locator("#query-photo").set_input_files(photo)
    expect(page.locator("#chosen-photo")).to_contain_text(photo.name)
    expect(page.get_by_role("button", name="Caption", exact=True)).to_be_enabled()


def caption_photo(page: Page, photo: Path) -> str:
    """Caption through the UI; the caption the API answered, once the page shows it."""
    choose_photo(page, photo)
    with page.expect_response(lambda r: r.url.endswith("/caption"), timeout=60_000) as answer:
        page.get_by_role("button", name="Caption", exact=True).click()
    assert answer.value.status == 200, answer.value.text()
    text: str = answer.value.json()["caption"]
    expect(page.get_by_role("heading", name="Caption", exact=True)).to_be_visible()
    assert page.locator("#caption").text_content() == text
    return text


def thumbnail_loaded(page: Page, selector: str) -> None:
    img = page.locator(selector).first
    expect(img).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle())


def test_sign_in_refuses_a_wrong_key_and_signs_out(open_page: OpenPage, live: Live) -> None:
    page: Page = open_page()
    csp = httpx.get(live.url + "/").headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    sign_in(page, "rpk_not-a-real-key")
    expect(page.get_by_role("alert")).to_contain_text("Your API key was refused")
    expect(page.get_by_role("heading", name="Sign in to RePIC")).to_be_visible()
    sign_in(page, live.key)
    expect(page.get_by_role("heading", name="Your concepts")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('repic.apiKey')") == live.key
    assert live.key not in page.url
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('repic.apiKey')") is None


def test_concept_lifecycle(open_page: OpenPage, live: Live) -> None:
    page: Page = open_page()
    sign_in(page, live.key)
    page.get_by_role("link", name="New concept").first.click()
    page.get_by_label("Name").fill("<bo>")
    page.get_by_label("Category (optional)").fill("dog")
    page.get_by_label("Info (optional)").fill("my beagle")
    page.locator("#new-photos").set_input_files(
        [live.photos / "photo-1.jpg", live.photos / "photo-2.jpg"]
    )
    page.get_by_role("button", name="Create concept").click()
    expect(page.get_by_role("heading", name="<bo>")).to_be_visible()
    expect(page.locator("#photos li")).to_have_count(2)

    page.get_by_role("link", name="← All concepts").click()
    card = page.locator(".card", has_text="<bo>")
    expect(card).to_contain_text("2 photos")
    expect(card).to_contain_text("dog")
    thumbnail_loaded(page, ".card:has-text('<bo>') img")

    card.get_by_role("link").click()
    page.locator("#add-photos").set_input_files(
        [live.photos / "photo-3.jpg", live.photos / "too-big.jpg", live.photos / "notes.txt"]
    )
    expect(page.locator(".uploads .hint")).to_have_text("1 of 3 photos added")
    rejected = page.get_by_role("list", name="Rejected files")
    expect(rejected.locator("li")).to_have_count(2)
    expect(rejected).to_contain_text("too-big.jpg: ")
    expect(rejected).to_contain_text("notes.txt: ")
    expect(page.locator("#photos li")).to_have_count(3)
    page.get_by_role("button", name="Delete photo 3").click()
    expect(page.locator("#photos li")).to_have_count(2)

    page.get_by_label("Info").fill("my beagle, loves socks")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#concept-info")).to_have_text("my beagle, loves socks")

    page.get_by_role("button", name="Delete concept…").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete concept").click()
    expect(page.get_by_role("heading", name="Your concepts")).to_be_visible()
    expect(page.locator(".card", has_text="<bo>")).to_have_count(0)


def test_caption_playground_draws_boxes(
    open_page: OpenPage, live: Live, seeded: dict[str, int]
) -> None:
    page: Page = open_page()
    sign_in(page, live.key)
    page.get_by_role("link", name="Playground").click()
    caption_photo(page, live.photos / "photo-2.jpg")
    boxes = page.locator("svg.boxes rect[stroke]")
    # The boxes are drawn once the photo has loaded, a moment after the caption shows.
    expect(boxes.first).to_be_visible()
    drawn = boxes.first.bounding_box()
    assert drawn is not None and drawn["width"] > 0
    expect(page.get_by_role("list", name="Retrieved concepts").locator("li")).to_have_count(2)
    expect(page.get_by_role("table", name="Caption timings")).to_contain_text("vlm")
    thumbnail_loaded(page, ".demos img")

    page.get_by_text("Options").click()
    page.get_by_label("Or pick concepts by hand").select_option(label="<mia>")
    page.get_by_label("Instruction or question").fill("What is <mia> doing?")
    page.get_by_label("Max tokens").fill("4")
    caption_photo(page, live.photos / "photo-3.jpg")
    expect(page.get_by_role("list", name="Demonstrations used")).to_contain_text("picked by hand")
    expect(page.get_by_role("list", name="Demonstrations used").locator("li")).to_have_count(1)

    page.locator("#query-photo").set_input_files(live.photos / "notes.txt")
    page.get_by_role("button", name="Caption", exact=True).click()
    problem = page.locator(".problem")
    expect(problem).to_contain_text("415")
    expect(problem).to_contain_text("JPEG")  # the problem's detail names what is accepted
    page.locator("#query-photo").set_input_files(live.photos / "photo-2.jpg")
    page.get_by_role("button", name="Try again").click()
    expect(page.locator("#caption")).to_be_attached(timeout=60_000)


def test_caption_result_corrections_teach_retrieval(
    open_page: OpenPage, live: Live, seeded: dict[str, int]
) -> None:
    page: Page = open_page()
    sign_in(page, live.key)
    page.get_by_role("link", name="Playground").click()
    page.wait_for_load_state("networkidle")
    keep = page.get_by_label("Keep this caption so I can correct it")
    keep.check()
    choose_photo(page, live.photos / "photo-7.jpg")
    expect(keep).to_be_checked()
    with page.expect_response(lambda r: r.url.endswith("/caption"), timeout=60_000) as answer:
        page.get_by_role("button", name="Caption", exact=True).click()
    history_id = answer.value.json()["history_id"]
    assert history_id is not None
    panel = page.get_by_role("region", name="Correct this caption")
    status = panel.get_by_role("status")

    panel.get_by_label("Concept").select_option(label="<mia>")
    panel.get_by_role("button", name="Wrong name").click()
    expect(status).to_have_text("Noted: <mia> is not in this photo.")
    panel.get_by_label("Concept").select_option(label="<rex>")
    panel.get_by_role("button", name="Missing name").click()
    expect(status).to_have_text("Noted: <rex> is in this photo.")
    auth = {"Authorization": f"Bearer {live.key}"}
    kept = httpx.get(f"{live.url}/captions/{history_id}", headers=auth, timeout=30).json()
    assert kept["feedback"]["wrong"] == [{"id": seeded["mia"], "name": "mia"}]
    assert kept["feedback"]["present"] == [{"id": seeded["rex"], "name": "rex"}]

    panel.get_by_role("button", name="Add this photo to <rex>").click()
    expect(status).to_contain_text("Added this photo to <rex>")
    photo = (live.photos / "photo-7.jpg").read_bytes()
    found = httpx.post(
        f"{live.url}/retrieve",
        files={"image": ("q.jpg", photo, "image/jpeg")},
        data={"min_score": "-1"},
        headers=auth,
        timeout=60,
    ).json()
    assert found["data"][0]["concept"]["id"] == seeded["rex"]


def test_concept_info_is_text_not_html(
    open_page: OpenPage, live: Live, seeded: dict[str, int]
) -> None:
    page: Page = open_page()
    sign_in(page, live.key)
    page.goto(f"{live.url}/#/concepts/{seeded['xss']}")
    expect(page.locator("#concept-info")).to_have_text(XSS)
    assert page.locator("img[src='x']").count() == 0
    # the fixture asserts no alert() ran


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_is_accessible_at_both_widths(
    open_page: OpenPage, live: Live, seeded: dict[str, int], width: int
) -> None:
    page: Page = open_page(width)
    check_page(page, "sign-in", width)
    sign_in(page, live.key)
    expect(page.locator(".card")).to_have_count(len(seeded))
    for index in range(page.locator(".card img").count()):
        thumbnail_loaded(page, f".card >> nth={index} >> img")
    check_page(page, "gallery", width)
    page.goto(f"{live.url}/#/concepts/{seeded['rex']}")
    thumbnail_loaded(page, "#photos img")
    check_page(page, "concept", width)
    page.goto(f"{live.url}/#/new")
    check_page(page, "new-concept", width)
    page.goto(f"{live.url}/#/playground")
    caption_photo(page, live.photos / "photo-1.jpg")
    check_page(page, "playground", width)
    readme = os.environ.get("REPIC_UI_README_SHOTS")
    if readme and width == 1280:
        Path(readme).mkdir(parents=True, exist_ok=True)
        for name in ("gallery", "playground"):
            shutil.copy(SHOTS / f"{name}-{width}.png", Path(readme) / f"{name}.png")


def test_gallery_pages_through_many_concepts(
    open_page: OpenPage, live: Live, seeded: dict[str, int]
) -> None:
    # Runs after the screenshots: it adds concepts until there are two pages and a bit.
    for n in range(30 - len(seeded)):
        _post_concept(live, f"extra{n:02d}", None, [n % 8 + 1])
    page: Page = open_page()
    sign_in(page, live.key)
    pager = page.get_by_role("navigation", name="Pages")
    expect(pager).to_contain_text("1–24 of 30")
    expect(page.locator(".card")).to_have_count(24)
    pager.get_by_role("button", name="Next").click()
    expect(pager).to_contain_text("25–30 of 30")
    expect(page.locator(".card")).to_have_count(6)
    expect(pager.get_by_role("button", name="Next")).to_be_disabled()
    page.get_by_label("Find a concept by name").fill("<EXTRA07>")
    page.keyboard.press("Enter")
    expect(page.locator(".card")).to_have_count(1)
    expect(page.locator(".card")).to_contain_text("<extra07>")


def test_home_without_a_build_is_a_clear_503(tmp_path: Path) -> None:
    app = FastAPI()
    install_problem_handlers(app)
    install_ui(app, tmp_path / "missing")
    with TestClient(app) as client:  # sync: Playwright's loop runs in this thread
        resp = client.get("/")
    assert resp.status_code == 503
    assert resp.json()["type"] == "urn:repic:problem:ui-not-built"
