"""The behaviour model: real tfrs training on tiny watch logs, export, cold titles, resume and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer.publish import publish_index
from indexer.published import IndexItem
from indexer.store import Event, open_store
from models.behaviour import (
    BehaviourConfig,
    WatchData,
    hit_rate_and_ndcg,
    load_behaviour,
    train_behaviour,
    training_examples,
)
from models.embedder import ModelMismatchError, NotAnExportedModelError

CLUSTERS, PER_CLUSTER, POSTER_DIM = 4, 8, 16
CONFIG = BehaviourConfig(embedding_dim=16, context_length=3, epochs=6, batch_size=64, learning_rate=0.01, seed=1)


def cluster_of(title: str) -> int:
    return int(title.split("-")[0][1:])


def watch_data(seed: int = 0) -> WatchData:
    """4 clusters of 8 titles whose posters share a cluster direction; users watch within one cluster.
    The last title of each cluster (``c*-7``) is never watched: a cold title with a poster only."""
    rng = np.random.default_rng(seed)
    titles = [f"c{c}-{i}" for c in range(CLUSTERS) for i in range(PER_CLUSTER)]
    centres = rng.normal(size=(CLUSTERS, POSTER_DIM))
    posters = np.stack([centres[cluster_of(t)] + 0.3 * rng.normal(size=POSTER_DIM) for t in titles])
    posters = (posters / np.linalg.norm(posters, axis=1, keepdims=True)).astype(np.float32)
    sequences = []
    for user in range(160):
        cluster = user % CLUSTERS
        watched = rng.permutation(PER_CLUSTER - 1)[:5]
        sequences.append([f"c{cluster}-{i}" for i in watched])
    return WatchData(titles, posters, sequences)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[WatchData, Path, dict]:
    data = watch_data()
    out = tmp_path_factory.mktemp("behaviour") / "model"
    manifest = train_behaviour(data, CONFIG, out, extra_manifest={"poster_model_manifest_sha256": "abc"})
    return data, out, manifest


def test_training_examples_are_next_title_after_a_left_padded_context():
    contexts, targets = training_examples([[5, 6, 7, 8], [9]], context_length=2)
    assert contexts.tolist() == [[-1, 5], [5, 6], [6, 7]]
    assert targets.tolist() == [6, 7, 8]


def test_the_model_learns_the_watch_structure(trained):
    _, _, manifest = trained
    # Random ranking of 31 candidates gives HR@10 ~ 0.32; within-cluster next titles are ~1 in 6.
    assert manifest["metrics"]["hit_rate@10"] > 0.9, manifest["metrics"]
    assert manifest["metrics"]["users"] == 160
    assert manifest["vocabulary_size"] == CLUSTERS * (PER_CLUSTER - 1)
    assert manifest["training"]["history"][-1]["loss"] < manifest["training"]["history"][0]["loss"]


def test_export_holds_tower_vocabulary_and_manifest_and_refuses_a_mismatch(trained, tmp_path):
    data, out, manifest = trained
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.keras", "vocabulary.json"]
    assert json.loads((out / "manifest.json").read_text())["format"] == "posterrec-behaviour/1"
    model = load_behaviour(out, expect={"poster_model_manifest_sha256": "abc"})
    vectors = model.vectors(data.title_ids, data.posters)
    assert vectors.shape == (len(data.title_ids), CONFIG.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    with pytest.raises(ModelMismatchError, match="poster_model_manifest_sha256"):
        load_behaviour(out, expect={"poster_model_manifest_sha256": "other"})
    with pytest.raises(NotAnExportedModelError, match="lacks"):
        load_behaviour(tmp_path)


def test_a_cold_title_gets_its_vector_from_its_poster(trained):
    data, out, _ = trained
    model = load_behaviour(out)
    vectors = model.vectors(data.title_ids, data.posters)
    warm = [i for i, t in enumerate(data.title_ids) if not t.endswith("-7")]
    for cold in (i for i, t in enumerate(data.title_ids) if t.endswith("-7")):
        assert data.title_ids[cold] not in model.id_of_title
        nearest = [warm[j] for j in np.argsort(-(vectors[warm] @ vectors[cold]))[:5]]
        same = sum(cluster_of(data.title_ids[j]) == cluster_of(data.title_ids[cold]) for j in nearest)
        assert same >= 4, (data.title_ids[cold], [data.title_ids[j] for j in nearest])
    # A warm title named by an id the model never saw falls back to its poster path too: another vector.
    renamed = model.vectors(["unknown"], data.posters[:1])
    assert not np.allclose(renamed, vectors[:1])


def test_hit_rate_counts_a_target_ranked_in_the_top_k():
    vectors = np.eye(4, dtype=np.float32)
    vectors[1] = [0.9, 0.1, 0, 0]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert hit_rate_and_ndcg(vectors, [[0]], [1], context_length=1, k=1)["hit_rate@1"] == 1
    assert hit_rate_and_ndcg(vectors, [[0]], [2], context_length=1, k=1)["hit_rate@1"] == 0


def test_an_interrupted_run_resumes_to_the_same_model(tmp_path):
    data = watch_data(seed=3)
    config = BehaviourConfig(embedding_dim=8, context_length=2, epochs=3, batch_size=64, seed=2)
    straight = train_behaviour(data, config, tmp_path / "straight")

    def stop_after_first(epoch: int, record: dict) -> None:
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_behaviour(data, config, tmp_path / "resumed", on_epoch_end=stop_after_first)
    assert (tmp_path / "resumed.train" / "state.json").is_file() and not (tmp_path / "resumed").exists()
    with pytest.raises(ValueError, match=r"other settings or data \(seed was 2, now 5\)"):
        train_behaviour(data, BehaviourConfig(**{**config.__dict__, "seed": 5}), tmp_path / "resumed", resume=True)
    resumed = train_behaviour(data, config, tmp_path / "resumed", resume=True)
    assert [h["epoch"] for h in resumed["training"]["history"]] == [1, 2, 3]
    assert resumed["metrics"] == straight["metrics"]
    a = load_behaviour(tmp_path / "straight").vectors(data.title_ids, data.posters)
    b = load_behaviour(tmp_path / "resumed").vectors(data.title_ids, data.posters)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not (tmp_path / "resumed.train").exists()


def test_cli_trains_on_the_store_events_and_the_published_poster_vectors(make_catalog, tmp_path, capsys):
    from indexer.ingest import ingest_catalog
    from models.__main__ import main as models_main

    data = watch_data(seed=4)
    rows = [{"id": t, "title": t, "year": "2000", "genres": "Drama"} for t in data.title_ids]
    store = tmp_path / "store.sqlite3"
    ingest_catalog(make_catalog(rows), store)
    out, index_root = tmp_path / "behaviour", tmp_path / "index"
    args = ["train-behaviour", "--out", str(out), "--store", str(store), "--index", str(index_root), "--epochs", "2"]
    assert models_main(args) == 1
    assert "no poster vectors" in capsys.readouterr().err
    items = [IndexItem(t, t, t, "") for t in data.title_ids]
    publish_index(
        index_root,
        items,
        data.posters,
        {"model_manifest_sha256": "p" * 64},
        exact_search_max_items=100,
        recall_floor=0.5,
        keep_versions=1,
    )
    assert models_main(args) == 1
    assert "no watch events" in capsys.readouterr().err
    with open_store(store) as writer:
        writer.write_events(Event(str(u), t, n) for u, seq in enumerate(data.sequences) for n, t in enumerate(seq))
    assert models_main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["users"] == 160 and printed["vocabulary_size"] == 28
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["poster_model_manifest_sha256"] == "p" * 64 and manifest["poster_dim"] == POSTER_DIM
