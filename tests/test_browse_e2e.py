"""The browse page driven in a real headless Chromium against the real app on localhost.

Chromium is Debian's (``apt-get install -y chromium``) driven by Playwright's
Python package; Playwright's own browser download is never used. Every test
fails on any console error or uncaught page error it does not expect, and
leaves a screenshot under ``test-artifacts/browse/``.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

import pytest
from PIL import Image
from test_browse_support import BrowseCorpus, browse_app, build_browse_corpus, serve
from test_recsvc_search import publish_with_model, tiny_model  # noqa: F401  (tiny_model is a fixture)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browse"
TIMEOUT_MS = 15_000
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
VARIANT_BAND = (40, 170, 130)
"""The colour of the band :mod:`test_browse_support` draws across the top of every variant."""

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
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is in the test extras: pip install -e '.[test]'"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def console_errors() -> list[str]:
    """What the browser reported as errors; a test that provokes one removes it, any other fails the test."""
    return []


def open_page(browser, url: str, request, errors: list[str], **device):
    """A fresh context (empty history) on ``url``: errors are collected, a screenshot is left at the end."""
    context = browser.new_context(**{"viewport": DESKTOP, **device}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on(
        "console",
        lambda message: errors.append(f"console {message.type}: {message.text}") if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.goto(url)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    context.close()
    assert not errors, "the browser console reported errors:\n" + "\n".join(errors)


@pytest.fixture
def page(browser, server, request, console_errors):
    yield from open_page(browser, server.url + "/", request, console_errors)


@pytest.fixture
def phone(browser, server, request, console_errors):
    yield from open_page(
        browser, server.url + "/", request, console_errors, viewport=PHONE, is_mobile=True, has_touch=True
    )


def loaded_images(page, selector: str) -> list[dict]:
    """Every image under ``selector`` once it has loaded (or failed): its src and its decoded width."""
    page.wait_for_function(
        "sel => [...document.querySelectorAll(sel)].every(img => img.complete)", arg=selector, timeout=TIMEOUT_MS
    )
    return page.eval_on_selector_all(
        selector, "imgs => imgs.map(img => ({src: img.src, width: img.naturalWidth, alt: img.alt}))"
    )


def card_ids(page, list_selector: str) -> list[str]:
    return page.eval_on_selector_all(f"{list_selector} > .card", "cards => cards.map(card => card.dataset.id)")


def url_query(page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def title_of(corpus: BrowseCorpus, title_id: str) -> str:
    return next(item.title for item in corpus.originals if item.title_id == title_id)


def open_details(page, title_id: str) -> None:
    page.locator(f"#grid .card[data-id='{title_id}'] .card-open").click()
    page.wait_for_selector("#similar > .card")


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
    page.get_by_label("Title", exact=True).fill(word.lower())
    page.get_by_label("Title", exact=True).press("Enter")
    page.wait_for_url(re.compile(f"q={re.escape(word.lower())}&"))
    expected = {item.title_id for item in originals if word.lower() in item.title.lower()}
    assert set(card_ids(page, "#grid")) == expected

    genre = originals[0].genres[0]
    page.get_by_label("Title", exact=True).fill("")
    page.locator("select[name=genre]").select_option(
        genre
    )  # a menu applies on its own, as the region and variant menus do
    page.wait_for_url(re.compile(f"genre={re.escape(quote_plus(genre))}&"))
    assert set(card_ids(page, "#grid")) == {item.title_id for item in originals if genre in item.genres}


def test_arrow_keys_through_a_menu_load_the_page_once(page):
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    region = page.locator("select[name=region]")
    options = region.locator("option").evaluate_all("options => options.map(o => o.value)")
    region.focus()
    for _ in range(3):
        page.keyboard.press("ArrowDown")
        page.wait_for_timeout(150)  # a person stepping through the menu, slower than the browser loads a page
    page.wait_for_url(re.compile(r"region="))
    page.wait_for_load_state("load")
    page.wait_for_timeout(1000)  # a second request would have started by now
    assert len(navigations) == 1 and url_query(page)["region"] == [options[3]]


def test_poster_details_rank_similar_posters_without_raw_scores(page, corpus):
    first = page.locator("#grid .card").first
    title_id = first.get_attribute("data-id")
    first.locator(".card-open").click()
    page.wait_for_selector("#similar > .card")
    dialog = page.get_by_role("dialog")
    assert dialog.get_by_role("heading", level=2).inner_text() == title_of(corpus, title_id)
    similar = card_ids(page, "#similar")
    assert len(similar) == 12 and title_id not in similar and len(set(similar)) == 12
    assert page.locator("#similar .rank").all_inner_texts() == [f"#{rank}" for rank in range(1, 13)]
    similarities = [
        float(title.rsplit(" ", 1)[1])
        for title in page.locator("#similar .rank").evaluate_all("els => els.map(e => e.title)")
    ]
    assert similarities == sorted(similarities, reverse=True)
    assert (
        "score" not in dialog.inner_text()
        and "recent_neighbours" not in page.locator("main, aside, dialog").all_inner_texts()
    )
    assert all(image["width"] > 0 for image in loaded_images(page, "#similar img.poster"))

    page.keyboard.press("Escape")
    page.wait_for_url(lambda url: "poster=" not in url)  # the address changes after the dialog closes
    assert not dialog.is_visible()
    assert "poster" not in url_query(page)
    assert (
        page.evaluate("document.activeElement.closest('.card')?.dataset.id") == title_id
    )  # focus returns to the poster


def test_back_and_forward_move_through_pages_and_details(page, corpus):
    page.goto(page.url + "?per_page=8")
    page.get_by_role("link", name="Next →").click()
    page.wait_for_url(re.compile(r"page=2"))
    title_id = card_ids(page, "#grid")[2]
    open_details(page, title_id)
    dialog = page.get_by_role("dialog")
    assert url_query(page)["poster"] == [title_id] and url_query(page)["page"] == ["2"]

    neighbour = card_ids(page, "#similar")[0]
    page.locator(f"#similar .card[data-id='{neighbour}'] .card-open").click()
    page.wait_for_function(
        "id => document.querySelector('#details-title').innerText === id", arg=title_of(corpus, neighbour)
    )
    assert url_query(page)["poster"] == [neighbour]

    page.go_back()
    page.wait_for_function(
        "t => document.querySelector('#details-title').innerText === t", arg=title_of(corpus, title_id)
    )
    page.go_back()
    page.wait_for_url(lambda url: "poster=" not in url)
    page.wait_for_function("() => !document.querySelector('#details').open")
    assert "poster" not in url_query(page) and url_query(page)["page"] == ["2"]
    page.go_back()
    page.wait_for_url(re.compile(r"per_page=8$"))
    assert page.locator(".pager span").inner_text().startswith("Page 1 of")

    page.go_forward()
    page.wait_for_url(re.compile(r"page=2$"))
    page.go_forward()
    page.wait_for_function(  # the dialog opens first; its title is filled in once the poster's details load
        "t => document.querySelector('#details').open && document.querySelector('#details-title').innerText === t",
        arg=title_of(corpus, title_id),
    )
    assert dialog.get_by_role("heading", level=2).inner_text() == title_of(corpus, title_id)

    page.get_by_role("button", name="Close details").click()  # closing returns to the listing's entry; Forward reopens
    page.wait_for_url(lambda url: "poster=" not in url)
    page.wait_for_function("() => !document.querySelector('#details').open")
    assert "poster" not in url_query(page)
    page.go_forward()
    page.wait_for_function("() => document.querySelector('#details').open")


def test_a_link_opens_a_poster_s_view(page, server, corpus):
    title_id = next(item.title_id for item in corpus.originals if corpus.variant_regions(item.title_id) == {"DE", "JP"})
    page.goto(f"{server.url}/?{urlencode({'poster': title_id, 'compare': 'JP'})}")
    page.wait_for_selector("#variant-picker input:checked")
    assert page.get_by_role("dialog").get_by_role("heading", level=2).inner_text() == title_of(corpus, title_id)
    assert page.get_by_role("radio", name=re.compile("^JP")).is_checked()

    page.goto(f"{server.url}/?{urlencode({'poster': title_id, 'view': 'regions'})}")
    page.wait_for_selector("#region-strip li")
    captions = page.locator("#region-strip .region-caption").all_inner_texts()
    assert captions[0] == "Original" and [c.split(" · ")[0] for c in captions[1:]] == ["DE", "JP"]
    assert all(image["width"] > 0 for image in loaded_images(page, "#region-strip img"))
    assert page.get_by_role("link", name="All regions").get_attribute("aria-current") == "page"

    page.keyboard.press("Escape")  # a link that was opened directly has no listing behind it: the address is replaced
    page.wait_for_url(lambda url: urlsplit(url).query == "")
    page.wait_for_function("() => !document.querySelector('#details').open")
    assert urlsplit(page.url).query == ""


def test_watched_state_is_marked_confirmed_and_undoable(page, corpus):
    card = page.locator("#grid .card").nth(1)
    title_id = card.get_attribute("data-id")
    title = title_of(corpus, title_id)
    watch = card.get_by_role("button", name=f"Watched {title}")
    assert watch.get_attribute("aria-pressed") == "false"
    watch.click()
    page.wait_for_function("() => document.querySelector('#recs-status').innerText.includes('from 1 watched')")
    assert watch.get_attribute("aria-pressed") == "true" and watch.inner_text() == "✓ Watched"
    assert "is-watched" in card.get_attribute("class")
    toast = page.locator("#toast")
    assert toast.is_visible() and f"Added “{title}”" in toast.inner_text()
    assert page.locator("#history-count").inner_text() == "1"

    page.get_by_role("button", name="Undo").click()
    page.wait_for_function("() => document.querySelectorAll('#history > li').length === 0")
    assert watch.get_attribute("aria-pressed") == "false" and "is-watched" not in card.get_attribute("class")

    watch.click()
    page.wait_for_function("() => document.querySelectorAll('#history > li').length === 1")
    page.get_by_role("link", name=title, exact=True).click()  # a history item opens its poster
    page.wait_for_function(
        "t => document.querySelector('#details').open && document.querySelector('#details-title').innerText === t",
        arg=title,
    )
    in_dialog = page.locator("#details-watch")
    assert in_dialog.get_attribute("aria-pressed") == "true" and in_dialog.inner_text() == "✓ In your watch history"
    in_dialog.click()
    page.wait_for_function("() => document.querySelector('#details-watch').getAttribute('aria-pressed') === 'false'")
    assert page.get_by_role("dialog").locator("#toast").is_visible()  # shown inside the modal dialog, not beneath it
    assert f"Removed “{title}”" in page.locator("#toast").inner_text()
    assert watch.get_attribute("aria-pressed") == "false"

    page.reload()  # the history is kept in the browser, and the marks come back with it
    page.keyboard.press("Escape")
    page.locator("#grid .card").nth(3).get_by_role("button", name=re.compile("^Watched")).click()
    page.wait_for_function("() => document.querySelector('#recs-status').innerText.includes('from 1 watched')")
    page.reload()
    assert (
        page.locator("#grid .card")
        .nth(3)
        .get_by_role("button", name=re.compile("^Watched"))
        .get_attribute("aria-pressed")
        == "true"
    )


def test_watch_history_gives_live_recommendations(page):
    cards = page.locator("#grid .card")
    watched = [cards.nth(i).get_attribute("data-id") for i in (0, 3, 5)]
    for i in (0, 3):
        cards.nth(i).get_by_role("button", name=re.compile("^Watched")).click()
    page.wait_for_function("() => document.querySelector('#recs-status').innerText.includes('from 2 watched')")
    first_recs = card_ids(page, "#recommendations")
    assert len(first_recs) == 12 and not set(first_recs) & set(watched[:2])
    assert page.locator("#recommendations .rank").first.inner_text() == "#1"

    cards.nth(5).get_by_role("button", name=re.compile("^Watched")).click()
    page.wait_for_function("() => document.querySelector('#recs-status').innerText.includes('from 3 watched')")
    assert not set(card_ids(page, "#recommendations")) & set(watched)
    assert page.eval_on_selector_all("#history > li", "items => items.map(li => li.dataset.id)") == watched
    assert all(image["width"] > 0 for image in loaded_images(page, "#recommendations img.poster"))

    page.reload()
    page.wait_for_function("() => document.querySelector('#recs-status').innerText.includes('from 3 watched')")
    page.get_by_role(
        "button", name=f"Remove {page.locator('#history > li').first.get_attribute('data-title')} from watch history"
    ).click()
    page.wait_for_function("() => document.querySelector('#recs-status').innerText.includes('from 2 watched')")
    page.get_by_role("button", name="Clear history").click()
    page.wait_for_function("() => document.querySelectorAll('#recommendations > .card').length === 0")


def test_region_coverage_filter_and_badges_beside_the_artwork(page, corpus):
    originals = corpus.originals
    with_de = {item.title_id for item in originals if "DE" in corpus.variant_regions(item.title_id)}
    page.locator("select[name=region]").select_option("DE")
    page.wait_for_url(re.compile(r"region=DE"))
    assert (
        page.locator("#coverage")
        .inner_text()
        .startswith(f"{len(with_de)} of {len(originals)} titles have a DE variant")
    )
    cards = page.eval_on_selector_all(
        "#grid .card",
        "cards => cards.map(c => { const img = c.querySelector('img').getBoundingClientRect();"
        " const badge = c.querySelector('.badge').getBoundingClientRect();"
        " return {id: c.dataset.id, badge: c.querySelector('.badge').innerText, src: c.querySelector('img').src,"
        " clear: badge.top >= img.bottom}; })",
    )
    assert all(card["clear"] for card in cards)  # no badge over the artwork
    assert all(
        card["badge"] == "DE variant" and card["src"].endswith("?region=DE") for card in cards if card["id"] in with_de
    )
    assert all(
        card["badge"] == "Original" and "region" not in card["src"] for card in cards if card["id"] not in with_de
    )
    assert all(image["width"] > 0 for image in loaded_images(page, "#grid img.poster"))

    page.locator("select[name=has_variant]").select_option("true")
    page.wait_for_url(re.compile(r"has_variant=true"))
    assert page.locator("#listing-heading").inner_text() == f"{len(with_de)} posters with a DE variant"
    assert set(card_ids(page, "#grid")) == with_de
    page.locator("select[name=has_variant]").select_option("false")
    page.wait_for_url(re.compile(r"has_variant=false"))
    assert set(card_ids(page, "#grid")) == {item.title_id for item in originals} - with_de

    page.locator("select[name=region]").select_option(
        "FR"
    )  # a region without variants says so instead of stamping "Original"
    page.wait_for_url(re.compile(r"region=FR"))
    assert "No title has a FR variant yet" in page.locator("#coverage").inner_text()

    page.get_by_text("Variant coverage by region").click()
    row = page.locator("#coverage-table tr[data-region='DE']")
    assert row.locator("td").first.inner_text() == f"{len(with_de)} of {len(originals)}"
    row.get_by_role("link").click()
    page.wait_for_url(re.compile(r"region=DE&has_variant=false"))
    assert len(card_ids(page, "#grid")) == len(originals) - len(with_de)


def stage_pixel(page, x_fraction: float) -> tuple[int, int, int]:
    """The colour shown near the top of the comparison at ``x_fraction`` of its width (where variants have their band)."""
    shot = Image.open(io.BytesIO(page.locator(".compare-stage").screenshot())).convert("RGB")
    return shot.getpixel((int(shot.width * x_fraction), 12))


def is_band(colour: tuple[int, int, int]) -> bool:
    return sum(abs(a - b) for a, b in zip(colour, VARIANT_BAND)) < 40


def test_original_sits_left_of_its_variant_and_each_image_downloads(page, corpus):
    title_id = next(item.title_id for item in corpus.originals if corpus.variant_regions(item.title_id) == {"DE", "JP"})
    page.goto(page.url + "?" + urlencode({"q": title_of(corpus, title_id)}))
    open_details(page, title_id)
    picker = page.get_by_role("group", name="Variant to compare")
    assert picker.get_by_role("radio").count() == 2 and picker.get_by_role("radio", name=re.compile("^DE")).is_checked()
    before, after = loaded_images(page, ".compare-stage img")
    assert before["src"].endswith(f"/v1/posters/{title_id}/image") and after["src"].endswith("image?region=DE")
    assert page.locator("#compare-heading").inner_text() == "Original and DE variant"
    assert not is_band(stage_pixel(page, 0.25)) and is_band(stage_pixel(page, 0.75))  # original left, variant right

    slider = page.get_by_label(re.compile("^Divider"))
    slider.focus()
    page.keyboard.press("Home")
    assert is_band(stage_pixel(page, 0.1)) and is_band(stage_pixel(page, 0.9))
    assert (
        not page.locator("#compare-before-label").is_visible()
        and page.locator("#compare-after-label").inner_text() == "DE variant"
    )
    page.keyboard.press("End")
    assert not is_band(stage_pixel(page, 0.1)) and not is_band(stage_pixel(page, 0.9))
    assert not page.locator("#compare-after-label").is_visible() and page.locator("#compare-before-label").is_visible()

    picker.get_by_role("radio", name=re.compile("^DE")).focus()
    page.keyboard.press("ArrowRight")  # native radios: the arrow keys move the choice, and the address follows
    page.wait_for_function("() => new URL(location.href).searchParams.get('compare') === 'JP'")
    assert loaded_images(page, "#compare-after")[0]["src"].endswith("image?region=JP")
    page.go_back()
    page.wait_for_function("() => document.querySelector('#compare-after').src.endsWith('region=DE')")

    originals = {item.region or "original": Path(item.image_path) for item in corpus.items if item.title_id == title_id}
    page.get_by_role("link", name="All regions").click()
    page.wait_for_url(re.compile(r"view=regions"))
    for name, key in (("Download original", "original"), ("Download DE variant", "DE"), ("Download JP variant", "JP")):
        with page.expect_download() as download:
            page.locator("#region-strip").get_by_role("link", name=name).click()
        assert download.value.suggested_filename == f"{title_id}-{key}{originals[key].suffix}"
        assert Path(download.value.path()).read_bytes() == originals[key].read_bytes()


def test_a_page_past_the_end_says_so_once(page, console_errors, server, corpus):
    pages = -(-len(corpus.originals) // 8)
    page.goto(f"{server.url}/?per_page=8&page=99")
    console_errors.remove(
        "console error: Failed to load resource: the server responded with a status of 404 (NOT FOUND)"
    )
    main = page.locator("main").inner_text()
    assert (
        "Page 99 is past the end of this listing" in main
        and f"It has {pages} pages of {len(corpus.originals)} posters" in main
    )
    assert "No poster matches" not in main and "Page 99 of" not in main
    page.get_by_role("link", name=f"go to page {pages}").click()
    page.wait_for_url(re.compile(f"page={pages}"))
    assert page.locator(".pager span").inner_text() == f"Page {pages} of {pages}"


def test_a_phone_confirms_a_watch_where_the_finger_is(phone):
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]  # nothing wider than the screen
    card = phone.locator("#grid .card").nth(4)
    card.scroll_into_view_if_needed()
    card.get_by_role("button", name=re.compile("^Watched")).tap()
    toast = phone.locator("#toast")
    toast.wait_for(state="visible")
    box = toast.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"] and box["width"] <= PHONE["width"]
    assert phone.locator("#history > li").count() == 1
    toast.get_by_role("link", name="See history").tap()
    phone.wait_for_function(
        "() => { const r = document.querySelector('#history').getBoundingClientRect(); return r.top >= 0 && r.top < innerHeight; }"
    )
    phone.locator("#history .history-open").tap()
    phone.wait_for_function("() => document.querySelector('#details').open")
    width = phone.locator("#details").bounding_box()["width"]
    assert width <= PHONE["width"]


@pytest.fixture(scope="module", autouse=True)
def fresh_artifacts():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)


@pytest.fixture(scope="module")
def search_server(tiny_model, tmp_path_factory):  # noqa: F811  (the imported fixture)
    """The app over an index embedded by the tiny model, so an upload is embedded for real."""
    model_dir, catalog = tiny_model
    root = tmp_path_factory.mktemp("search-index")
    items = publish_with_model(root, model_dir, catalog)
    for served in serve(browse_app(root)):
        yield served, items


def test_search_by_an_uploaded_image_lists_the_closest_posters(
    browser, search_server, request, console_errors, tmp_path
):
    served, items = search_server
    upload = tmp_path / "photo of a poster.jpg"
    Image.open(items[2].image_path).convert("RGB").save(upload, "JPEG", quality=90)  # re-encoded, not the indexed file
    for page in open_page(browser, served.url + "/", request, console_errors):
        page.locator("#image-search-file").set_input_files(str(upload))
        page.wait_for_function("() => document.querySelectorAll('#image-results > .card').length > 0")
        assert card_ids(page, "#image-results")[0] == items[2].title_id
        assert len(card_ids(page, "#image-results")) == 12
        assert (
            page.locator("#image-search-status").inner_text() == f"12 posters closest to {upload.name}, closest first."
        )
        assert loaded_images(page, "#image-search-preview")[0]["width"] > 0
        page.locator("#image-results .card-open").first.click()  # a result opens like any poster
        page.wait_for_function("() => document.querySelector('#details').open")
        assert url_query(page)["poster"] == [items[2].title_id]


def test_the_api_documentation_loads_from_the_page(page):
    page.get_by_text("About this catalogue").click()
    page.get_by_role("link", name="interactive documentation").click()
    page.wait_for_url(re.compile(r"/v1/docs$"))
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/posters" in paths and "/v1/search" in paths and "/v1/posters/{title_id}/similar" in paths
    page.locator(".opblock-summary-path", has_text=re.compile(r"^/v1/genres$")).click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    page.wait_for_function("() => document.querySelector('.live-responses-table')?.innerText.includes('\"genres\"')")
