"""The TF Serving export: a TFRS ScaNN layer in a SavedModel answers like the served index."""

from __future__ import annotations

import json
from pathlib import Path

import posterrec_settings  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import numpy as np
import pytest

from indexer.__main__ import main as indexer_main
from indexer.publish import publish_index
from indexer.published import IndexItem, open_version
from indexer.savedmodel import INFO_FILE, load_serving_fn, query_savedmodel
from indexer.scann_index import exact_top_k

pytestmark = pytest.mark.slow
DIM = 16


def corpus(n: int, seed: int) -> tuple[list[IndexItem], np.ndarray]:
    """Clustered titles, every tenth with a DE variant close to it."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, DIM))
    titles = centres[rng.integers(0, 12, n)] + rng.normal(scale=0.5, size=(n, DIM))
    variants = titles[::10] + rng.normal(scale=0.05, size=titles[::10].shape)
    vectors = np.concatenate([titles, variants])
    items = [IndexItem(f"t{i}", f"t{i}", f"T{i}", "/p.jpg") for i in range(n)]
    items += [IndexItem(f"t{i}@DE", f"t{i}", f"T{i} (DE)", "/p_de.jpg", "DE", "de") for i in range(0, n, 10)]
    return items, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def overlap(keys: list[list[str]], other: list[list[str]]) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(keys, other)]))


def agreement(index, keys: list[list[str]], queries: np.ndarray, k: int) -> float:
    """Overlap of ``keys`` with what the served index answers."""
    rows, _ = index.search(queries, k)
    return overlap(keys, [[index.items[r].key for r in row] for row in rows])


@pytest.mark.parametrize(("n", "exact_max"), [(400, 10_000), (3000, 1000)], ids=["brute-force", "tree-ah"])
def test_savedmodel_layer_answers_like_the_served_index(tmp_path: Path, n: int, exact_max: int) -> None:
    items, vectors = corpus(n, seed=n)
    publish_index(
        tmp_path / "index", items, vectors, {}, exact_search_max_items=exact_max, recall_floor=0.95, keep_versions=2
    )
    index = open_version(tmp_path / "index")

    out = tmp_path / "savedmodel"
    assert indexer_main(["export-savedmodel", "--dest", str(out), "--out", str(tmp_path / "index"), "-k", "10"]) == 0
    info = json.loads((out / INFO_FILE).read_text())
    assert info["index_version"] == index.version and info["item_count"] == len(items)

    serve = load_serving_fn(out)  # a fresh load from disk, as TF Serving would
    queries = vectors[np.random.default_rng(1).choice(len(vectors), 100, replace=False)]
    queries = queries + np.random.default_rng(2).normal(scale=0.05, size=queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    keys, scores = query_savedmodel(serve, queries)

    assert np.shape(keys) == (100, 10) and scores.shape == (100, 10)
    if index.manifest["params"]["num_leaves"] == 0:  # brute force: every leaf searched, re-ordered exactly
        rows, _ = index.search(queries, 10)
        assert keys == [[index.items[r].key for r in row] for row in rows], "the same neighbours in the same order"
    # A tree is trained anew by TFRS (ScaNN's k-means is not seeded), so two approximate answers are
    # compared: they overlap highly and the export finds the true neighbours as well as the served index.
    assert agreement(index, keys, queries, 10) >= 0.9
    truth = [[index.items[r].key for r in row] for row in exact_top_k(index.embeddings, queries, 10)]
    assert overlap(keys, truth) >= 0.9 and overlap(keys, truth) >= agreement(index, truth, queries, 10) - 0.05
    _, served_scores = index.search(queries, 10)
    same_best = np.isclose(scores[:, 0], served_scores[:, 0], atol=1e-3)
    assert same_best.mean() >= 0.95, "best scores are exact (re-ordered) dot products in both"
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "scores come best first"
    variant_row = index.row_of_key["t0@DE"]
    own, _ = query_savedmodel(serve, index.embeddings[variant_row])
    assert own[0][0] == "t0@DE", "variants are exported under their region key"


def test_export_of_a_missing_index_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert indexer_main(["export-savedmodel", "--dest", str(tmp_path / "out"), "--out", str(tmp_path / "none")]) == 1
    assert "no published version yet" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    (tmp_path / "none" / "versions" / "20260101T000000000000Z").mkdir(parents=True)
    argv = ["export-savedmodel", "--dest", str(tmp_path / "out"), "--out", str(tmp_path / "none"), "--version", "v2"]
    assert indexer_main(argv) == 1
    assert (
        f"index root {tmp_path / 'none'} has no version 'v2' (have: 20260101T000000000000Z)" in capsys.readouterr().err
    )


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_an_existing_destination_that_is_not_an_export_is_refused_and_kept(tmp_path: Path, capsys, kind: str) -> None:
    """Only an earlier export is replaced: a mistyped --dest must not delete the user's files."""
    items, vectors = corpus(50, seed=0)
    publish_index(
        tmp_path / "index", items, vectors, {}, exact_search_max_items=10_000, recall_floor=0.0, keep_versions=2
    )
    dest = tmp_path / "precious"
    if kind == "folder":
        dest.mkdir()
        (dest / "notes.txt").write_text("important")
    else:
        dest.write_text("important")
    assert indexer_main(["export-savedmodel", "--dest", str(dest), "--out", str(tmp_path / "index")]) == 1
    assert "is not a SavedModel this command exported" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        indexer_main(
            ["export-savedmodel", "--dest", str(tmp_path / "new"), "--out", str(tmp_path / "index"), "-k", "0"]
        )
    assert "argument -k: 0 is below 1" in capsys.readouterr().err
    kept = dest / "notes.txt" if kind == "folder" else dest
    assert kept.read_text() == "important"


def test_an_earlier_export_is_replaced_unless_it_holds_files_the_export_did_not_write(
    tmp_path: Path, capsys, caplog
) -> None:
    items, vectors = corpus(50, seed=0)
    publish_index(
        tmp_path / "index", items, vectors, {}, exact_search_max_items=10_000, recall_floor=0.0, keep_versions=2
    )
    dest, export = tmp_path / "export", ["export-savedmodel", "--dest", str(tmp_path / "export")]
    dest.mkdir()
    assert indexer_main([*export, "--out", str(tmp_path / "index"), "-k", "3"]) == 0, "an empty folder is filled"
    assert indexer_main([*export, "--out", str(tmp_path / "index"), "-k", "5"]) == 0, "an export is replaced"
    assert json.loads((dest / INFO_FILE).read_text())["k"] == 5
    items_count = len(open_version(tmp_path / "index"))
    assert indexer_main([*export, "--out", str(tmp_path / "index"), "-k", "1000"]) == 0
    assert json.loads((dest / INFO_FILE).read_text())["k"] == items_count
    assert f"k 1000 is more than the {items_count} items of version" in caplog.text
    assert indexer_main([*export, "--out", str(tmp_path / "index"), "-k", "5"]) == 0
    (dest / "README.txt").write_text("how we deploy this")
    assert indexer_main([*export, "--out", str(tmp_path / "index"), "-k", "3"]) == 1
    assert "also holds README.txt, which it did not write" in capsys.readouterr().err
    assert (dest / "README.txt").read_text() == "how we deploy this"
    assert json.loads((dest / INFO_FILE).read_text())["k"] == 5, "the earlier export is kept"
    (dest / INFO_FILE).write_text("[not an export's")
    assert indexer_main([*export, "--out", str(tmp_path / "index"), "-k", "3"]) == 1
    assert f"{INFO_FILE} cannot be read" in capsys.readouterr().err
