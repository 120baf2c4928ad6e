"""A worker that starts while CURRENT cannot be served, and versions a killed build left behind."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from test_recsvc_live import publish_broken
from test_recsvc_support import publish, settings_for, synthetic_corpus

from indexer import published
from recsvc import create_app


def test_a_worker_starting_while_current_names_a_refused_version_serves_the_newest_that_loads(
    tmp_path: Path, caplog
) -> None:
    root = tmp_path / "index"
    publish(root, synthetic_corpus(tmp_path / "images"))
    newest_good = publish(root, synthetic_corpus(tmp_path / "images", extra_titles=1))
    broken = publish_broken(root, tmp_path / "scratch", synthetic_corpus(tmp_path / "images", extra_titles=3))
    with caplog.at_level(logging.WARNING, logger="recsvc.live_index"):
        client = create_app(settings_for(root), watch=False).test_client()  # e.g. a worker recycled after a timeout
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["version"] == newest_good
    assert broken in ready.json["detail"] and newest_good in ready.json["detail"]
    assert str(tmp_path) not in ready.get_data(as_text=True), "/readyz names no server path"
    assert any(
        newest_good in r.getMessage() and broken in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )
    assert client.get("/v1/posters/t040/similar?k=3").status_code == 200, "t040 is in the newest good version only"


def test_a_worker_falls_back_once_and_swaps_to_current_when_it_is_repaired(tmp_path: Path, caplog) -> None:
    root = tmp_path / "index"
    good = publish(root, synthetic_corpus(tmp_path / "images"))
    broken = publish_broken(root, tmp_path / "scratch", synthetic_corpus(tmp_path / "images", extra_titles=3))
    live = create_app(settings_for(root), watch=False).extensions["posterrec"]
    assert live.index.version == good
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="recsvc.live_index"):
        assert not live.refresh()
    assert not caplog.records, "nothing is loaded again while CURRENT names the same refused version"
    repaired = root / published.VERSIONS / broken / published.SCANN_DIR
    shutil.rmtree(repaired)
    shutil.copytree(tmp_path / "scratch" / published.VERSIONS / broken / published.SCANN_DIR, repaired)
    published.set_current(root, good)
    assert not live.refresh() and live.pointer_problem is None
    published.set_current(root, broken)
    assert live.refresh() and live.index.version == broken and live.pointer_problem is None


@pytest.mark.parametrize("pointer", ["empty", "unreadable"])
def test_an_empty_or_unreadable_current_is_logged_and_a_starting_worker_serves_the_newest_version(
    tmp_path: Path, pointer: str, caplog
) -> None:
    root = tmp_path / "index"
    good = publish(root, synthetic_corpus(tmp_path / "images"))
    (root / published.CURRENT).write_bytes(b"" if pointer == "empty" else b"\xff\xfe")
    with caplog.at_level(logging.ERROR, logger="recsvc.live_index"):
        client = create_app(settings_for(root), watch=False).test_client()
    assert any("CURRENT" in r.getMessage() for r in caplog.records), f"an {pointer} CURRENT is logged"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["version"] == good and "CURRENT" in ready.json["detail"]


def test_no_version_that_loads_leaves_the_worker_unready_saying_why(tmp_path: Path) -> None:
    root = tmp_path / "index"
    broken = publish_broken(root, tmp_path / "scratch", synthetic_corpus(tmp_path / "images"))
    ready = create_app(settings_for(root), watch=False).test_client().get("/readyz")
    assert ready.status_code == 503 and broken in ready.json["detail"]


def orphan_version(root: Path, copy_of: str) -> str:
    """What a build killed between its version's rename and CURRENT leaves: a complete version never named."""
    version = published.new_version_name()
    source = root / published.VERSIONS / copy_of
    published.stage_version(root, version, lambda directory: [shutil.copytree(source, directory, dirs_exist_ok=True)])
    return version


def test_a_version_a_killed_build_left_takes_no_keep_slot_and_is_no_rollback_target(tmp_path: Path) -> None:
    from indexer.versions import describe_versions, rollback

    root = tmp_path / "index"
    corpus = synthetic_corpus(tmp_path / "images")
    first = publish(root, corpus)
    second = publish(root, corpus)
    orphan = orphan_version(root, second)
    assert [row["never_served"] for row in describe_versions(root)] == [False, False, True]
    third = publish(root, corpus, keep_versions=2)
    assert published.list_versions(root) == [second, third], f"{orphan} is pruned, {first} goes by keep_versions=2"
    assert rollback(root) == second


def test_a_rollback_skips_a_never_served_version_and_a_fresh_worker_does_not_fall_back_to_it(tmp_path: Path) -> None:
    from indexer.versions import rollback

    root = tmp_path / "index"
    corpus = synthetic_corpus(tmp_path / "images")
    first = publish(root, corpus)
    second = publish(root, corpus)
    orphan_version(root, second)
    third = publish(root, corpus)
    assert rollback(root) == second and rollback(root) == first
    published.set_current(root, third)
    newest = orphan_version(root, third)
    (root / published.CURRENT).write_text("")
    live = create_app(settings_for(root), watch=False).extensions["posterrec"]
    assert live.index.version == third, f"not {newest}, which no CURRENT ever named"
