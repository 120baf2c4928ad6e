"""Publishing index versions: atomic under SIGKILL, the recall floor, tuning, pruning, versions and rollback."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scann

from indexer.__main__ import main as indexer_main
from indexer.publish import RecallBelowFloor, _finish_staged, publish_index
from indexer.published import (
    CURRENT,
    MANIFEST,
    SCANN_DIR,
    VERSIONS,
    IndexItem,
    IndexVersionError,
    current_version,
    list_versions,
    open_version,
    prune_versions,
)
from indexer.scann_index import (
    LEAF_FRACTIONS,
    TUNING_QUERIES,
    IndexParams,
    RecallProbe,
    build_searcher,
    choose_params,
    tune_leaves_to_search,
)
from indexer.shards import BuiltShard, Shard, ShardSet
from indexer.versions import describe_versions, rollback

REPO = Path(__file__).resolve().parents[1]
DIM = 32


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, seed: int = 0, clusters: int = 20) -> np.ndarray:
    """Gaussian-mixture unit vectors: the structure real poster embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIM))
    return unit_rows(centres[rng.integers(0, clusters, n)] + rng.normal(scale=0.6, size=(n, DIM)))


def items_for(n: int, prefix: str = "t") -> list[IndexItem]:
    return [IndexItem(f"{prefix}{i}", f"{prefix}{i}", f"Title {i}", f"/posters/{i}.jpg") for i in range(n)]


def publish(root: Path, n: int = 200, seed: int = 0, keep: int = 10, **kwargs) -> str:
    defaults = dict(exact_search_max_items=10_000, recall_floor=0.95, keep_versions=keep)
    return publish_index(root, items_for(n), clustered(n, seed), {"seed": seed}, **{**defaults, **kwargs}).version


KILL_DURING = """
import os, signal, sys
import numpy as np
sys.path.insert(0, {repo!r})
from indexer import published
from indexer.publish import publish_index
from indexer.published import IndexItem

def killed(function, before):
    def run(*args, **kwargs):
        if not before:
            function(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    return run

owner = published.os if {step!r} == "replace" else published
setattr(owner, {step!r}, killed(getattr(owner, {step!r}), before={before!r}))
vectors = np.random.default_rng(5).normal(size=(300, {dim})).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
items = [IndexItem(f"new{{i}}", f"new{{i}}", "New", "/new.jpg") for i in range(300)]
publish_index({root!r}, items, vectors, {{}}, exact_search_max_items=10_000, recall_floor=0.9, keep_versions=3)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("step", "before"), [("write_version_files", False), ("set_current", True), ("replace", True)])
def test_a_build_killed_mid_publication_leaves_the_old_version_served(tmp_path: Path, step: str, before: bool) -> None:
    """SIGKILL after the staged files are written, after the version is renamed in but before CURRENT
    is switched, and after CURRENT's temporary file is written but before its rename."""
    served = publish(tmp_path)
    script = KILL_DURING.format(repo=str(REPO), step=step, before=before, dim=DIM, root=str(tmp_path))
    process = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120
    )
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]

    assert current_version(tmp_path) == served
    index = open_version(tmp_path)
    assert index.version == served and len(index) == 200 and index.items[0].key == "t0"
    assert served in list_versions(tmp_path)
    if step == "write_version_files":
        assert [p for p in (tmp_path / VERSIONS).iterdir() if p.name.startswith(".tmp-")], (
            "the kill hit a half-staged version"
        )
        assert list_versions(tmp_path) == [served]
    else:
        assert len(list_versions(tmp_path)) == 2, "the complete but unswitched version is listed, not served"

    newer = publish(tmp_path, seed=1)  # the next build publishes normally and sweeps the staging leftovers
    assert current_version(tmp_path) == newer
    assert not [p for p in (tmp_path / VERSIONS).iterdir() if p.name.startswith(".tmp-")]


def test_recall_floor_refuses_an_index_that_misses_neighbours(tmp_path: Path) -> None:
    served = publish(tmp_path)
    vectors = unit_rows(np.random.default_rng(3).normal(size=(3000, DIM)))
    broken = IndexParams(num_leaves=100, num_leaves_to_search=1, training_sample_size=3000, reorder_k=10)
    with pytest.raises(RecallBelowFloor, match=rf"below the floor 0\.990.*{served} stays served"):
        publish_index(
            tmp_path,
            items_for(3000, "x"),
            vectors,
            {},
            exact_search_max_items=0,
            recall_floor=0.99,
            keep_versions=3,
            params=broken,
        )
    assert current_version(tmp_path) == served and list_versions(tmp_path) == [served]


def test_items_sharing_a_key_are_not_published(tmp_path: Path) -> None:
    """A title whose id is ``x@DE`` beside title ``x``'s DE variant: one key for two rows, one of them unreachable."""
    served = publish(tmp_path)
    items = [
        *items_for(3),
        IndexItem("x", "x", "X", "/x.jpg"),
        IndexItem("x@DE", "x", "X (DE)", "/x-de.jpg", region="DE"),
        IndexItem("x@DE", "x@DE", "Another film", "/other.jpg"),
    ]
    with pytest.raises(IndexVersionError, match=r"more than one item for key\(s\) 'x@DE'"):
        publish_index(
            tmp_path, items, clustered(len(items)), {}, exact_search_max_items=10_000, recall_floor=0.9, keep_versions=3
        )
    assert current_version(tmp_path) == served and list_versions(tmp_path) == [served]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["clustered", "random"])
def test_default_parameters_reach_the_floor_by_measurement(tmp_path: Path, kind: str) -> None:
    """A fixed leaf fraction gave recall@10 0.30 on Gaussian vectors; tuning must clear 0.95 on both kinds."""
    n = 8000
    vectors = clustered(n, seed=2) if kind == "clustered" else unit_rows(np.random.default_rng(2).normal(size=(n, 128)))
    start = choose_params(n, exact_search_max_items=1000)
    publication = publish_index(
        tmp_path, items_for(n), vectors, {}, exact_search_max_items=1000, recall_floor=0.95, keep_versions=1
    )

    assert publication.recall >= 0.95
    if kind == "clustered":  # structure: a small part of the tree is enough
        assert publication.params.num_leaves == start.num_leaves
        assert publication.params.num_leaves_to_search <= start.num_leaves // 2
    else:  # no structure: the partition cannot beat brute force
        assert publication.params.exact and publication.recall == 1.0
    index = open_version(tmp_path)
    assert IndexParams(**index.manifest["params"]) == publication.params
    rows, _ = index.search(vectors[:50], 1)
    assert (rows[:, 0] == np.arange(50)).mean() >= 0.95


def test_pruning_keeps_the_newest_versions_and_never_the_served_one(tmp_path: Path) -> None:
    names = [publish(tmp_path, seed=i, keep=2) for i in range(4)]
    assert list_versions(tmp_path) == names[2:]

    rollback(tmp_path, names[2])
    newest = publish(tmp_path, seed=9, keep=2)
    assert list_versions(tmp_path) == [names[2], names[3], newest], "the version rolled back to outlives keep=2"
    assert rollback(tmp_path) == names[2], "a rollback returns to the version served before the build"
    rollback(tmp_path, newest)
    assert prune_versions(tmp_path, keep=2) == [names[2]]

    rollback(tmp_path, names[3])
    extra = [publish(tmp_path, seed=10 + i, keep=10) for i in range(2)]
    rollback(tmp_path, names[3])
    assert prune_versions(tmp_path, keep=1) == [newest, extra[0]]
    assert list_versions(tmp_path) == [names[3], extra[1]] and current_version(tmp_path) == names[3]


def test_versions_lists_and_rollback_switches_back(tmp_path: Path, capsys) -> None:
    first, second = publish(tmp_path, n=200, seed=0), publish(tmp_path, n=150, seed=1)
    assert indexer_main(["versions", "--out", str(tmp_path)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].startswith(f"  {first}") and "items=200" in listing[0]
    assert listing[1].startswith(f"* {second}") and "items=150" in listing[1] and "recall@10=1.0" in listing[1]

    assert indexer_main(["rollback", "--out", str(tmp_path)]) == 0
    assert current_version(tmp_path) == first and len(open_version(tmp_path)) == 200
    assert indexer_main(["rollback", "--out", str(tmp_path)]) == 1
    assert f"no version older than {first}" in capsys.readouterr().err

    assert indexer_main(["rollback", second, "--out", str(tmp_path)]) == 0
    assert current_version(tmp_path) == second
    assert indexer_main(["rollback", "nonesuch", "--out", str(tmp_path)]) == 1
    assert "has no version 'nonesuch'" in capsys.readouterr().err and current_version(tmp_path) == second

    (tmp_path / VERSIONS / first / MANIFEST).unlink()
    assert indexer_main(["versions", "--out", str(tmp_path)]) == 0
    assert f"  {first}  broken: its manifest cannot be read" in capsys.readouterr().out
    assert indexer_main(["rollback", first, "--out", str(tmp_path)]) == 1
    assert "cannot be loaded" in capsys.readouterr().err and current_version(tmp_path) == second
    (tmp_path / CURRENT).write_text("garbage\n")
    assert indexer_main(["versions", "--out", str(tmp_path)]) == 1
    assert "CURRENT names 'garbage', which is not a version here" in capsys.readouterr().out
    assert indexer_main(["rollback", "--out", str(tmp_path)]) == 1
    assert "CURRENT names 'garbage', which is not a version here, so there is none to go back from" in (
        capsys.readouterr().err
    )
    assert current_version(tmp_path) == "garbage"
    for command in ("versions", "rollback"):
        assert indexer_main([command, "--out", str(tmp_path / "nowhere")]) == 1
        assert "nowhere does not exist" in capsys.readouterr().err
        assert indexer_main([command, "--out", str(tmp_path / CURRENT)]) == 1
        assert f"index root {tmp_path / CURRENT} is a file, not a folder" in capsys.readouterr().err


def test_versions_lists_the_shard_count_of_each_version(tmp_path: Path, capsys) -> None:
    single, sharded = publish(tmp_path, n=200, seed=0), publish(tmp_path, n=200, seed=1, shards=3)
    assert [(row["version"], row["shards"]) for row in describe_versions(tmp_path)] == [(single, 1), (sharded, 3)]
    assert indexer_main(["versions", "--out", str(tmp_path)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].startswith(f"  {single}") and "shards=1 " in listing[0]
    assert listing[1].startswith(f"* {sharded}") and "shards=3 " in listing[1]


def test_a_version_with_missing_files_is_refused_with_the_reason(tmp_path: Path, capsys) -> None:
    good, version = publish(tmp_path, seed=0), publish(tmp_path, seed=1)
    (tmp_path / VERSIONS / version / "embeddings.npy").unlink()
    with pytest.raises(IndexVersionError, match="cannot be loaded"):
        open_version(tmp_path)
    assert indexer_main(["versions", "--out", str(tmp_path)]) == 0  # reads manifests only
    assert "broken" not in capsys.readouterr().out
    assert indexer_main(["versions", "--out", str(tmp_path), "--check"]) == 1
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].startswith(f"* {version}") and listing[2].startswith("    broken: index version")
    assert "embeddings.npy" in listing[2] and "broken" not in listing[0] and good in listing[0]
    assert listing[-1] == "warning: the served version cannot be loaded; roll back to one that can"


TUNING_TARGET = 0.99


@pytest.fixture(scope="module")
def tuned_tree() -> tuple[np.ndarray, IndexParams, object, IndexParams]:
    """8k vectors in 200 clusters, a tree searcher over them, and the parameters tuned to recall@10 0.99."""
    vectors = clustered(8000, seed=4, clusters=200)
    params = choose_params(len(vectors), exact_search_max_items=1000)
    searcher = build_searcher(vectors, params)
    tuned = tune_leaves_to_search(searcher, vectors, params, TUNING_TARGET)
    assert tuned is not None and tuned.num_leaves == params.num_leaves
    return vectors, params, searcher, tuned


def test_tuning_stops_at_the_first_leaf_fraction_that_reaches_the_target(tuned_tree) -> None:
    """Searching more leaves than needed costs query time: the tuner takes the smallest step that suffices."""
    vectors, params, searcher, tuned = tuned_tree
    target = TUNING_TARGET
    probe = RecallProbe.sample(vectors, sample=TUNING_QUERIES, seed=1)  # the tuner's own sample
    tried = sorted({max(params.num_leaves_to_search, round(params.num_leaves * f)) for f in LEAF_FRACTIONS})
    below = [leaves for leaves in tried if leaves < tuned.num_leaves_to_search]
    assert probe.recall(searcher, leaves_to_search=tuned.num_leaves_to_search) >= target
    assert all(probe.recall(searcher, leaves_to_search=leaves) < target for leaves in below)


def test_history_queries_get_the_leaves_their_recall_needs(tuned_tree, tmp_path: Path) -> None:
    """An average of unrelated titles falls between clusters: it is tuned apart, and the served index searches it so."""
    vectors, params, searcher, tuned = tuned_tree
    target, n = TUNING_TARGET, len(vectors)
    histories = RecallProbe.histories(vectors, sample=TUNING_QUERIES, seed=1)  # the tuner's own sample
    most = round(params.num_leaves * LEAF_FRACTIONS[-1])  # where the tuner stops trying (the tree is not seeded)
    reached = histories.recall(searcher, leaves_to_search=tuned.history_leaves_to_search)
    # at its last step the tuner stops whatever the recall; how close that gets depends on the unseeded tree
    assert reached >= target or (tuned.history_leaves_to_search == most and reached >= target - 0.02)
    assert histories.recall(searcher, leaves_to_search=tuned.num_leaves_to_search) < target - 0.02
    assert tuned.history_leaves_to_search > tuned.num_leaves_to_search

    # the tree just measured is published as built, so the served index is the one these recalls describe
    # (ScaNN's trees are not seeded: a tree built anew partitions, tunes and recalls differently)
    built = [BuiltShard(Shard(searcher, tuned, n), build_seconds=0.0)]
    version = publish_index(
        tmp_path,
        items_for(n),
        vectors,
        {},
        exact_search_max_items=1000,
        recall_floor=0.97,
        keep_versions=1,
        built=built,
    ).version
    index = open_version(tmp_path, version)
    assert index.manifest["history_recall_at_10"] >= 0.95
    found = {kind: index.search(histories.queries, 10, kind)[0] for kind in ("poster", "history")}
    recall = {
        kind: np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found[kind], histories.truth)]) for kind in found
    }
    assert recall["history"] >= 0.95 and recall["history"] > recall["poster"] + 0.02, recall


def test_history_queries_that_never_reach_the_target_search_half_the_leaves_and_say_so(tuned_tree, caplog) -> None:
    """Brute force for every recommendation would cost a full scan: the tuner settles on its last step and warns."""
    vectors, params, searcher, _ = tuned_tree
    most = round(params.num_leaves * LEAF_FRACTIONS[-1])
    posters, histories = (
        probe(vectors, sample=TUNING_QUERIES, seed=1).recall(searcher, leaves_to_search=most)  # the tuner's samples
        for probe in (RecallProbe.sample, RecallProbe.histories)
    )
    assert histories < posters, "on this data history queries find fewer neighbours than poster queries"
    target = round((histories + posters) / 2, 5)  # posters reach it within the last step, histories never
    with caplog.at_level("WARNING", logger="indexer.scann_index"):
        tuned = tune_leaves_to_search(searcher, vectors, params, target=target)
    assert tuned is not None
    assert tuned.history_leaves_to_search == most
    assert f"history queries do not reach recall@10 {target:.3f}" in caplog.text


def test_a_search_deeper_than_the_reordering_returns_real_rows(tmp_path: Path) -> None:
    """ScaNN re-orders reorder_k candidates and pads deeper results with row 0 and NaN; the index asks for enough."""
    n = 3000
    vectors = clustered(n, seed=2)
    version = publish_index(
        tmp_path, items_for(n), vectors, {}, exact_search_max_items=1000, recall_floor=0.9, keep_versions=1
    ).version
    index = open_version(tmp_path, version)
    assert index.manifest["params"]["reorder_k"] == 100
    rows, scores = index.search(vectors[:3], 300)
    assert np.isfinite(scores).all() and all(len(set(r)) == 300 for r in rows)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_published_files_are_readable_by_a_service_running_as_another_user(tmp_path: Path) -> None:
    version = publish(tmp_path)
    assert (tmp_path / "CURRENT").stat().st_mode & 0o044 == 0o044
    assert (tmp_path / VERSIONS / version).stat().st_mode & 0o055 == 0o055


def test_a_second_build_publishing_at_the_same_time_is_refused_and_nothing_is_lost(tmp_path: Path) -> None:
    from indexer import published

    first = publish(tmp_path)
    staging = tmp_path / VERSIONS / ".tmp-someone-elses-build"
    staging.mkdir()
    with published.publisher_lock(tmp_path):  # another build is mid-publication
        with pytest.raises(IndexVersionError, match="another build is publishing"):
            publish(tmp_path, seed=1)
        assert staging.is_dir()
    assert current_version(tmp_path) == first


def test_building_from_a_store_that_does_not_exist_creates_nothing(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no-such.sqlite3"
    assert (
        indexer_main(["build", "--model", str(tmp_path), "--store", str(missing), "--out", str(tmp_path / "index")])
        == 1
    )
    assert "does not exist" in capsys.readouterr().err
    assert not missing.exists()


def test_each_title_ordinal_has_its_original_title(tmp_path: Path) -> None:
    """Read by every response: non-ASCII titles survive, and a title indexed only through variants has no name."""
    items = items_for(30)
    items[3] = IndexItem("t3", "t3", "Die fabelhafte Welt der Amélie — 天気の子", "/posters/3.jpg")
    items.append(IndexItem("ghost@DE", "ghost", "Geist", "/ghost_de.jpg", "DE", "de"))
    publish_index(tmp_path, items, clustered(31), {}, exact_search_max_items=1000, recall_floor=0.9, keep_versions=1)
    index = open_version(tmp_path)
    ordinals = list(range(len(index.title_ids)))[::-1]
    ids, names = [index.title_ids[t] for t in ordinals], [index.title_names[t] for t in ordinals]
    assert names == ["" if title_id == "ghost" else index.items[index.row_of_key[title_id]].title for title_id in ids]
    assert names[ids.index("t3")] == "Die fabelhafte Welt der Amélie — 天気の子"


@pytest.mark.parametrize("exact", [True, False])
def test_a_staged_version_that_answers_unlike_the_searcher_built_is_refused(tmp_path: Path, exact: bool) -> None:
    """The reload check compares the staged files with the searcher that was serialised: another searcher's answers fail it."""
    version = publish(tmp_path, n=300, exact_search_max_items=10_000 if exact else 100, recall_floor=0.5)
    index = open_version(tmp_path)
    params = IndexParams.from_manifest(index.manifest)
    directory = tmp_path / VERSIONS / version
    own = scann.scann_ops_pybind.load_searcher(str(directory / SCANN_DIR))  # a rebuilt tree would partition anew
    n = len(index.embeddings)
    _finish_staged(directory, ShardSet([Shard(own, params, n)]), index.embeddings, 10, 20)
    other = build_searcher(index.embeddings[::-1].copy(), params)
    with pytest.raises(IndexVersionError, match="answers differently after reloading"):
        _finish_staged(directory, ShardSet([Shard(other, params, n)]), index.embeddings, 10, 20)


def test_duplicated_vectors_tie_and_an_exact_search_keeps_recall_1(tmp_path: Path) -> None:
    """A catalogue that repeats its artwork (30 titles share each poster) ties for every place in the top 10:
    exact search finds tied rows other than those the reference picked, and must still pass the floor."""
    vectors = np.repeat(clustered(40, seed=3), 30, axis=0)
    searcher = build_searcher(vectors, IndexParams(num_leaves=0))
    assert RecallProbe.sample(vectors).recall(searcher) == 1.0
    version = publish_index(
        tmp_path,
        items_for(len(vectors)),
        vectors,
        {},
        exact_search_max_items=10_000,
        recall_floor=0.99,
        keep_versions=2,
    ).version
    assert current_version(tmp_path) == version


def test_folders_an_operator_puts_in_versions_are_no_versions_and_take_no_keep_slot(tmp_path: Path, capsys) -> None:
    names = [publish(tmp_path, seed=i, keep=3) for i in range(2)]
    for folder in ("zz-export", "my-backup"):  # sort after the version names: "newest" if taken for versions
        (tmp_path / VERSIONS / folder).mkdir()
        (tmp_path / VERSIONS / folder / "README").write_text("keep me")
    names.append(publish(tmp_path, seed=2, keep=3))
    assert list_versions(tmp_path) == names, "no version pruned for the operator's folders"
    assert (tmp_path / VERSIONS / "zz-export" / "README").read_text() == "keep me"
    assert indexer_main(["rollback", "zz-export", "--out", str(tmp_path)]) == 1
    assert "has no version 'zz-export'" in capsys.readouterr().err


def test_an_empty_version_argument_or_an_empty_current_is_refused_not_guessed(tmp_path: Path, capsys) -> None:
    first, second = publish(tmp_path, seed=0), publish(tmp_path, seed=1)
    assert indexer_main(["rollback", "", "--out", str(tmp_path)]) == 1  # a script's unset "$VERSION"
    assert "has no version ''" in capsys.readouterr().err and current_version(tmp_path) == second
    (tmp_path / CURRENT).write_text("")
    assert indexer_main(["versions", "--out", str(tmp_path)]) == 1
    assert "warning: CURRENT names no version; roll back to one of these" in capsys.readouterr().out
    assert indexer_main(["rollback", "--out", str(tmp_path)]) == 1
    assert "CURRENT names no version, so there is none to go back from" in capsys.readouterr().err
    with pytest.raises(IndexVersionError, match="CURRENT names no version"):
        open_version(tmp_path)
    assert indexer_main(["rollback", first, "--out", str(tmp_path)]) == 0 and current_version(tmp_path) == first
