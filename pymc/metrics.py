"""Prometheus metrics over HTTP, the part pymc-server and pymc-router share.

- ``MetricsEndpoint``: ``GET /metrics`` from a private ``CollectorRegistry`` through
  prometheus_client's WSGI app (text format 0.0.4, or OpenMetrics when the scraper asks for it),
  served by ``gevent.pywsgi`` on the service's own hub: no threads. Nothing is counted on the
  request path for it; the collectors (``server/metrics.py``, ``router/metrics.py``) read the
  numbers ``stats`` already keeps when a scrape comes in.
- ``ProcessCollector``: ``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ... from
  psutil, the names every Prometheus client uses for its own process (with a prefix, the
  memcached_exporter's ``memcached_process_*``).
- ``family()``: a metric family under an exporter's exact name. prometheus_client writes a
  counter's samples as ``<name>_total``; the exporters have counters without that suffix
  (``memcached_uptime_seconds``, ``mcrouter_command_count``). Those are exposed as untyped under
  their exact names, so queries and dashboards find them (``rate()`` works on untyped series).
  ``single()`` is a family of one sample.
- ``start_endpoint()`` / ``start_for_main()``: /metrics started for a service, and for its
  command line (a taken port explained, the exit status to leave with).

This module knows neither service; gevent is imported only when an endpoint starts.
"""

from __future__ import annotations

import html
import logging
import os
import resource
import sys

import psutil
from prometheus_client import make_wsgi_app
from prometheus_client.core import (CollectorRegistry, CounterMetricFamily, GaugeMetricFamily,
                                    UnknownMetricFamily)

from .sockets import listen_tcp, split_hosts

logger = logging.getLogger(__name__)

PATH = "/metrics"
MAX_PORT = 65535


class MetricsPortError(ValueError):
    """A --metrics-port / -o metrics_port value that is not a port number."""


def parse_port(text: str, flag: str) -> int:
    """A metrics port from the command line: 0 (not served) to 65535."""
    try:
        port = int(str(text).strip(), 10)
    except ValueError:
        raise MetricsPortError(f"{flag} must be a port number (0 = no metrics), got {text!r}") \
            from None
    if not 0 <= port <= MAX_PORT:
        raise MetricsPortError(f"{flag} must be between 0 and {MAX_PORT} (0 = no metrics), "
                               f"got {port}")
    return port


def family(name: str, documentation: str, kind: str, labels=()):
    """A family to ``add_metric(label_values, value)`` to; ``kind`` is "gauge" or "counter"
    (a counter whose name does not end in ``_total`` becomes untyped, see the module doc)."""
    if kind == "gauge":
        return GaugeMetricFamily(name, documentation, labels=labels)
    if kind != "counter":
        raise ValueError(f"unknown metric kind {kind!r}")
    if name.endswith("_total"):
        return CounterMetricFamily(name, documentation, labels=labels)
    return UnknownMetricFamily(name, documentation, labels=labels)


def single(name: str, documentation: str, kind: str, value, **labels):
    """A family holding one sample, ``value`` with ``labels`` (``version="1.6.18"``)."""
    metric = family(name, documentation, kind, list(labels))
    metric.add_metric(list(labels.values()), float(value))
    return metric


def non_empty(*families):
    """The families that got samples: a per-slab or per-server family can have none, and is
    left out rather than served as HELP and TYPE lines alone."""
    return [metric for metric in families if metric.samples]


class ProcessCollector:
    """This process, read with psutil at scrape time. ``prefix`` "memcached_" gives the names
    memcached_exporter uses with ``--memcached.pid-file``."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix + "process_"
        self.process = psutil.Process()

    def collect(self):
        p = self.prefix
        process = self.process
        try:
            with process.oneshot():
                cpu = process.cpu_times()
                memory = process.memory_info()
                started = process.create_time()
        except (psutil.Error, OSError):  # /proc unreadable (out of file descriptors): skip
            return
        yield single(p + "cpu_seconds_total", "Total user and system CPU time spent in "
                     "seconds.", "counter", cpu.user + cpu.system)
        yield single(p + "resident_memory_bytes", "Resident memory size in bytes.", "gauge",
                     memory.rss)
        yield single(p + "virtual_memory_bytes", "Virtual memory size in bytes.", "gauge",
                     memory.vms)
        yield single(p + "start_time_seconds", "Start time of the process since unix epoch in "
                     "seconds.", "gauge", started)
        try:
            yield single(p + "open_fds", "Number of open file descriptors.", "gauge",
                         process.num_fds())
        except (psutil.Error, OSError):
            pass
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            yield single(p + "max_fds", "Maximum number of open file descriptors.", "gauge",
                         soft)


def new_registry(*collectors) -> CollectorRegistry:
    """A private registry (never prometheus_client's global one) holding ``collectors``."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


def metrics_app(registry: CollectorRegistry, title: str):
    """WSGI: /metrics from ``registry``, a link to it on /, 404 elsewhere."""
    exposition = make_wsgi_app(registry)
    landing = (f"<html><head><title>{html.escape(title)}</title></head><body>"
               f"<h1>{html.escape(title)}</h1><p><a href='{PATH}'>Metrics</a></p>"
               f"</body></html>\n").encode()

    def app(environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        if path == PATH:
            return exposition(environ, start_response)
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [landing]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not found: metrics are at %s\n" % PATH.encode()]

    return app


class MetricsEndpoint:
    """An HTTP listener on the current gevent hub serving ``registry``. ``host`` is the first
    of the service's listen addresses; ``start()`` raises OSError when the port is taken."""

    def __init__(self, listen: str, port: int, registry: CollectorRegistry,
                 title: str = "pymc") -> None:
        self.host = split_hosts(listen)[0]
        self.port = port
        self.registry = registry
        self.title = title
        self._server = None

    def start(self) -> None:
        from gevent.pywsgi import WSGIServer

        sock = listen_tcp(self.host, self.port, 128)
        self.port = sock.getsockname()[1]
        self._server = WSGIServer(sock, metrics_app(self.registry, self.title), log=None,
                                  error_log=logger)
        self._server.start()
        logger.info("serving Prometheus metrics on %s", self.url)

    @property
    def url(self) -> str:
        host = self.host.strip("[]")
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{PATH}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


def start_endpoint(listen: str, port: int, registry: CollectorRegistry,
                   title: str) -> MetricsEndpoint | None:
    """Serve ``registry`` on the first of the ``listen`` addresses, ``port`` (OSError when
    taken). Returns the endpoint, or None for port 0."""
    if not port:
        return None
    endpoint = MetricsEndpoint(listen, port, registry, title=title)
    endpoint.start()
    return endpoint


def start_for_main(server, start_metrics, listen: str, port: int, failure: str,
                   flags: str) -> tuple[MetricsEndpoint | None, int]:
    """``start_metrics(server)`` for a service's main(): (the endpoint or None, 0), or, when
    the port is taken, ``failure`` with the address and what to do on stderr, ``server``
    stopped, and (None, EX_OSERR) for main() to return."""
    try:
        return start_metrics(server), 0
    except OSError as exc:
        print(f"{failure} on {split_hosts(listen)[0]}:{port}: {exc.strerror}; pick another "
              f"port with {flags}, 0 for none", file=sys.stderr)
        server.stop()
        return None, os.EX_OSERR
