"""RouterServer: one pymc-router process on the current gevent hub — its listeners, client
connections, the loaded config, counters, and the admin/stats answers built from them."""

from __future__ import annotations

import logging
import os
import socket
import time

import gevent
import gevent.event

from .. import __version__
from .admin import Admin
from .config import RouterConfig, load
from .options import RouterOptions
from ..sockets import Acceptor, listen_tcp, split_hosts
from .proxy import ClientConn, Handlers
from .reload import ConfigWatcher
from .routes.base import BACKGROUND
from .stats import RouterStats

logger = logging.getLogger(__name__)

VERSION = f"mcrouter 43.0.0 pymc-router-{__version__}"


class RouterServer:
    def __init__(self, options: RouterOptions, config: RouterConfig | None = None) -> None:
        self.options = options
        self.loop = gevent.get_hub().loop
        BACKGROUND.limit = options.max_async_requests
        self.config = config if config is not None else load(options, self.loop)
        self.root = self.config.root
        self.version = VERSION
        self.max_value_length = 1024 * 1024 * 1024
        self.listeners: list[Acceptor] = []
        self.connections: dict[int, ClientConn] = {}
        self.port = options.port
        self.started = time.time()
        self.stats = RouterStats(self)
        self.admin = Admin(self)
        handlers = Handlers(self)
        self.handlers = handlers.table()
        self.handle_other = handlers.other
        self._stopped = gevent.event.Event()
        self._dirty: list[ClientConn] = []
        self._flush_scheduled = False
        self.watcher: ConfigWatcher | None = None

    # -- output ---------------------------------------------------------------------------------

    def schedule_flush(self, conn: ClientConn) -> None:
        """Write ``conn``'s replies at the end of this loop turn, together with every other
        connection that got replies in it (one callback per turn, not per connection)."""
        self._dirty.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.run_callback(self._flush_dirty)

    def _flush_dirty(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        for host in split_hosts(self.options.listen_addresses):
            self._listen(host, self.port)
        options = self.options
        if not options.disable_reload_configs:
            self.watcher = ConfigWatcher(
                self, options.file_observer_poll_period_ms,
                options.file_observer_sleep_before_update_ms + options.reconfiguration_delay_ms)
            self.watcher.start()

    def apply_config(self, config: RouterConfig) -> None:
        """Route every later request with ``config``; close the servers it dropped."""
        self.config = config
        self.root = config.root
        retired = config.pools.retire_unused()
        if retired:
            logger.info("%d server(s) left the config", retired)

    def _listen(self, host: str, port: int) -> None:
        sock = listen_tcp(host, port, 1024)
        self.port = sock.getsockname()[1]
        acceptor = Acceptor(self.loop, sock, f"{host}:{self.port}", self._accepted)
        acceptor.start()
        self.listeners.append(acceptor)

    def _accepted(self, sock: socket.socket, peer) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = ClientConn(self, sock, peer)
        self.connections[conn.fd] = conn
        self.stats.connections_opened += 1

    def forget(self, conn: ClientConn) -> None:
        if self.connections.get(conn.fd) is conn:
            del self.connections[conn.fd]

    def serve_forever(self) -> None:
        self._stopped.wait()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        for acceptor in self.listeners:
            acceptor.close()
        self.listeners = []
        for conn in list(self.connections.values()):
            conn.close()
        for destination in self.config.pools.destinations.values():
            destination.close()
        self._stopped.set()

    @property
    def pid(self) -> int:
        return os.getpid()

