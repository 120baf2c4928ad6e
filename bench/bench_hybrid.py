"""Watch-history recommendations with the behaviour model against popularity, co-occurrence and posters.

MovieLens ml-latest-small joined to the posters by IMDb id, with the protocol of
``bench_recommend.py`` (its functions, imported): per user the joined titles
ordered by time, the last held out, every recommender ranks all posters minus
the history, HR@10 and NDCG@10 of the held-out title. Every choice (history
window, blend weight, the behaviour model's settings) is made on the validation
split (second-to-last title held out, everything after it unseen) and applied
once to the test split.

- random (its expectation, exact) and popularity (users per title in training),
- item-item co-occurrence: cosine of the titles' user sets, summed over the
  history's latest titles (the classic strong baseline),
- poster-only: cosine to the mean poster embedding of the history's latest titles,
- behaviour-only: the tfrs behaviour model (``models.behaviour``), whose item
  tower sees each title's id and poster embedding,
- hybrid: behaviour score + w x poster score.

Cold start: 10% of the watched titles lose every watch from training (the
behaviour model, popularity and co-occurrence never see them); users whose
held-out title is one of them are ranked over all posters and, as a "new
titles" shelf, over the cold titles only. Repeated over several draws of the
cold titles, users pooled.

Served path: the same splits through what ``POST /v1/recommendations`` runs. Each split's version is
published as ``indexer build`` publishes it with a behaviour model (``indexer.build.stage_behaviour``: the
exported model's vectors of every title, a recall-checked searcher, the same staged version) and ranked by
``recsvc.signals.recommend`` for signal poster, behaviour and hybrid (the hybrid's poster weight chosen on
validation from the served ranking); popularity and random beside them. ``--served-only N`` prints only that
table, with configuration N of the behaviour grid.

Noise: ± is one standard error over users (binomial for HR, sample standard
deviation / sqrt(n) for NDCG); for trained models the spread over seeds is
given too.

    flock /tmp/posterrec-heavy.lock nice .venv/bin/python bench/bench_hybrid.py [--model DIR] [--served-only N]

The poster model defaults to the first exported one of ``var/model``,
``var/bench/model-effl0`` (``python -m models train --catalog ../shared/data/catalog.csv
--out var/bench/model-effl0 --backbone efficientnet_lite0 --weights imagenet
--unfreeze-blocks 0``) and ``var/bench/model-tiny-real``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("TQDM_DISABLE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_recommend import (  # noqa: E402
    DATA,
    JoinedCatalog,
    K,
    Scorers,
    User,
    poster_index,
    read_catalog,
    read_histories,
    split,
    top_k,
)

from models.behaviour import BehaviourConfig, BehaviourTrainer, WatchData, query_vector  # noqa: E402
from recsvc.params import SIGNALS  # noqa: E402

POSTER_MODELS = ("var/model", "var/bench/model-effl0", "var/bench/model-tiny-real")
WINDOWS = (1, 5, 20, 10_000)
"""History windows tried on validation for co-occurrence and poster-only (10,000: the whole history)."""
POSTER_WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
BEHAVIOUR_GRID = (
    BehaviourConfig(context_length=5),
    BehaviourConfig(context_length=10),
    BehaviourConfig(context_length=20),
    BehaviourConfig(context_length=10, id_dropout=0.5),
    BehaviourConfig(context_length=10, epochs=16),
    BehaviourConfig(context_length=10, epochs=32),
)
SEEDS = (0, 1, 2)
SERVED_AGGREGATION = "recent_neighbours"
"""The service's default aggregation (``recsvc.create_app``), which the poster part of every signal uses."""
COLD_SHARE, COLD_DRAWS = 0.10, 5

Recommender = Callable[[list[str]], np.ndarray]
"""History -> a score per catalogue title (higher first)."""


@dataclasses.dataclass(frozen=True)
class Result:
    hit_rate: float
    ndcg: float
    users: int
    hit_se: float
    ndcg_se: float

    def cells(self) -> str:
        return f"{self.hit_rate:.3f} ± {self.hit_se:.3f} | {self.ndcg:.3f} ± {self.ndcg_se:.3f}"


def measure(
    users: Sequence[User], scores: Recommender, catalog: JoinedCatalog, candidates: np.ndarray | None = None
) -> Result:
    """HR@K and NDCG@K of each user's target among ``candidates`` (default: every title) minus the history."""
    gains = []
    for user in users:
        score = scores(user.history).astype(np.float64)
        if candidates is not None:
            score = np.where(candidates, score, -np.inf)
        ranked = top_k(score, [catalog.row_of[t] for t in user.history])
        target = catalog.row_of[user.target]
        gains.append(1 / np.log2(ranked.index(target) + 2) if target in ranked else 0.0)
    return result_of(gains)


def result_of(gains: Sequence[float]) -> Result:
    """HR and NDCG with one standard error from each user's gain (1/log2(rank + 2), 0 for a miss)."""
    gains = np.array(gains)
    hits = gains > 0
    n = max(len(gains), 1)
    return Result(
        float(hits.mean()),
        float(gains.mean()),
        len(gains),
        float(np.sqrt(hits.mean() * (1 - hits.mean()) / n)),
        float(gains.std(ddof=1) / np.sqrt(n)),
    )


def expected_random(users: Sequence[User], catalog: JoinedCatalog, candidates: np.ndarray | None = None) -> Result:
    """HR@K and NDCG@K of a uniformly random ranking, in expectation (no sampling noise): a target among n
    candidates is at each rank with probability 1/n."""
    hits, gains = [], []
    for user in users:
        watched = {catalog.row_of[t] for t in user.history}
        n = (
            len(catalog.ids) - len(watched)
            if candidates is None
            else int(candidates.sum()) - int(candidates[list(watched)].sum())
        )
        hits.append(min(K, n) / n)
        gains.append(sum(1 / np.log2(rank + 2) for rank in range(min(K, n))) / n)
    return Result(float(np.mean(hits)), float(np.mean(gains)), len(users), 0.0, 0.0)


def rows_of(catalog: JoinedCatalog, history: Sequence[str], window: int) -> list[int]:
    return [catalog.row_of[t] for t in history[-window:]]


def co_occurrence(catalog: JoinedCatalog, sequences: Sequence[Sequence[str]]) -> np.ndarray:
    """(N, N) cosine of the titles' user sets (0 for titles nobody watched)."""
    watched = np.zeros((len(sequences), len(catalog.ids)), np.float32)
    for row, sequence in enumerate(sequences):
        watched[row, [catalog.row_of[t] for t in sequence]] = 1
    counts = watched.sum(axis=0)
    together = watched.T @ watched
    norm = np.sqrt(np.maximum(counts, 1))
    return together / norm[:, None] / norm[None, :]


def train_vectors(
    config: BehaviourConfig, catalog: JoinedCatalog, posters: np.ndarray, sequences: Sequence[Sequence[str]]
) -> np.ndarray:
    """Behaviour vectors of every title from a model trained on ``sequences``."""
    data = WatchData(catalog.ids, posters, [list(s) for s in sequences])
    with tempfile.TemporaryDirectory() as scratch:
        trainer = BehaviourTrainer(data, config, Path(scratch) / "behaviour")
        trainer.train()
        return trainer.item_vectors()


class Recommenders:
    """Score functions over one training set (histories of the users of one split)."""

    def __init__(self, catalog: JoinedCatalog, index, train_users: Sequence[User]) -> None:
        self.catalog = catalog
        self.base = Scorers(catalog, index, list(train_users))
        self.co = co_occurrence(catalog, [u.history for u in train_users])

    def popularity(self, history: list[str]) -> np.ndarray:
        return self.base.popularity + self.base.tie_break

    def co_occurrence(self, window: int) -> Recommender:
        return lambda history: self.co[rows_of(self.catalog, history, window)].sum(axis=0) + self.base.tie_break

    def poster(self, window: int) -> Recommender:
        embeddings = self.base.embeddings
        return lambda history: embeddings @ query_vector(embeddings[rows_of(self.catalog, history, window)], window)

    def behaviour(self, vectors: np.ndarray, window: int) -> Recommender:
        return lambda history: vectors @ query_vector(vectors[rows_of(self.catalog, history, window)], window)

    def hybrid(self, vectors: np.ndarray, window: int, poster_window: int, weight: float) -> Recommender:
        behaviour, poster = self.behaviour(vectors, window), self.poster(poster_window)
        return lambda history: behaviour(history) + weight * poster(history)


def best(options: dict, score: Callable[[object], Result]) -> tuple[object, Result]:
    """The option with the highest NDCG@K on validation."""
    results = {key: score(value) for key, value in options.items()}
    key = max(results, key=lambda k: results[k].ndcg)
    return key, results[key]


def default_poster_model() -> Path:
    for candidate in POSTER_MODELS:
        if (REPO / candidate / "manifest.json").is_file():
            return REPO / candidate
    raise SystemExit(f"no exported poster model under {', '.join(POSTER_MODELS)}; train one (see --help)")


def cold_draw(histories: dict[int, list[str]], draw: int) -> tuple[set[str], list[User], list[list[str]]]:
    """Cold titles (COLD_SHARE of the watched ones), the users whose held-out title is cold, and the
    training histories with every watch of a cold title removed."""
    watched = sorted({t for titles in histories.values() for t in titles})
    rng = np.random.default_rng(1000 + draw)
    cold = set(rng.choice(watched, size=round(COLD_SHARE * len(watched)), replace=False).tolist())
    users = split(histories, 1)
    return cold, [u for u in users if u.target in cold], [[t for t in u.history if t not in cold] for u in users]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--model", type=Path, help=f"exported poster model (default: first of {', '.join(POSTER_MODELS)})"
    )
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "bench")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="behaviour model seeds on the test split")
    parser.add_argument("--cold-draws", type=int, default=COLD_DRAWS)
    parser.add_argument(
        "--served-only",
        type=int,
        metavar="N",
        help="only the served-path table, with behaviour configuration N of the grid (0-based; a full run "
        "prints the one validation chooses) instead of choosing it",
    )
    args = parser.parse_args(argv)
    if not (args.data / "catalog.csv").is_file():
        raise SystemExit(f"real data not found at {args.data} (../shared/data beside the repository)")
    started = time.perf_counter()
    model_dir = args.model or default_poster_model()
    catalog, rows = read_catalog(args.data)
    histories = read_histories(args.data, catalog)
    index = poster_index(model_dir, catalog, rows, args.data, args.cache)
    if args.served_only is not None:
        served_tables(args, catalog, index, histories, BEHAVIOUR_GRID[args.served_only])
        print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)
        return 0
    test_users, validation_users = split(histories, 1), split(histories, 2)
    test, validation = Recommenders(catalog, index, test_users), Recommenders(catalog, index, validation_users)
    posters = validation.base.embeddings

    def on_validation(recommender: Recommender) -> Result:
        return measure(validation_users, recommender, catalog)

    co_window, _ = best({w: w for w in WINDOWS}, lambda w: on_validation(validation.co_occurrence(w)))
    poster_window, _ = best({w: w for w in WINDOWS}, lambda w: on_validation(validation.poster(w)))
    validation_vectors = {}

    def behaviour_on_validation(config: BehaviourConfig) -> Result:
        validation_vectors[config] = train_vectors(config, catalog, posters, [u.history for u in validation_users])
        return on_validation(validation.behaviour(validation_vectors[config], config.context_length))

    config, _ = best({c: c for c in BEHAVIOUR_GRID}, behaviour_on_validation)
    window = config.context_length
    weight, _ = best(
        {w: w for w in POSTER_WEIGHTS},
        lambda w: on_validation(validation.hybrid(validation_vectors[config], window, poster_window, w)),
    )
    print(
        f"validation choices: co-occurrence window {co_window}, poster window {poster_window}, behaviour "
        f"{config} (grid entry {BEHAVIOUR_GRID.index(config)}), hybrid poster weight {weight}",
        file=sys.stderr,
    )

    seeds = SEEDS[: args.seeds]
    test_vectors = [
        train_vectors(dataclasses.replace(config, seed=s), catalog, posters, [u.history for u in test_users])
        for s in seeds
    ]

    def seeded(make: Callable[[np.ndarray], Recommender]) -> str:
        results = [measure(test_users, make(vectors), catalog) for vectors in test_vectors]
        spread = f" (seeds {min(r.hit_rate for r in results):.3f}–{max(r.hit_rate for r in results):.3f})"
        return results[0].cells() + spread

    print(
        f"MovieLens ml-latest-small joined to {len(catalog.ids):,} posters; {len(test_users)} users, last joined "
        f"title held out, every recommender ranks all posters minus the history. Poster model: "
        f"{model_dir.relative_to(REPO) if model_dir.is_relative_to(REPO) else model_dir} "
        f"({index.manifest.get('model_manifest_sha256', '')[:12]}). Choices from the validation split: "
        f"co-occurrence over the latest {co_window} titles, poster over the latest {poster_window}, behaviour "
        f"model {config.embedding_dim}-d, context {window}, {config.epochs} epochs, id dropout {config.id_dropout}; "
        f"hybrid = behaviour + {weight:g} x poster. ± = one standard error over users; trained models: seed "
        f"{seeds[0]}'s figure, HR@10 range over seeds {', '.join(map(str, seeds))}.\n"
    )
    print("| warm split | HR@10 | NDCG@10 |")
    print("|---|---:|---:|")
    print(f"| random (expectation) | {expected_random(test_users, catalog).cells()} |")
    print(f"| popularity | {measure(test_users, test.popularity, catalog).cells()} |")
    print(f"| item-item co-occurrence | {measure(test_users, test.co_occurrence(co_window), catalog).cells()} |")
    print(f"| poster-only | {measure(test_users, test.poster(poster_window), catalog).cells()} |")
    print(f"| behaviour-only (tfrs) | {seeded(lambda v: test.behaviour(v, window))} |")
    print(f"| hybrid | {seeded(lambda v: test.hybrid(v, window, poster_window, weight))} |")

    cold_rows: dict[str, list[tuple[Result, Result]]] = {}
    cold_users = 0
    for draw in range(args.cold_draws):
        cold, users, training = cold_draw(histories, draw)
        cold_users += len(users)
        train_users = [User(h, "") for h in training]
        recommenders = Recommenders(catalog, index, train_users)
        vectors = train_vectors(config, catalog, posters, training)
        shelf = np.isin(np.array(catalog.ids), list(cold))
        cold_rows.setdefault("random (expectation)", []).append(
            (expected_random(users, catalog), expected_random(users, catalog, shelf))
        )
        for name, recommender in {
            "popularity": recommenders.popularity,
            "item-item co-occurrence": recommenders.co_occurrence(co_window),
            "poster-only": recommenders.poster(poster_window),
            "behaviour-only (tfrs, poster path for cold titles)": recommenders.behaviour(vectors, window),
            "hybrid": recommenders.hybrid(vectors, window, poster_window, weight),
        }.items():
            cold_rows.setdefault(name, []).append(
                (measure(users, recommender, catalog), measure(users, recommender, catalog, shelf))
            )
    print(
        f"\nCold start: {COLD_SHARE:.0%} of the watched titles lose every watch from training, {args.cold_draws} draws, "
        f"{cold_users} (user, draw) pairs whose held-out title is cold; ranked over all posters, and over the cold "
        f"titles only (a new-titles shelf), where popularity and co-occurrence, which know nothing of cold titles, fall back to one fixed arbitrary order. Same choices as above.\n"
    )
    print(
        "| cold split | HR@10, all posters | NDCG@10, all posters | HR@10, cold titles only | NDCG@10, cold titles only |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, results in cold_rows.items():
        pooled = [pool([r[part] for r in results]) for part in (0, 1)]
        print(f"| {name} | {pooled[0].cells()} | {pooled[1].cells()} |")
    served_tables(args, catalog, index, histories, config)
    print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


def served_version(
    root: Path, index, catalog: JoinedCatalog, config: BehaviourConfig, sequences: Sequence[Sequence[str]]
):
    """The posters of ``index`` republished as ``indexer build`` publishes them with a behaviour model trained on
    ``sequences`` (export, vectors of every title, recall-checked searcher, same staged version), then loaded."""
    from posterrec_settings import load_settings

    from indexer.build import Source, stage_behaviour
    from indexer.publish import publish_index
    from indexer.published import open_version

    poster_model = {"model_manifest_sha256": index.manifest["model_manifest_sha256"]}
    data = WatchData(catalog.ids, index.embeddings[[index.row_of_key[t] for t in catalog.ids]], list(sequences))
    extra = {"poster_model_manifest_sha256": poster_model["model_manifest_sha256"]}
    BehaviourTrainer(data, config, root / "behaviour", extra).train()
    settings = load_settings(env={}, behaviour_model_dir=root / "behaviour")
    staged = stage_behaviour([Source(item, "") for item in index.items], index.embeddings, poster_model, settings)
    publish_index(
        root / "index",
        index.items,
        index.embeddings,
        {**poster_model, "behaviour": staged.manifest},
        exact_search_max_items=settings.exact_search_max_items,
        recall_floor=settings.recall_floor,
        keep_versions=1,
        extra_files=staged.write,
    )
    return open_version(root / "index")


def served(users: Sequence[User], version, signal: str, weight: float) -> tuple[Result, int]:
    """HR@K and NDCG@K of what ``POST /v1/recommendations`` ranks (``recsvc.signals.recommend``, the service's
    default aggregation), and how many answers fell back to posters."""
    from recsvc.signals import recommend

    gains, fallbacks = [], 0
    for user in users:
        rows = [version.poster_row(t) for t in user.history]
        ranked, used = recommend(version, rows, K, SERVED_AGGREGATION, True, signal, None, weight)
        found = ranked.title_ids(version)
        gains.append(1 / np.log2(found.index(user.target) + 2) if user.target in found else 0.0)
        fallbacks += used != signal
    return result_of(gains), fallbacks


def served_tables(
    args, catalog: JoinedCatalog, index, histories: dict[int, list[str]], config: BehaviourConfig
) -> None:
    """Warm and cold splits through the served path: an index version with behaviour vectors, as the build
    publishes it, ranked by the service's own functions; the hybrid weight chosen on validation."""
    test_users, validation_users = split(histories, 1), split(histories, 2)
    with tempfile.TemporaryDirectory() as scratch:
        version = served_version(Path(scratch), index, catalog, config, [u.history for u in validation_users])
        weight, _ = best({w: w for w in POSTER_WEIGHTS}, lambda w: served(validation_users, version, "hybrid", w)[0])
    print(f"served path: hybrid poster weight {weight} chosen on validation", file=sys.stderr)
    warm: dict[str, Result] = {}
    with tempfile.TemporaryDirectory() as scratch:
        version = served_version(Path(scratch), index, catalog, config, [u.history for u in test_users])
        warm["random (expectation)"] = expected_random(test_users, catalog)
        warm["popularity"] = measure(test_users, Recommenders(catalog, index, test_users).popularity, catalog)
        for signal in SIGNALS:
            warm[f"signal {signal}"] = served(test_users, version, signal, weight)[0]
    cold: dict[str, list[Result]] = {name: [] for name in warm}
    fallbacks = 0
    for draw in range(args.cold_draws):
        _, users, training = cold_draw(histories, draw)
        with tempfile.TemporaryDirectory() as scratch:
            version = served_version(Path(scratch), index, catalog, config, training)
            popularity = Recommenders(catalog, index, [User(h, "") for h in training]).popularity
            cold["random (expectation)"].append(expected_random(users, catalog))
            cold["popularity"].append(measure(users, popularity, catalog))
            for signal in SIGNALS:
                result, fell_back = served(users, version, signal, weight)
                cold[f"signal {signal}"].append(result)
                fallbacks += fell_back if signal == "hybrid" else 0
    print(
        f"\nServed path: each split's version published as `indexer build` publishes it with a behaviour model "
        f"({config.embedding_dim}-d, context {config.context_length}, {config.epochs} epochs, trained on that "
        f"split's histories), ranked by `recsvc.signals.recommend`, "
        f"what POST /v1/recommendations runs (aggregation {SERVED_AGGREGATION}, hybrid poster weight {weight:g} "
        f"chosen on validation). Cold: {COLD_SHARE:.0%} of the watched titles without training watches, "
        f"{args.cold_draws} draws, {sum(r.users for r in cold['popularity'])} (user, draw) pairs whose held-out "
        f"title is cold, ranked over all posters; "
        f"hybrid fell back to posters for {fallbacks} all-cold histories.\n"
    )
    print("| served signal | warm HR@10 | warm NDCG@10 | cold HR@10 | cold NDCG@10 |")
    print("|---|---:|---:|---:|---:|")
    for name, result in warm.items():
        print(f"| {name} | {result.cells()} | {pool(cold[name]).cells() if cold[name] else 'n/a | n/a'} |")


def pool(results: Sequence[Result]) -> Result:
    """Results of several cold draws as one sample of (user, draw) pairs."""
    n = sum(r.users for r in results)
    hit = sum(r.hit_rate * r.users for r in results) / n
    ndcg = sum(r.ndcg * r.users for r in results) / n
    ndcg_var = sum((r.ndcg_se**2 * r.users) * (r.users - 1) + r.users * (r.ndcg - ndcg) ** 2 for r in results) / (n - 1)
    hit_se = 0.0 if all(r.hit_se == 0 for r in results) else float(np.sqrt(hit * (1 - hit) / n))  # 0: expectations
    return Result(hit, ndcg, n, hit_se, float(np.sqrt(ndcg_var / n)))


if __name__ == "__main__":
    sys.exit(main())
