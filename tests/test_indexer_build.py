"""``python -m indexer build`` end to end: a real store, a tiny real model, real ScaNN, real files."""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

from posterrec_settings import Settings, load_settings

import numpy as np
import pytest
from PIL import Image, ImageOps

from indexer import variant_images
from indexer.__main__ import main as indexer_main
from indexer.build import Source, build_index, embed_sources, hold_variant_images
from indexer.embedding_cache import CACHE_FILE, EmbeddingCache
from indexer.ingest import ingest_catalog
from indexer.published import IndexItem, IndexVersionError, current_version, list_versions, open_version
from indexer.store import open_store
from tests.conftest import write_poster

REPO = Path(__file__).resolve().parents[1]

TITLES = 24
TINY_TRAINING = (
    "--backbone tiny --weights none --warmup-epochs 1 --head-epochs 1 --unfreeze-blocks 0 --triplet-epochs 0"
)
VARIANT_REGIONS = {"DE": "de", "JP": "ja"}

pytestmark = pytest.mark.slow


def trained_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A demo corpus and a tiny model trained on it, made once per test session (training is the slow part)."""
    from localize.demo import write_demo_corpus
    from models.__main__ import main as models_main

    out = tmp_path_factory.getbasetemp() / "tiny-model"
    catalog = out / "demo" / "catalog.csv"
    if not (out / "model" / "manifest.json").is_file():
        catalog = write_demo_corpus(out / "demo", count=TITLES, seed=11)
        argv = [
            "train",
            "--catalog",
            str(catalog),
            "--out",
            str(out / "model"),
            *TINY_TRAINING.split(),
            "--cache-dir",
            str(out / "cache"),
        ]
        assert models_main(argv) == 0
    return catalog, out / "model"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return trained_tiny_model(tmp_path_factory)


def make_workspace(tiny_model: tuple[Path, Path], tmp_path: Path) -> dict:
    """A private copy of the corpus, ingested into a fresh store, with a DE and a JP variant of the first title."""
    catalog_src, model = tiny_model
    corpus = tmp_path / "demo"
    shutil.copytree(catalog_src.parent, corpus)
    catalog = corpus / catalog_src.name
    store = tmp_path / "store.sqlite3"
    assert ingest_catalog(catalog, store).summary is not None
    with open_store(store) as opened:
        first = opened.titles()[0]
        for region, language in VARIANT_REGIONS.items():
            variant = tmp_path / "variants" / f"{first.id}_{region}.png"
            variant.parent.mkdir(exist_ok=True)
            image = Image.open(first.image_path).convert("RGB")
            (ImageOps.mirror(image) if region == "DE" else ImageOps.flip(image)).save(variant)
            opened.upsert_variant(first.id, region, language, f"{first.title} ({region})", variant)
    settings = load_settings(
        env={}, home=tmp_path / "home", store=store, index_root=tmp_path / "index", keep_versions=2, batch_size=8
    )
    return {"catalog": catalog, "model": model, "store": store, "settings": settings, "first": first.id}


@pytest.fixture
def workspace(tiny_model: tuple[Path, Path], tmp_path: Path) -> dict:
    return make_workspace(tiny_model, tmp_path)


def rows_of(catalog: Path) -> list[dict]:
    with catalog.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_rows(catalog: Path, rows: list[dict]) -> None:
    with catalog.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def build_argv(ws: dict, *options: str, model: Path | None = None) -> list[str]:
    """``indexer build`` arguments for the workspace's store and index root, with its model unless ``model``."""
    index_root = str(ws["settings"].index_root)
    return ["build", "--model", str(model or ws["model"]), "--store", str(ws["store"]), "--out", index_root, *options]


def build(ws: dict):
    settings: Settings = ws["settings"]
    return build_index(ws["model"], settings, ws["store"], settings.index_root)


def test_build_indexes_every_title_and_variant_with_its_region(workspace: dict) -> None:
    summary = build(workspace)
    index = open_version(workspace["settings"].index_root)
    assert len(index) == TITLES + len(VARIANT_REGIONS) == summary.items
    assert (summary.embedded, summary.reused) == (summary.items, 0)
    first = workspace["first"]
    variants = {index.items[row].region: index.items[row] for row in index.rows_of_title[first]}
    assert set(variants) == {None, *VARIANT_REGIONS}
    for region, language in VARIANT_REGIONS.items():
        assert variants[region].key == f"{first}@{region}" and variants[region].language == language
        assert variants[region].title_id == first and variants[region].is_variant
    assert all(item.region is None for item in index.items if item.title_id != first)
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1.0, atol=1e-4)
    rows, _ = index.search(index.embeddings[:5], 1)
    assert rows[:, 0].tolist() == list(range(5)), "every poster finds itself first"
    with open_store(workspace["store"]) as store:
        recorded = store.index_versions()
    assert [r["version"] for r in recorded] == [summary.publication.version]
    assert recorded[0]["manifest"]["model_manifest_sha256"] == index.manifest["model_manifest_sha256"]


def test_incremental_rebuild_embeds_only_changed_posters_and_drops_removed_ones(workspace: dict) -> None:
    first = build(workspace)
    catalog: Path = workspace["catalog"]
    rows = rows_of(catalog)
    changed, removed = rows[3], rows[4]
    poster = catalog.parent / changed["image"]
    Image.open(poster).convert("RGB").rotate(90, expand=True).save(poster)
    added = {**rows[6], "id": "added-1", "image": "added-1.png"}
    ImageOps.invert(Image.open(catalog.parent / rows[6]["image"]).convert("RGB")).save(catalog.parent / added["image"])
    write_rows(catalog, [row for row in rows if row is not removed] + [added])
    assert ingest_catalog(catalog, workspace["store"]).summary is not None

    second = build(workspace)

    assert second.embedded == 2 and second.reused == second.items - 2
    assert second.items == first.items
    index = open_version(workspace["settings"].index_root)
    assert (
        removed["id"] not in index.row_of_key and changed["id"] in index.row_of_key and added["id"] in index.row_of_key
    )
    old = open_version(workspace["settings"].index_root, first.publication.version)
    changed_row_old, changed_row_new = old.row_of_key[changed["id"]], index.row_of_key[changed["id"]]
    assert not np.allclose(old.embeddings[changed_row_old], index.embeddings[changed_row_new])
    same = rows[5]["id"]
    assert np.array_equal(old.embeddings[old.row_of_key[same]], index.embeddings[index.row_of_key[same]])


def test_a_poster_that_cannot_be_embedded_leaves_the_served_version(workspace: dict, capsys) -> None:
    served = build(workspace).publication.version
    rows = rows_of(workspace["catalog"])
    broken = workspace["catalog"].parent / rows[7]["image"]
    Image.open(broken).convert("RGB").rotate(90, expand=True).save(broken)
    assert ingest_catalog(workspace["catalog"], workspace["store"]).summary.updated == 1  # so it must be embedded
    broken.write_bytes(b"not an image any more")  # then broken on disk behind the store's back

    settings: Settings = workspace["settings"]
    argv = build_argv(workspace)
    assert indexer_main(argv) == 1
    message = capsys.readouterr().err
    assert rows[7]["id"] in message and "changed since it was ingested" in message

    assert current_version(settings.index_root) == served and list_versions(settings.index_root) == [served]
    assert len(open_version(settings.index_root)) == TITLES + len(VARIANT_REGIONS)


def test_a_cached_poster_replaced_or_removed_since_ingest_is_refused(workspace: dict, capsys) -> None:
    served = build(workspace).publication.version  # every poster embedded and cached
    rows = rows_of(workspace["catalog"])
    folder = workspace["catalog"].parent
    replaced, removed = folder / rows[3]["image"], folder / rows[4]["image"]
    Image.open(replaced).convert("RGB").rotate(90, expand=True).save(replaced)
    assert indexer_main(build_argv(workspace)) == 1
    message = capsys.readouterr().err
    assert rows[3]["id"] in message and "changed since it was ingested" in message, message

    assert ingest_catalog(workspace["catalog"], workspace["store"]).summary.updated == 1  # the new poster taken in
    removed.unlink()
    assert indexer_main(build_argv(workspace)) == 1
    message = capsys.readouterr().err
    assert rows[4]["id"] in message and "cannot be read" in message, message
    assert "restore the file, or leave its row out of the catalogue and run `python -m indexer ingest` again" in message
    assert current_version(workspace["settings"].index_root) == served


def test_each_path_of_a_cached_image_is_checked(workspace: dict, tmp_path: Path) -> None:
    """Two posters with the same bytes share a cached vector; the file of either going missing is caught."""
    from models.embedder import load_embedder

    first = tmp_path / "first.jpg"
    write_poster(first, (10, 20, 30))
    second = tmp_path / "second.jpg"
    second.write_bytes(first.read_bytes())
    sha256 = hashlib.sha256(first.read_bytes()).hexdigest()
    sources = [Source(IndexItem(key, key, key, str(path)), sha256) for key, path in (("a", first), ("b", second))]
    embedder = load_embedder(workspace["model"])
    with EmbeddingCache(tmp_path / "cache.sqlite") as cache:
        embed_sources(embedder, sources, cache, batch_size=2)  # embeds the image once, for both
        first.unlink()
        with pytest.raises(IndexVersionError, match=r"^a: poster \S*first\.jpg cannot be read"):
            embed_sources(embedder, sources, cache, batch_size=2)


def test_a_poster_that_cannot_be_decoded_is_named_by_its_key(workspace: dict, tmp_path: Path) -> None:
    """Posters are embedded several batches at a call; the error still names the one that failed."""
    from models.embedder import load_embedder

    def source(key: str, path: Path) -> Source:
        return Source(IndexItem(key, key, key, str(path)), hashlib.sha256(path.read_bytes()).hexdigest())

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a poster")  # with its own content hash: it passes the check that it is unchanged
    folder = workspace["catalog"].parent
    sources = [source(row["id"], folder / row["image"]) for row in rows_of(workspace["catalog"])[:5]]
    embedder = load_embedder(workspace["model"], batch_size=2)
    with EmbeddingCache(tmp_path / "cache.sqlite") as cache:
        with pytest.raises(IndexVersionError, match=r"^t-bad: poster \S*bad\.jpg cannot be embedded: image #5 "):
            embed_sources(embedder, [*sources, source("t-bad", bad)], cache, batch_size=2)


def test_build_refuses_a_directory_that_is_not_a_model(workspace: dict, tmp_path: Path, capsys) -> None:
    settings: Settings = workspace["settings"]
    argv = build_argv(workspace, model=tmp_path)
    assert indexer_main(argv) == 1
    assert "is not an exported PosterRec model" in capsys.readouterr().err
    assert current_version(settings.index_root) is None


def wait_for_reader(fifo: Path, process: subprocess.Popen, timeout: float = 180.0) -> int:
    """Open ``fifo`` for writing once a reader has opened it (ENXIO until then); the write end, kept open."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()[-2000:] if process.stderr else "build exited"
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno != errno.ENXIO:
                raise
        time.sleep(0.05)
    raise AssertionError(f"the build never opened {fifo}")


def wait_until_cached(cache: Path, image_sha256s: list[str], process: subprocess.Popen, timeout: float = 180.0) -> None:
    """Return once the build's embedding cache holds every one of ``image_sha256s``.

    The embedder's workers read later batches while earlier ones are embedded, so the build can open the
    FIFO before the batches ahead of it are cached.
    """
    deadline = time.monotonic() + timeout
    marks = ",".join("?" * len(image_sha256s))
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()[-2000:] if process.stderr else "build exited"
        with closing(sqlite3.connect(cache)) as db:
            (cached,) = db.execute(
                f"SELECT count(*) FROM embeddings WHERE image_sha256 IN ({marks})", image_sha256s
            ).fetchone()
        if cached == len(image_sha256s):
            return
        time.sleep(0.05)
    raise AssertionError(f"the build never cached {len(image_sha256s)} posters in {cache}")


def test_a_build_killed_while_embedding_keeps_the_served_version_and_its_finished_batches(workspace: dict) -> None:
    """SIGKILL a real ``python -m indexer build`` at a known point: it blocks reading the 5th of 5 changed
    posters (a FIFO with no data), once the first two batches of 2 are embedded and cached."""
    settings: Settings = workspace["settings"]
    served = build(workspace).publication.version
    catalog: Path = workspace["catalog"]
    rows = sorted(rows_of(catalog), key=lambda row: row["id"])[:5]  # embedded in title-id order
    posters = [catalog.parent / row["image"] for row in rows]
    for poster in posters:
        ImageOps.invert(Image.open(poster).convert("RGB")).save(poster)
    assert ingest_catalog(catalog, workspace["store"]).summary.updated == 5
    finished = [hashlib.sha256(poster.read_bytes()).hexdigest() for poster in posters[:-1]]
    last = posters[-1].read_bytes()
    posters[-1].unlink()
    os.mkfifo(posters[-1])

    env = {**os.environ, "POSTERREC_HOME": str(settings.home), "POSTERREC_BATCH_SIZE": "2"}
    argv = [sys.executable, "-m", "indexer", *build_argv(workspace)]
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    writer = -1
    try:
        writer = wait_for_reader(posters[-1], process)
        wait_until_cached(settings.index_root / CACHE_FILE, finished, process)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        process.kill()
        process.communicate()
        if writer >= 0:
            os.close(writer)

    assert current_version(settings.index_root) == served and list_versions(settings.index_root) == [served]
    index = open_version(settings.index_root)
    rows_found, _ = index.search(index.embeddings[:3], 1)
    assert rows_found[:, 0].tolist() == [0, 1, 2], "the old version still answers"

    posters[-1].unlink()
    posters[-1].write_bytes(last)
    resumed = build(workspace)
    assert (resumed.embedded, resumed.reused) == (1, resumed.items - 1), (
        "the 4 posters embedded before the kill were cached"
    )
    assert current_version(settings.index_root) == resumed.publication.version != served


def test_build_over_an_empty_store_is_a_one_line_error(workspace: dict, tmp_path: Path, capsys) -> None:
    settings: Settings = workspace["settings"]
    empty = tmp_path / "empty.sqlite3"
    open_store(empty).close()
    argv = ["build", "--model", str(workspace["model"]), "--store", str(empty), "--out", str(settings.index_root)]
    assert indexer_main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: store {empty} has no titles"), err
    assert f"(python -m indexer ingest CATALOG.csv --store {empty})" in err[0]
    missing = tmp_path / "typo.sqlite3"
    assert indexer_main([*argv[:3], "--store", str(missing), *argv[5:]]) == 1
    advice = f"load the catalogue into it first (python -m indexer ingest CATALOG.csv --store {missing})"
    assert f"error: store {missing} does not exist: {advice}" in capsys.readouterr().err
    assert not missing.exists() and current_version(settings.index_root) is None


def test_a_variant_whose_image_is_gone_is_named_with_the_commands_that_fix_it(workspace: dict, capsys) -> None:
    with open_store(workspace["store"]) as store:
        variant = store.variants()[0]
    Path(variant.image_path).unlink()
    assert indexer_main(build_argv(workspace)) == 1
    remedy = f"make it again (python -m localize run) or withdraw it (python -m localize remove {variant.parent_id} {variant.region})"
    assert remedy in capsys.readouterr().err


def remake_variant(ws: dict, region: str) -> tuple[Path, str]:
    """Make the first title's ``region`` variant again as ``localize run`` does (a new file renamed over the
    old one, registered again); returns its path and the sha256 of the image it had before."""
    with open_store(ws["store"]) as store:
        variant = next(v for v in store.variants(ws["first"]) if v.region == region)
        path = Path(variant.image_path)
        staged = path.with_name(f".tmp-{path.name}")
        ImageOps.invert(Image.open(path).convert("RGB")).save(staged, format="PNG")
        os.replace(staged, path)
        store.upsert_variant(variant.parent_id, region, variant.language, variant.title, path)
    return path, variant.image_sha256


def served_image_sha256(ws: dict, region: str) -> str:
    index = open_version(ws["settings"].index_root)
    item = index.items[index.row_of_key[f"{ws['first']}@{region}"]]
    assert Path(item.image_path).is_relative_to(index.path), "the version holds its own copy"
    return hashlib.sha256(Path(item.image_path).read_bytes()).hexdigest()


def test_a_version_serves_the_variant_images_it_embedded_until_the_next_build_and_after_a_rollback(
    workspace: dict,
) -> None:
    first = build(workspace).publication.version
    path, before = remake_variant(workspace, "DE")
    after = hashlib.sha256(path.read_bytes()).hexdigest()
    assert after != before and served_image_sha256(workspace, "DE") == before, "made again, not built yet"

    build(workspace)
    assert served_image_sha256(workspace, "DE") == after

    assert indexer_main(["rollback", first, "--out", str(workspace["settings"].index_root)]) == 0
    assert served_image_sha256(workspace, "DE") == before
    assert Path(open_version(workspace["settings"].index_root).path).name == first


@pytest.mark.skipif(
    not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == os.stat(tempfile.gettempdir()).st_dev,
    reason="needs /dev/shm on another file system than the temporary folder, where a hard link cannot reach",
)
def test_variant_images_on_another_file_system_are_copied_into_the_version(workspace: dict) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as elsewhere:
        with open_store(workspace["store"]) as store:
            for variant in store.variants(workspace["first"]):
                moved = Path(elsewhere) / Path(variant.image_path).name
                shutil.move(variant.image_path, moved)
                store.upsert_variant(variant.parent_id, variant.region, variant.language, variant.title, moved)
        build(workspace)
        for region in VARIANT_REGIONS:
            (moved,) = Path(elsewhere).glob(f"*_{region}.png")
            assert served_image_sha256(workspace, region) == hashlib.sha256(moved.read_bytes()).hexdigest()


def test_a_variant_image_that_changed_since_it_was_embedded_is_refused_with_build_again(tmp_path: Path) -> None:
    image = tmp_path / "variant.png"
    write_poster(image, (10, 20, 30))
    embedded = hashlib.sha256(b"the image as it was embedded").hexdigest()
    variant = Source(IndexItem("t1@DE", "t1", "Titel", str(image), region="DE", language="de"), embedded)
    (tmp_path / "version").mkdir()
    with pytest.raises(
        IndexVersionError, match=r"^t1@DE: variant image \S+ changed while this build ran .* build again"
    ):
        hold_variant_images(tmp_path / "version", [variant])


def test_only_the_held_image_paths_of_a_version_are_resolved_against_it(tmp_path: Path) -> None:
    held = IndexItem("t1@DE", "t1", "Titel", f"{variant_images.FOLDER}/abc.png", region="DE")
    assert variant_images.resolved(held, tmp_path).image_path == str(tmp_path / variant_images.FOLDER / "abc.png")
    for other in (
        IndexItem("t1@DE", "t1", "Titel", "posters/t1_de.png", region="DE"),
        IndexItem("t1", "t1", "T", "x.png"),
    ):
        assert variant_images.resolved(other, tmp_path) == other


def test_a_variant_image_keeps_its_etag_across_builds_though_it_moves_into_each_version(workspace: dict) -> None:
    from test_recsvc_support import settings_for

    from recsvc import create_app

    def served(url: str):
        app = create_app(settings_for(workspace["settings"].index_root), watch=False)
        return app.extensions["posterrec"].index.path, app.test_client().get(url)

    url = f"/v1/posters/{workspace['first']}/image?region=DE"
    build(workspace)
    first_version, first = served(url)
    build(workspace)
    second_version, second = served(url)
    assert first_version != second_version and first.status_code == second.status_code == 200
    assert first.headers["ETag"] == second.headers["ETag"], "a client's cached copy stays valid"
    remake_variant(workspace, "DE")
    build(workspace)
    assert served(url)[1].headers["ETag"] != first.headers["ETag"], "a variant made again is fetched again"
