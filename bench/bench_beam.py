"""Rebuild throughput: the Beam pipeline on the local runner with 1 and 2 workers against the single-process build.

A sample of the real posters (Kaggle "Movie Genre from its Poster", ``../shared/data``) is ingested
into a fresh store; each configuration then rebuilds it from a cold embedding cache (every poster
read, decoded and embedded, the index built, verified and published) and reports posters/s end to
end. Configurations run interleaved, ``--rounds`` times each, and the table gives the median.
Scaling efficiency is the 2-worker rate over twice the 1-worker rate of the same running mode.

    python bench/bench_beam.py [--sample 400] [--rounds 2] [--model var/bench/model-effl0]
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from posterrec_settings import load_settings  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow)

MULTI = ["--direct_running_mode=multi_processing"]
CONFIGS = {
    "single-process build": None,
    "Beam FnApiRunner, in process": ["--direct_num_workers=1"],
    "Beam FnApiRunner, 1 worker process": ["--direct_num_workers=1", *MULTI],
    "Beam FnApiRunner, 2 worker processes": ["--direct_num_workers=2", *MULTI],
}


def sample_catalog(data: Path, out: Path, count: int) -> Path:
    """The first ``count`` rows of ``data/catalog.csv`` with absolute image paths (the data is never written)."""
    with (data / "catalog.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = [{**row, "image": str(data / row["image"])} for _, row in zip(range(count), reader)]
        fields = reader.fieldnames
    path = out / "catalog.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def rebuild(
    name: str, beam_args: list[str] | None, model: Path, store: Path, work: Path, batch_size: int
) -> tuple[int, float]:
    """One cold rebuild into a fresh index root; (items, seconds)."""
    from indexer.beam_pipeline import build_with_beam
    from indexer.build import build_index

    root = Path(tempfile.mkdtemp(prefix="index-", dir=work))
    settings = load_settings(env={}, home=work / "home", store=store, index_root=root, batch_size=batch_size)
    started = time.perf_counter()
    if beam_args is None:
        summary = build_index(model, settings, store, root)
    else:
        summary = build_with_beam(model, settings, store, root, beam_args=beam_args)
    seconds = time.perf_counter() - started
    assert summary.embedded and summary.embedded + summary.reused == summary.items, f"{name}: {summary}"
    return summary.items, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="real poster data folder")
    parser.add_argument("--sample", type=int, default=400, help="posters to rebuild (default 400)")
    parser.add_argument("--rounds", type=int, default=2, help="rebuilds per configuration, interleaved (default 2)")
    parser.add_argument("--model", type=Path, default=REPO / "var" / "bench" / "model-effl0", help="exported model")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not (args.data / "catalog.csv").is_file():
        parser.error(f"no catalogue at {args.data / 'catalog.csv'}: the real posters sit beside the repository")
    if not (args.model / "manifest.json").is_file():
        parser.error(
            f"{args.model} is not an exported model: make one with `python -m models train --catalog "
            f"{args.data / 'catalog.csv'} --out {args.model} --backbone efficientnet_lite0 --weights imagenet`"
        )

    from indexer.ingest import ingest_catalog

    with tempfile.TemporaryDirectory(prefix="bench-beam-") as tmp:
        work = Path(tmp)
        store = work / "store.sqlite3"
        ingested = ingest_catalog(sample_catalog(args.data, work, args.sample), store, allow_outside=True)
        if ingested.summary is None:
            parser.error(f"the sample of {args.data / 'catalog.csv'} does not ingest: {ingested.report}")
        rebuild("warm-up", None, args.model, store, work, args.batch_size)  # imports and first model load, untimed
        times: dict[str, list[float]] = {name: [] for name in CONFIGS}
        items = 0
        for round_ in range(args.rounds):
            for name, beam_args in CONFIGS.items():
                items, seconds = rebuild(name, beam_args, args.model, store, work, args.batch_size)
                times[name].append(seconds)
                print(f"round {round_ + 1}: {name}: {items} posters in {seconds:.1f} s", file=sys.stderr, flush=True)

    rates = {name: items / statistics.median(seconds) for name, seconds in times.items()}
    baseline = rates["single-process build"]
    print(
        f"\nRebuild of {items} real posters from a cold cache, model {args.model.name}, batch {args.batch_size}, "
        f"{os.cpu_count()} CPUs, median of {args.rounds}"
    )
    print("| configuration | seconds (median) | posters/s | vs single-process |\n|---|---:|---:|---:|")
    for name, seconds in times.items():
        print(f"| {name} | {statistics.median(seconds):.1f} | {rates[name]:.2f} | {rates[name] / baseline:.2f}x |")
    one, two = rates["Beam FnApiRunner, 1 worker process"], rates["Beam FnApiRunner, 2 worker processes"]
    print(f"\nScaling efficiency, 2 worker processes over 1: {two / (2 * one):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
