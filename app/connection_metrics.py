"""Open HTTP connections of this process, measured at scrape time (Linux `/proc`).

ASGI never sees a connection that has not finished its headers, so the count comes from the
kernel: the TCP sockets this process holds whose local port is one this process listens on
(the server's sockets; in `--fake-llm` mode the in-process fake's too), grouped by peer address.
Exported as `fastnpc_http_connections` (all) and `fastnpc_http_connections_max_per_client`
(the most held by one client address). Elsewhere than Linux both are absent.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_LISTEN = "0A"
_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def _socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _rows() -> Iterator[tuple[str, str, str, str]]:
    """(local port, peer address, state, inode) of every TCP socket on the host."""
    for table in _TABLES:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            yield local.rsplit(":", 1)[1], remote.rsplit(":", 1)[0], state, inode


def connections_by_client() -> Counter[str] | None:
    """Open connections to this process's listening ports, by peer address (hex, as the
    kernel reports it); None where `/proc` is not available."""
    if not os.path.isdir("/proc/self/fd"):
        return None
    mine = _socket_inodes()
    rows = [row for row in _rows() if row[3] in mine]
    listening = {port for port, _, state, _ in rows if state == _LISTEN}
    return Counter(peer for port, peer, state, _ in rows if state != _LISTEN and port in listening)


class ConnectionCollector(Collector):
    """Prometheus collector for `connections_by_client`."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        counts = connections_by_client()
        if counts is None:
            return []
        total = GaugeMetricFamily("fastnpc_http_connections", "Open HTTP connections")
        total.add_metric([], sum(counts.values()))
        top = GaugeMetricFamily(
            "fastnpc_http_connections_max_per_client",
            "Open HTTP connections held by the client address holding the most",
        )
        top.add_metric([], max(counts.values(), default=0))
        return [total, top]


def register(registry: CollectorRegistry) -> None:
    registry.register(ConnectionCollector())
