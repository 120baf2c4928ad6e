"""``/v1/posters`` listing, ``/v1/genres``, ``/thumbs`` and the server-rendered page, through Flask's test client
over a real published index of demo posters."""

from __future__ import annotations

import gc
import io
import json
import re
from collections import Counter
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image
from test_browse_support import BrowseCorpus, browse_app, build_browse_corpus, publish

from recsvc.browse import THUMB_WIDTH, thumbnail_jpeg
from recsvc.catalog_api import MAX_PER_PAGE, catalog_of

TITLES = 14


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> BrowseCorpus:
    return build_browse_corpus(tmp_path_factory.mktemp("catalog"), titles=TITLES)


@pytest.fixture(scope="module")
def client(corpus):
    return browse_app(corpus.index_root).test_client()


def listed(client, **query) -> dict:
    response = client.get("/v1/posters", query_string=query)
    assert response.status_code == 200, response.json
    return response.json


def sort_key(item) -> tuple:
    return (item.title.casefold(), item.year or 0, item.title_id)


def test_pages_list_every_original_once_in_title_order(client, corpus):
    first = listed(client, per_page=5)
    assert (first["total"], first["pages"], first["page"]) == (TITLES, 3, 1)
    ids = [r["id"] for page in (1, 2, 3) for r in listed(client, per_page=5, page=page)["results"]]
    assert ids == [item.title_id for item in sorted(corpus.originals, key=sort_key)]
    assert listed(client, per_page=5, page=4)["results"] == []
    years = {item.title_id: item.year for item in corpus.originals}
    assert all(r["year"] == years[r["id"]] for r in first["results"])


def test_a_listing_echoes_its_filters_and_empty_fields_take_the_defaults(client, corpus):
    genre = corpus.originals[0].genres[0]
    echoed = listed(client, q="title", genre=genre, region="DE")
    assert (echoed["q"], echoed["genre"], echoed["region"]) == ("title", genre, "DE")
    defaults = listed(client, page="", per_page="")
    assert (defaults["page"], defaults["per_page"]) == (1, 24)
    assert listed(client, q="no title has this")["pages"] == 1


def test_listing_reports_variants_and_serves_the_region_s_image(client, corpus):
    results = listed(client, per_page=MAX_PER_PAGE, region="DE")["results"]
    for result in results:
        regions = corpus.variant_regions(result["id"])
        assert set(result["variant_regions"]) == regions
        if "DE" in regions:
            assert result["region"] == "DE" and result["image_url"].endswith("?region=DE")
        else:
            assert result["region"] is None and result["image_url"] == f"/v1/posters/{result['id']}/image"


def test_search_matches_every_word_case_insensitively(client, corpus):
    title = corpus.originals[0].title
    words = title.split()
    query = f"{words[-1].upper()}  {words[0].lower()}"
    expected = {
        i.title_id for i in corpus.originals if all(w.casefold() in i.title.casefold() for w in (words[0], words[-1]))
    }
    assert {r["id"] for r in listed(client, q=query, per_page=MAX_PER_PAGE)["results"]} == expected
    assert listed(client, q="no title has this")["total"] == 0


def test_genre_filter_and_genre_counts_agree(client, corpus):
    genres = client.get("/v1/genres").json["genres"]
    assert [g["genre"] for g in genres] == sorted({g for item in corpus.originals for g in item.genres})
    for entry in genres:
        found = listed(client, genre=entry["genre"], per_page=MAX_PER_PAGE)
        assert found["total"] == entry["titles"]
        assert all(entry["genre"] in r["genres"] for r in found["results"])


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"page": "0"}, "page"),
        ({"page": "two"}, "page"),
        ({"per_page": "101"}, "per_page"),
        ({"per_page": "-3"}, "per_page"),
        ({"genre": "Western Noir"}, "genre"),
        ({"region": "Germany"}, "region"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_bad_listing_parameters_are_json_400s_naming_the_parameter(client, query, named):
    response = client.get("/v1/posters", query_string=query)
    assert response.status_code == 400
    assert response.json["error"] == "bad_request" and named in response.json["detail"]


def test_thumbnails_are_small_jpegs_with_validators(client, corpus):
    title_id = corpus.originals[0].title_id
    response = client.get(f"/thumbs/{title_id}")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    with Image.open(io.BytesIO(response.data)) as image:
        assert image.format == "JPEG" and image.width == THUMB_WIDTH and abs(image.height / image.width - 1.5) < 0.02
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    etag = response.headers["ETag"]
    again = client.get(f"/thumbs/{title_id}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""


def test_thumbnails_follow_the_region_and_say_when_they_fall_back(client, corpus):
    with_de = next(i.title_id for i in corpus.originals if "DE" in corpus.variant_regions(i.title_id))
    without = next(i.title_id for i in corpus.originals if not corpus.variant_regions(i.title_id))
    variant = client.get(f"/thumbs/{with_de}?region=DE")
    original = client.get(f"/thumbs/{with_de}")
    assert variant.headers["X-PosterRec-Image"] == "variant:DE" and variant.data != original.data
    assert variant.headers["ETag"] != original.headers["ETag"]
    fallback = client.get(f"/thumbs/{without}?region=DE")
    assert fallback.headers["X-PosterRec-Image"] == "original" and "X-PosterRec-Fallback" in fallback.headers
    assert fallback.data == client.get(f"/thumbs/{without}").data


def test_thumbnail_errors_are_json(client, corpus):
    missing = client.get("/thumbs/no-such-poster")
    assert missing.status_code == 404 and missing.json["error"] == "not_found"
    variant_key = next(i.key for i in corpus.items if i.is_variant)
    assert client.get(f"/thumbs/{variant_key}").status_code == 404
    assert client.get(f"/thumbs/{corpus.originals[0].title_id}?region=D3").status_code == 400


def card_ids(html: str) -> list[str]:
    return re.findall(r'<li class="card" data-id="([^"]+)"', html)


def test_page_renders_the_listing_without_javascript(client, corpus):
    genre, _ = Counter(g for item in corpus.originals for g in item.genres).most_common(1)[0]
    response = client.get("/", query_string={"genre": genre, "per_page": 2, "region": "DE"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-cache"
    html = response.get_data(as_text=True)
    expected = [i.title_id for i in sorted(corpus.originals, key=sort_key) if genre in i.genres]
    assert card_ids(html) == expected[:2]
    assert len(expected) > 4, "the check needs a third page"
    assert link_query(html, "next") == {"genre": [genre], "per_page": ["2"], "region": ["DE"], "page": ["2"]}
    assert link_query(html, "prev") is None
    second = client.get("/", query_string={"genre": genre, "per_page": 2, "region": "DE", "page": 2}).get_data(
        as_text=True
    )
    assert link_query(second, "prev") == {
        "genre": [genre],
        "per_page": ["2"],
        "region": ["DE"],
    }  # page 1 is the default
    assert link_query(second, "next")["page"] == ["3"]
    assert '<template id="card-template">' in html and 'alt="' in html


def link_query(html: str, rel: str) -> dict[str, list[str]] | None:
    """The query of the page's ``rel`` link (next or prev), parsed; None when the page has none."""
    found = re.search(rf'<a href="([^"]*)" rel="{rel}">', html)
    return None if found is None else parse_qs(urlsplit(unescape(found.group(1))).query)


def test_page_with_a_bad_parameter_explains_it_and_shows_the_catalogue(client):
    response = client.get("/?genre=Nope")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "unknown genre" in html and len(card_ids(html)) == min(TITLES, 24)


def test_page_without_an_index_says_how_to_build_one(tmp_path):
    response = browse_app(tmp_path / "no-index").test_client().get("/")
    assert response.status_code == 503 and "python -m indexer build" in response.get_data(as_text=True)


def test_listing_follows_a_hot_swapped_index(tmp_path, corpus):
    full = BrowseCorpus(tmp_path / "index", corpus.items, corpus.embeddings)
    publish(full)
    app = browse_app(full.index_root)
    client = app.test_client()
    assert listed(client)["total"] == TITLES
    dropped = corpus.originals[0].title_id
    kept = [i for i, item in enumerate(corpus.items) if item.title_id != dropped]
    version = publish(BrowseCorpus(full.index_root, [corpus.items[i] for i in kept], corpus.embeddings[kept]))
    assert app.extensions["posterrec"].refresh()
    after = listed(client, per_page=MAX_PER_PAGE)
    assert after["index_version"] == version and after["total"] == TITLES - 1
    assert dropped not in {r["id"] for r in after["results"]}


def test_the_catalogue_built_for_a_listing_is_frozen_out_of_the_cyclic_collector(client):
    """Built on first use, after the index was frozen: left tracked, a 1M-title catalogue made every full collection
    walk a million entries (150–180 ms each on the bench index)."""
    listed(client)
    catalog = catalog_of(client.application.extensions["posterrec"].index)
    tracked = {id(obj) for obj in gc.get_objects()}
    assert not any(id(entry) in tracked for entry in catalog.entries)


def test_the_region_menu_counts_each_regions_variants_most_first(client, corpus):
    html = client.get("/").get_data(as_text=True)
    options = re.findall(r'<option value="([A-Z]{2})"[^>]*>\1 \((\d+) variants\)</option>', html)
    counts = Counter(item.region for item in corpus.items if item.region)
    assert counts, "the check needs variants"
    assert {region: int(n) for region, n in options if int(n)} == dict(counts)
    assert [int(n) for _, n in options] == sorted((int(n) for _, n in options), reverse=True)


def test_the_page_mounted_under_a_prefix_points_its_script_and_links_there(client):
    html = client.get("/", query_string={"per_page": 2}, environ_overrides={"SCRIPT_NAME": "/posterrec"}).get_data(
        as_text=True
    )
    config = json.loads(
        unescape(re.search(r'<script id="posterrec-config" type="application/json">(.*?)</script>', html).group(1))
    )
    assert (config["apiRoot"], config["thumbRoot"]) == ("/posterrec/v1", "/posterrec/thumbs")
    assert re.search(r'<a href="/posterrec/\?[^"]*" rel="next">', html)


def test_a_thumbnail_is_turned_as_the_posters_exif_orientation_says(tmp_path):
    """A camera or scanner stores a portrait poster as landscape pixels and an EXIF tag to turn them upright."""
    stored = Image.new("RGB", (300, 200), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90° clockwise to display
    path = tmp_path / "sideways.jpg"
    stored.save(path, "JPEG", exif=exif)
    thumb = Image.open(io.BytesIO(thumbnail_jpeg(str(path), path.stat().st_mtime_ns, path.stat().st_size)))
    assert thumb.width < thumb.height and thumb.width == 200


def test_has_variant_keeps_the_titles_with_or_without_one_and_counts_them(client, corpus):
    with_de = {i.title_id for i in corpus.originals if "DE" in corpus.variant_regions(i.title_id)}
    assert 0 < len(with_de) < TITLES, "the check needs titles with and without a DE variant"
    having = listed(client, region="DE", has_variant="true", per_page=MAX_PER_PAGE)
    assert {r["id"] for r in having["results"]} == with_de and having["total"] == len(with_de)
    lacking = listed(client, region="DE", has_variant="false", per_page=MAX_PER_PAGE)
    assert {r["id"] for r in lacking["results"]} == {i.title_id for i in corpus.originals} - with_de
    assert (
        having["with_variant"] == lacking["with_variant"] == listed(client, region="DE")["with_variant"] == len(with_de)
    )
    genre = corpus.originals[0].genres[0]
    in_genre = {i.title_id for i in corpus.originals if genre in i.genres}
    assert listed(client, region="DE", genre=genre)["with_variant"] == len(in_genre & with_de)
    assert listed(client)["with_variant"] is None and listed(client, region="DE", has_variant="")["has_variant"] is None


@pytest.mark.parametrize(
    ("query", "reason"),
    [({"region": "DE", "has_variant": "yes"}, "true or false"), ({"has_variant": "true"}, "needs a region")],
)
def test_a_bad_has_variant_is_a_400_saying_why(client, query, reason):
    response = client.get("/v1/posters", query_string=query)
    assert (
        response.status_code == 400 and "has_variant" in response.json["detail"] and reason in response.json["detail"]
    )


def test_downloads_are_the_full_images_named_by_poster_and_region(client, corpus):
    title_id = next(i.title_id for i in corpus.originals if "DE" in corpus.variant_regions(i.title_id))
    files = {item.region or "original": item.image_path for item in corpus.items if item.title_id == title_id}
    for region, path in files.items():
        response = client.get(f"/download/{title_id}", query_string={"region": region} if region != "original" else {})
        assert response.status_code == 200 and response.data == open(path, "rb").read()
        assert response.headers["Content-Disposition"] == f"attachment; filename={title_id}-{region}.png"
    missing = client.get(f"/download/{title_id}?region=FR")
    assert missing.status_code == 404 and "no FR variant" in missing.json["detail"]


def test_a_page_past_the_end_is_a_404_pointing_to_the_last_page(client):
    response = client.get("/", query_string={"per_page": 5, "page": 9})
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and "Page 9 is past the end of this listing" in html
    assert f"It has 3 pages of {TITLES} posters" in html and card_ids(html) == []
    last = re.search(r'<a href="([^"]*)">go to page 3</a>', html).group(1)
    assert parse_qs(urlsplit(unescape(last)).query) == {"per_page": ["5"], "page": ["3"]}
    assert "No poster matches" not in html and "Page 9 of" not in html


def test_a_card_links_to_its_details_on_the_same_listing(client, corpus):
    genre = corpus.originals[0].genres[0]
    html = client.get("/", query_string={"genre": genre, "poster": "earlier", "view": "regions"}).get_data(as_text=True)
    first = card_ids(html)[0]
    link = re.search(r'<a class="card-open" data-action="open" href="([^"]*)"', html).group(1)
    assert parse_qs(urlsplit(unescape(link)).query) == {"genre": [genre], "poster": [first]}
