"""The browse page driven in a real headless Chromium against the real app on localhost.

Chromium is Debian's (``apt-get install -y chromium``) driven by Playwright's
Python package; Playwright's own browser download is never used. Every test
fails on any console error or uncaught page error, and leaves a screenshot
under ``test-artifacts/browse/``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import quote_plus, urlencode

import pytest

from test_browse_support import BrowseCorpus, browse_app, build_browse_corpus, serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browse"
TIMEOUT_MS = 15_000

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> BrowseCorpus:
    return build_browse_corpus(tmp_path_factory.mktemp("browse"))


@pytest.fixture(scope="module")
def server(corpus):
    yield from serve(browse_app(corpus.index_root))


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's with `apt-get install -y chromium`")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extras: pip install -e '.[test]'")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server, request):
    """A fresh page (empty history) that fails the test on console errors and leaves a screenshot."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(f"console {message.type}: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.goto(server.url + "/")
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    context.close()
    assert not errors, "the browser console reported errors:\n" + "\n".join(errors)


def loaded_images(page, selector: str) -> list[dict]:
    """Every image under ``selector`` once it has loaded (or failed): its src and its decoded width."""
    page.wait_for_function(
        "sel => [...document.querySelectorAll(sel)].every(img => img.complete)", arg=selector, timeout=TIMEOUT_MS
    )
    return page.eval_on_selector_all(selector, "imgs => imgs.map(img => ({src: img.src, width: img.naturalWidth, alt: img.alt}))")


def card_ids(page, list_selector: str) -> list[str]:
    return page.eval_on_selector_all(f"{list_selector} > .card", "cards => cards.map(card => card.dataset.id)")


def test_grid_searches_filters_and_pages(page, corpus):
    originals = corpus.originals
    page.goto(page.url + "?per_page=8")
    assert len(card_ids(page, "#grid")) == 8
    images = loaded_images(page, "#grid img.poster")
    assert all(image["width"] > 0 and image["alt"].endswith("original poster") for image in images)

    page.get_by_role("link", name="Next →").click()
    page.wait_for_url(re.compile(r"page=2"))
    assert page.locator(".pager span").inner_text() == f"Page 2 of {-(-len(originals) // 8)}"
    assert len(card_ids(page, "#grid")) == 8

    word = originals[0].title.split()[0]
    page.get_by_label("Title").fill(word.lower())
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(f"q={re.escape(word.lower())}&"))
    expected = {item.title_id for item in originals if word.lower() in item.title.lower()}
    assert set(card_ids(page, "#grid")) == expected

    genre = originals[0].genres[0]
    page.get_by_label("Title").fill("")
    page.get_by_label("Genre").select_option(genre)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(f"genre={re.escape(quote_plus(genre))}&"))  # the empty genre= was there before
    assert set(card_ids(page, "#grid")) == {item.title_id for item in originals if genre in item.genres}


def test_poster_details_show_similar_posters_with_scores(page, corpus):
    first = page.locator("#grid .card").first
    title_id = first.get_attribute("data-id")
    first.locator(".card-open").click()
    page.wait_for_selector("#similar > .card")  # filled together with the heading
    dialog = page.get_by_role("dialog")
    expected_title = next(item.title for item in corpus.originals if item.title_id == title_id)
    assert dialog.get_by_role("heading", level=2).inner_text() == expected_title
    similar = card_ids(page, "#similar")
    assert len(similar) == 12 and title_id not in similar and len(set(similar)) == 12
    scores = [float(text.split()[1]) for text in page.locator("#similar .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    assert all(image["width"] > 0 for image in loaded_images(page, "#similar img.poster"))

    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert page.evaluate("document.activeElement.closest('.card')?.dataset.id") == title_id  # focus returns to the poster


def test_region_switch_loads_variant_images_and_marks_originals(page, corpus):
    page.get_by_label("Region").select_option("DE")
    page.wait_for_function("() => [...document.querySelectorAll('#grid .card')].every(c => c.dataset.shown)")
    cards = page.eval_on_selector_all(
        "#grid .card",
        "cards => cards.map(c => ({id: c.dataset.id, shown: c.dataset.shown, badge: c.querySelector('.badge').innerText,"
        " src: c.querySelector('img').src}))",
    )
    with_de = [card for card in cards if "DE" in corpus.variant_regions(card["id"])]
    without = [card for card in cards if "DE" not in corpus.variant_regions(card["id"])]
    assert with_de and without
    assert all(card["shown"] == "DE" and card["badge"] == "DE" and card["src"].endswith("?region=DE") for card in with_de)
    assert all(card["shown"] == "original" and card["badge"].lower() == "original" and "region" not in card["src"] for card in without)
    assert all(image["width"] > 0 for image in loaded_images(page, "#grid img.poster"))
    assert "region=DE" in page.url

    variant = page.request.get(f"{page.url.split('?')[0]}v1/posters/{with_de[0]['id']}/image?region=DE")
    original = page.request.get(f"{page.url.split('?')[0]}v1/posters/{without[0]['id']}/image?region=DE")
    assert variant.headers["x-posterrec-image"] == "variant:DE"
    assert original.headers["x-posterrec-image"] == "original" and "x-posterrec-fallback" in original.headers

    page.get_by_role("link", name="Next →").click()
    page.wait_for_url(re.compile(r"page=2"))
    assert page.get_by_label("Region").input_value() == "DE"  # the region survives paging


def test_watch_history_gives_live_recommendations(page):
    cards = page.locator("#grid .card")
    watched = [cards.nth(i).get_attribute("data-id") for i in (0, 3, 5)]
    for i in (0, 3):
        cards.nth(i).get_by_role("button", name=re.compile("watch history")).click()
    page.wait_for_function("() => document.querySelector('#recs-status').innerText.includes('from 2 watched')")
    first_recs = card_ids(page, "#recommendations")
    assert len(first_recs) == 12 and not set(first_recs) & set(watched[:2])

    cards.nth(5).get_by_role("button", name=re.compile("watch history")).click()
    page.wait_for_function("() => document.querySelector('#recs-status').innerText.includes('from 3 watched')")
    assert not set(card_ids(page, "#recommendations")) & set(watched)
    assert page.eval_on_selector_all("#history > li", "items => items.map(li => li.dataset.id)") == watched
    assert all(image["width"] > 0 for image in loaded_images(page, "#recommendations img.poster"))

    page.reload()  # the history is kept in the browser
    page.wait_for_function("() => document.querySelector('#recs-status').innerText.includes('from 3 watched')")
    page.get_by_role("button", name=f"Remove {page.locator('#history > li').first.get_attribute('data-title')} from watch history").click()
    page.wait_for_function("() => document.querySelector('#recs-status').innerText.includes('from 2 watched')")
    page.get_by_role("button", name="Clear history").click()
    assert page.locator("#recommendations > .card").count() == 0


def test_before_after_view_compares_a_poster_with_its_variants(page, corpus):
    title_id = next(item.title_id for item in corpus.originals if corpus.variant_regions(item.title_id) == {"DE", "JP"})
    title = next(item.title for item in corpus.originals if item.title_id == title_id)
    page.goto(page.url + "?" + urlencode({"q": title}))
    page.locator(f"#grid .card[data-id='{title_id}'] .card-open").click()
    page.wait_for_selector("#variant-picker input")
    picker = page.get_by_role("group", name="Variant to compare")
    assert picker.get_by_role("radio").count() == 2
    assert picker.get_by_role("radio", name=re.compile("^DE")).is_checked()
    before, after = loaded_images(page, ".compare-stage img")
    assert before["src"].endswith(f"/v1/posters/{title_id}/image") and after["src"].endswith("image?region=DE")
    assert before["width"] > 0 and after["width"] > 0

    picker.get_by_role("radio", name=re.compile("^DE")).focus()
    page.keyboard.press("ArrowRight")  # native radios: the arrow keys move the choice
    assert picker.get_by_role("radio", name=re.compile("^JP")).is_checked()
    assert loaded_images(page, "#compare-after")[0]["src"].endswith("image?region=JP")

    slider = page.get_by_label("Reveal the variant")
    slider.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    assert page.eval_on_selector(".compare-stage", "stage => stage.style.getPropertyValue('--reveal')") == "53%"


@pytest.fixture(scope="module", autouse=True)
def fresh_artifacts():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
