"""Sharded index versions: the hash partition, the exact merge of the shards' top-k, the similar lists and the
API across shards, publication, rollback and the refusal of a version with a missing or corrupt shard."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_indexer_publish import clustered, items_for
from test_recsvc_support import settings_for, synthetic_corpus

from indexer.publish import RecallBelowFloor, publish_index
from indexer.published import (
    MANIFEST,
    SCANN_DIR,
    VERSIONS,
    IndexItem,
    IndexVersionError,
    current_version,
    list_versions,
    open_version,
)
from indexer.scann_index import RecallProbe, exact_top_k
from indexer.shards import ROWS_FILE, SHARDS_DIR, partition_rows, shard_of_title
from indexer.similar_lists import first_distinct_titles
from indexer.versions import rollback
from recsvc import create_app

REPO = Path(__file__).resolve().parents[1]
EXACT = dict(exact_search_max_items=100_000, recall_floor=0.95, keep_versions=10)
"""Brute-force shards: every shard's top-k is exact, so the merge must be the exact top-k."""


def with_variants(n: int) -> tuple[list[IndexItem], np.ndarray]:
    """``n`` titles, every third with DE and FR variants near its original: rows of one title, for one shard."""
    items, rng = items_for(n), np.random.default_rng(3)
    vectors = list(clustered(n, seed=1))
    for i in range(0, n, 3):
        for region in ("DE", "FR"):
            items.append(IndexItem(f"t{i}@{region}", f"t{i}", f"Titel {i}", f"/posters/{i}_{region}.jpg", region))
            vector = vectors[i] + rng.normal(scale=0.1, size=vectors[i].shape)
            vectors.append(vector / np.linalg.norm(vector))
    return items, np.stack(vectors).astype(np.float32)


def test_the_partition_is_stable_and_keeps_every_row_of_a_title_in_one_shard() -> None:
    items, _ = with_variants(90)
    title_ids = [item.title_id for item in items]
    shards = partition_rows(title_ids, 3)
    assert sorted(np.concatenate(shards).tolist()) == list(range(len(items)))
    assert all(len(rows) > 0 and (np.diff(rows) > 0).all() for rows in shards)
    for number, rows in enumerate(shards):
        assert {shard_of_title(title_ids[row], 3) for row in rows} == {number}
    assert shard_of_title("tt0111161", 4) == shard_of_title("tt0111161", 4) == 3, "a fixed hash, not Python's"
    assert [len(rows) for rows in partition_rows(title_ids, 1)] == [len(items)]


@pytest.mark.parametrize("shards", [2, 3])
def test_shards_merge_to_the_exact_top_k_of_a_brute_force_search(tmp_path: Path, shards: int) -> None:
    items, vectors = with_variants(240)
    publication = publish_index(tmp_path, items, vectors, {}, shards=shards, **EXACT)
    index = open_version(tmp_path)
    assert publication.shards == shards and len(index.manifest["shards"]) == shards
    probe = RecallProbe.sample(vectors, k=25, sample=200, seed=7)
    for k in (1, 10, 25):
        expected = exact_top_k(vectors, probe.queries, k)
        rows, scores = index.search(probe.queries, k)
        np.testing.assert_array_equal(rows, expected)
        np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", probe.queries, vectors[expected]), atol=1e-5)
        for query, want in zip(probe.queries[:50], expected):
            np.testing.assert_array_equal(index.search_leaves(query, k)[0], want)
    assert index.manifest["recall_at_10"] == 1.0
    assert all(
        record["recall_at_10"] == 1.0 and record["params"]["num_leaves"] == 0 for record in index.manifest["shards"]
    )


def test_a_sharded_version_answers_every_request_as_the_unsharded_one(tmp_path: Path) -> None:
    """Same corpus, one shard and three: the same similar lists and the same answers to /similar and /recommendations."""
    corpus = synthetic_corpus(tmp_path / "images", extra_titles=60)
    answers = {}
    for shards in (1, 3):
        root = tmp_path / f"index-{shards}"
        publish_index(root, corpus.items, corpus.embeddings, {}, shards=shards, **EXACT)
        index = open_version(root)
        client = create_app(settings_for(root), watch=False).test_client()
        ids = index.title_ids
        answers[shards] = (
            index.similar.titles.tolist(),
            [
                client.get(f"/v1/posters/{t}/similar?k=7").json["results"]
                for t in ids
                if index.poster_row(t) is not None
            ],
            [client.get(f"/v1/posters/{t}/similar?k=40").json["results"] for t in ids[:10]],
            [
                client.post("/v1/recommendations", json={"history": [a, b]}).json["results"]
                for a, b in zip(ids[::5], ids[1::5])
            ],
        )
    assert answers[3] == answers[1]


def test_the_similar_lists_of_a_sharded_version_are_the_exact_nearest_titles(tmp_path: Path) -> None:
    items, vectors = with_variants(150)
    publish_index(tmp_path, items, vectors, {}, shards=3, **EXACT)
    index = open_version(tmp_path)
    count, depth = len(index.title_ids), index.similar.depth
    originals = index.original_row_of_title
    ranked = exact_top_k(vectors, vectors[originals], len(vectors))
    for title, rows in enumerate(ranked):
        scores = vectors[rows] @ vectors[originals[title]]
        expected = first_distinct_titles(index.title_of_row[rows], scores, originals, depth, exclude=(title,))
        stored = index.similar.top(title, depth, count)
        assert stored is not None and stored[0] == expected[0], index.title_ids[title]
        np.testing.assert_allclose(stored[1], expected[1], atol=1e-5)


def test_tree_shards_each_pass_their_own_recall_check(tmp_path: Path) -> None:
    n = 6000
    vectors = clustered(n, seed=5, clusters=60)
    publish_index(
        tmp_path, items_for(n), vectors, {}, shards=2, exact_search_max_items=1000, recall_floor=0.9, keep_versions=2
    )
    index = open_version(tmp_path)
    records = index.manifest["shards"]
    assert [record["rows"] for record in records] == [len(rows) for rows in partition_rows(index.title_ids, 2)]
    assert all(record["params"]["num_leaves"] > 0 and record["recall_at_10"] >= 0.9 for record in records)
    assert index.manifest["recall_at_10"] >= 0.9
    check = RecallProbe.sample(vectors, sample=300, seed=11)
    found = index.search(check.queries, 10)[0]
    assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, check.truth)]) >= 0.9


def test_a_shard_below_the_floor_publishes_nothing(tmp_path: Path) -> None:
    """Structureless vectors in small shards: a shard that cannot reach an unreachable floor refuses the version."""
    vectors = clustered(3000, seed=6)
    with pytest.raises(RecallBelowFloor):
        publish_index(
            tmp_path,
            items_for(3000),
            vectors,
            {},
            shards=2,
            exact_search_max_items=1000,
            recall_floor=1.01,
            keep_versions=2,
        )
    assert not (tmp_path / VERSIONS).exists() or not any((tmp_path / VERSIONS).iterdir())


def test_one_shard_is_laid_out_and_recorded_as_an_unsharded_version(tmp_path: Path) -> None:
    publish_index(tmp_path, items_for(100), clustered(100), {}, **EXACT)
    index = open_version(tmp_path)
    assert "shards" not in index.manifest and index.manifest["params"]["num_leaves"] == 0
    assert (index.path / SCANN_DIR).is_dir() and not (index.path / SHARDS_DIR).exists()


def test_a_running_service_swaps_to_a_sharded_version_and_rolls_back(tmp_path: Path) -> None:
    items, vectors = with_variants(120)
    unsharded = publish_index(tmp_path, items, vectors, {}, **EXACT).version
    app = create_app(settings_for(tmp_path), watch=False)
    live, client = app.extensions["posterrec"], app.test_client()

    def similar() -> tuple[str, list]:
        body = client.get("/v1/posters/t3/similar?k=5").json
        return body["index_version"], body["results"]

    served, results = similar()
    sharded = publish_index(tmp_path, items, vectors, {}, shards=3, **EXACT).version
    assert live.refresh() and similar() == (sharded, results)
    assert rollback(tmp_path) == unsharded
    assert live.refresh() and similar() == (served, results) and served == unsharded
    broken = publish_index(tmp_path, items, vectors, {}, shards=2, **EXACT).version
    shutil.rmtree(tmp_path / VERSIONS / broken / SHARDS_DIR / "1")
    live.refresh()
    assert similar() == (unsharded, results), "a version with a missing shard is refused, the served one stays"


KILLED_WHILE_SAVING_SHARDS = """
import os, signal, sys
sys.path.insert(0, {repo!r})
sys.path.insert(0, {tests!r})
from indexer import shards
from indexer.publish import publish_index
from test_shards import with_variants

saved = []
serialize = shards._serialize

def killed_at_the_second(searcher, directory):
    saved.append(directory)
    if len(saved) == 2:  # one shard written, the next half-way
        os.kill(os.getpid(), signal.SIGKILL)
    serialize(searcher, directory)

shards._serialize = killed_at_the_second
items, vectors = with_variants(150)
publish_index({root!r}, items, vectors[::-1].copy(), {{}}, shards=3, exact_search_max_items=100_000, recall_floor=0.95, keep_versions=10)
"""


@pytest.mark.slow
def test_a_build_killed_while_writing_its_shards_leaves_the_served_sharded_version(tmp_path: Path) -> None:
    items, vectors = with_variants(150)
    served = publish_index(tmp_path, items, vectors, {}, shards=2, **EXACT).version
    script = KILLED_WHILE_SAVING_SHARDS.format(repo=str(REPO), tests=str(REPO / "tests"), root=str(tmp_path))
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    assert current_version(tmp_path) == served and list_versions(tmp_path) == [served]
    assert [p for p in (tmp_path / VERSIONS).iterdir() if p.name.startswith(".tmp-")], "killed mid-staging"
    index = open_version(tmp_path)
    np.testing.assert_array_equal(index.search(vectors[:20], 5)[0], exact_top_k(vectors, vectors[:20], 5))
    newer = publish_index(tmp_path, items, vectors, {}, shards=3, **EXACT).version
    assert current_version(tmp_path) == newer
    assert not [p for p in (tmp_path / VERSIONS).iterdir() if p.name.startswith(".tmp-")]


def break_scann(shard: Path) -> None:
    shutil.rmtree(shard / SCANN_DIR)


def truncate_rows(shard: Path) -> None:
    np.save(shard / ROWS_FILE, np.load(shard / ROWS_FILE)[:-1])


def garbage_rows(shard: Path) -> None:
    (shard / ROWS_FILE).write_bytes(b"\x93NUMPY garbage")


def a_row_of_another_shard(shard: Path) -> None:
    rows = np.load(shard / ROWS_FILE)
    rows[0] = np.load(shard.parent / "0" / ROWS_FILE)[0]
    np.save(shard / ROWS_FILE, rows)


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (break_scann, "shard 1 of 3 .* cannot be loaded"),
        (truncate_rows, "shard 1 of 3 .* rows file holds"),
        (garbage_rows, "shard 1 of 3 .* cannot be loaded"),
        (a_row_of_another_shard, "do not hold each of its .* rows exactly once"),
    ],
)
def test_a_version_with_a_missing_or_corrupt_shard_is_refused(tmp_path: Path, corrupt, reason: str) -> None:
    items, vectors = with_variants(90)
    version = publish_index(tmp_path, items, vectors, {}, shards=3, **EXACT).version
    corrupt(tmp_path / VERSIONS / version / SHARDS_DIR / "1")
    with pytest.raises(IndexVersionError, match=reason):
        open_version(tmp_path)


def test_a_manifest_that_lists_fewer_shards_than_the_version_holds_is_refused(tmp_path: Path) -> None:
    items, vectors = with_variants(90)
    version = publish_index(tmp_path, items, vectors, {}, shards=3, **EXACT).version
    path = tmp_path / VERSIONS / version / MANIFEST
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "shards": manifest["shards"][:2]}))
    with pytest.raises(IndexVersionError, match="do not hold each"):
        open_version(tmp_path)


def test_more_shards_than_the_titles_fill_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    with pytest.raises(IndexVersionError, match="titles leave shard .* empty: use fewer shards"):
        publish_index(tmp_path, items_for(3), clustered(3), {}, shards=8, **EXACT)
    assert not (tmp_path / VERSIONS).exists() or not any((tmp_path / VERSIONS).iterdir())
