"""Serving ``/metrics``: prometheus-client's own HTTP server, and its multiprocess directory for ``--workers``.

Who serves: with one process, that process, from its metrics registry plus the store collector. With
``serve --workers N``, the supervisor (the one address a scraper knows, whichever worker is busy): the workers
write their values into ``DIR/metrics`` (prometheus-client's ``PROMETHEUS_MULTIPROC_DIR``, emptied at every
start so a previous run's numbers never add up with this one's), the supervisor's registry reads them with
``MultiProcessCollector``, and a worker that exits is marked dead there (its live gauges stop counting).

The server runs on a thread of its own (``prometheus_client.start_http_server``): a scrape never waits for the
event loop, and a busy loop still answers scrapes.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client import multiprocess as prom_multiprocess

from janusmail.config import parse_hostport

from .collectors import StoreCollector

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.config import Config
    from janusmail.store.store import Store

__all__ = ["ENV", "MetricsEndpoint", "WorkersMetrics", "mark_dead", "multiprocess_dir", "reset_multiprocess_dir",
           "supervisor_registry"]

#: The environment variable prometheus-client's multiprocess mode reads (set for the workers only).
ENV = "PROMETHEUS_MULTIPROC_DIR"


class MetricsEndpoint:
    """``http://ADDRESS/metrics`` for ``registry``, until :meth:`close`."""

    def __init__(self, address: str, registry: CollectorRegistry) -> None:
        host, port = parse_hostport(address)
        self._httpd, self._thread = start_http_server(port, host.strip("[]"), registry)
        self.bound: tuple[str, int] = tuple(self._httpd.server_address[:2])  # type: ignore[assignment]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def multiprocess_dir(data_dir: Path) -> Path:
    return data_dir / "metrics"


def reset_multiprocess_dir(data_dir: Path) -> Path:
    """Create (or empty) the workers' metrics directory; returns it."""
    path = multiprocess_dir(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.glob("*.db"):
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
    return path


def supervisor_registry(path: Path, store: Store, ttl: float) -> CollectorRegistry:
    """What the supervisor serves: every worker's values summed, and the store's numbers."""
    registry = CollectorRegistry()
    prom_multiprocess.MultiProcessCollector(registry, path=str(path))
    registry.register(StoreCollector(store, ttl=ttl))
    return registry


def mark_dead(pid: int, path: Path) -> None:
    """A worker exited: its live gauges (open connections, push listeners) leave the sum."""
    prom_multiprocess.mark_process_dead(pid, str(path))


class WorkersMetrics:
    """The supervisor's side of ``serve --workers N`` metrics: the emptied directory the workers write to
    (their environment names it), a store of its own for the scrape-time numbers, and the endpoint."""

    def __init__(self, config: Config) -> None:
        from janusmail.store.store import Store

        assert config.metrics.listen
        self.path = reset_multiprocess_dir(config.data_dir)
        self.store = Store.open(config.data_dir, config.db, blob_store=config.store.blob_store)
        try:
            registry = supervisor_registry(self.path, self.store, float(config.metrics.store_refresh))
            self.endpoint = MetricsEndpoint(config.metrics.listen, registry)
        except BaseException:
            self.store.close()
            raise

    @property
    def bound(self) -> tuple[str, int]:
        return self.endpoint.bound

    def worker_env(self) -> dict[str, str]:
        """A worker's environment: this one, plus the directory its metrics go to."""
        return {**os.environ, ENV: str(self.path)}

    def worker_exited(self, pid: int) -> None:
        mark_dead(pid, self.path)

    def close(self) -> None:
        self.endpoint.close()
        self.store.close()
