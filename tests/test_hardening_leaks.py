"""What the service tells and claims: no server paths in error bodies, no garbage served as an image, page
security headers, and /metrics only where it is configured to answer."""

from __future__ import annotations

from pathlib import Path

from posterrec_settings import load_settings

import pytest
from test_recsvc_support import publish, settings_for, synthetic_corpus

from recsvc import create_app


@pytest.fixture
def served(tmp_path: Path):
    """A client over a fresh index whose image files the test may spoil, and that corpus."""
    corpus = synthetic_corpus(tmp_path / "images")
    publish(tmp_path / "index", corpus)
    return create_app(settings_for(tmp_path / "index"), watch=False).test_client(), corpus


def image_path(corpus, key: str) -> Path:
    return Path(next(item.image_path for item in corpus.items if item.key == key))


@pytest.mark.parametrize(
    "url", ["/v1/posters/t001/image?region=DE", "/thumbs/t001?region=DE", "/download/t001?region=DE"]
)
def test_a_missing_image_file_is_a_503_that_names_no_server_path(served, tmp_path: Path, url: str, caplog) -> None:
    client, corpus = served
    image_path(corpus, "t001@DE").unlink()
    response = client.get(url)
    assert response.status_code == 503 and response.json["error"] == "image_unavailable"
    assert str(tmp_path) not in response.get_data(as_text=True) and "/" not in response.json["detail"]
    assert any(str(tmp_path) in record.getMessage() for record in caplog.records), "the log keeps the path"


@pytest.mark.parametrize("url", ["/v1/posters/t001/image?region=DE", "/download/t001?region=DE"])
def test_an_image_file_overwritten_with_garbage_is_not_served_as_an_image(served, url: str) -> None:
    client, corpus = served
    assert client.get(url).status_code == 200
    image_path(corpus, "t001@DE").write_bytes(b"<script>alert(1)</script> not a poster at all")
    response = client.get(url)
    assert response.status_code == 503 and response.json["error"] == "image_unavailable"


def test_an_image_is_typed_by_its_bytes_not_its_name(served) -> None:
    client, corpus = served
    path = image_path(corpus, "t001")
    renamed = path.with_suffix(".png")  # JPEG bytes under a .png name
    path.rename(renamed)
    path.symlink_to(renamed)
    response = client.get("/v1/posters/t001/image")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"


def test_every_response_says_nosniff_and_the_page_forbids_framing_and_foreign_content(index_root: Path) -> None:
    client = create_app(settings_for(index_root), watch=False).test_client()
    for url in ("/healthz", "/v1/posters/t001", "/v1/posters/nope", "/thumbs/t001", "/"):
        assert client.get(url).headers["X-Content-Type-Options"] == "nosniff", url
    page = client.get("/")
    assert page.mimetype == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" not in client.get("/v1/posters/t001").headers


def test_metrics_ask_for_the_configured_token(index_root: Path) -> None:
    settings = load_settings(env={}, index_root=index_root, index_poll_seconds=0, metrics_token="s3cret")
    client = create_app(settings, watch=False).test_client()
    refused = client.get("/metrics")
    assert (
        refused.status_code == 401
        and refused.json["error"] == "unauthorized"
        and "Bearer" in refused.headers["WWW-Authenticate"]
    )
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answered = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert answered.status_code == 200 and b"posterrec_requests_total" in answered.data


def test_metrics_bound_elsewhere_are_not_on_the_api(index_root: Path) -> None:
    settings = load_settings(env={}, index_root=index_root, index_poll_seconds=0, metrics_bind="127.0.0.1:9100")
    assert create_app(settings, watch=False).test_client().get("/metrics").status_code == 404
