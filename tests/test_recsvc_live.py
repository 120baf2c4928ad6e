"""Hot swap with requests in flight, refusal of a broken version, and a real gunicorn serving the app."""

from __future__ import annotations

import dataclasses
import gc
import http.client
import json
import logging
import os
import runpy
import shutil
import signal
import socket
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest
from test_recsvc_support import publish, settings_for, synthetic_corpus

from bench.support import free_port, gunicorn_command, running_server, service_env
from indexer import published
from recsvc import catalog_api, create_app
from recsvc.live_index import LiveIndex

REPO = Path(__file__).resolve().parents[1]


def garbage_scann_files(version_dir: Path) -> None:
    for path in (version_dir / published.SCANN_DIR).iterdir():
        path.write_bytes(b"\x00garbage" * 8)


def rewrite_manifest(**changes) -> Callable[[Path], None]:
    def rewrite(version_dir: Path) -> None:
        path = version_dir / published.MANIFEST
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    return rewrite


def embeddings_shaped(shape_for: Callable[[int], tuple[int, ...]]) -> Callable[[Path], None]:
    """Embeddings of ``shape_for(item count)``: the right count in the wrong shape."""

    def rewrite(version_dir: Path) -> None:
        count = len((version_dir / published.ITEMS).read_text().splitlines())
        np.save(version_dir / published.EMBEDDINGS, np.ones(shape_for(count), np.float32))

    return rewrite


def item_repeated(version_dir: Path) -> None:
    """The last item's line written over the first: as many items, two of them with one key."""
    path = version_dir / published.ITEMS
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[-1], *lines[1:]]) + "\n")


BROKEN_VERSIONS = {
    "torn ScaNN files": garbage_scann_files,
    "manifest not an object": lambda version_dir: (version_dir / published.MANIFEST).write_text("[]"),
    "manifest with bad search params": rewrite_manifest(params={"num_leaves": "many", "reorder_k": None}),
    "1-d embeddings": embeddings_shaped(lambda count: (count,)),
    "embeddings of another dimension": embeddings_shaped(lambda count: (count, 7)),
    "two items with one key": item_repeated,
}


def publish_broken(root: Path, scratch: Path, corpus, corrupt: Callable[[Path], None] = garbage_scann_files) -> str:
    """A version broken by ``corrupt`` (a torn copy, a bad disk, a buggy publisher) made CURRENT with ``set_current``.

    It is built under ``scratch`` and corrupted before ``CURRENT`` names it, so a watcher never sees it whole.
    """
    version = publish(scratch, corpus)
    target = root / published.VERSIONS / version
    shutil.copytree(scratch / published.VERSIONS / version, target)
    corrupt(target)
    published.set_current(root, version)
    return version


@pytest.mark.parametrize("breakage", BROKEN_VERSIONS)
def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(tmp_path: Path, breakage: str, caplog) -> None:
    root = tmp_path / "index"
    good = publish(root, synthetic_corpus(tmp_path / "images"))
    app = create_app(settings_for(root), watch=False)
    live = app.extensions["posterrec"]
    broken = publish_broken(
        root, tmp_path / "scratch", synthetic_corpus(tmp_path / "images", extra_titles=3), BROKEN_VERSIONS[breakage]
    )
    assert published.current_version(root) == broken
    assert not live.refresh(), "the broken version must be refused"
    assert live.index.version == good
    client = app.test_client()
    assert client.get("/readyz").json["version"] == good
    assert client.get("/v1/posters/t001/similar?k=5").status_code == 200
    assert client.post("/v1/recommendations", json={"history": ["t001", "t002"]}).status_code == 200
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="recsvc.live_index"):
        assert not live.refresh()
    assert not [r for r in caplog.records if "refusing" in r.getMessage()], (
        "a refused version is not reloaded while CURRENT names it"
    )
    published.set_current(root, good)
    fixed = publish(root, synthetic_corpus(tmp_path / "images", extra_titles=5))
    assert live.refresh() and live.index.version == fixed


def test_a_refused_version_is_loaded_once_repaired_and_named_again(tmp_path: Path) -> None:
    """Refused, rolled back from, repaired in place, then made current again: the repair is served."""
    root = tmp_path / "index"
    good = publish(root, synthetic_corpus(tmp_path / "images"))
    live = create_app(settings_for(root), watch=False).extensions["posterrec"]
    broken = publish_broken(root, tmp_path / "scratch", synthetic_corpus(tmp_path / "images", extra_titles=3))
    assert not live.refresh()
    published.set_current(root, good)
    assert not live.refresh() and live.index.version == good
    repaired = root / published.VERSIONS / broken / published.SCANN_DIR
    shutil.rmtree(repaired)
    shutil.copytree(tmp_path / "scratch" / published.VERSIONS / broken / published.SCANN_DIR, repaired)
    published.set_current(root, broken)
    assert live.refresh() and live.index.version == broken


@pytest.mark.parametrize("unreadable", ["bytes", "directory"])
def test_an_unreadable_current_pointer_keeps_the_served_version_and_a_starting_worker_on_the_newest(
    tmp_path: Path, unreadable: str
) -> None:
    root = tmp_path / "index"
    good = publish(root, synthetic_corpus(tmp_path / "images"))
    app = create_app(settings_for(root), watch=False)

    def spoil_current() -> None:
        current = root / published.CURRENT
        current.unlink()
        if unreadable == "bytes":
            current.write_bytes(b"\xff\xfe not a version name")
        else:
            current.mkdir()

    spoil_current()
    assert not app.extensions["posterrec"].refresh()
    assert app.test_client().get("/readyz").json["version"] == good
    fresh = create_app(settings_for(root), watch=False).test_client()  # a worker starting now
    ready = fresh.get("/readyz")
    assert (
        ready.status_code == 200 and ready.json["version"] == good and "CURRENT cannot be read" in ready.json["detail"]
    )


def test_a_served_index_is_left_out_of_full_collections_and_freed_when_swapped_out(tmp_path: Path) -> None:
    """Frozen out of the cyclic collector, and still freed by reference counting alone once replaced."""
    root = tmp_path / "index"
    publish(root, synthetic_corpus(tmp_path / "images"))
    live = create_app(settings_for(root), watch=False).extensions["posterrec"]
    item = live.index.items[0]
    assert gc.get_freeze_count() > len(live.index.items) and not any(obj is item for obj in gc.get_objects())
    old = weakref.ref(live.index)
    publish(root, synthetic_corpus(tmp_path / "images", extra_titles=2))
    was_enabled = gc.isenabled()
    gc.disable()  # no collection may free it: reference counting must
    try:
        assert live.refresh()
        assert old() is None, "the swapped-out index must be freed without a garbage collection"
    finally:
        if was_enabled:
            gc.enable()


def test_hot_swap_with_requests_in_flight_fails_no_request(tmp_path: Path) -> None:
    """Four threads hammer /similar while the watcher swaps in new versions and refuses a broken one."""
    root = tmp_path / "index"
    images = tmp_path / "images"
    first = publish(root, synthetic_corpus(images))
    app = create_app(settings_for(root, poll_seconds=0.02), watch=True)
    live = app.extensions["posterrec"]
    stop = threading.Event()
    failures: list[str] = []
    served_versions: set[str] = set()
    counts = [0] * 4

    def hammer(slot: int) -> None:
        client = app.test_client()
        while not stop.is_set():
            response = client.get(f"/v1/posters/t{slot:03d}/similar?k=10&region=DE")
            counts[slot] += 1
            if response.status_code != 200 or len(response.json["results"]) != 10:
                failures.append(f"{response.status_code} {response.data[:200]!r}")
            else:
                served_versions.add(response.json["index_version"])

    def wait_for(version: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while live.index.version != version and time.monotonic() < deadline:
            time.sleep(0.01)
        assert live.index.version == version

    threads = [threading.Thread(target=hammer, args=(slot,)) for slot in range(4)]
    try:
        for thread in threads:
            thread.start()
        versions = [first]
        for extra in (2, 4):
            versions.append(publish(root, synthetic_corpus(images, seed=extra, extra_titles=extra)))
            wait_for(versions[-1])
        broken = publish_broken(root, tmp_path / "scratch", synthetic_corpus(images, seed=9, extra_titles=9))
        time.sleep(0.3)  # many polls: the watcher refuses it each time it looks
        assert live.index.version == versions[-1]
        published.set_current(root, versions[-1])
        versions.append(publish(root, synthetic_corpus(images, seed=11, extra_titles=6)))
        wait_for(versions[-1])
        time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        live.stop()
    assert not failures, failures[:5]
    assert min(counts) > 5
    assert broken not in served_versions
    assert len(served_versions & set(versions)) >= 3, "requests ran across several swaps"


# --- a real gunicorn ---------------------------------------------------------------------------------


def _get(port: int, path: str, method: str = "GET", body: dict | None = None) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    payload = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json"} if payload else {})
    response = connection.getresponse()
    result = response.status, response.getheader("Content-Type") or "", response.read()
    connection.close()
    return result


def _raw_status(port: int, head: bytes, body: bytes) -> int:
    """The status gunicorn answers to a request sent as is, the client's side then closed for writing."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"\r\n\r\n" + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while b"\r\n" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.slow
def test_gunicorn_serves_the_app_with_the_project_config(tmp_path: Path) -> None:
    root = tmp_path / "index"
    publish(root, synthetic_corpus(tmp_path / "images"))
    port = free_port()
    env = service_env(port, 2, POSTERREC_INDEX_ROOT=str(root), POSTERREC_INDEX_POLL_SECONDS="0.2")
    with running_server(gunicorn_command(), port, env, timeout=90) as server:
        process = server.process
        for _ in range(6):  # both workers load the index; answers come from either
            status, content_type, body = _get(port, "/v1/posters/crowd-q/similar?k=10")
            assert status == 200 and len(json.loads(body)["results"]) == 10
        status, _, body = _get(port, "/v1/recommendations", "POST", {"history": ["t001", "t002"], "k": 4})
        assert status == 200 and len(json.loads(body)["results"]) == 4
        status, content_type, body = _get(port, "/v1/posters/t001/similar?k=0")
        assert status == 400 and content_type == "application/json" and "k must" in json.loads(body)["detail"]
        whole = json.dumps({"history": ["t001"], "k": 3}).encode()
        head = b"POST /v1/recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d"
        assert _raw_status(port, head % len(whole), whole) == 200
        assert _raw_status(port, head % (len(whole) + 10), whole) == 400, "a body cut short is not parsed as if whole"
        deadline = time.monotonic() + 10  # the answers above may still be finishing in the other worker
        while True:
            status, _, body = _get(port, "/metrics")
            assert status == 200
            similar_ok = [
                float(line.rsplit(" ", 1)[1])
                for line in body.decode().splitlines()
                if line.startswith("posterrec_requests_total{")
                and 'endpoint="/v1/posters/<title_id>/similar"' in line
                and 'status="200"' in line
            ]
            assert sum(similar_ok) <= 6, "no request counted twice"
            if sum(similar_ok) == 6 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sum(similar_ok) == 6, "counters summed over both workers"

        old_version = json.loads(_get(port, "/readyz")[2])["version"]
        # A worker that dies leaves its gauges behind: they must not outlive it (it served old_version).
        os.kill(psutil.Process(process.pid).children()[0].pid, signal.SIGKILL)
        new_corpus = synthetic_corpus(tmp_path / "images", extra_titles=2)
        new_version = publish(root, new_corpus)
        deadline, streak = time.monotonic() + 30, 0
        while streak < 8:  # the two workers poll on their own; wait until both answer from the new version
            streak = streak + 1 if json.loads(_get(port, "/readyz")[2]).get("version") == new_version else 0
            assert time.monotonic() < deadline, "the workers did not swap to the new version in 30 s"
            time.sleep(0.05)
        # /readyz may have been answered by one worker only; the gauge is summed over both, so wait for both.
        deadline = time.monotonic() + 30
        while True:
            text = _get(port, "/metrics")[2].decode()
            if f'posterrec_index_version_info{{version="{old_version}"}} 1.0' not in text:
                break
            assert time.monotonic() < deadline, "the old version is no longer served"
            time.sleep(0.1)
        assert f'posterrec_index_version_info{{version="{new_version}"}} 1.0' in text
        assert f"posterrec_index_items {float(len(new_corpus.items))}" in text.splitlines()


def _gunicorn_config(monkeypatch: pytest.MonkeyPatch, metrics_dir: Path, **env: str) -> dict:
    """The project's gunicorn config as gunicorn reads it, under ``env``; the environment is restored afterwards
    (the config sets ``PROMETHEUS_MULTIPROC_DIR``, which would put this test process in multi-process mode)."""
    for name, value in {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), **env}.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(REPO / "gunicorn.conf.py"))


@pytest.mark.parametrize("name", ["POSTERREC_WORKERS", "POSTERREC_THREADS"])
@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5", "３"])
def test_gunicorn_config_refuses_a_count_that_is_not_a_whole_number_of_at_least_one(
    monkeypatch, tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(SystemExit, match=f"{name} must be a whole number of at least 1, got '{value}'"):
        _gunicorn_config(monkeypatch, tmp_path, **{name: value})


def test_gunicorn_config_defaults_to_the_usable_cores_and_takes_an_empty_count_as_unset(
    monkeypatch, tmp_path: Path
) -> None:
    config = _gunicorn_config(monkeypatch, tmp_path, POSTERREC_WORKERS="", POSTERREC_THREADS=" 3 ")
    assert config["workers"] == len(os.sched_getaffinity(0)) and config["threads"] == 3


def test_gunicorn_clears_only_the_metric_files_of_a_metrics_directory_it_is_given(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("the operator's")
    (tmp_path / "sub").mkdir()
    (tmp_path / "counter_123.db").write_bytes(b"stale")
    made_before = set(Path(tempfile.gettempdir()).glob("posterrec-metrics-*"))
    config = _gunicorn_config(monkeypatch, tmp_path)
    config["on_starting"](None)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.txt", "sub"]
    assert set(Path(tempfile.gettempdir()).glob("posterrec-metrics-*")) == made_before, (
        "no directory made when one is given"
    )


def test_regions_follow_the_served_version(tmp_path: Path) -> None:
    """Known regions are found once per version (not per request), so a swap must bring the new ones."""
    root = tmp_path / "index"
    corpus = synthetic_corpus(tmp_path / "images")
    publish(root, corpus)
    app = create_app(settings_for(root), watch=False)
    client = app.test_client()
    assert client.get("/v1/posters/t001/variants?region=ZA").json["variants"] == []
    with app.app_context():
        assert dict(catalog_api.regions_with_counts(app.extensions["posterrec"].index)).get("ZA", 0) == 0
    za = next(item for item in corpus.items if item.key == "t001@DE")
    corpus.items.append(dataclasses.replace(za, key="t001@ZA", region="ZA", language="af", title="t001 (ZA)"))
    corpus.embeddings = np.concatenate([corpus.embeddings, corpus.embeddings[corpus.items.index(za)][None]])
    publish(root, corpus)
    assert app.extensions["posterrec"].refresh()
    assert client.get("/v1/posters/t001/variants?region=ZA").json["variants"][0]["title"] == "t001 (ZA)"
    with app.app_context():
        assert dict(catalog_api.regions_with_counts(app.extensions["posterrec"].index))["ZA"] == 1


def test_a_swap_brings_the_new_versions_catalogue_built_where_the_served_one_was_listed(tmp_path: Path) -> None:
    """Built beside the load, not by the first listing after it (5.6 s on the 1M bench index); a worker that
    never listed builds none."""
    root = tmp_path / "index"
    publish(root, synthetic_corpus(tmp_path / "images"))
    browsing, idle = create_app(settings_for(root), watch=False), create_app(settings_for(root), watch=False)
    before = browsing.test_client().get("/v1/posters?per_page=1").json["total"]
    publish(root, synthetic_corpus(tmp_path / "images", extra_titles=2))
    for app in (browsing, idle):
        assert app.extensions["posterrec"].refresh()
    assert catalog_api._CATALOGS.get(browsing.extensions["posterrec"].index) is not None
    assert catalog_api._CATALOGS.get(idle.extensions["posterrec"].index) is None
    assert browsing.test_client().get("/v1/posters?per_page=1").json["total"] == before + 2


def test_a_preparer_that_fails_is_logged_and_the_version_still_swapped_in(tmp_path: Path, caplog) -> None:
    root = tmp_path / "index"
    publish(root, synthetic_corpus(tmp_path / "images"))

    def failing(fresh, served) -> None:
        raise RuntimeError("no head start today")

    live = LiveIndex(root, poll_seconds=0, preparers=[failing])
    live.start()
    assert live.index is not None
    fresh = publish(root, synthetic_corpus(tmp_path / "images", extra_titles=2))
    with caplog.at_level(logging.ERROR, logger="recsvc.live_index"):
        assert live.refresh() and live.index.version == fresh
    assert "no head start today" in caplog.text
