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
titles" shelf, over the cold titles only. 20 draws of the cold titles, each
with its own behaviour model, (user, draw) pairs pooled. On the shelf every
candidate scores 0 for popularity and co-occurrence: with ties broken at
random they are the random ranking, whose expectation (exact) is the first
row. The row "popularity (one fixed tie order)" is what the scorers' tie-break
gives, one random order of the catalogue (seed 0, uncorrelated with id or
year) shared by every user and draw: one sample of the random ranking, whose
HR@10 over 200 such orders the caption gives (several users often hold out the
same cold title, so one shared order hits or misses them together). How
titles without watches are scored (the behaviour model's poster path, that
plus w x the poster score, or the mean behaviour vector of the k watched
titles with the nearest posters) is chosen by NDCG@10 on the shelf over 10
cold draws of the validation split (other cold titles, second-to-last title
held out); a row shows the choice when it is not the model's own poster path.
``--cold-only N`` prints only the cold tables, with configuration N of the
behaviour grid. Behaviour vectors of the cold draws are cached under
``var/bench/behaviour-vectors`` (by configuration, posters and watches).

Served path: the same splits through what ``POST /v1/recommendations`` runs. Each split's version is
published as ``indexer build`` publishes it with a behaviour model (``indexer.build.stage_behaviour``: the
exported model's vectors of every title, a recall-checked searcher, the same staged version) and ranked by
``recsvc.signals.recommend`` for signal poster, behaviour and hybrid (the hybrid's poster weight chosen on
validation from the served ranking); popularity and random beside them. ``--served-only N`` prints only that
table, with configuration N of the behaviour grid.

Noise: ± is one standard error over users (binomial for HR, sample standard
deviation / sqrt(n) for NDCG); for trained models the spread over seeds is
given too. On the cold shelf every recommender ranks the same (user, draw)
pairs, so differences are paired: mean difference ± its paired standard
error, and 95% percentile intervals of 10,000 bootstrap samples over pairs and
over whole draws (a draw's cold titles and behaviour model resampled
together).

    flock /tmp/posterrec-heavy.lock nice .venv/bin/python bench/bench_hybrid.py [--model DIR] [--served-only N]
        [--cold-only N] [--cold-draws 20] [--cold-validation-draws 10]

The poster model defaults to the first exported one of ``var/model``,
``var/bench/model-effl0`` (``python -m models train --catalog ../shared/data/catalog.csv
--out var/bench/model-effl0 --backbone efficientnet_lite0 --weights imagenet
--unfreeze-blocks 0``) and ``var/bench/model-tiny-real``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
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
from posterrec_atomic import replacing  # noqa: E402
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
COLD_SHARE, COLD_DRAWS, COLD_VALIDATION_DRAWS = 0.10, 20, 10
COLD_POSTER_WEIGHTS = (0.1, 0.25, 0.5)
"""Weights of the poster score added to the behaviour score tried for the cold titles on validation."""
NEIGHBOURS = (10, 50)
"""Watched poster neighbours whose behaviour vectors a cold title may take, tried on validation."""
BOOTSTRAP, TIE_ORDERS = 10_000, 200
RANDOM_ROW = "random; popularity and co-occurrence with ties broken at random (expectation)"
FIXED_ORDER_ROW = "popularity (one fixed tie order)"
BEHAVIOUR_ROW = "behaviour model (poster path for cold titles)"

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
    return result_of(gains_of(users, scores, catalog, candidates))


def gains_of(
    users: Sequence[User], scores: Recommender, catalog: JoinedCatalog, candidates: np.ndarray | None = None
) -> np.ndarray:
    """Per user, the NDCG@K gain of the held-out title ranked among ``candidates`` (the user's history
    excluded): 1/log2(rank + 2) in the top K, else 0."""
    gains = []
    for user in users:
        score = scores(user.history).astype(np.float64)
        if candidates is not None:
            score = np.where(candidates, score, -np.inf)
        ranked = top_k(score, [catalog.row_of[t] for t in user.history])
        target = catalog.row_of[user.target]
        gains.append(1 / np.log2(ranked.index(target) + 2) if target in ranked else 0.0)
    return np.array(gains)


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
    hits, gains = expected_random_of(users, catalog, candidates)
    return Result(float(np.mean(hits)), float(np.mean(gains)), len(users), 0.0, 0.0)


def expected_random_of(
    users: Sequence[User], catalog: JoinedCatalog, candidates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's probability of a hit and expected gain under a uniformly random ranking of ``candidates``."""
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
    return np.array(hits), np.array(gains)


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


def cold_draw(
    histories: dict[int, list[str]], draw: int, holdout: int = 1
) -> tuple[set[str], list[User], list[list[str]]]:
    """Cold titles (COLD_SHARE of the watched ones), the users whose held-out title (the ``holdout``-th last) is
    cold, and the training histories (the titles before it) with every watch of a cold title removed. The
    validation split's draws (holdout 2) use other seeds than the test split's."""
    watched = sorted({t for titles in histories.values() for t in titles})
    rng = np.random.default_rng(1000 * holdout + draw)
    cold = set(rng.choice(watched, size=round(COLD_SHARE * len(watched)), replace=False).tolist())
    users = split(histories, holdout)
    return cold, [u for u in users if u.target in cold], [[t for t in u.history if t not in cold] for u in users]


@dataclasses.dataclass(frozen=True)
class Choices:
    """What the validation split chose."""

    config: BehaviourConfig
    co_window: int
    poster_window: int
    weight: float


def cached_vectors(
    config: BehaviourConfig,
    catalog: JoinedCatalog,
    posters: np.ndarray,
    sequences: Sequence[Sequence[str]],
    cache: Path,
) -> np.ndarray:
    """:func:`train_vectors`, kept under ``cache/behaviour-vectors`` by configuration, posters and sequences."""
    digest = hashlib.sha256(json.dumps([dataclasses.asdict(config), catalog.ids, list(map(list, sequences))]).encode())
    digest.update(np.ascontiguousarray(posters, np.float32).tobytes())
    path = cache / "behaviour-vectors" / f"{digest.hexdigest()[:24]}.npy"
    if path.is_file():
        return np.load(path)
    vectors = train_vectors(config, catalog, posters, sequences)
    with replacing(path) as temporary:  # keeps the .npy suffix, so np.save writes exactly there
        np.save(temporary, vectors)
    return vectors


def neighbour_vectors(vectors: np.ndarray, posters: np.ndarray, watched: np.ndarray, k: int) -> np.ndarray:
    """``vectors`` with the vector of every title nobody watched in training replaced by the unit-length mean of
    the behaviour vectors of the ``k`` watched titles with the nearest posters (cosine)."""
    unwatched, known = np.flatnonzero(~watched), np.flatnonzero(watched)
    nearest = np.argpartition(-(posters[unwatched] @ posters[known].T), k, axis=1)[:, :k]
    mean = vectors[known[nearest]].mean(axis=1)
    mapped = vectors.copy()
    mapped[unwatched] = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-9)
    return mapped


def cold_paths(
    recommenders: Recommenders, vectors: np.ndarray, training: Sequence[Sequence[str]], choices: Choices
) -> dict[str, Recommender]:
    """The ways of scoring titles without watches tried on the validation split's cold draws: the behaviour
    model's own poster path, plus w x the poster score, or the behaviour vectors of poster neighbours."""
    window = choices.config.context_length
    paths = {"behaviour model's poster path": recommenders.behaviour(vectors, window)}
    for weight in COLD_POSTER_WEIGHTS:
        paths[f"poster path + {weight:g} x poster score"] = recommenders.hybrid(
            vectors, window, choices.poster_window, weight
        )
    catalog = recommenders.catalog
    watched = np.zeros(len(catalog.ids), bool)
    watched[[catalog.row_of[t] for sequence in training for t in sequence]] = True
    for k in NEIGHBOURS:
        mapped = neighbour_vectors(vectors, recommenders.base.embeddings, watched, k)
        paths[f"behaviour vectors of the {k} nearest watched posters"] = recommenders.behaviour(mapped, window)
    return paths


@dataclasses.dataclass
class Pairs:
    """Per (user, draw) pair of the cold split: hit (or its probability) and gain, over all posters and over the
    cold titles only, and the draw."""

    hits: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)
    gains: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)

    def add(self, key: str, hits: np.ndarray, gains: np.ndarray) -> None:
        self.hits.setdefault(key, []).append(hits)
        self.gains.setdefault(key, []).append(gains)

    def of(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.hits[key]), np.concatenate(self.gains[key])


def paired_cells(a: np.ndarray, b: np.ndarray, draws: np.ndarray, rng: np.random.Generator) -> str:
    """Mean of a - b over (user, draw) pairs ± its paired standard error, and 95% percentile intervals of a
    bootstrap over pairs and of one over draws (whole draws resampled: each draw's cold titles and model)."""
    difference = a - b
    n = len(difference)
    over_pairs = difference[rng.integers(0, n, (BOOTSTRAP, n))].mean(axis=1)
    ids = np.unique(draws)
    sums = np.array([difference[draws == i].sum() for i in ids])
    counts = np.array([(draws == i).sum() for i in ids])
    picked = rng.integers(0, len(ids), (BOOTSTRAP, len(ids)))
    over_draws = sums[picked].sum(axis=1) / counts[picked].sum(axis=1)
    intervals = [np.percentile(samples, [2.5, 97.5]) for samples in (over_pairs, over_draws)]
    se = difference.std(ddof=1) / np.sqrt(n)
    return f"{difference.mean():+.3f} ± {se:.3f} | " + " | ".join(f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in intervals)


def fixed_order_spread(
    draws: Sequence[tuple[list[User], np.ndarray]], catalog: JoinedCatalog, orders: int = TIE_ORDERS
) -> np.ndarray:
    """HR@K on the cold titles only of a ranking by one random order shared by every user and draw (what
    popularity and co-occurrence fall back to there), for each of ``orders`` random orders."""
    ties = np.random.default_rng(0).random((orders, len(catalog.ids)))
    hits = np.zeros(orders)
    for users, shelf in draws:
        for user in users:
            candidates = shelf.copy()
            candidates[[catalog.row_of[t] for t in user.history]] = False
            target = catalog.row_of[user.target]
            hits += (ties[:, candidates] > ties[:, [target]]).sum(axis=1) < K
    return hits / sum(len(users) for users, _ in draws)


def validation_choices(
    args, catalog: JoinedCatalog, index, histories: dict[int, list[str]], configs: Sequence[BehaviourConfig]
) -> Choices:
    """What the validation split chooses: the history windows of co-occurrence and poster-only, the behaviour
    configuration among ``configs`` (by the behaviour model alone) and the hybrid's poster weight."""
    validation_users = split(histories, 2)
    validation = Recommenders(catalog, index, validation_users)
    sequences = [u.history for u in validation_users]

    def on_validation(recommender: Recommender) -> Result:
        return measure(validation_users, recommender, catalog)

    @functools.cache
    def vectors(config: BehaviourConfig) -> np.ndarray:
        return cached_vectors(config, catalog, validation.base.embeddings, sequences, args.cache)

    co_window, _ = best({w: w for w in WINDOWS}, lambda w: on_validation(validation.co_occurrence(w)))
    poster_window, _ = best({w: w for w in WINDOWS}, lambda w: on_validation(validation.poster(w)))
    config, _ = best(
        {c: c for c in configs}, lambda c: on_validation(validation.behaviour(vectors(c), c.context_length))
    )
    weight, _ = best(
        {w: w for w in POSTER_WEIGHTS},
        lambda w: on_validation(validation.hybrid(vectors(config), config.context_length, poster_window, w)),
    )
    print(
        f"validation choices: co-occurrence window {co_window}, poster window {poster_window}, behaviour "
        f"{config} (grid entry {BEHAVIOUR_GRID.index(config)}), hybrid poster weight {weight}",
        file=sys.stderr,
    )
    return Choices(config, co_window, poster_window, weight)


def cold_validation(args, catalog: JoinedCatalog, index, histories: dict[int, list[str]], choices: Choices) -> str:
    """The cold path (:func:`cold_paths`) with the highest NDCG@K on the cold titles only, pooled over
    ``--cold-validation-draws`` cold draws of the validation split."""
    gains: dict[str, list[np.ndarray]] = {}
    users_seen = 0
    for draw in range(args.cold_validation_draws):
        cold, users, training = cold_draw(histories, draw, holdout=2)
        users_seen += len(users)
        recommenders = Recommenders(catalog, index, [User(h, "") for h in training])
        posters = recommenders.base.embeddings
        vectors = cached_vectors(choices.config, catalog, posters, training, args.cache)
        shelf = np.isin(np.array(catalog.ids), list(cold))
        for name, recommender in cold_paths(recommenders, vectors, training, choices).items():
            gains.setdefault(name, []).append(gains_of(users, recommender, catalog, shelf))
    pooled = {name: float(np.concatenate(g).mean()) for name, g in gains.items()}
    chosen = max(pooled, key=pooled.get)
    own = "behaviour model's poster path"
    draws = np.concatenate([np.full(len(g), draw) for draw, g in enumerate(gains[own])])
    difference = paired_cells(
        np.concatenate(gains[chosen]), np.concatenate(gains[own]), draws, np.random.default_rng(0)
    )
    print(
        f"cold validation ({args.cold_validation_draws} draws, {users_seen} pairs), NDCG@10 on the cold titles "
        f"only: " + ", ".join(f"{name} {value:.4f}" for name, value in pooled.items()) + f"; chosen: {chosen} "
        f"(NDCG@10 minus the poster path's: {difference}, ± and 95% intervals as in the paired table)",
        file=sys.stderr,
    )
    return chosen


def cold_tables(args, catalog: JoinedCatalog, index, histories: dict[int, list[str]], choices: Choices) -> None:
    """The cold split: per recommender HR@K and NDCG@K over all posters and over the cold titles only, pooled
    over the draws' (user, draw) pairs, then the paired differences on the cold titles only."""
    chosen_path = cold_validation(args, catalog, index, histories, choices) if args.cold_validation_draws else None
    config, window = choices.config, choices.config.context_length
    pairs, draw_of_pair, fixed_order_draws = Pairs(), [], []
    for draw in range(args.cold_draws):
        cold, users, training = cold_draw(histories, draw)
        draw_of_pair += [draw] * len(users)
        recommenders = Recommenders(catalog, index, [User(h, "") for h in training])
        posters = recommenders.base.embeddings
        vectors = cached_vectors(config, catalog, posters, training, args.cache)
        shelf = np.isin(np.array(catalog.ids), list(cold))
        fixed_order_draws.append((users, shelf))
        for part, candidates in (("all", None), ("shelf", shelf)):
            pairs.add(f"{RANDOM_ROW}/{part}", *expected_random_of(users, catalog, candidates))
        recommenders_of_draw = {
            FIXED_ORDER_ROW: recommenders.popularity,
            "item-item co-occurrence": recommenders.co_occurrence(choices.co_window),
            "poster-only": recommenders.poster(choices.poster_window),
            BEHAVIOUR_ROW: recommenders.behaviour(vectors, window),
            f"hybrid (behaviour + {choices.weight:g} x poster)": recommenders.hybrid(
                vectors, window, choices.poster_window, choices.weight
            ),
        }
        if chosen_path is not None and chosen_path != "behaviour model's poster path":
            recommenders_of_draw[f"cold path chosen on validation: {chosen_path}"] = cold_paths(
                recommenders, vectors, training, choices
            )[chosen_path]
        for name, recommender in recommenders_of_draw.items():
            for part, candidates in (("all", None), ("shelf", shelf)):
                gains = gains_of(users, recommender, catalog, candidates)
                pairs.add(f"{name}/{part}", (gains > 0).astype(float), gains)
    draws = np.array(draw_of_pair)
    spread = fixed_order_spread(fixed_order_draws, catalog)
    print(
        f"\nCold start: {COLD_SHARE:.0%} of the watched titles lose every watch from training, {args.cold_draws} "
        f"draws, {len(draws)} (user, draw) pairs whose held-out title is cold; ranked over all posters, and over the "
        f"cold titles only (a new-titles shelf). Popularity and co-occurrence know nothing of cold titles: on the "
        f"shelf every candidate ties at 0, so with ties broken at random they are the random ranking (its "
        f"expectation, exact, in the first row); the bench's fixed tie order (one random order of the catalogue, "
        f"uncorrelated with id or year, shared by every user and draw) is one sample of that, and its HR@10 over "
        f"{TIE_ORDERS} such orders has mean {spread.mean():.3f}, 5–95% range {np.percentile(spread, 5):.3f}–"
        f"{np.percentile(spread, 95):.3f}: a single shared order hits or misses the few titles many users hold "
        f"out together. ± = one standard error over pairs. From the validation split: co-occurrence over the latest "
        f"{choices.co_window} titles, poster-only over the latest {choices.poster_window}, behaviour model "
        f"{config.embedding_dim}-d, context {window}, {config.epochs} epochs, id dropout {config.id_dropout}, "
        f"hybrid poster weight {choices.weight:g}"
        + (
            f", the cold path chosen on {args.cold_validation_draws} cold draws of the validation split"
            if chosen_path
            else ""
        )
        + ".\n"
    )
    print(
        "| cold split | HR@10, all posters | NDCG@10, all posters | HR@10, cold titles only | NDCG@10, cold titles only |"
    )
    print("|---|---:|---:|---:|---:|")
    names = [key[: -len("/all")] for key in pairs.hits if key.endswith("/all")]
    for name in names:
        cells = []
        for part in ("all", "shelf"):
            hits, gains = pairs.of(f"{name}/{part}")
            cells.append(
                Result(float(hits.mean()), float(gains.mean()), len(gains), 0.0, 0.0).cells()
                if name == RANDOM_ROW
                else result_of(gains).cells()
            )
        print(f"| {name} | {' | '.join(cells)} |")
    print(
        f"\nPaired differences on the cold titles only, over the same {len(draws)} (user, draw) pairs: mean ± paired "
        f"standard error, 95% intervals of a {BOOTSTRAP:,}-sample bootstrap over pairs and of one over the "
        f"{args.cold_draws} draws (each draw's cold titles and behaviour model resampled whole).\n"
    )
    print("| cold titles only | ΔHR@10 | 95% CI, pairs | 95% CI, draws | ΔNDCG@10 | 95% CI, pairs | 95% CI, draws |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    short = {RANDOM_ROW: "random", FIXED_ORDER_ROW: "popularity, fixed tie order", BEHAVIOUR_ROW: "behaviour model"}
    comparisons = [(BEHAVIOUR_ROW, RANDOM_ROW), (BEHAVIOUR_ROW, FIXED_ORDER_ROW), (BEHAVIOUR_ROW, "poster-only")]
    comparisons += [(name, BEHAVIOUR_ROW) for name in names if name.startswith("cold path chosen")]
    for a, b in comparisons:
        (a_hits, a_gains), (b_hits, b_gains) = pairs.of(f"{a}/shelf"), pairs.of(f"{b}/shelf")
        print(
            f"| {short.get(a, a)} − {short.get(b, b)} | {paired_cells(a_hits, b_hits, draws, rng)} | "
            f"{paired_cells(a_gains, b_gains, draws, rng)} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--model", type=Path, help=f"exported poster model (default: first of {', '.join(POSTER_MODELS)})"
    )
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "bench")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="behaviour model seeds on the test split")
    parser.add_argument("--cold-draws", type=int, default=COLD_DRAWS, help="cold draws of the test split")
    parser.add_argument(
        "--cold-validation-draws",
        type=int,
        default=COLD_VALIDATION_DRAWS,
        help="cold draws of the validation split that choose the cold path (0: the behaviour model's own)",
    )
    parser.add_argument(
        "--cold-only",
        type=int,
        metavar="N",
        help="only the cold-start tables, with configuration N of the behaviour grid (0-based) instead of choosing it",
    )
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
    if args.cold_only is not None:
        choices = validation_choices(args, catalog, index, histories, [BEHAVIOUR_GRID[args.cold_only]])
        cold_tables(args, catalog, index, histories, choices)
        print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)
        return 0
    choices = validation_choices(args, catalog, index, histories, BEHAVIOUR_GRID)
    config, co_window, poster_window, weight = choices.config, choices.co_window, choices.poster_window, choices.weight
    window = config.context_length
    test_users = split(histories, 1)
    test = Recommenders(catalog, index, test_users)
    posters = test.base.embeddings

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

    cold_tables(args, catalog, index, histories, choices)
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
