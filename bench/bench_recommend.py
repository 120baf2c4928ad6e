"""Offline quality of watch-history recommendations on MovieLens, joined to the real posters by IMDb id.

For each user, the ratings of titles that have a poster are ordered by time;
the last one is held out and the rest is the history (oldest first). Every
recommender ranks the whole published index of 6,604 posters (history
excluded) and we report hit-rate@10 and NDCG@10 of the held-out title:

- popularity: titles rated by most users (the usual strong baseline),
- genre-only: cosine between the history's genre profile and each title's genres,
- every aggregation of ``recsvc.ranking`` over a published ScaNN index of
  poster embeddings — exactly what ``POST /v1/recommendations`` runs,
- the same aggregations over co-rating item factors (a truncated SVD of the
  histories, never the held-out titles): an embedding space that carries
  signal, so the aggregations can be compared — and the service's default
  chosen, on the validation split (second-to-last title held out, factors of
  the histories before it) — however weak the poster model is,
- a blend of normalised popularity, genre and poster scores whose weights are
  chosen on a validation target (each user's second-to-last title), never on
  the held-out one.

    .venv/bin/python bench/bench_recommend.py [--model DIR]

The model defaults to ``var/bench/model-efficientnet_lite0`` (EfficientNet-Lite0
from ImageNet weights with a genre and triplet head, which ``bench/bench_models.py``
keeps there) if it exists, else ``var/model`` (train one with ``python -m models
train --catalog ../shared/data/catalog.csv --out var/model --backbone
efficientnet_lite0 --weights imagenet``). Poster embeddings and the index are
cached under ``var/bench`` by model hash.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import posterrec_settings  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from indexer.published import IndexItem, PublishedIndex, current_version, open_version  # noqa: E402
from recsvc import ranking  # noqa: E402

DATA = REPO.parent / "shared" / "data"
K = 10


@dataclasses.dataclass(frozen=True)
class JoinedCatalog:
    """The poster catalogue of the MovieLens join: its ids in catalogue order and their genre rows."""

    ids: list[str]
    genres: np.ndarray
    """(N, G) L2-normalised multi-hot genre rows."""
    row_of: dict[str, int]


@dataclasses.dataclass(frozen=True)
class User:
    history: list[str]
    target: str


def read_catalog(data: Path) -> tuple[JoinedCatalog, list[dict]]:
    with (data / "catalog.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = sorted({g for row in rows for g in row["genres"].split("|") if g})
    multi_hot = np.array([[g in row["genres"].split("|") for g in names] for row in rows], dtype=np.float32)
    multi_hot /= np.maximum(np.linalg.norm(multi_hot, axis=1, keepdims=True), 1e-9)
    ids = [row["id"] for row in rows]
    return JoinedCatalog(ids, multi_hot, {t: i for i, t in enumerate(ids)}), rows


def read_histories(data: Path, catalog: JoinedCatalog) -> dict[int, list[str]]:
    """Per user, the poster ids of the titles they rated, oldest first (links.csv imdbId = catalogue id)."""
    poster_of_movie: dict[str, str] = {}
    with (data / "movielens" / "links.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            poster_id = f"{int(row['imdbId']):07d}"
            if poster_id in catalog.row_of:
                poster_of_movie[row["movieId"]] = poster_id
    rated: dict[int, list[tuple[int, str]]] = {}
    with (data / "movielens" / "ratings.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            poster_id = poster_of_movie.get(row["movieId"])
            if poster_id:
                rated.setdefault(int(row["userId"]), []).append((int(row["timestamp"]), poster_id))
    return {user: [p for _, p in sorted(events)] for user, events in rated.items()}


def split(histories: dict[int, list[str]], holdout: int) -> list[User]:
    """Hold out the ``holdout``-th last title (1 = the last); users need at least one title before it."""
    return [User(titles[:-holdout], titles[-holdout]) for titles in histories.values() if len(titles) > holdout]


def default_model() -> Path:
    for candidate in (REPO / "var" / "bench" / "model-efficientnet_lite0", REPO / "var" / "model"):
        if (candidate / "manifest.json").is_file():
            return candidate
    raise SystemExit("no exported model under var/bench/model-efficientnet_lite0 or var/model; train one (see --help)")


def model_summary(model_dir: Path) -> str:
    from models.embedder import read_manifest

    manifest, _ = read_manifest(model_dir)
    return f"backbone {manifest['backbone']}, weights {manifest['weights']}, label scheme {manifest['label_scheme']}"


def poster_index(model_dir: Path, catalog: JoinedCatalog, rows: list[dict], data: Path, cache: Path) -> PublishedIndex:
    """The 6,604 posters embedded by ``model_dir`` and published as a ScaNN index (built once per model)."""
    from indexer.publish import publish_index
    from models.embedder import load_embedder, read_manifest

    _, digest = read_manifest(model_dir)
    root = cache / f"recommend-index-{digest[:12]}"
    if current_version(root) is None:
        embedder = load_embedder(model_dir)
        started = time.perf_counter()
        embeddings = embedder.embed_images([str(data / row["image"]) for row in rows])
        print(f"embedded {len(rows)} posters in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        items = [IndexItem(row["id"], row["id"], row["title"] or row["id"], str(data / row["image"])) for row in rows]
        settings = posterrec_settings.load_settings()
        publish_index(
            root,
            items,
            embeddings,
            {"model_dir": str(model_dir), "model_manifest_sha256": digest},
            exact_search_max_items=settings.exact_search_max_items,
            recall_floor=settings.recall_floor,
            keep_versions=1,
        )
    return open_version(root)


def co_rating_index(catalog: JoinedCatalog, users: list[User], root: Path, dim: int = 32) -> PublishedIndex:
    """Item factors of the users' histories (U S V^T, rows of V sqrt(S)) published as an exact index.

    Titles nobody rated get a random direction, far from everything. Exact search: many titles rated by
    one user share a factor row, and their ties would fail a tree index's recall check for no real loss.
    """
    from indexer.publish import publish_index

    ratings = np.zeros((len(users), len(catalog.ids)), np.float32)
    for row, user in enumerate(users):
        ratings[row, [catalog.row_of[t] for t in user.history]] = 1
    _, singular, right = np.linalg.svd(ratings, full_matrices=False)
    factors = (right[:dim] * np.sqrt(singular[:dim])[:, None]).T
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    factors = np.where(norms > 1e-6, factors, np.random.default_rng(0).normal(size=factors.shape))
    factors = (factors / np.linalg.norm(factors, axis=1, keepdims=True)).astype(np.float32)
    items = [IndexItem(t, t, t, "") for t in catalog.ids]
    publish_index(
        root,
        items,
        factors,
        {"source": "bench_recommend co-rating factors"},
        exact_search_max_items=len(items),
        recall_floor=0.5,
        keep_versions=1,
    )
    return open_version(root)


def top_k(scores: np.ndarray, exclude: list[int], k: int = K) -> list[int]:
    scores = scores.copy()
    scores[exclude] = -np.inf
    top = np.argpartition(-scores, k)[:k]
    return list(top[np.argsort(-scores[top], kind="stable")])


class Scorers:
    """Full score vectors over the catalogue, for the baselines and the blend."""

    def __init__(self, catalog: JoinedCatalog, index: PublishedIndex, train_users: list[User], seed: int = 0) -> None:
        counts = Counter(t for user in train_users for t in user.history)
        self.catalog = catalog
        popularity = np.array([counts.get(t, 0) for t in catalog.ids], dtype=np.float64)
        self.popularity = np.log1p(popularity) / np.log1p(popularity.max())
        # Genre-only ranks tie on identical genre sets; break ties by a fixed random order, not by popularity.
        self.tie_break = np.random.default_rng(seed).random(len(catalog.ids)) * 1e-6
        self.embeddings = index.embeddings[[index.row_of_key[t] for t in catalog.ids]]

    def genre(self, history: list[str]) -> np.ndarray:
        profile = self.catalog.genres[[self.catalog.row_of[t] for t in history]].mean(axis=0)
        return self.catalog.genres @ (profile / max(np.linalg.norm(profile), 1e-9)) + self.tie_break

    def poster(self, history: list[str]) -> np.ndarray:
        query = self.embeddings[[self.catalog.row_of[t] for t in history]].mean(axis=0)
        return self.embeddings @ (query / max(np.linalg.norm(query), 1e-9))

    def blend(self, history: list[str], weights: tuple[float, float, float]) -> np.ndarray:
        w_pop, w_genre, w_poster = weights
        return w_pop * self.popularity + w_genre * self.genre(history) + w_poster * self.poster(history)


def evaluate(users: list[User], recommend) -> tuple[float, float]:
    """Hit-rate@10 and NDCG@10 of the held-out title."""
    hits, gains = 0, 0.0
    for user in users:
        ranked = recommend(user)
        if user.target in ranked:
            hits += 1
            gains += 1 / np.log2(ranked.index(user.target) + 2)
    return hits / len(users), gains / len(users)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--model", type=Path, help="exported model (default var/bench/model-efficientnet_lite0, else var/model)"
    )
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "bench")
    args = parser.parse_args(argv)
    if not (args.data / "catalog.csv").is_file():
        raise SystemExit(f"real data not found at {args.data} (../shared/data beside the repository)")
    model_dir = args.model or default_model()

    catalog, rows = read_catalog(args.data)
    histories = read_histories(args.data, catalog)
    test_users, validation_users = split(histories, 1), split(histories, 2)
    index = poster_index(model_dir, catalog, rows, args.data, args.cache)
    scorers = Scorers(catalog, index, test_users)
    ids = catalog.ids

    def by_scores(score) -> callable:
        return lambda user: [ids[i] for i in top_k(score(user.history), [catalog.row_of[t] for t in user.history])]

    def by_ranking(aggregation: str, over: PublishedIndex = index) -> callable:
        return lambda user: ranking.recommend(over, user.history, K, aggregation, True).title_ids(over)

    grid = [w for w in itertools.product((0, 0.5, 1, 2), repeat=3) if any(w)]
    validation_scorers = Scorers(catalog, index, validation_users)
    best = max(grid, key=lambda w: evaluate(validation_users, by_scores(lambda h: validation_scorers.blend(h, w)))[1])

    recommenders = {
        "popularity": by_scores(lambda history: scorers.popularity),
        "genre-only (genre-profile cosine)": by_scores(scorers.genre),
        "poster embedding, mean": by_ranking("mean"),
        "poster embedding, recent (recency-weighted mean)": by_ranking("recent"),
        "poster embedding, fusion (recency-weighted)": by_ranking("fusion"),
        "poster embedding, recent_neighbours (recent over the latest titles' similar lists, default)": by_ranking(
            "recent_neighbours"
        ),
        f"blend pop·{best[0]:g} + genre·{best[1]:g} + poster·{best[2]:g} (weights from validation)": by_scores(
            lambda history: scorers.blend(history, best)
        ),
    }
    co_rating = co_rating_index(catalog, test_users, args.cache / "recommend-co-rating")
    for aggregation in ranking.AGGREGATIONS:
        recommenders[f"aggregation check: co-rating SVD factors, {aggregation}"] = by_ranking(aggregation, co_rating)
    validation_co_rating = co_rating_index(catalog, validation_users, args.cache / "recommend-co-rating-validation")
    validation_checks = {
        f"aggregation check on the validation split: co-rating SVD factors, {aggregation}": by_ranking(
            aggregation, validation_co_rating
        )
        for aggregation in ranking.AGGREGATIONS
    }
    print(
        f"MovieLens ml-latest-small joined to {len(ids):,} posters: {len(test_users)} users, last-rated joined title "
        f"held out, median history {int(np.median([len(u.history) for u in test_users]))} titles; every recommender "
        f"ranks all {len(ids):,} posters minus the history. Poster model: {model_dir.relative_to(REPO) if model_dir.is_relative_to(REPO) else model_dir} "
        f"({index.manifest.get('model_manifest_sha256', '')[:12]}; {model_summary(model_dir)}), index {index.version}\n"
    )
    print("| recommender | hit-rate@10 | NDCG@10 | seconds |")
    print("|---|---:|---:|---:|")
    for users, checks in ((test_users, recommenders), (validation_users, validation_checks)):
        for name, recommend in checks.items():
            started = time.perf_counter()
            hit_rate, ndcg = evaluate(users, recommend)
            print(f"| {name} | {hit_rate:.4f} | {ndcg:.4f} | {time.perf_counter() - started:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
