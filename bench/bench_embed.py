"""Embedding speed against the hardware: TensorFlow, XLA, ONNX Runtime and TFLite on the exported model.

On one batch of 32 real posters prepared by the Embedder, in the same process and in interleaved rounds: the
exported model's plain TensorFlow forward pass, the same model compiled with XLA
(``tf.function(jit_compile=True)``), converted to ONNX (tf2onnx) and run by ONNX Runtime, and converted to
LiteRT (TFLite) and run with XNNPACK as the embedder runs an export, these two on 2 threads. A second table
puts ``Embedder.embed_images`` on poster files (decode, resize and forward, a batch per core) and the index
build's embedding step against the embedder's own forward pass on prepared batches, a batch per core as it
runs them; beside them the same forward pass with each batch on all cores, and embedding with each batch on
all cores, prepared during the forward pass of the one before, in series, and in series with TensorFlow's
resize dispatched op by op. Each row gives images/s (median and range over the rounds), the speed-up over
its table's baseline in the same round (median and range), the largest absolute difference of its embeddings
from TensorFlow's, and achieved GFLOP/s against the CPU's fp32 peak. The FLOPs per image come from
TensorFlow's profiler on the frozen graph; the peak is cores x clock x fp32 FLOPs per cycle of the core's
FMA units. A runtime is adoptable when it matches TensorFlow to ``--tolerance`` and is at least
``--adopt-speedup`` times faster.

    python bench/bench_embed.py [--model DIR] [--rounds N]

Without ``--model`` (and without ``var/bench/model-efficientnet_lite0`` from ``bench/bench_models.py``)
an untrained head on the ImageNet backbone is exported to a temporary directory: speed and agreement
do not depend on the head's training. The ONNX row needs tf2onnx and onnx, which are not dependencies of
the project; without them it is skipped with the command that installs them.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


import tensorflow as tf  # noqa: E402
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2  # noqa: E402

from indexer.build import Source, embed_sources  # noqa: E402
from indexer.embedding_cache import EmbeddingCache  # noqa: E402
from indexer.published import IndexItem  # noqa: E402
from models.backbones import build_backbone  # noqa: E402
from models.catalog import CatalogRow, read_catalog  # noqa: E402
from models.embedder import (  # noqa: E402
    LITERT_FILE,
    Embedder,
    LiteRtForward,
    export_embedder,
    litert_model,
    load_embedder,
    map_in_order,
    pixel_forward,
)
from models.network import build_network  # noqa: E402
from models.preprocessing import load_rgb, resize_to_square  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "catalog.csv"
BACKBONE = "efficientnet_lite0"
DEFAULT_MODEL = REPO / "var" / "bench" / f"model-{BACKBONE}"
BATCH = 32
THREADS = 2
OPSET = 17
Forward = Callable[[np.ndarray], np.ndarray]
ONNX_HINT = "pip install --no-deps tf2onnx onnx: both fit the project's pins, and they stay out of its dependencies"
BASELINE = "TensorFlow forward pass (exported model)"


def untrained_export(out_dir: Path) -> Path:
    """The exported-model layout around the ImageNet backbone and an untrained embedding head."""
    backbone = build_backbone(BACKBONE, "imagenet")
    network = build_network(backbone, num_genres=2, embedding_dim=128)
    manifest = {
        "backbone": BACKBONE,
        "weights": backbone.weights,
        "input_size": network.input_size,
        "embedding_dim": 128,
        "letterbox": True,
        "preprocessing": backbone.spec.scaling.description,
    }
    return export_embedder(network.embedder, manifest, out_dir)


def input_spec(embedder: Embedder, batch: int | None = None) -> tf.TensorSpec:
    return tf.TensorSpec([batch, embedder.input_size, embedder.input_size, 3], tf.float32)


def flops_per_image(embedder: Embedder) -> int:
    """Floating-point operations of one image through the model, counted by TensorFlow's profiler."""
    function = tf.function(lambda images: embedder.model(images, training=False))
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(input_spec(embedder, 1)))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=frozen.graph, options=options).total_float_ops)


def cpu_peak_gflops() -> tuple[float, str]:
    """fp32 peak of this machine's CPUs (cores x GHz x FLOPs/cycle) and how it was derived."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    ghz = float(fields.get("cpu MHz", "0")) / 1000
    cores = os.cpu_count() or 1
    amd_before_zen5 = fields.get("vendor_id") == "AuthenticAMD" and int(fields.get("cpu family", "0")) < 26
    if "avx512f" in flags and not amd_before_zen5:
        per_cycle, units = 64, "2 FMA units x 16 fp32 lanes (AVX-512) x 2"
    elif "fma" in flags:
        width = "256-bit; Zen 4 splits AVX-512 in two" if "avx512f" in flags else "AVX2"
        per_cycle, units = 32, f"2 FMA units x 8 fp32 lanes ({width}) x 2"
    else:
        per_cycle, units = 8, "no FMA: 1 add + 1 mul of 4 lanes"
    peak = cores * ghz * per_cycle
    return peak, f"{cores} cores x {ghz:.2f} GHz (nominal) x {per_cycle} FLOPs/cycle ({units}) = {peak:.0f} GFLOP/s"


def tensorflow_forward(embedder: Embedder, jit: bool) -> Forward:
    """TensorFlow (XLA when ``jit``) on a uint8 batch: the embedder's own :func:`pixel_forward`."""
    function = pixel_forward(embedder.model, embedder.input_size, jit_compile=jit)
    return lambda batch: function(batch).numpy()


def onnx_forward(embedder: Embedder) -> Forward:
    """ONNX Runtime on the model converted by tf2onnx; ImportError when tf2onnx or onnx is not installed."""
    import onnxruntime
    import tf2onnx

    proto, _ = tf2onnx.convert.from_keras(embedder.model, input_signature=[input_spec(embedder)], opset=OPSET)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    inference = onnxruntime.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = inference.get_inputs()[0].name
    return lambda batch: inference.run(None, {name: batch.astype(np.float32)})[0]


def forward_batch_per_core(embedder: Embedder, batches: Sequence[np.ndarray]) -> None:
    """The embedder's forward pass on prepared ``batches`` as :meth:`Embedder.embed_batches` runs it."""
    for _ in map_in_order(embedder.worker_forward, batches, embedder.workers):
        pass


def in_batches(files: Sequence[Path]) -> list[Sequence[Path]]:
    """``files`` in consecutive batches of :data:`BATCH`."""
    return [files[start : start + BATCH] for start in range(0, len(files), BATCH)]


def embed_overlapped(embedder: Embedder, files: Sequence[Path]) -> None:
    """``embed_images`` with each batch's forward pass on all cores while a second thread prepares the next."""
    batches = in_batches(files)
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(embedder.prepare_batch, batches[0])
        for following in [*batches[1:], None]:
            prepared = ahead.result()
            if following is not None:
                ahead = pool.submit(embedder.prepare_batch, following)
            embedder.forward(prepared)


COLD_START = """
import re, sys, time
from pathlib import Path
import scann  # as in a worker serving an index; it imports TensorFlow where TensorFlow is installed
from PIL import Image
from models.embedder import load_embedder
def resident_mb():
    return int(re.search(r"VmRSS:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) // 1024
before, started = resident_mb(), time.perf_counter()
embedder = load_embedder(sys.argv[1])
embedder.embed_images([Image.new("RGB", (182, 268), "red")])
print(time.perf_counter() - started, resident_mb() - before)
"""
"""Run in a fresh process; prints the seconds and the resident MB that loading the export and embedding
one image add to a process that has ScaNN loaded, as a server worker's first upload does."""


def cold_start(model_dir: Path, scratch: Path) -> str:
    """What a server worker's first upload costs: loading the export and embedding one image, with the export
    as it is (LiteRT) and without its ``model.tflite`` (TensorFlow runs the Keras model)."""
    without = shutil.copytree(model_dir, scratch / "without-litert")
    (without / LITERT_FILE).unlink()
    figures = []
    for name, folder in (("LiteRT", model_dir), ("TensorFlow", without)):
        argv = [sys.executable, "-c", COLD_START, str(folder)]
        seconds, megabytes = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
        figures.append(f"{name} {float(seconds):.2f} s and {megabytes} MB more resident memory")
    return "A server worker's first upload (loading the export, embedding one image): " + "; ".join(figures)


def embed_in_series(forward: Forward, files: Sequence[Path], prepare: Callable[[Path], np.ndarray]) -> np.ndarray:
    """``embed_images`` with each batch prepared by ``prepare`` before its forward pass, not during the last."""
    batches = [np.stack([prepare(path) for path in batch]) for batch in in_batches(files)]
    return np.concatenate([forward(batch) for batch in batches])


def nearest_ten(embeddings: np.ndarray) -> np.ndarray:
    """Each row's 10 nearest other rows by cosine."""
    similarity = embeddings @ embeddings.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argsort(-similarity, axis=1)[:, :10]


def resize_agreement(pillow: np.ndarray, tensorflow: np.ndarray, genres: Sequence[set[str]]) -> str:
    """How far the embedder's 8-bit Pillow resize moves embeddings from the training resize's: the largest
    difference, the 10 nearest posters they share, and P@10 (a neighbour sharing a genre) with each."""
    ours, training = nearest_ten(pillow), nearest_ten(tensorflow)
    shared = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ours, training)])

    def precision(neighbours: np.ndarray) -> float:
        return float(np.mean([[bool(genres[i] & genres[j]) for j in row] for i, row in enumerate(neighbours)]))

    return (
        f"Pillow's 8-bit resize against TensorFlow's float resize on {len(pillow)} posters: largest embedding "
        f"difference {np.abs(pillow - tensorflow).max():.1e}, 10 nearest posters {100 * shared:.0f}% the same, "
        f"P@10 (shares a genre) {precision(ours):.4f} against {precision(training):.4f}"
    )


def build_sources(files: Sequence[Path]) -> list[Source]:
    """``files`` as the index build's sources, each with the content hash the store would keep."""
    return [
        Source(IndexItem(f"t{i}", f"t{i}", "", str(path)), hashlib.sha256(path.read_bytes()).hexdigest())
        for i, path in enumerate(files)
    ]


def rebuild_embedding(embedder: Embedder, sources: Sequence[Source]) -> np.ndarray:
    """The index build's embedding step into an empty cache: each file read and checked against its content
    hash, each batch cached as it is embedded."""
    with tempfile.TemporaryDirectory() as scratch, EmbeddingCache(Path(scratch) / "cache.sqlite") as cache:
        return embed_sources(embedder, sources, cache, BATCH)[0]


def rate(call: Callable, inputs: object, images: int, repeats: int) -> float:
    """Images/s of ``repeats`` calls of ``call(inputs)``, each handling ``images`` images."""
    started = time.perf_counter()
    for _ in range(repeats):
        call(inputs)
    return images * repeats / (time.perf_counter() - started)


def table(
    results: dict[str, list[float]],
    baseline: str,
    differences: dict[str, float],
    gflop: float,
    peak: float,
    args: argparse.Namespace,
) -> list[str]:
    """One row per ``results`` entry: images/s, its speed-up over ``baseline`` round by round, agreement and FLOP rate."""
    base = results[baseline]
    lines = [
        f"| batch 32 | images/s median (range) | × {baseline}, per round | max abs diff | GFLOP/s | % of peak "
        "| adoptable |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, rates in results.items():
        median = float(np.median(rates))
        ratios = [mine / theirs for mine, theirs in zip(rates, base)]  # the same round: paired
        speedup = float(np.median(ratios))
        diff = differences.get(name)
        verdict = diff is not None and diff <= args.tolerance and speedup >= args.adopt_speedup
        adoptable = "—" if diff is None or name == baseline else "yes" if verdict else "no"
        lines.append(
            f"| {name} | {median:.1f} ({min(rates):.1f}–{max(rates):.1f}) "
            f"| {speedup:.2f} ({min(ratios):.2f}–{max(ratios):.2f}) "
            f"| {'—' if diff is None else f'{diff:.1e}'} | {median * gflop:.1f} | {100 * median * gflop / peak:.0f}% "
            f"| {adoptable} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="exported model directory")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per runtime")
    parser.add_argument("--posters", type=int, default=128, help="posters per embed_images round")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest adoptable output difference")
    parser.add_argument("--adopt-speedup", type=float, default=1.5, help="smallest adoptable speed-up")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not DATA.is_file():
        print(f"skipped: real poster data not found at {DATA}")
        return 0
    rows = read_catalog(DATA).rows[: BATCH + args.posters]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model if args.model.is_dir() else untrained_export(Path(tmp) / "model")
        print("\n".join(measure(args, model_dir, rows, Path(tmp))))
    return 0


def measure(args: argparse.Namespace, model_dir: Path, rows: Sequence[CatalogRow], scratch: Path) -> list[str]:
    """The report's lines: the runtimes' table, the poster files' table and notes."""
    paths = [row.image for row in rows]
    embedder = load_embedder(model_dir, batch_size=BATCH)
    notes = [cold_start(model_dir, scratch)]
    batch = np.stack([embedder.prepare(path) for path in paths[:BATCH]])
    files = paths[BATCH:]
    plain = tensorflow_forward(embedder, jit=False)
    reference = plain(batch)
    runtimes: dict[str, tuple[Forward, int]] = {  # name: (forward, batches per round)
        BASELINE: (plain, 2),
        "XLA (tf.function jit_compile=True)": (tensorflow_forward(embedder, jit=True), 1),
        f"LiteRT XNNPACK {THREADS} threads": (
            LiteRtForward(litert_model(embedder.model, embedder.input_size), THREADS),
            2,
        ),
    }
    onnx_name = f"ONNX Runtime {THREADS} threads (tf2onnx, opset {OPSET})"
    try:
        runtimes[onnx_name] = (onnx_forward(embedder), 2)
    except ImportError as err:
        notes.append(f"{onnx_name}: skipped, {err.name} is not installed ({ONNX_HINT})")
    differences = {name: float(np.abs(forward(batch) - reference).max()) for name, (forward, _) in runtimes.items()}
    size, letterbox = embedder.input_size, embedder.letterbox
    in_series = {
        "the same, each batch on all cores, prepared before its forward pass": embedder.prepare,
        "the same, resized by TensorFlow op by op (the training resize)": lambda path: np.round(
            resize_to_square(load_rgb(path), size, letterbox).numpy()
        ).astype(np.uint8),
    }
    pillow, tensorflow = (embed_in_series(embedder.forward, files, prepare) for prepare in in_series.values())
    notes.append(resize_agreement(pillow, tensorflow, [set(row.genres) for row in rows[BATCH:]]))
    embedder.embed_images(files[:BATCH])  # trace the model outside the timing
    sources = build_sources(files)
    raw = f"the embedder's forward pass ({embedder.runtime}) on prepared batches, a batch per core"
    prepared = [batch] * (len(files) // BATCH)
    forward_batch_per_core(embedder, prepared)  # load the workers' interpreters outside the timing
    runtime_rates: dict[str, list[float]] = {}
    file_rates: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, (forward, repeats) in runtimes.items():
            runtime_rates.setdefault(name, []).append(rate(forward, batch, BATCH, repeats))
        file_rates.setdefault(raw, []).append(
            rate(functools.partial(forward_batch_per_core, embedder), prepared, len(prepared) * BATCH, 1)
        )
        name = "the same forward pass, each batch on all cores"
        file_rates.setdefault(name, []).append(rate(embedder.forward, batch, BATCH, 2))
        name = f"Embedder.embed_images ({len(files)} poster files: decode, resize, forward, a batch per core)"
        file_rates.setdefault(name, []).append(rate(embedder.embed_images, files, len(files), 1))
        name = "the index build's embedding step (also reads, hashes and caches)"
        file_rates.setdefault(name, []).append(
            rate(functools.partial(rebuild_embedding, embedder), sources, len(sources), 1)
        )
        name = "the same, each batch on all cores, prepared during the forward pass of the one before"
        file_rates.setdefault(name, []).append(
            rate(functools.partial(embed_overlapped, embedder), files, len(files), 1)
        )
        for name, prepare in in_series.items():
            file_rates.setdefault(name, []).append(
                rate(functools.partial(embed_in_series, embedder.forward, prepare=prepare), files, len(files), 1)
            )
    gflop = flops_per_image(embedder) / 1e9
    peak, peak_text = cpu_peak_gflops()
    return [
        f"{embedder.manifest['backbone']} exported model, {gflop:.3f} GFLOP per image (TensorFlow profiler), "
        f"{args.rounds} interleaved rounds; CPU peak: {peak_text}.",
        "",
        *table(runtime_rates, BASELINE, differences, gflop, peak, args),
        "",
        *table(file_rates, raw, {}, gflop, peak, args),
        *notes,
    ]


if __name__ == "__main__":
    sys.exit(main())
