"""``pymc-router``: mcrouter's command line (the flags pymc-router honours, the rest accepted
and ignored with a debug line), then the router until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from .jsonc import ConfigError
from .options import RouterOptions

logger = logging.getLogger(__name__)

#: mcrouter flags accepted for compatibility but without effect here (all take a value).
IGNORED = ("num-proxies", "stats-root", "debug-fifo-root", "cross-region-timeout-ms",
           "cross-cluster-timeout-ms", "within-cluster-timeout-ms", "stats-logging-interval",
           "fibers-max-pool-size", "fibers-stack-size", "max-client-outstanding-reqs",
           "async-dir", "log-path", "big-value-split-threshold", "reset-inactive-connection-interval",
           "client-queue-size", "target-max-inflight-requests", "keepalive-count",
           "keepalive-interval-s", "keepalive-idle-s", "pem-cert-path", "pem-key-path",
           "pem-ca-path", "proxy-max-inflight-requests", "max-conns", "threads")
IGNORED_SWITCHES = ("use-asynclog-version2", "disable-miss-on-get-errors",
                    "enable-qos", "postprocess-logging-route", "enable-logging-route")


#: Flag defaults are the options' own (class attributes of the dataclass).
DEFAULT = RouterOptions


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(64, f"pymc-router: {message}; see pymc-router --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pymc-router", description="An mcrouter-compatible memcached router "
                     "in pure Python: same JSON config, same hashing, same routing.")
    add = parser.add_argument
    add("-p", "--port", type=_port, default=DEFAULT.port,
        help="TCP port to listen on (default %(default)s)")
    add("-l", "--listen-addresses", default=DEFAULT.listen_addresses,
        help="comma-separated addresses to listen on (default %(default)s)")
    add("--config", default="", help="file:PATH, or the config JSON itself")
    add("-f", "--config-file", default="", help="config file path (older mcrouter flag)")
    add("--config-str", default="", help=argparse.SUPPRESS)
    add("-R", "--route-prefix", default=DEFAULT.route_prefix,
        help="default routing prefix, e.g. /eqiad/mw/ (eqiad/mw works too)")
    add("--send-invalid-route-to-default", action="store_true",
        help="send keys with an unknown routing prefix to the default route")
    add("-t", "--server-timeout", type=int, default=DEFAULT.server_timeout_ms, metavar="MS",
        help="server timeout in ms (default %(default)s)")
    add("--connect-timeout", type=int, default=None, metavar="MS", help=argparse.SUPPRESS)
    add("--timeouts-until-tko", type=int, default=DEFAULT.timeouts_until_tko)
    add("-r", "--probe-timeout-initial", type=int, default=DEFAULT.probe_timeout_initial_ms,
        metavar="MS")
    add("--probe-timeout-max", type=int, default=DEFAULT.probe_timeout_max_ms, metavar="MS")
    add("--disable-tko-tracking", action="store_true")
    add("--target-max-pending-requests", type=int,
        default=DEFAULT.target_max_pending_requests, metavar="N",
        help="requests one server may have waiting before more fail at once")
    add("--max-async-requests", type=int, default=DEFAULT.max_async_requests, metavar="N",
        help="background requests (AllAsyncRoute, broadcasts, shadows) in flight before "
             "more are dropped and counted (pymc's own bound)")
    add("--validate-config", nargs="?", const="exit", default="", choices=("exit", "run"),
        help="check the config; =exit (default) stops after, =run keeps running")
    add("--config-params", default="", help="name:value,... for %%name%% in the config")
    add("--enable-flush-cmd", action="store_true", help="route flush_all (disabled by default)")
    add("--disable-reload-configs", action="store_true")
    add("--reconfiguration-delay-ms", type=int, default=DEFAULT.reconfiguration_delay_ms)
    add("--file-observer-poll-period-ms", type=int,
        default=DEFAULT.file_observer_poll_period_ms, metavar="MS")
    add("--file-observer-sleep-before-update-ms", type=int,
        default=DEFAULT.file_observer_sleep_before_update_ms, metavar="MS")
    add("--metrics-port", type=_metrics_port, default=0, metavar="PORT",
        help="serve Prometheus metrics (mcrouter_exporter's names) at "
             "http://<first listen address>:PORT/metrics (default 0: not served)")
    add("-v", "--verbosity", type=int, default=0)
    add("-V", "--version", action="store_true")
    for name in IGNORED:
        add(f"--{name}", default=None, help=argparse.SUPPRESS)
    for name in IGNORED_SWITCHES:
        add(f"--{name}", action="store_true", help=argparse.SUPPRESS)
    return parser


def _port(text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"Invalid port number: {text!r}")  # memcached's words
    return port


def _metrics_port(text: str) -> int:
    from ..metrics import MetricsPortError, parse_port
    try:
        return parse_port(text, "port")
    except MetricsPortError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_params(text: str) -> dict[str, str]:
    params = {}
    for item in filter(None, text.split(",")):
        name, colon, value = item.partition(":")
        if not colon or not name:
            raise ConfigError(f"--config-params: {item!r} is not name:value")
        params[name] = value
    return params


def options_from(args: argparse.Namespace) -> RouterOptions:
    return RouterOptions(
        port=args.port, listen_addresses=args.listen_addresses,
        config=args.config or args.config_str, config_file=args.config_file,
        route_prefix=args.route_prefix,
        send_invalid_route_to_default=args.send_invalid_route_to_default,
        server_timeout_ms=args.server_timeout,
        connect_timeout_ms=args.connect_timeout or args.server_timeout,
        timeouts_until_tko=args.timeouts_until_tko,
        probe_timeout_initial_ms=args.probe_timeout_initial,
        probe_timeout_max_ms=args.probe_timeout_max,
        disable_tko_tracking=args.disable_tko_tracking,
        target_max_pending_requests=args.target_max_pending_requests,
        max_async_requests=args.max_async_requests,
        validate_config=args.validate_config, config_params=parse_params(args.config_params),
        enable_flush_cmd=args.enable_flush_cmd,
        disable_reload_configs=args.disable_reload_configs,
        reconfiguration_delay_ms=args.reconfiguration_delay_ms,
        file_observer_poll_period_ms=args.file_observer_poll_period_ms,
        file_observer_sleep_before_update_ms=args.file_observer_sleep_before_update_ms,
        verbosity=args.verbosity, metrics_port=args.metrics_port)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(f"pymc-router {__version__} (mcrouter 43 compatible)")
        return 0
    level = (logging.WARNING, logging.INFO)[min(args.verbosity, 1)] if args.verbosity < 2 \
        else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for name in IGNORED + IGNORED_SWITCHES:
        if getattr(args, name.replace("-", "_")) not in (None, False):
            logger.debug("--%s is accepted for mcrouter compatibility and ignored", name)
    from ..sockets import raise_open_files_limit
    try:
        options = options_from(args)
        from .config import load
        if options.validate_config == "exit":
            load(options)
            print("config is valid")
            return 0
        from .server import RouterServer
        raise_open_files_limit()
        server = RouterServer(options)
    except ConfigError as exc:
        print(f"pymc-router: bad config: {exc}", file=sys.stderr)
        return 1
    try:
        server.start()
    except OSError as exc:
        print(f"pymc-router: cannot listen on {options.listen_addresses}:{options.port}: "
              f"{exc.strerror}; pick another port with -p", file=sys.stderr)
        return 71
    metrics = None
    if options.metrics_port:  # prometheus_client costs start-up time: only when asked for
        from ..metrics import start_for_main
        from .metrics import start_metrics
        metrics, status = start_for_main(server, start_metrics, options.listen_addresses,
                                         options.metrics_port,
                                         failure="pymc-router: cannot serve metrics",
                                         flags="--metrics-port")
        if status:
            return status
    import gevent
    import signal
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, server.stop)
    print(f"pymc-router listening on {options.listen_addresses}:{server.port}",
          file=sys.stderr, flush=True)
    if metrics is not None:
        print(f"pymc-router metrics on {metrics.url}", file=sys.stderr, flush=True)
    server.serve_forever()
    if metrics is not None:
        metrics.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
