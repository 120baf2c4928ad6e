"""The index the service answers from, and hot swapping to newly published versions.

A watcher thread polls the index root's ``CURRENT`` pointer. A new version is
loaded completely *beside* the served one and then swapped in with one
reference assignment, so a request in flight keeps the snapshot it started
with and no request ever sees a half-loaded index. A version that fails to
load is refused (and not retried until ``CURRENT`` names another one); the
old version keeps serving. A worker that has nothing to serve yet (one just
started or recycled) when ``CURRENT`` cannot be served comes up on the newest
version that loads instead, and says so in its log and ``/readyz``.

A loaded index is frozen out of the cyclic garbage collector (``gc.freeze``):
a 1M-title version is ~2.4M tracked objects, and the full collection that
Python runs once enough of them have piled up walked all of them, 558 ms
holding the GIL, within the first ~6,000 requests after a load (a stalled
worker and a p99 spike); frozen, a full collection takes under 1 ms. An
index holds no reference cycles, so the version swapped out is still freed,
by reference counting, once the last request holding it ends. Garbage in
cycles is collected before each load, which is cheap with the served index
frozen, so that none of it is frozen with the new version.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from indexer import published
from indexer.published import PublishedIndex

from .metrics import record_index

log = logging.getLogger(__name__)

T = TypeVar("T")

Preparer = Callable[[PublishedIndex, "PublishedIndex | None"], None]
"""Called with a freshly loaded version and the one it replaces, before the swap: to build beside the load what
requests would otherwise build on their first use of the new version."""


def built_frozen(build: Callable[[], T]) -> T:
    """``build()``, frozen out of the cyclic collector with everything alive once it returns.

    Cyclic garbage is collected first, which is cheap while what was built before is frozen, so that none
    of it is frozen for good; after the build, it would also walk everything just built. Nothing is
    frozen when ``build`` raises.
    """
    gc.collect()
    built = build()
    gc.freeze()
    return built


class LiveIndex:
    def __init__(self, root: Path, poll_seconds: float, preparers: Iterable[Preparer] = ()) -> None:
        self.root = Path(root)
        self.poll_seconds = poll_seconds
        self.preparers = tuple(preparers)
        self._index: PublishedIndex | None = None
        self._refused: str | None = None
        self._fallback_tried = False
        self.pointer_problem: str | None = None
        """Why ``CURRENT`` names no version this process can serve (unreadable, empty, refused), else None."""
        self._embedders: dict[str, object] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def index(self) -> PublishedIndex | None:
        """The served snapshot; callers keep the reference for the whole request."""
        return self._index

    def refresh(self) -> bool:
        """Load the version ``CURRENT`` names if it is new; True when a swap happened.

        A worker serving nothing whose ``CURRENT`` cannot be served (unreadable, empty, or naming a version
        that does not load) comes up on the newest version that loads, and :attr:`pointer_problem` says why.
        """
        with self._lock:
            served = self._index.version if self._index else None
            wanted, problem = self._wanted_version(served)
            if problem is None:
                if wanted != self._refused:  # CURRENT moved on: a version refused before may be repaired by now
                    self._refused = None
                    self._fallback_tried = False
                if wanted is None or wanted == served:
                    self.pointer_problem = None
                    return False
                if wanted == self._refused:
                    return self._fall_back(wanted)
                fresh = self._load(wanted, served)
                if fresh is not None:
                    self.pointer_problem = None
                    self._refused = None
                    self._swap(fresh, served)
                    return True
                self._refused = wanted
                problem = f"{published.CURRENT} names {wanted}, which cannot be loaded"
            elif problem != self.pointer_problem:
                self._fallback_tried = False
            self.pointer_problem = problem
            return self._fall_back(wanted)

    def _wanted_version(self, served: str | None) -> tuple[str | None, str | None]:
        """The version ``CURRENT`` names, or None and why it names none that can be served (None: nothing published).

        The reason names no path: ``/readyz`` shows it to anyone; the log has the details.
        """
        try:
            wanted = published.current_version(self.root)
        except published.IndexVersionError as err:  # e.g. a CURRENT written by hand, badly: keep serving
            problem = f"{published.CURRENT} cannot be read as a version name"
            if self.pointer_problem != problem:
                log.error("cannot tell which index version to serve, still serving %s: %s", served or "nothing", err)
            return None, problem
        if wanted is None and (self.root / published.CURRENT).exists():
            problem = f"{published.CURRENT} is empty"
            if self.pointer_problem != problem:
                log.error(
                    "%s is empty, so it names no index version; still serving %s",
                    self.root / published.CURRENT,
                    served or "nothing",
                )
            return None, problem
        return wanted, None

    def _load(self, version: str, served: str | None) -> PublishedIndex | None:
        """``version`` loaded whole, or None with the refusal logged."""
        try:
            return built_frozen(lambda: published.open_version(self.root, version))
        except Exception as err:  # any failure to load refuses the version: the served one must keep serving
            log.error(
                "refusing index version %s, still serving %s: %s",
                version,
                served or "nothing",
                err,
                exc_info=not isinstance(err, published.IndexVersionError),
            )
            return None

    def _fall_back(self, unservable: str | None) -> bool:
        """With nothing served, swap in the newest version served before that loads, other than ``unservable``; once
        per pointer state."""
        if self._index is not None or self._fallback_tried:
            return False
        self._fallback_tried = True
        for version in reversed(published.served_versions(self.root)):
            if version == unservable:
                continue
            fresh = self._load(version, None)
            if fresh is not None:
                log.warning("%s; serving %s, the newest index version that loads", self.pointer_problem, version)
                self._swap(fresh, None)
                return True
        log.error("%s, and no other index version loads; serving nothing", self.pointer_problem)
        return False

    def _swap(self, fresh: PublishedIndex, served: str | None) -> None:
        self._prepare(fresh)
        self._index = fresh
        record_index(fresh.version, len(fresh), previous=served)
        log.info("serving index version %s (%d items), was %s", fresh.version, len(fresh), served or "nothing")

    def _prepare(self, fresh: PublishedIndex) -> None:
        """Run each preparer on ``fresh``; one that fails is logged and skipped, since what it builds is only ahead
        of time (requests build it on first use), so the version is still served."""
        for prepare in self.preparers:
            try:
                prepare(fresh, self._index)
            except Exception:  # noqa: BLE001  the load succeeded; a failed head start must not refuse it
                log.exception(
                    "preparing index version %s failed; requests will build what it would have", fresh.version
                )

    def start(self) -> None:
        """Load now and keep watching in a daemon thread (one per process, so per gunicorn worker)."""
        self.refresh()
        if self._thread is None and self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._watch, name="index-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # the watcher must outlive any one bad version
                log.exception("index watcher failed; retrying in %.1f s", self.poll_seconds)

    def embedder_for(self, index: PublishedIndex):
        """The model that built ``index``, loaded once; None (uploads get a 503) if it changed since the build or
        cannot be loaded at all."""
        from models.embedder import load_embedder, read_manifest

        expected = index.manifest.get("model_manifest_sha256")
        model_dir = index.manifest.get("model_dir")
        if not expected or not model_dir:
            return None
        embedder = self._embedders.get(expected)  # read once: another request thread may replace the dict
        if embedder is None:
            try:
                _, digest = read_manifest(Path(model_dir))  # milliseconds; loading the model takes longer
                embedder = load_embedder(model_dir) if digest == expected else None
            except Exception as err:  # noqa: BLE001  a damaged export raises whatever its reader hits (Keras': BadZipFile, KeyError...)
                log.error("model at %s cannot be loaded for index %s: %r", model_dir, index.version, err)
                return None
            if embedder is None or embedder.manifest_sha256 != expected:
                log.error("model at %s is not the one index %s was built with", model_dir, index.version)
                return None
            self._embedders = {expected: embedder}
        return embedder
