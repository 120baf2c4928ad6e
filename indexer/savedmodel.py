"""``python -m indexer export-savedmodel --dest DIR [--out INDEX_ROOT] [--version V]``: a published index as a TensorFlow Serving SavedModel.

The SavedModel holds a ``tfrs.layers.factorized_top_k.ScaNN`` layer built over
the version's embeddings with the version's parameters, and one signature::

    serving_default(embedding: float32[batch, dim]) -> {"ids": string[batch, k], "scores": float32[batch, k]}

``ids`` are the index item keys (``<title_id>`` or ``<title_id>@<REGION>``).
TensorFlow Serving needs ScaNN's custom ops (Google's ``tf-serving-scann``
image). The layer always partitions (TFRS has no brute-force ScaNN), so a
brute-force version is exported as a tree whose every leaf is searched with
exact re-ordering: the same answers, as the tests check.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from pathlib import Path

from posterrec_settings import load_settings  # also sets TF_USE_LEGACY_KERAS before TensorFlow loads

import numpy as np

import posterrec_cli
from posterrec_atomic import replace_directory, staging_directory

from .published import IndexVersionError, PublishedIndex, open_version
from .scann_index import IndexParams

log = logging.getLogger(__name__)

INFO_FILE = "posterrec_index.json"


def layer_params(index: PublishedIndex, k: int) -> dict:
    """Keyword arguments of the TFRS ScaNN layer that reproduce ``index``'s search."""
    n = len(index)
    params = IndexParams.from_manifest(index.manifest) or IndexParams()
    reorder = max(k, min(n, params.reorder_k or 100))
    if params.exact:
        leaves = max(1, min(n, int(round(math.sqrt(n)))))
        return {"num_leaves": leaves, "num_leaves_to_search": leaves, "num_reordering_candidates": reorder}
    return {
        "num_leaves": params.num_leaves,
        "num_leaves_to_search": params.num_leaves_to_search,
        "dimensions_per_block": params.dimensions_per_block,
        "num_reordering_candidates": reorder,
    }


def scann_layer(index: PublishedIndex, k: int = 10):
    """A TFRS ScaNN layer indexing ``index``'s embeddings under its item keys (``k`` at most the index size)."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    layer = tfrs.layers.factorized_top_k.ScaNN(k=k, distance_measure="dot_product", **layer_params(index, k))
    keys = tf.constant([item.key for item in index.items])
    return layer.index(tf.constant(index.embeddings, dtype=tf.float32), keys)


def export_savedmodel(
    index_root: str | os.PathLike, out: str | os.PathLike, version: str | None = None, k: int = 10
) -> Path:
    """Export ``version`` (default: the current one) to ``out``, replacing it only once the new export is complete.

    Raises:
        IndexVersionError: ``out`` exists and is neither empty nor an earlier export, or holds files the export
            did not write
            (it would be replaced with them), or the version cannot be opened.
    """
    import tensorflow as tf

    out = Path(out)
    if out.exists():
        _check_replaceable(out)
    index = open_version(Path(index_root), version)
    if k > len(index):
        log.warning(
            "k %d is more than the %d items of version %s: the export returns %d",
            k,
            len(index),
            index.version,
            len(index),
        )
    k = max(1, min(k, len(index)))
    layer = scann_layer(index, k)

    @tf.function(input_signature=[tf.TensorSpec([None, index.dim], tf.float32, name="embedding")])
    def serve(embedding):
        scores, ids = layer(embedding)
        return {"ids": ids, "scores": scores}

    with staging_directory(out.parent, prefix=f".{out.name}.") as staging:
        tf.saved_model.save(
            layer,
            str(staging),
            signatures={"serving_default": serve},
            options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]),
        )
        info = {"index_version": index.version, "item_count": len(index), "k": k, "layer": layer_params(index, k)}
        info["files"] = sorted([*os.listdir(staging), INFO_FILE])
        (staging / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
        replace_directory(staging, out)
    log.info("exported index version %s (%d items) as a SavedModel to %s", index.version, len(index), out)
    return out


def _check_replaceable(out: Path) -> None:
    """Raise IndexVersionError unless ``out`` is an empty folder or an earlier export holding only what it wrote
    (its ``files``)."""
    if out.is_dir() and not any(out.iterdir()):  # made for the export (mkdir -p)
        return
    if not (out / INFO_FILE).is_file():
        raise IndexVersionError(
            f"{out} exists and is not a SavedModel this command exported, which is all it replaces: "
            "name a new folder, or remove this one first"
        )
    try:
        written = json.loads((out / INFO_FILE).read_text(encoding="utf-8")).get("files")
    except (ValueError, AttributeError):
        raise IndexVersionError(f"{out / INFO_FILE} cannot be read: remove {out}, or name a new folder") from None
    added = sorted(set(os.listdir(out)) - set(written)) if written is not None else []
    if added:
        raise IndexVersionError(
            f"{out} is an earlier export, but also holds {', '.join(added)}, which it did not write and a new "
            "export would delete: move them out, or name a new folder"
        )


def load_serving_fn(path: str | os.PathLike):
    """The ``serving_default`` signature of an exported index, as TensorFlow Serving would call it."""
    import tensorflow as tf

    return tf.saved_model.load(str(path)).signatures["serving_default"]


def query_savedmodel(serve, queries: np.ndarray) -> tuple[list[list[str]], np.ndarray]:
    """Item keys and scores the SavedModel returns for ``queries``."""
    import tensorflow as tf

    result = serve(embedding=tf.constant(np.atleast_2d(queries), dtype=tf.float32))
    keys = [[key.decode("utf-8") for key in row] for row in result["ids"].numpy()]
    return keys, result["scores"].numpy()


def add_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export-savedmodel",
        help="export an index version as a TF Serving SavedModel (TFRS ScaNN layer)",
        description="Export an index version as a TensorFlow Serving SavedModel: a TensorFlow Recommenders ScaNN "
        "layer whose serving_default signature takes embeddings and returns the k nearest item keys and scores. "
        "Loading it needs the scann package imported first (it registers ScaNN's ops).",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        required=True,
        help="SavedModel directory to write: a new or empty one, or an earlier export holding only what it wrote "
        "(replaced when complete)",
    )
    parser.add_argument("--out", type=Path, help="index root, as for build and versions (default: settings.index_root)")
    parser.add_argument("--version", help="index version (default: the current one)")
    parser.add_argument(
        "-k", type=posterrec_cli.whole_number(1), default=10, help="neighbours returned per query (default 10)"
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    root = args.out or load_settings().index_root
    out = export_savedmodel(root, args.dest, args.version, args.k)
    print(f"exported {root} ({args.version or 'current version'}) to {out}")
    return 0
