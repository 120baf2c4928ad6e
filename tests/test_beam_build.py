"""``python -m indexer build --runner FnApiRunner``: the rebuild as a Beam pipeline on Beam's local runner,
against the single-process build over the same store, model and files."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from posterrec_settings import Settings

import numpy as np
import pytest
from PIL import Image
from test_indexer_build import TITLES, VARIANT_REGIONS, build, build_argv, make_workspace, rows_of, trained_tiny_model

from indexer.__main__ import main as indexer_main
from indexer.beam_pipeline import build_with_beam
from indexer.build import build_index
from indexer.ingest import ingest_catalog
from indexer.published import current_version, list_versions, open_version
from indexer.scann_index import exact_top_k
from indexer.shards import ROWS_FILE, SHARDS_DIR
from indexer.store import open_store
from indexer.vector_files import VECTOR_CACHE_DIR, vector_file_pattern, vector_files

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return trained_tiny_model(tmp_path_factory)


@pytest.fixture
def workspace(tiny_model: tuple[Path, Path], tmp_path: Path) -> dict:
    return make_workspace(tiny_model, tmp_path)


def beam_build(ws: dict, **options):
    settings: Settings = ws["settings"]
    return build_with_beam(ws["model"], settings, ws["store"], settings.index_root, **options)


def embeddings_by_key(root: Path, version: str | None = None) -> dict[str, np.ndarray]:
    index = open_version(root, version)
    return {item.key: index.embeddings[row] for row, item in enumerate(index.items)}


def test_the_pipeline_publishes_the_keys_and_embeddings_of_the_single_process_build(workspace: dict) -> None:
    root = workspace["settings"].index_root
    single = build(workspace)
    expected = embeddings_by_key(root)

    summary = beam_build(workspace)

    assert set(list_versions(root)) == {single.publication.version, summary.publication.version}
    assert current_version(root) == summary.publication.version
    got = embeddings_by_key(root)
    assert list(got) == list(expected), "same keys in the same order"
    assert len(got) == TITLES + len(VARIANT_REGIONS) == summary.items
    for key, vector in expected.items():
        np.testing.assert_allclose(got[key], vector, atol=1e-5, err_msg=key)
    assert (summary.embedded, summary.reused, summary.bad_posters) == (summary.items, 0, [])
    assert summary.counters["cache_misses"] == summary.items and summary.counters.get("cache_hits", 0) == 0
    with open_store(workspace["store"]) as store:
        assert store.index_versions()[-1]["version"] == summary.publication.version


def test_a_rerun_embeds_nothing_and_one_changed_poster_embeds_one(workspace: dict) -> None:
    root = workspace["settings"].index_root
    first = beam_build(workspace)
    again = beam_build(workspace)
    assert (again.embedded, again.reused) == (0, again.items)
    assert again.counters["cache_hits"] == again.items and "posters_decoded" not in again.counters
    np.testing.assert_array_equal(
        open_version(root, first.publication.version).embeddings, open_version(root).embeddings
    )

    rows = rows_of(workspace["catalog"])
    poster = workspace["catalog"].parent / rows[2]["image"]
    from PIL import Image, ImageOps

    ImageOps.invert(Image.open(poster).convert("RGB")).save(poster)
    assert ingest_catalog(workspace["catalog"], workspace["store"]).summary.updated == 1
    third = beam_build(workspace)
    assert (third.embedded, third.reused) == (1, third.items - 1)
    cache = workspace["settings"].index_root / VECTOR_CACHE_DIR
    folders = [p for p in cache.iterdir() if p.is_dir()]
    assert len(folders) == 1, "one model's vectors"
    files = vector_files(vector_file_pattern(str(folders[0])))
    assert len({Path(f).name.rsplit("-", 1)[0] for f in files}) == 1, f"only the last build's vector files: {files}"


def test_a_bad_poster_is_reported_and_left_out_without_failing_the_pipeline(workspace: dict) -> None:
    rows = rows_of(workspace["catalog"])
    broken = workspace["catalog"].parent / rows[7]["image"]
    broken.write_bytes(b"not an image any more")  # behind the store's back

    summary = beam_build(workspace)

    assert [key for key, _ in summary.bad_posters] == [rows[7]["id"]]
    assert "changed since it was ingested" in summary.bad_posters[0][1]
    index = open_version(workspace["settings"].index_root)
    assert rows[7]["id"] not in index.row_of_key and len(index) == TITLES + len(VARIANT_REGIONS) - 1


def test_a_cached_poster_replaced_or_removed_since_ingest_is_reported_and_left_out(workspace: dict) -> None:
    beam_build(workspace)  # every poster embedded and cached
    rows = rows_of(workspace["catalog"])
    folder = workspace["catalog"].parent
    (folder / rows[3]["image"]).write_bytes(b"another image")  # behind the store's back
    (folder / rows[4]["image"]).unlink()

    summary = beam_build(workspace)

    reasons = dict(summary.bad_posters)
    assert sorted(reasons) == [rows[3]["id"], rows[4]["id"]]
    assert "changed since it was ingested; run `python -m indexer ingest` again" in reasons[rows[3]["id"]]
    assert (
        "cannot be read" in reasons[rows[4]["id"]]
        and "restore the file, or leave its row out" in reasons[rows[4]["id"]]
    )
    index = open_version(workspace["settings"].index_root)
    assert rows[3]["id"] not in index.row_of_key and rows[4]["id"] not in index.row_of_key
    assert len(index) == TITLES + len(VARIANT_REGIONS) - 2


def test_each_poster_sharing_a_cached_image_is_checked(workspace: dict) -> None:
    """Three titles show the same bytes, so one cached vector; two of the files then change: those two are
    reported and left out, whichever poster the pipeline meets first, and the third keeps the vector."""
    rows = rows_of(workspace["catalog"])
    folder = workspace["catalog"].parent
    shared = [rows[5], rows[6], rows[7]]
    for row in shared[1:]:
        shutil.copyfile(folder / shared[0]["image"], folder / row["image"])
    assert ingest_catalog(workspace["catalog"], workspace["store"]).summary is not None
    beam_build(workspace)
    for row in shared[:2]:
        (folder / row["image"]).write_bytes(b"edited behind the store's back")

    summary = beam_build(workspace)

    reasons = dict(summary.bad_posters)
    assert sorted(reasons) == sorted(row["id"] for row in shared[:2])
    assert all("changed since it was ingested" in reason for reason in reasons.values())
    index = open_version(workspace["settings"].index_root)
    assert [row["id"] in index.row_of_key for row in shared] == [False, False, True]
    assert len(index) == TITLES + len(VARIANT_REGIONS) - 2


def test_a_failing_stage_publishes_nothing_and_keeps_the_served_version(
    workspace: dict, tmp_path: Path, capsys
) -> None:
    settings: Settings = workspace["settings"]
    served = beam_build(workspace).publication.version
    rows = rows_of(workspace["catalog"])
    poster = workspace["catalog"].parent / rows[1]["image"]
    from PIL import Image

    Image.open(poster).convert("RGB").rotate(180).save(poster)
    assert ingest_catalog(workspace["catalog"], workspace["store"]).summary.updated == 1  # one poster to embed
    broken_model = tmp_path / "broken-model"
    shutil.copytree(workspace["model"], broken_model)
    (broken_model / "model.tflite").write_bytes(b"not a LiteRT model")  # the manifest still reads: workers fail

    argv = build_argv(workspace, "--runner", "FnApiRunner", model=broken_model)
    assert indexer_main(argv) == 1
    err = capsys.readouterr().err
    assert "rebuild pipeline failed, nothing published" in err and served in err

    assert current_version(settings.index_root) == served and list_versions(settings.index_root) == [served]
    with open_store(workspace["store"]) as store:
        assert [v["version"] for v in store.index_versions()] == [served]


def test_the_cli_runs_the_localize_stage_then_indexes_the_variants(workspace: dict, tmp_path: Path, capsys) -> None:
    settings: Settings = workspace["settings"]
    titles = workspace["catalog"].parent / "localized_titles.csv"
    first = rows_of(workspace["catalog"])[0]["id"]
    wanted = [
        line for line in titles.read_text(encoding="utf-8").splitlines()[1:] if line.split(",")[1] in ("FR", "JP")
    ][:6]
    titles.write_text("id,region,language,title\n" + "\n".join(wanted) + "\nnobody,FR,fr,Personne\n", encoding="utf-8")
    out = tmp_path / "variants"

    localize = ["--titles", str(titles), "--variants-out", str(out), "--inpaint", "ns"]
    argv = build_argv(workspace, "--runner", "FnApiRunner", *localize, "--", "--direct_num_workers=1")
    assert indexer_main(argv) == 0
    printed = capsys.readouterr().out
    assert "localize skipped nobody FR: not in the store" in printed

    with open_store(workspace["store"]) as store:
        made = {(v.parent_id, v.region): v for v in store.variants() if Path(v.image_path).parent.parent == out}
    assert made, printed
    assert all(Path(v.image_path) == out / v.region / f"{v.parent_id}.png" for v in made.values())
    index = open_version(settings.index_root)
    for parent_id, region in made:
        assert f"{parent_id}@{region}" in index.row_of_key
    assert f"{first}@DE" in index.row_of_key, "the store's earlier variants stay indexed"
    assert (out / "skipped.csv").is_file()


def test_localize_alone_as_a_pipeline_makes_registers_and_then_finds_up_to_date(
    workspace: dict, tmp_path: Path
) -> None:
    from indexer.beam_localize import LocalizeOptions, localize_with_beam

    titles = workspace["catalog"].parent / "localized_titles.csv"
    wanted = [line for line in titles.read_text(encoding="utf-8").splitlines()[1:] if line.split(",")[1] == "FR"][:3]
    titles.write_text("id,region,language,title\n" + "\n".join(wanted) + "\n", encoding="utf-8")
    options = LocalizeOptions(titles, tmp_path / "variants", ["FR", "IT"], "ns")
    sliver_id = wanted[0].split(",")[0]
    image = next(row["image"] for row in rows_of(workspace["catalog"]) if row["id"] == sliver_id)
    Image.new("RGB", (2, 900)).save(workspace["catalog"].parent / image, format="PNG")

    summary = localize_with_beam(workspace["store"], options)
    made, up_to_date, skipped = summary.made, summary.up_to_date, [str(skip) for skip in summary.skipped]

    assert made + len(skipped) == 3 and up_to_date == 0 and made >= 1, skipped
    assert summary.regions_without_rows == ["IT"]
    assert any(line.startswith(f"{sliver_id} FR: not a poster: 2x900 px") for line in skipped), skipped
    with open_store(workspace["store"]) as store:
        assert len(store.variants(region="FR")) == made
    again = localize_with_beam(workspace["store"], options)
    assert (again.made, again.up_to_date, [str(skip) for skip in again.skipped]) == (0, made, skipped)
    assert not (tmp_path / "variants" / ".beam").exists() or not any((tmp_path / "variants" / ".beam").iterdir())


def test_the_pipeline_builds_the_shards_of_the_single_process_build(workspace: dict) -> None:
    """``--shards 3``: each shard built by a worker holds the rows and answers of the in-process build's."""
    settings = dataclasses.replace(workspace["settings"], index_shards=3)
    single = build_index(workspace["model"], settings, workspace["store"], settings.index_root).publication.version

    assert indexer_main(build_argv(workspace, "--shards", "3", "--runner", "FnApiRunner")) == 0

    piped, alone = open_version(settings.index_root), open_version(settings.index_root, single)
    assert piped.version != single and [item.key for item in piped.items] == [item.key for item in alone.items]
    assert len(piped.manifest["shards"]) == 3 and piped.manifest["shards"] == [
        {**record, "build_seconds": piped_record["build_seconds"]}
        for record, piped_record in zip(alone.manifest["shards"], piped.manifest["shards"])
    ]
    for shard in range(3):
        np.testing.assert_array_equal(
            np.load(piped.path / SHARDS_DIR / str(shard) / ROWS_FILE),
            np.load(alone.path / SHARDS_DIR / str(shard) / ROWS_FILE),
        )
    k = len(piped) - 1
    rows, _ = piped.search(piped.embeddings, k)
    np.testing.assert_array_equal(rows, alone.search(alone.embeddings, k)[0])
    np.testing.assert_array_equal(rows, exact_top_k(piped.embeddings, piped.embeddings, k))
    np.testing.assert_array_equal(piped.similar.titles, alone.similar.titles)


def test_localize_run_on_beam_makes_the_variants_of_the_single_process_run(
    workspace: dict, tmp_path: Path, capsys
) -> None:
    """``python -m localize run --runner FnApiRunner`` against ``localize run`` on a copy of the same store."""
    from localize.__main__ import main as localize_main

    titles = workspace["catalog"].parent / "localized_titles.csv"
    wanted = [line for line in titles.read_text(encoding="utf-8").splitlines()[1:] if line.split(",")[1] == "JP"][:4]
    titles.write_text("id,region,language,title\n" + "\n".join(wanted) + "\nnobody,JP,ja,誰も\n", encoding="utf-8")
    stores = {"single": workspace["store"], "beam": tmp_path / "beam-store.sqlite3"}
    shutil.copy(stores["single"], stores["beam"])

    made = {}
    for way, runner in (("single", []), ("beam", ["--runner", "FnApiRunner"])):
        out = tmp_path / f"variants-{way}"
        argv = ["run", "--titles", str(titles), "--out", str(out), "--store", str(stores[way]), "--inpaint", "ns"]
        assert localize_main([*argv, *runner]) == 0
        printed = capsys.readouterr().out
        assert "skipped nobody JP: not in the store" in printed
        with open_store(stores[way]) as store:
            variants = store.variants(region="JP")
        made[way] = {(v.parent_id, v.region, v.title, v.source_sha256, v.image_sha256) for v in variants}
        assert all(Path(v.image_path).parent == out / "JP" for v in variants)
        skipped = (out / "skipped.csv").read_text(encoding="utf-8")
        made[way + " skips"] = sorted(skipped.splitlines())
    assert made["beam"] == made["single"] and len(made["single"]) >= 2, made
    assert made["beam skips"] == made["single skips"]


def test_a_work_folder_that_cannot_be_made_is_refused_before_the_pipeline(tmp_path: Path) -> None:
    from indexer.beam_runner import delete_work_folder, new_work_folder
    from indexer.published import IndexVersionError

    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    with pytest.raises(IndexVersionError, match=r"work folder .*a_file cannot be made"):
        new_work_folder(str(a_file))
    folder = new_work_folder(str(tmp_path / "work"))
    assert Path(folder).is_dir()
    delete_work_folder(folder)
    assert not Path(folder).exists()


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--runner", "Foo"], "--runner Foo: Unexpected pipeline runner: Foo. Valid values are"),
        (["--regions", "DE"], "--inpaint, --cache, --work-dir and Beam options need --runner"),
        (
            ["--runner", "FnApiRunner", "--inpaint", "ns"],
            "--inpaint: only with --titles, which adds the localize stage",
        ),
        (["--runner", "apache_beam.runners.Nope"], "--runner apache_beam.runners.Nope: "),
        (["--regions", ""], "--inpaint, --cache, --work-dir and Beam options need --runner"),
        (
            ["--runner", "FnApiRunner", "--titles", "t.csv", "--variants-out", "v", "--regions", "de, uk"],
            "--regions: UK are not ISO 3166-1 country codes",
        ),
    ],
)
def test_build_refuses_a_runner_beam_lacks_and_options_that_would_be_ignored(
    tmp_path: Path, capsys, options: list[str], said: str
) -> None:
    out = tmp_path / "index"
    with pytest.raises(SystemExit) as stopped:
        indexer_main(["build", "--store", str(tmp_path / "store.sqlite3"), "--out", str(out), *options])
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "store.sqlite3").exists()


def test_localize_run_refuses_a_runner_beam_lacks(tmp_path: Path, capsys) -> None:
    from localize.__main__ import main as localize_main

    with pytest.raises(SystemExit) as stopped:
        localize_main(
            ["run", "--titles", str(tmp_path / "titles.csv"), "--out", str(tmp_path / "v"), "--runner", "Foo"]
        )
    assert stopped.value.code == 2
    assert "--runner Foo: Unexpected pipeline runner: Foo" in capsys.readouterr().err
