"""From watch events to hybrid recommendations through the command lines: ingest a catalogue, build, ingest
events, train the behaviour model (tfrs, tiny), build again, serve. A real store, model, ScaNN and app."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_indexer_build import build_argv, make_workspace, trained_tiny_model
from test_recsvc_support import settings_for

from indexer.__main__ import main as indexer_main
from indexer.build import build_index
from indexer.published import IndexVersionError, list_versions, open_version
from indexer.store import open_store
from models.__main__ import main as models_main
from recsvc import create_app

pytestmark = pytest.mark.slow

COLD = 2
"""The last titles of the catalogue, which nobody watches."""


def write_events(path: Path, title_ids: list[str]) -> None:
    """60 users, each watching 5 titles of one of three groups, in order; the last COLD titles unwatched."""
    watched = title_ids[:-COLD]
    rng = np.random.default_rng(0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "title_id", "timestamp"])
        for user in range(60):
            group = [t for i, t in enumerate(watched) if i % 3 == user % 3]
            for step, title_id in enumerate(rng.permutation(group)[:5]):
                writer.writerow([f"u{user}", title_id, 1_700_000_000 + 60 * step])


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict:
    """The workspace after ingest, build, ingest-events, train-behaviour and a second build."""
    tmp_path = tmp_path_factory.mktemp("signals-e2e")
    ws = make_workspace(trained_tiny_model(tmp_path_factory), tmp_path)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("POSTERREC_HOME", str(ws["settings"].home))  # the default behaviour model: <home>/behaviour
        assert indexer_main(build_argv(ws)) == 0
        poster_only = open_version(ws["settings"].index_root)
        with open_store(ws["store"]) as store:
            title_ids = [t.id for t in store.titles()]
        write_events(tmp_path / "events.csv", title_ids)
        assert indexer_main(["ingest-events", str(tmp_path / "events.csv"), "--store", str(ws["store"])]) == 0
        behaviour_dir = ws["settings"].home / "behaviour"
        train = ["train-behaviour", "--out", str(behaviour_dir), "--store", str(ws["store"])]
        train += ["--index", str(ws["settings"].index_root), "--epochs", "3", "--embedding-dim", "8"]
        assert models_main([*train, "--context-length", "3"]) == 0
        assert indexer_main(build_argv(ws)) == 0
    return {**ws, "titles": title_ids, "behaviour_dir": behaviour_dir, "poster_only": poster_only}


def test_the_first_build_without_a_behaviour_model_publishes_posters_only(served):
    index = served["poster_only"]
    assert index.behaviour is None and "behaviour" not in index.manifest


def test_the_build_publishes_behaviour_vectors_of_every_title_in_the_same_version(served):
    index = open_version(served["settings"].index_root)
    entry = index.manifest["behaviour"]
    manifest_bytes = (served["behaviour_dir"] / "manifest.json").read_bytes()
    assert entry["model_manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    assert entry["count"] == len(index.title_ids) == len(served["titles"]) and entry["dim"] == 8
    assert entry["warm_count"] == len(served["titles"]) - COLD and entry["recall_at_10"] >= 0.95
    warm = dict(zip(index.title_ids, index.behaviour.warm.tolist()))
    assert [t for t in served["titles"] if not warm[t]] == served["titles"][-COLD:]


def test_the_served_recommendations_are_hybrid_and_echo_the_signal(served):
    client = create_app(settings_for(served["settings"].index_root), watch=False).test_client()
    history = served["titles"][0:6:3]  # two titles of one group
    body = client.post("/v1/recommendations", json={"history": history, "k": 5}).json
    assert body["signal"] == "hybrid" and len(body["results"]) == 5
    assert not {r["id"] for r in body["results"]} & set(history)
    behaviour = client.post("/v1/recommendations", json={"history": history, "k": 5, "signal": "behaviour"}).json
    assert [r["id"] for r in behaviour["results"]] == [r["id"] for r in body["results"]]  # weight 0: behaviour
    cold = client.post("/v1/recommendations", json={"history": served["titles"][-COLD:], "k": 5}).json
    assert cold["signal"] == "poster" and len(cold["results"]) == 5


def test_a_behaviour_model_of_another_poster_model_is_refused_and_nothing_is_published(served, tmp_path):
    other = tmp_path / "behaviour"
    shutil.copytree(served["behaviour_dir"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "poster_model_manifest_sha256": "0" * 64}))
    settings = served["settings"]
    before = list_versions(settings.index_root)
    with pytest.raises(IndexVersionError, match="cannot build with behaviour model") as refused:
        build_index(served["model"], dataclasses.replace(settings, behaviour_model_dir=other))
    assert "build without it (--no-behaviour-model), train it again on the new version" in str(refused.value)
    assert list_versions(settings.index_root) == before
    (other / "manifest.json").unlink()
    with pytest.raises(IndexVersionError, match="cannot build with behaviour model") as refused:
        build_index(served["model"], dataclasses.replace(settings, behaviour_model_dir=other))
    assert str(refused.value).count("train-behaviour") == 1, "one piece of advice"


def test_a_missing_behaviour_model_given_on_the_command_line_is_an_error(served, tmp_path, capsys):
    with pytest.raises(SystemExit):
        indexer_main([*build_argv(served), "--behaviour-model", str(tmp_path / "none")])
    assert f"--behaviour-model {tmp_path / 'none'} does not exist" in capsys.readouterr().err
    (tmp_path / "file").write_text("not a model")
    with pytest.raises(SystemExit):
        indexer_main([*build_argv(served), "--behaviour-model", str(tmp_path / "file")])
    assert f"--behaviour-model {tmp_path / 'file'} is a file, not a folder" in capsys.readouterr().err


def test_no_behaviour_model_publishes_posters_only_beside_a_behaviour_model(served, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSTERREC_HOME", str(served["settings"].home))  # whose behaviour model the builds took
    argv = [*build_argv(served)[:-1], str(tmp_path / "index")]
    assert indexer_main([*argv, "--no-behaviour-model"]) == 0
    index = open_version(tmp_path / "index")
    assert index.behaviour is None and "behaviour" not in index.manifest and len(index) == len(served["poster_only"])
    with pytest.raises(SystemExit):
        indexer_main([*argv, "--no-behaviour-model", "--behaviour-model", str(served["behaviour_dir"])])
    assert "not allowed with argument --no-behaviour-model" in capsys.readouterr().err
    monkeypatch.setenv("POSTERREC_PUBLISH_BEHAVIOUR", "false")
    assert indexer_main([*argv, "--behaviour-model", str(served["behaviour_dir"])]) == 0
    assert open_version(tmp_path / "index").behaviour is not None, "a model named on the command line is published"
