"""Uploads to ``/v1/search`` that declare many pixels: decoded at the size the model needs, within a bounded budget."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image
from test_recsvc_search import publish_with_model, tiny_model  # noqa: F401  (the fixture)
from test_recsvc_support import settings_for

from recsvc import api, create_app

pytestmark = pytest.mark.slow


def encoded(size: tuple[int, int], image_format: str, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 0 if mode in ("1", "L") else (200, 40, 90)).save(buffer, image_format)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model_index(tiny_model, tmp_path_factory) -> Path:  # noqa: F811
    model_dir, catalog = tiny_model
    root = tmp_path_factory.mktemp("index")
    publish_with_model(root, model_dir, catalog)
    return root


def upload(client, data: bytes, name: str):
    return client.post("/v1/search", data={"image": (io.BytesIO(data), name), "k": "3"})


def test_a_png_declaring_more_pixels_than_a_decode_may_hold_is_413_naming_the_limit(model_index: Path) -> None:
    client = create_app(settings_for(model_index), watch=False).test_client()
    bomb = encoded((6000, 6600), "PNG", "L")  # ~40 KB of PNG, 39.6M pixels once decoded
    assert len(bomb) < 200_000
    response = upload(client, bomb, "bomb.png")
    assert response.status_code == 413 and response.json["error"] == "image_too_large"
    assert (
        "bomb.png" in response.json["detail"]
        and f"{settings_for(model_index).max_upload_pixels:,}" in response.json["detail"]
    )


@pytest.mark.parametrize("side", [7_000, 14_000])  # past the service's limit; past twice PIL's own
def test_a_png_of_too_many_pixels_is_413(model_index: Path, side: int) -> None:
    response = upload(
        create_app(settings_for(model_index), watch=False).test_client(), encoded((side, side), "PNG", "1"), "b.png"
    )
    assert response.status_code == 413 and response.json["error"] == "image_too_large"


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_and_reduced_near_the_models_size() -> None:
    with Image.open(io.BytesIO(encoded((6000, 6600), "JPEG"))) as image:
        reduced = api.reduced_rgb(image, 662, max_pixels=1_000_000)  # 40M declared: decodable only at 1/8 scale
    assert reduced.mode == "RGB" and 662 <= max(reduced.size) < 2 * 662
    with Image.open(io.BytesIO(encoded((3000, 4500), "PNG"))) as image:
        reduced = api.reduced_rgb(image, 662, max_pixels=25_000_000)
    assert 662 <= max(reduced.size) < 2 * 662 and reduced.size[1] / reduced.size[0] == pytest.approx(1.5, rel=0.01)


MEASURE = textwrap.dedent("""
    import io, json, resource, sys
    from PIL import Image
    sys.path.insert(0, "tests")
    from test_recsvc_support import settings_for
    from recsvc import create_app
    client = create_app(settings_for(sys.argv[1]), watch=False).test_client()
    def post(data):
        return client.post("/v1/search", data={"image": (io.BytesIO(data), "big.jpg"), "k": "3"}).status_code
    small = io.BytesIO(); Image.new("RGB", (400, 600), (200, 40, 90)).save(small, "JPEG")
    big = io.BytesIO(); Image.new("RGB", (6000, 6600), (200, 40, 90)).save(big, "JPEG")
    statuses = [post(small.getvalue())]  # the model loaded and warm before measuring
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    statuses.append(post(big.getvalue()))
    print(json.dumps({"statuses": statuses, "grown_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}))
""")


def test_a_40_megapixel_jpeg_upload_is_searched_without_decoding_it_whole(model_index: Path) -> None:
    """Decoded whole it is 119 MB of RGB, and 475 MB more as the model's float input; the worker's peak must not grow by that."""
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, str(model_index)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert measured["statuses"] == [200, 200]
    assert measured["grown_kib"] < 60_000, f"peak memory grew by {measured['grown_kib'] / 1024:.0f} MiB"


def test_an_upload_waits_for_a_free_slot_and_is_503_when_none_frees(model_index: Path, monkeypatch) -> None:
    app = create_app(settings_for(model_index), watch=False)
    client = app.test_client()
    small = encoded((40, 60), "JPEG")
    assert upload(client, small, "a.jpg").status_code == 200
    monkeypatch.setattr(api, "UPLOAD_WAIT_SECONDS", 0.2)
    slots = app.extensions["posterrec.upload_slots"]
    held = [slots.acquire(blocking=False) for _ in range(settings_for(model_index).max_concurrent_uploads)]
    assert all(held)
    try:
        response = upload(client, small, "b.jpg")
        assert response.status_code == 503 and response.json["error"] == "busy"
        assert response.headers["Retry-After"] == "1"
        documented = client.get("/v1/openapi.json").json["paths"]["/v1/search"]["post"]["responses"]["503"]
        assert "Retry-After" in documented["headers"]
    finally:
        for _ in held:
            slots.release()
    assert upload(client, small, "c.jpg").status_code == 200
