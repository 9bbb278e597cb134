"""Requests to reply bytes against the Cache. No sockets: the shell passes a connection object
only for per-connection state (authentication, closing).

Handlers append reply bytes to ``out`` and return True when the connection must close.
"""

from __future__ import annotations

import logging

from .. import MEMCACHED_VERSION
from ..protocol.connection import AUTH_COMMAND
from ..protocol.messages import BAD_FORMAT, ERROR, Close, Invalid, Request
from ..protocol.numbers import strtoll, strtol32, strtoul32
from ..storage import cache as c
from ..storage.stats import items_stats, slabs_stats
from . import verbose
from .meta import MetaCommands
from ..protocol.stats import format_stats
from .stats import general_stats, settings_stats

logger = logging.getLogger(__name__)

END = b"END\r\n"
OK = b"OK\r\n"
STORE_REPLIES = {
    c.STORED: b"STORED\r\n", c.NOT_STORED: b"NOT_STORED\r\n", c.EXISTS: b"EXISTS\r\n",
    c.NOT_FOUND: b"NOT_FOUND\r\n", c.TOO_LARGE: b"SERVER_ERROR object too large for cache\r\n",
    c.NO_MEMORY: b"SERVER_ERROR out of memory storing object\r\n",
}
DELETED = b"DELETED\r\n"
NOT_FOUND = b"NOT_FOUND\r\n"
TOUCHED = b"TOUCHED\r\n"
NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
MAX_VERBOSITY = 2
WATCH_TYPES = frozenset((b"rawcmds", b"fetchers", b"mutations", b"evictions", b"connevents",
                         b"proxyreqs", b"proxyevents", b"proxyuser", b"deletions"))



class Dispatcher:
    def __init__(self, cache: c.Cache, settings, server) -> None:
        self.cache = cache
        self.settings = settings
        self.server = server
        self.handlers = {
            b"get": self.get, b"bget": self.get, b"gets": self.gets,
            b"gat": self.gat, b"gats": self.gat,
            b"set": self.store, b"add": self.store, b"replace": self.store,
            b"append": self.store, b"prepend": self.store, b"cas": self.store,
            b"delete": self.delete, b"incr": self.arithmetic, b"decr": self.arithmetic,
            b"touch": self.touch, b"flush_all": self.flush_all, b"version": self.version,
            b"verbosity": self.verbosity, b"cache_memlimit": self.cache_memlimit,
            b"stats": self.stats, b"shutdown": self.shutdown, b"slabs": self.slabs,
            b"lru": self.lru, b"lru_crawler": self.lru_crawler, b"watch": self.watch,
            b"debugtime": self.debugtime, b"misbehave": self.misbehave,
            Invalid.command: self.invalid, Close.command: self.close,
            AUTH_COMMAND: self.authenticate,
            **MetaCommands(cache).handlers,
        }
        self.credentials = load_auth_file(settings.auth_file) if settings.auth_file else {}

    # -- items ----------------------------------------------------------------------------------

    def get(self, req: Request, out: list, conn) -> bool:
        return self._end_get(self.cache.get_into(req.keys, out), out, conn)

    def gets(self, req: Request, out: list, conn) -> bool:
        return self._end_get(self.cache.get_into(req.keys, out, True), out, conn)

    def gat(self, req: Request, out: list, conn) -> bool:
        hits = self.cache.get_and_touch_into(req.keys, req.exptime, out, req.command == b"gats")
        return self._end_get(hits, out, conn)

    @staticmethod
    def _end_get(hits: int, out: list, conn) -> bool:
        """memcached sends what it has queued once a get completes (conn.sent_mark), so a
        later error cannot drop those replies; a key over 250 bytes drops the unsent ones and
        answers with an error, which the next such error drops in turn."""
        if hits == c.LONG_KEY:
            conn.drop_pending(out)
            out.append(BAD_FORMAT)
        else:
            out.append(END)
            conn.sent_mark = len(out)
        return False

    def store(self, req: Request, out: list, conn) -> bool:
        result = self.cache.store(req.command, req.keys[0], req.flags, req.exptime,
                                  req.data, req.cas_unique)  # type: ignore[arg-type]
        if not req.noreply:
            out.append(STORE_REPLIES[result])
        return False

    def delete(self, req: Request, out: list, conn) -> bool:
        result = self.cache.delete(req.keys[0])
        if not req.noreply:
            out.append(DELETED if result == c.DELETED else NOT_FOUND)
        return False

    def arithmetic(self, req: Request, out: list, conn) -> bool:
        result, value = self.cache.arithmetic(req.keys[0], req.command == b"incr", req.delta)
        if req.noreply:
            return False
        if result == c.STORED:
            out.append(b"%d\r\n" % value)
        elif result == c.NOT_FOUND:
            out.append(NOT_FOUND)
        elif result == c.NON_NUMERIC:
            out.append(NON_NUMERIC)
        else:
            out.append(b"SERVER_ERROR out of memory\r\n")
        return False

    def touch(self, req: Request, out: list, conn) -> bool:
        result = self.cache.touch(req.keys[0], req.exptime)
        if not req.noreply:
            out.append(TOUCHED if result == c.TOUCHED else NOT_FOUND)
        return False

    # -- admin ----------------------------------------------------------------------------------

    def flush_all(self, req: Request, out: list, conn) -> bool:
        if not self.settings.flush_enabled:
            self.cache.cmd_flush += 1
            reply = b"CLIENT_ERROR flush_all not allowed\r\n"
        elif req.exptime is None:
            reply = b"CLIENT_ERROR invalid exptime argument\r\n"
        else:
            self.cache.flush_all(req.exptime)
            reply = OK
        if not req.noreply:
            out.append(reply)
        return False

    def version(self, req: Request, out: list, conn) -> bool:
        out.append(b"VERSION %s\r\n" % MEMCACHED_VERSION.encode())
        return False

    def verbosity(self, req: Request, out: list, conn) -> bool:
        before = self.settings.verbosity
        self.settings.verbosity = min(req.delta, MAX_VERBOSITY)
        if not req.noreply:
            out.append(OK)
            if before < 2 <= self.settings.verbosity:  # memcached logs the OK at the new level
                verbose.emit(b">%d OK\n" % getattr(conn, "fd", -1))
        return False

    def cache_memlimit(self, req: Request, out: list, conn) -> bool:
        megabytes = req.delta
        if megabytes < 8:
            reply = b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"
        elif megabytes > 1_000_000_000:
            reply = b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"
        else:
            self.cache.set_memory_limit(megabytes * 1024 * 1024)
            if self.settings.verbosity > 0:  # memcached's -v line
                verbose.emit(b"maxbytes adjusted to %dm\n" % megabytes)
            reply = OK
        if not req.noreply:
            out.append(reply)
        return False

    def stats(self, req: Request, out: list, conn) -> bool:
        args = req.args
        sub = args[0] if args else b""
        server = self.server
        if not args:
            out.append(format_stats(general_stats(self.cache, self.settings, server)))
        elif sub == b"reset":
            self.cache.reset_counters()
            server.reset_counters()
            out.append(b"RESET\r\n")
        elif sub == b"detail":
            out.append(self._stats_detail(args[1] if len(args) > 1 else b""))
        elif sub == b"settings":
            out.append(format_stats(settings_stats(self.cache, self.settings, server)))
        elif sub == b"items":
            out.append(format_stats(items_stats(self.cache)))
        elif sub == b"slabs":
            out.append(format_stats(slabs_stats(self.cache)))
        elif sub == b"sizes":
            out.append(b"STAT sizes_status disabled\r\nEND\r\n")
        elif sub == b"conns":
            out.append(format_stats(server.connection_stats()))
        elif sub == b"cachedump":
            out.append(self._cachedump(args))
        else:
            out.append(ERROR)
        return False

    def _stats_detail(self, mode: bytes) -> bytes:
        if mode == b"on":
            self.server.detail_enabled = True
            return OK
        if mode == b"off":
            self.server.detail_enabled = False
            return OK
        if mode == b"dump":
            return END
        return b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"

    def _cachedump(self, args: tuple) -> bytes:
        if len(args) < 3:
            return b"CLIENT_ERROR bad command line\r\n"
        class_id = strtoul32(args[1])
        limit = strtoul32(args[2])
        if class_id is None or limit is None:
            return BAD_FORMAT
        if class_id >= 64:
            return b"CLIENT_ERROR Illegal slab id\r\n"
        table = self.cache.table
        parts = []
        size = 0
        slot = table.heads[class_id * 4] if class_id < len(table.heads) // 4 else -1
        started = int(self.cache.clock.process_started)
        while slot >= 0 and (limit == 0 or len(parts) < limit) and size < 2 * 1024 * 1024:
            exptime = table.exptime[slot]
            line = b"ITEM %s [%d b; %d s]\r\n" % (
                table.keys[slot], len(c.parse_block(table.block(slot))[1]),
                exptime + started if exptime else 0)
            parts.append(line)
            size += len(line)
            slot = table.next[slot]
        parts.append(END)
        return b"".join(parts)

    def shutdown(self, req: Request, out: list, conn) -> bool:
        if not self.settings.shutdown_command:
            out.append(b"ERROR: shutdown not enabled\r\n")
            return False
        if not req.args or req.args == (b"graceful",):
            logger.info("shutdown requested by a client%s",
                        " (graceful)" if req.args else "")
            self.server.request_shutdown(graceful=bool(req.args))
            return True
        out.append(b"CLIENT_ERROR invalid shutdown mode\r\n")
        return False

    def slabs(self, req: Request, out: list, conn) -> bool:
        args = req.args
        if len(args) == 3 and args[0] == b"reassign":
            src, dst = strtol32(args[1]), strtol32(args[2])
            if src is None or dst is None:
                out.append(BAD_FORMAT)
            else:
                out.append(self._reassign(src, dst))
        elif len(args) >= 2 and args[0] == b"automove":
            noreply = args[-1] == b"noreply"
            reply = self._automove(args)
            if not noreply:
                out.append(reply)
        else:
            out.append(ERROR)
        return False

    def _reassign(self, src: int, dst: int) -> bytes:
        slabs = self.cache.slabs
        if src == dst:
            return b"SAME src and dst class are identical\r\n"
        if not (1 <= src <= slabs.largest and 1 <= dst <= slabs.largest):
            return b"BADCLASS invalid src or dst class id\r\n"
        source = slabs.classes[src]
        target = slabs.classes[dst]
        if source is None or target is None or source.pages < 2 \
                or source.free_chunks < source.per_page:
            return b"NOSPARE source class has no spare pages\r\n"
        source.pages -= 1
        target.pages += 1
        return OK

    def _automove(self, args: tuple) -> bytes:
        if args[1] == b"ratio":
            try:
                float(args[2])
            except (IndexError, ValueError):
                return ERROR
            return OK
        level = strtoul32(args[1])
        if level is None:
            return BAD_FORMAT
        if level > 2:
            return ERROR
        self.settings.slab_automove = level
        return OK

    def lru(self, req: Request, out: list, conn) -> bool:
        args = req.args
        table = self.cache.table
        reply = ERROR
        if args[0] == b"tune" and len(args) >= 5:
            try:
                hot, warm = int(args[1]), int(args[2])
                hot_factor, warm_factor = float(args[3]), float(args[4])
            except ValueError:
                hot = -1
            if hot < 0:
                reply = ERROR
            elif hot + warm > 80:
                reply = b"ERROR hot and warm pcts must not exceed 80\r\n"
            elif hot_factor <= 0 or warm_factor <= 0:
                reply = b"ERROR hot/warm age factors must be greater than 0\r\n"
            else:
                table.hot_lru_pct, table.warm_lru_pct = hot, warm
                table.hot_max_factor, table.warm_max_factor = hot_factor, warm_factor
                reply = OK
        elif args[0] == b"mode" and len(args) >= 2:
            reply = OK if args[1] in (b"flat", b"segmented") else ERROR
        elif args[0] == b"temp_ttl" and len(args) >= 2:
            reply = OK if strtol32(args[1]) is not None else ERROR
        if not req.noreply:
            out.append(reply + (b"\r\n" if not reply.endswith(b"\r\n") else b""))
        return False

    def lru_crawler(self, req: Request, out: list, conn) -> bool:
        args = req.args
        if len(args) == 2 and args[0] == b"crawl":
            if not self.settings.lru_crawler:
                out.append(b"CLIENT_ERROR lru crawler disabled\r\n")
            else:
                cache = self.cache
                cache.crawl(cache.now(), len(cache.table.keys))
                out.append(OK)
        elif len(args) == 2 and args[0] == b"metadump":
            out.append(self._metadump())
        elif len(args) == 2 and args[0] in (b"tocrawl", b"sleep"):
            value = strtoul32(args[1])
            if value is None:
                out.append(BAD_FORMAT)
            elif args[0] == b"sleep" and value > 1_000_000:
                out.append(b"CLIENT_ERROR sleep must be one second or less\r\n")
            else:
                out.append(OK)
        elif len(args) == 1 and args[0] in (b"enable", b"disable"):
            self.settings.lru_crawler = args[0] == b"enable"
            out.append(OK)
        else:
            out.append(ERROR)
        return False

    def _metadump(self) -> bytes:
        cache = self.cache
        table = cache.table
        now = cache.now()
        started = int(cache.clock.process_started)
        parts = []
        for slot, key in enumerate(table.keys):
            if key is None or cache.table.is_dead(slot, now, cache.is_flushed):
                continue
            exptime = table.exptime[slot]
            parts.append(b"key=%s exp=%d la=%d cas=%d fetch=%s cls=%d size=%d\r\n" % (
                _url_quote(key), exptime + started if exptime else -1,
                table.atime[slot] + started, table.cas[slot],
                b"yes" if table.bits(slot) & 8 else b"no", table.class_of(slot), table.size[slot]))
        parts.append(END)
        return b"".join(parts)

    def watch(self, req: Request, out: list, conn) -> bool:
        if all(arg in WATCH_TYPES for arg in req.args):
            out.append(OK)  # accepted; pymc-server has no log stream to send
        else:
            out.append(ERROR)
        return False

    def debugtime(self, req: Request, out: list, conn) -> bool:
        if not self.settings.debugtime:
            out.append(ERROR)
            return False
        arg = req.args[0]
        if arg in (b"p", b"r"):
            out.append(OK)
            return False
        delta = strtoll(arg)
        if delta is None:
            out.append(ERROR)
            return False
        self.cache.clock.advance(delta)  # type: ignore[attr-defined]
        out.append(OK)
        return False

    def misbehave(self, req: Request, out: list, conn) -> bool:
        out.append(ERROR)
        return False

    # -- parse outcomes -------------------------------------------------------------------------

    def invalid(self, event: Invalid, out: list, conn) -> bool:
        if event.store_failure == "too_large":
            self.cache.reject_too_large(event.unlink_key)
        elif event.store_failure == "bad_chunk":
            req = event.request
            self.cache.count_bad_chunk(req.key, req.flags if type(req) is Request
                                       else req.client_flags, len(req.data or b""))
        if event.drop_pending:
            conn.drop_pending(out)
        if not event.noreply:
            out.append(event.line)
        return False

    def authenticate(self, req: Request, out: list, conn) -> bool:
        user, password = req.args
        self.server.auth_cmds += 1
        if self.credentials.get(user) == password:
            conn.parser.authenticated = True
            out.append(b"STORED\r\n")
        else:
            self.server.auth_errors += 1
            out.append(b"CLIENT_ERROR authentication failure\r\n")
        return False

    def close(self, event: Close, out: list, conn) -> bool:
        if event.reason != "quit":
            logger.debug("closing connection: %s", event.reason)
        return True


def load_auth_file(path: str) -> dict[bytes, bytes]:
    """memcached's -Y file: one ``user:password`` per line."""
    credentials = {}
    with open(path, "rb") as handle:
        for line in handle:
            user, sep, password = line.rstrip(b"\r\n").partition(b":")
            if sep and user:
                credentials[user] = password
    return credentials


def _url_quote(key: bytes) -> bytes:
    from urllib.parse import quote_from_bytes
    return quote_from_bytes(key, safe=b"").encode()
