"""Cowrite's Prometheus metrics: the engine, the sockets, the store and the limits, counted in one
registry per app (a process may build many apps: the tests do). server/metrics_listener.py serves them.

The names are a contract with the Grafana dashboard (deploy/grafana-dashboard.json), the benches
and whoever alerts on them: docs/metrics.md lists every one. Rename nothing lightly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from storage.models import Outcome
from streaming.engine import EngineStats
from streaming.params import Status

SOCKET_KINDS = ("document", "suggest")
FANOUT_PATHS = ("local", "broker")  # a room's own replica, or through the broker from another one
# the limits Cowrite refuses under; others may be counted too (a label is made on first use)
LIMITS = ("suggestions", "signin", "signup", "sockets")
SIGNIN_RESULTS = ("ok", "failed")

# bucket bounds in seconds: a CPU step is tens of milliseconds, a GPU step a few; a first token can
# wait behind a long queue; a SQLite write is well under a millisecond, a remote PostgreSQL's more
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 30.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FANOUT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# the engine's gauges: name, help, how to read it from `EngineStats`
ENGINE_GAUGES: tuple[tuple[str, str, Callable[[EngineStats], int]], ...] = (
    ("cowrite_engine_queue_depth", "Requests waiting for a row in the batch.", attrgetter("queued")),
    ("cowrite_engine_active_requests", "Requests in the batch.", attrgetter("active_requests")),
    (
        "cowrite_engine_active_rows",
        "Rows in the batch (each alternative is a row).",
        attrgetter("active_rows"),
    ),
    (
        "cowrite_engine_kv_bytes",
        "Bytes of KV cache held, active and cached sessions.",
        attrgetter("kv_bytes"),
    ),
    ("cowrite_engine_sessions", "Cached sessions (contexts kept for prefix reuse).", attrgetter("sessions")),
)


class EngineGauges:
    """The engine's gauges, read from its `stats()` at scrape time, so they are never stale."""

    def __init__(self) -> None:
        self.stats: Callable[[], EngineStats] | None = None

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(name, text) for name, text, _ in ENGINE_GAUGES]

    def collect(self) -> Iterable[Metric]:
        if self.stats is None:  # no engine yet: nothing rather than zeros that look measured
            return []
        stats = self.stats()
        return [GaugeMetricFamily(name, text, value=read(stats)) for name, text, read in ENGINE_GAUGES]


class Metrics:
    """Every Cowrite metric, in a registry of its own. It is the engine's `EngineObserver` and the
    store's observer; handlers call its methods as things happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._engine = EngineGauges()
        registry.register(self._engine)
        self.step_seconds = Histogram(
            "cowrite_engine_step_seconds",
            "Time of one decode step: the forward pass and sampling.",
            buckets=STEP_BUCKETS,
            registry=registry,
        )
        self.step_rows = Histogram(
            "cowrite_engine_step_rows",
            "Rows in one decode step (decoding rows and prompt chunks).",
            buckets=ROW_BUCKETS,
            registry=registry,
        )
        self.ttft_seconds = Histogram(
            "cowrite_engine_ttft_seconds",
            "Time from a request's submission to its first token.",
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "cowrite_engine_tokens", "Tokens generated, all alternatives together.", registry=registry
        )
        self.requests = Counter(
            "cowrite_engine_requests",
            "Engine requests by how they ended.",
            ["status"],
            registry=registry,
        )
        self.suggestions = Counter(
            "cowrite_suggestions",
            "Suggestions by outcome: how each generation ended, then the editor's verdict.",
            ["outcome"],
            registry=registry,
        )
        self.sockets = Gauge("cowrite_sockets_open", "Open sockets by kind.", ["kind"], registry=registry)
        self.updates = Counter(
            "cowrite_updates_stored", "Document updates appended to the update log.", registry=registry
        )
        self.store_seconds = Histogram(
            "cowrite_store_seconds",
            "Time of one database transaction, by query function.",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.fanout_seconds = Histogram(
            "cowrite_update_fanout_seconds",
            "Time from an update's arrival to its hand-off to every socket in its room.",
            ["path"],
            buckets=FANOUT_BUCKETS,
            registry=registry,
        )
        self.refusals = Counter(
            "cowrite_rate_limit_refusals", "Requests refused by a rate limit.", ["limit"], registry=registry
        )
        self.signins = Counter(
            "cowrite_signins", "Sign-in attempts by result.", ["result"], registry=registry
        )
        # every known label exists from the start, at zero, so that rate() sees the first event
        for families, labels in (
            (self.requests, [str(s) for s in Status]),
            (self.suggestions, [str(o) for o in Outcome if o is not Outcome.PENDING]),
            (self.sockets, SOCKET_KINDS),
            (self.fanout_seconds, FANOUT_PATHS),
            (self.refusals, LIMITS),
            (self.signins, SIGNIN_RESULTS),
        ):
            for label in labels:
                families.labels(label)

    def watch_engine(self, stats: Callable[[], EngineStats]) -> None:
        """Read the engine's gauges from `stats` (its `stats` method) at each scrape."""
        self._engine.stats = stats

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition and its content type, in the format the scraper's Accept header asks for
        (Prometheus text, or OpenMetrics)."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type

    # the engine (EngineObserver)

    def step(self, seconds: float, rows: int) -> None:
        self.step_seconds.observe(seconds)
        self.step_rows.observe(rows)

    def first_token(self, seconds: float) -> None:
        self.ttft_seconds.observe(seconds)

    def ended(self, status: Status, tokens: int) -> None:
        self.requests.labels(str(status)).inc()
        if tokens:
            self.tokens.inc(tokens)

    # the store (storage.database.StoreObserver)

    def store_query(self, operation: str, seconds: float) -> None:
        self.store_seconds.labels(operation).observe(seconds)

    # the web tier

    def suggestion(self, outcome: Outcome) -> None:
        """A suggestion ended (shown, cancelled, superseded, busy, error), or the editor reported
        what the writer did with it (accepted, partial, rejected)."""
        self.suggestions.labels(str(outcome)).inc()

    def socket_opened(self, kind: str) -> None:
        assert kind in SOCKET_KINDS, kind
        self.sockets.labels(kind).inc()

    def socket_closed(self, kind: str) -> None:
        assert kind in SOCKET_KINDS, kind
        self.sockets.labels(kind).dec()

    @contextlib.contextmanager
    def socket_open(self, kind: str) -> Iterator[None]:
        """Count a socket of `kind` as open for the block's length."""
        self.socket_opened(kind)
        try:
            yield
        finally:
            self.socket_closed(kind)

    def update_stored(self) -> None:
        """A document update was appended to the log (once per update, on the replica storing it)."""
        self.updates.inc()

    def fanout(self, seconds: float, path: str) -> None:
        """An update reached every socket of its room `seconds` after it arrived: from its sender on
        this replica (`local`), or from its publication on another replica (`broker`)."""
        assert path in FANOUT_PATHS, path
        self.fanout_seconds.labels(path).observe(seconds)

    def refused(self, limit: str) -> None:
        """A request was refused by the rate limit `limit` (see LIMITS)."""
        self.refusals.labels(limit).inc()

    def signin(self, ok: bool) -> None:
        """A password was checked at sign-in (refusals before the check count under `refused`)."""
        self.signins.labels("ok" if ok else "failed").inc()
