"""Hot reload: watch the config file and its @imports, rebuild after a short delay, swap.

As mcrouter's file observer: files are polled (``--file-observer-poll-period-ms``); a change is
any difference in what ``stat`` sees through symlinks *or* in where the symlinks point, so a
Kubernetes ConfigMap update (an atomic swap of the ``..data`` symlink) counts as one. After
``--file-observer-sleep-before-update-ms`` + ``--reconfiguration-delay-ms`` (so a half-written
file is not read) the config is rebuilt if its content really changed. A config that fails is
counted in ``config_failures`` and the running one stays; a good one replaces the root route
for every later request, reusing the connections and TKO state of servers that remain
(requests already routed finish on the old tree).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time

from .config import RouterConfig, config_source, load
from .jsonc import ConfigError

logger = logging.getLogger(__name__)


def fingerprint(paths: list[str]) -> tuple:
    """What a poll compares: per path, where it resolves and what stat says about it."""
    marks = []
    for path in paths:
        try:
            st = os.stat(path)
            marks.append((os.path.realpath(path), st.st_ino, st.st_dev, st.st_size,
                          st.st_mtime_ns))
        except OSError as exc:
            marks.append((path, exc.errno))
    return tuple(marks)


def content_digest(config: RouterConfig) -> str:
    """md5 over the config text and every imported file, to skip reloads that change
    nothing (a touch, a ConfigMap sync with the same data)."""
    digest = hashlib.md5(config.text.encode())
    for path in config.imports:
        try:
            with open(path, "rb") as handle:
                digest.update(handle.read())
        except OSError:
            digest.update(b"\0missing " + path.encode())
    return digest.hexdigest()


class ConfigWatcher:
    """Polls on the server's loop; ``server.apply_config(config)`` does the swap."""

    def __init__(self, server, poll_ms: int, delay_ms: int) -> None:
        self.server = server
        self.loop = server.loop
        self.poll = max(poll_ms, 10) / 1000.0
        self.delay = max(delay_ms, 0) / 1000.0
        self.watched = self._paths(server.config)
        self.seen = fingerprint(self.watched)
        self.digest = content_digest(server.config)
        self._timer = None
        self._pending = None

    @staticmethod
    def _paths(config: RouterConfig) -> list[str]:
        return ([config.path] if config.path else []) + list(config.imports)

    def start(self) -> None:
        if not self.watched:
            return  # an inline JSON config has nothing to watch
        self._timer = self.loop.timer(self.poll, self.poll)
        self._timer.start(self._on_poll)

    def stop(self) -> None:
        for watcher in (self._timer, self._pending):
            if watcher is not None:
                watcher.stop()
        self._timer = self._pending = None

    def _on_poll(self) -> None:
        marks = fingerprint(self.watched)
        if marks == self.seen:
            return
        self.seen = marks
        if self._pending is None:
            logger.info("config change seen; reloading in %d ms", self.delay * 1000)
            self._pending = self.loop.timer(self.delay)
            self._pending.start(self._on_delay)

    def _on_delay(self) -> None:
        self._pending = None
        self.reload()

    def reload(self) -> bool:
        """Rebuild now; True when a new config went live."""
        server = self.server
        stats = server.stats
        stats.config_last_attempt = int(time.time())
        try:
            text, path = config_source(server.options)
            config = load(server.options, server.loop, text, path, previous=server.config)
        except ConfigError as exc:
            stats.config_failures += 1
            logger.error("config reload failed, keeping the running config: %s", exc)
            return False
        except Exception:  # noqa: BLE001 - a bug in a builder must not take the router down
            stats.config_failures += 1
            logger.exception("config reload failed, keeping the running config")
            return False
        digest = content_digest(config)
        self.watched = self._paths(config)
        self.seen = fingerprint(self.watched)
        if digest == self.digest:
            config.pools.discard_new()
            return False
        self.digest = digest
        server.apply_config(config)
        stats.config_last_success = int(time.time())
        stats.configs_from_disk += 1
        logger.warning("config reloaded from %s (md5 %s)", path or "inline", config.md5)
        return True
