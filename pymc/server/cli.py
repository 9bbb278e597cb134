"""``pymc-server``: memcached's command line, then the server until a signal or shutdown."""

from __future__ import annotations

import logging
import os
import sys

from .settings import EX_USAGE, UsageError, help_text, parse_args, version_line


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        settings, action = parse_args(args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EX_USAGE
    if action == "help":
        sys.stdout.write(help_text())
        return 0
    if action == "version":
        print(version_line())
        return 0
    if action == "license":
        print("pymc-server is MIT licensed; see the project's LICENSE file.")
        return 0
    level = logging.WARNING if settings.verbosity == 0 else (
        logging.INFO if settings.verbosity == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if settings.daemonize:
        _daemonize()
    if settings.pid_file:
        with open(settings.pid_file, "w") as handle:
            handle.write("%d\n" % os.getpid())
    from .app import Server, install_signal_handlers  # gevent only once we really serve
    from ..sockets import raise_open_files_limit

    raise_open_files_limit()
    server = Server(settings)
    try:
        server.start()
    except OSError as exc:
        print(f"failed to listen on {settings.listen}:{settings.port}: {exc.strerror}; "
              "pick another port with -p or stop what holds it", file=sys.stderr)
        return 71  # memcached's EX_OSERR
    metrics = None
    if settings.metrics_port:  # prometheus_client and psutil cost ~0.1 s of start-up: on demand
        from ..metrics import start_for_main
        from .metrics import start_metrics
        metrics, status = start_for_main(server, start_metrics, settings.listen,
                                         settings.metrics_port, failure="failed to serve metrics",
                                         flags="--metrics-port (or -o metrics_port=N)")
        if status:
            return status
    install_signal_handlers(server)
    server.serve_forever()
    from .verbose import exiting
    exiting(server.graceful_stop, settings.verbosity)
    if metrics is not None:
        metrics.stop()
    if settings.pid_file and os.path.exists(settings.pid_file):
        os.unlink(settings.pid_file)
    return 0


def _daemonize() -> None:
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


if __name__ == "__main__":
    sys.exit(main())
