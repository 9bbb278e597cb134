"""``pymc top HOST:PORT``: a live view of a memcached (pymc-server) or a router's stats.

It asks ``stats`` (and, for a router, ``stats all``, ``stats servers``, ``stats
suspect_servers`` and two ``__mcrouter__`` admin keys) every ``--interval`` seconds and shows
totals with rates computed between two samples. The first frame has no previous sample, so
its rates are averages since the process started (the header says which).

On a terminal the frame is redrawn in place with ANSI escapes; otherwise (a pipe, a file) each
frame is printed after the last one, separated by a blank line. ``--once`` prints one frame
and exits (1 when the address does not answer); ``--count N`` stops after N frames. A server
that goes away is reported and retried every interval until Ctrl-C.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import socket
import sys
import time

DEFAULT_INTERVAL = 1.0
TIMEOUT = 3.0
#: A reply bigger than any stats group a memcached or router sends.
MAX_REPLY_BYTES = 16 * 1024 * 1024

#: A server's operations by command: (label, counters summed).
SERVER_COMMANDS = (
    ("get", ("cmd_get",)), ("set", ("cmd_set",)),
    ("delete", ("delete_hits", "delete_misses")), ("incr", ("incr_hits", "incr_misses")),
    ("decr", ("decr_hits", "decr_misses")), ("cas", ("cas_hits", "cas_misses", "cas_badval")),
    ("touch", ("cmd_touch",)), ("flush", ("cmd_flush",)), ("meta", ("cmd_meta",)),
)
#: ``stats servers`` fields that are not reply counts.
_DESTINATION_FIELDS = frozenset(("avg_latency_us", "pending_reqs", "inflight_reqs"))
_DESTINATION_STATES = ("up", "down", "new", "closed")
_FIELD = re.compile(r"([A-Za-z_][\w-]*):(-?[0-9.]+)")


class Unreachable(Exception):
    """The address did not answer (refused, timed out, closed, or not a memcached)."""


class Refused(Exception):
    """The target answered a stats request with an error line (an unknown group)."""


# -- talking to the target --------------------------------------------------------------------

def parse_address(text: str):
    """``HOST:PORT``, ``[v6]:PORT``, ``PORT`` (loopback) or a unix socket path
    (``/path`` or ``unix:/path``). Returns (family, address)."""
    if text.startswith("unix:"):
        return socket.AF_UNIX, text[5:]
    if text.startswith("/") or text.startswith("./"):
        return socket.AF_UNIX, text
    if text.isdigit():
        text = "127.0.0.1:" + text
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if not 0 < int(port) <= 65535:
        raise ValueError(f"port {port} of {text!r} is not between 1 and 65535")
    if host.startswith("[") and host.endswith("]"):
        return socket.AF_INET6, (host[1:-1], int(port))
    return socket.AF_INET, (host, int(port))


class StatsClient:
    """One blocking connection; every failure becomes Unreachable (and a reconnect)."""

    def __init__(self, address: str, timeout: float = TIMEOUT) -> None:
        self.name = address
        self.family, self.address = parse_address(address)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = b""
        self.received = 0  # bytes of the reply being read

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        if self.sock is None:
            try:
                if self.family == socket.AF_UNIX:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.settimeout(self.timeout)
                    sock.connect(self.address)
                else:
                    sock = socket.create_connection(self.address, timeout=self.timeout)
            except OSError as exc:
                raise Unreachable(_reason(exc)) from None
            self.sock = sock
        return self.sock

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)  # type: ignore[union-attr]
        if not chunk:
            raise Unreachable("connection closed by the server")
        self.received += len(chunk)
        if self.received > MAX_REPLY_BYTES:  # something that is not a memcached: stop reading
            raise Unreachable(f"not a memcached or router: a reply over {MAX_REPLY_BYTES} bytes")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._receive()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, count: int) -> bytes:
        while len(self.buf) < count:
            self._receive()
        data, self.buf = self.buf[:count], self.buf[count:]
        return data

    def request(self, line: bytes) -> list[bytes]:
        """Send one command; return its reply lines up to END (VALUE data kept whole), or
        the one line of an error or other single-line reply."""
        sock = self._connect()
        self.received = 0
        try:
            sock.sendall(line + b"\r\n")
            lines = []
            while True:
                reply = self._line()
                if reply == b"END":
                    return lines
                if reply.startswith(b"VALUE "):
                    lines.append(reply)
                    lines.append(self._exactly(int(reply.split()[3]) + 2)[:-2])
                elif reply.startswith(b"STAT "):
                    lines.append(reply)
                else:
                    return lines + [reply]
        except (OSError, ValueError, IndexError) as exc:
            self.close()
            raise Unreachable(_reason(exc)) from None
        except Unreachable:
            self.close()
            raise

    def stats(self, group: str = "") -> dict[str, str]:
        """``stats [group]`` as a dict; Refused when the target answers something else."""
        command = b"stats" + (b" " + group.encode() if group else b"")
        pairs: dict[str, str] = {}
        for line in self.request(command):
            if not line.startswith(b"STAT "):
                raise Refused(line.decode("latin-1"))
            _, _, rest = line.partition(b" ")
            name, _, value = rest.partition(b" ")
            pairs[name.decode("latin-1")] = value.decode("latin-1")
        return pairs

    def stats_or_none(self, group: str) -> dict[str, str] | None:
        """A stats group the target may not know (``None`` then)."""
        try:
            return self.stats(group)
        except Refused:
            return None

    def get(self, key: str) -> str | None:
        lines = self.request(b"get " + key.encode())
        if len(lines) >= 2 and lines[0].startswith(b"VALUE "):
            return lines[1].decode("latin-1")
        return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# -- samples ----------------------------------------------------------------------------------

class Sample:
    __slots__ = ("kind", "at", "stats", "servers", "suspects", "md5", "config_file",
                 "malloced", "own_gets")

    def __init__(self, kind: str, at: float, stats: dict[str, str]) -> None:
        self.kind = kind
        self.at = at
        self.stats = stats
        self.servers: dict[str, str] = {}
        self.suspects: dict[str, str] = {}
        self.md5: str | None = None
        self.config_file: str | None = None
        self.malloced: int | None = None
        #: gets pymc top itself sent (router admin keys) after this sample's stats
        self.own_gets = 0


def detect(client: StatsClient, stats: dict[str, str]) -> str:
    """"router" when the stats have mcrouter's fields or ``get __mcrouter__.version``
    answers, else "server"."""
    if "num_servers" in stats or stats.get("version", "").startswith("mcrouter"):
        return "router"
    if "limit_maxbytes" in stats or "curr_items" in stats:
        return "server"
    version = client.get("__mcrouter__.version")
    return "router" if version else "server"


def take_sample(client: StatsClient, kind: str | None,
                previous: Sample | None = None) -> Sample:
    at = time.monotonic()
    stats = None
    if kind is None:
        stats = _stats(client, "")
        kind = detect(client, stats)
    if kind == "router":
        sample = Sample(kind, at, _stats(client, "all"))
        sample.servers = client.stats_or_none("servers") or {}
        sample.suspects = client.stats_or_none("suspect_servers") or {}
        s, before = sample.stats, previous.stats if previous is not None else {}
        if (previous is None or previous.kind != "router"
                or s.get("config_last_success") != before.get("config_last_success")
                or _int(s.get("config_age")) < _int(before.get("config_age"))):
            # The admin keys are gets the router counts in cmd_get_count: ask them only on
            # the first sample and after a reload; the next frame takes them out of its rate.
            sample.md5 = client.get("__mcrouter__.config_md5_digest")
            sample.config_file = client.get("__mcrouter__.config_file")
            sample.own_gets = 2
        else:
            sample.md5, sample.config_file = previous.md5, previous.config_file
        return sample
    sample = Sample(kind, at, stats if stats is not None else _stats(client, ""))
    slabs = client.stats_or_none("slabs")
    if slabs and "total_malloced" in slabs:
        sample.malloced = _int(slabs["total_malloced"])
    return sample


def _stats(client: StatsClient, group: str) -> dict[str, str]:
    try:
        return client.stats(group)
    except Refused as exc:
        raise Unreachable(f"not a memcached or router: `stats {group}` answered "
                          f"{exc}".replace("  ", " ")) from None


# -- numbers ----------------------------------------------------------------------------------

def _int(value) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


class Rates:
    """Deltas and per-second rates between two samples, or averages over the uptime when
    there is no usable previous sample."""

    def __init__(self, previous: Sample | None, current: Sample) -> None:
        self.current = current
        self.previous = previous
        uptime = _float(current.stats.get("uptime"))
        if previous is not None and previous.kind == current.kind:
            self.seconds = max(current.at - previous.at, 1e-6)
            restarted = (_float(previous.stats.get("uptime")) > uptime + 1
                         or previous.stats.get("pid") != current.stats.get("pid"))
            self.interval = not restarted
        else:
            self.interval = False
        if not self.interval:
            self.seconds = max(uptime, 1.0)

    def describe(self) -> str:
        if self.interval:
            return f"rates over the last {self.seconds:.1f} s"
        return "rates: averages since start (no previous sample yet)"

    def total(self, names, source: str = "stats", key: str | None = None) -> int:
        data = self._data(self.current, source, key)
        return sum(_int(data.get(name)) for name in names)

    def delta(self, names, source: str = "stats", key: str | None = None) -> int | None:
        if not self.interval:
            return None
        now = self.total(names, source, key)
        before = sum(_int(self._data(self.previous, source, key).get(name)) for name in names)
        if now < before:
            return None  # counters reset: no delta
        if source == "stats" and "cmd_get_count" in names:
            before += self.previous.own_gets  # type: ignore[union-attr]
        return max(0, now - before)

    def rate(self, names, source: str = "stats", key: str | None = None) -> float:
        delta = self.delta(names, source, key)
        if delta is None:
            if self.interval:
                return 0.0
            return self.total(names, source, key) / self.seconds
        return delta / self.seconds

    @staticmethod
    def _data(sample, source: str, key: str | None) -> dict:
        if sample is None:
            return {}
        if source == "stats":
            return sample.stats
        if source == "results":  # one destination's reply counts, or all of them summed
            return results_of(sample, key)
        raise ValueError(source)


def row(label: str, rates: Rates, names, source: str = "stats", key: str | None = None,
        width: int = 14) -> str:
    delta = rates.delta(names, source, key)
    return "%-*s %12s %10s %12d" % (
        width, label, "%.1f/s" % rates.rate(names, source, key),
        "-" if delta is None else "+%d" % delta, rates.total(names, source, key))


def table_header(first: str, width: int = 14) -> str:
    return "%-*s %12s %10s %12s" % (width, first, "rate", "last", "total")


# -- routers: destinations ----------------------------------------------------------------------

def parse_destination(text: str) -> dict:
    """One ``stats servers`` value: latency, pending, state, TKO and reply counts."""
    fields = {name: value for name, value in _FIELD.findall(text)}
    results = {name: _int(value) for name, value in fields.items()
               if name not in _DESTINATION_FIELDS and name not in _DESTINATION_STATES}
    state = next((name for name in _DESTINATION_STATES if name in fields), "?")
    tko = "hard" if "hard_tko" in text else "soft" if "soft_tko" in text else None
    return {"latency": _float(fields.get("avg_latency_us")),
            "pending": _int(fields.get("pending_reqs")), "state": state, "tko": tko,
            "results": results}


def destination_name(key: str) -> str:
    """``10.0.0.1:11211:ascii:plain:notcompressed-1000`` -> ``10.0.0.1:11211``."""
    parts = key.rsplit(":", 3)
    return parts[0] if len(parts) == 4 else key


def results_of(sample: Sample, key: str | None) -> dict[str, int]:
    totals: dict[str, int] = {}
    for name, text in sample.servers.items():
        if key is not None and name != key:
            continue
        for kind, count in parse_destination(text)["results"].items():
            totals[kind] = totals.get(kind, 0) + count
    return totals


# -- frames -----------------------------------------------------------------------------------

def render(address: str, previous: Sample | None, current: Sample) -> list[str]:
    rates = Rates(previous, current)
    if current.kind == "router":
        return render_router(address, rates)
    return render_server(address, rates)


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def render_server(address: str, rates: Rates) -> list[str]:
    sample = rates.current
    s = sample.stats
    implementation = " (pymc-server)" if s.get("libevent") == "gevent" else ""
    lines = [
        f"pymc top {address}  memcached {s.get('version', '?')}{implementation}  "
        f"pid {s.get('pid', '?')}  uptime {human_duration(_float(s.get('uptime')))}  "
        f"{_stamp()}",
        f"connections {_int(s.get('curr_connections'))} open (this one included), "
        f"{_int(s.get('total_connections'))} total, "
        f"{_int(s.get('rejected_connections'))} rejected (max {s.get('max_connections', '?')})"
        f"   threads {s.get('threads', '?')}",
    ]
    used, limit = _int(s.get("bytes")), _int(s.get("limit_maxbytes"))
    memory = f"memory {human_bytes(used)} used of {human_bytes(limit)}"
    if limit:
        memory += f" ({100.0 * used / limit:.1f}%)"
    if sample.malloced is not None:
        memory += f", {human_bytes(sample.malloced)} in slab pages"
    lines.append(f"items {_int(s.get('curr_items'))} (stored since start "
                 f"{_int(s.get('total_items'))})   {memory}")
    hits, misses = ("get_hits",), ("get_misses",)
    overall = _ratio(rates.total(hits), rates.total(misses))
    if rates.interval:
        recent = _ratio(rates.delta(hits) or 0, rates.delta(misses) or 0)
        ratio = f"hit ratio {recent} (last {rates.seconds:.1f} s), {overall} since start"
    else:
        ratio = f"hit ratio {overall} since start"
    lines.append(
        f"{ratio}   evictions {rates.total(('evictions',))} "
        f"({rates.rate(('evictions',)):.1f}/s)   reclaimed {rates.total(('reclaimed',))}")
    lines.append(f"network in {human_bytes(rates.rate(('bytes_read',)))}/s, "
                 f"out {human_bytes(rates.rate(('bytes_written',)))}/s")
    lines += ["", rates.describe(), table_header("command")]
    for label, names in SERVER_COMMANDS:
        lines.append(row(label, rates, names))
    lines.append(row("  get hits", rates, hits))
    lines.append(row("  get misses", rates, misses))
    return lines


def _ratio(hits: int, misses: int) -> str:
    total = hits + misses
    return "-" if not total else f"{100.0 * hits / total:.1f}%"


def render_router(address: str, rates: Rates) -> list[str]:
    sample = rates.current
    s = sample.stats
    lines = [
        f"pymc top {address}  router {s.get('version', '?')}  pid {s.get('pid', '?')}  "
        f"uptime {human_duration(_float(s.get('uptime')))}  {_stamp()}",
    ]
    config = f"config md5 {sample.md5 or '?'}"
    if "config_age" in s:
        config += f"  age {human_duration(_float(s['config_age']))}"
    config += f"  reload failures {_int(s.get('config_failures'))}"
    if sample.config_file:
        config += f"  file {sample.config_file}"
    lines.append(config)
    lines.append(
        f"clients {_int(s.get('num_client_connections'))} connected, this one included "
        f"({_int(s.get('num_connections_opened'))} opened)   requests in progress "
        f"{max(0, _int(s.get('proxy_reqs_processing')) - 1)}   pending to servers "
        f"{_int(s.get('destination_pending_reqs'))}   avg latency "
        f"{_float(s.get('duration_us')):.0f} us")
    lines.append(
        f"servers {_int(s.get('num_servers'))}: {_int(s.get('num_servers_up'))} up, "
        f"{_int(s.get('num_servers_down'))} down, {_int(s.get('num_servers_new'))} new, "
        f"{_int(s.get('num_servers_closed'))} closed   TKO soft "
        f"{_int(s.get('num_soft_tko_count'))} hard {_int(s.get('num_hard_tko_count'))}   "
        f"suspect {_int(s.get('num_suspect_servers'))}")
    lines += ["", rates.describe(), table_header("requests")]
    commands = sorted(name for name in s if name.startswith("cmd_") and name.endswith("_count"))
    for name in commands:
        lines.append(row(name[4:-6], rates, (name,)))
    lines.append(row("all", rates, tuple(commands)))
    kinds = sorted(results_of(sample, None))
    lines += ["", table_header("replies")]
    for kind in kinds:
        lines.append(row(kind, rates, (kind,), "results"))
    if not kinds:
        lines.append("(no replies from servers yet)")
    errors = [name for name in ("result_error", "result_connect_error",
                                "result_connect_timeout", "result_data_timeout",
                                "result_tko", "result_busy") if name in s]
    if errors:
        lines.append("errors: " + "  ".join(
            f"{name[7:]} {_int(s[name])}" for name in errors))
    lines += ["", "%-24s %-16s %10s %8s %10s  %s" % (
        "server", "state", "latency", "pending", "req/s", "replies")]
    for key, text in sample.servers.items():
        info = parse_destination(text)
        name = destination_name(key)
        state = f"{info['tko']} TKO" if info["tko"] else info["state"]
        suspect = sample.suspects.get(name)
        if suspect is not None:
            failures = dict(_FIELD.findall(suspect)).get("num_failures")
            if failures is not None:
                state += f" ({failures} fail)"
        replies = " ".join(f"{kind}:{count}" for kind, count in sorted(info["results"].items()))
        total = tuple(info["results"])
        lines.append("%-24s %-16s %10s %8d %10s  %s" % (
            name, state, "%.0f us" % info["latency"], info["pending"],
            "%.1f" % rates.rate(total, "results", key), replies or "-"))
    if not sample.servers:
        lines.append("(no servers in the config)")
    return lines


# -- the screen -------------------------------------------------------------------------------

class Screen:
    """Redraws in place on a terminal, appends frames elsewhere."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.frames = 0

    def show(self, lines: list[str]) -> None:
        if self.tty:
            width = shutil.get_terminal_size().columns
            height = shutil.get_terminal_size().lines
            body = "".join(line[:width] + "\x1b[K\n" for line in lines[:max(1, height - 1)])
            prefix = "\x1b[?25l\x1b[H\x1b[2J" if self.frames == 0 else "\x1b[H"
            self.stream.write(prefix + body + "\x1b[J")
        else:
            if self.frames:
                self.stream.write("\n")
            self.stream.write("".join(line + "\n" for line in lines))
        self.stream.flush()
        self.frames += 1

    def close(self) -> None:
        if self.tty and self.frames:
            self.stream.write("\x1b[?25h")
            self.stream.flush()


# -- main -------------------------------------------------------------------------------------

def run(address: str, interval: float, count: int | None, screen: Screen,
        timeout: float = TIMEOUT) -> int:
    client = StatsClient(address, timeout)
    previous: Sample | None = None
    kind: str | None = None
    frames = 0
    failed_since: str | None = None
    status = 0
    try:
        while count is None or frames < count:
            started = time.monotonic()
            try:
                current = take_sample(client, kind, previous)
            except Unreachable as exc:
                if count == 1:
                    print(f"pymc top: cannot read stats from {address}: {exc}",
                          file=sys.stderr)
                    return 1
                failed_since = failed_since or _stamp()
                screen.show([f"pymc top {address}  {_stamp()}", "",
                             f"cannot read stats from {address}: {exc}",
                             f"retrying every {interval:g} s (unreachable since "
                             f"{failed_since}; Ctrl-C to quit)"])
                previous, kind = None, None  # it may come back as something else
                status = 1
            else:
                kind = current.kind
                failed_since = None
                status = 0
                screen.show(render(address, previous, current))
                previous = current
            frames += 1
            if count is not None and frames >= count:
                break
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        client.close()
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pymc top",
        description="Live stats of a memcached/pymc-server or a pymc-router/mcrouter: "
                    "rates by command, hit ratio, memory, and for a router its servers' "
                    "states and replies.")
    parser.add_argument("address", metavar="HOST:PORT",
                        help="server or router to watch (also PORT alone, or a unix "
                             "socket path)")
    parser.add_argument("--interval", "-i", type=float, default=DEFAULT_INTERVAL,
                        help="seconds between refreshes (default: 1)")
    parser.add_argument("--once", action="store_true",
                        help="print one frame and exit (1 if the address does not answer)")
    parser.add_argument("--count", "-n", type=int,
                        help="stop after this many frames")
    parser.add_argument("--timeout", type=float, default=TIMEOUT,
                        help="seconds to wait for an answer (default: 3)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        parse_address(args.address)
    except ValueError as exc:
        parser.error(str(exc))
    for flag, value in (("--interval", args.interval), ("--timeout", args.timeout)):
        if not 0 < value < math.inf:  # NaN fails too
            parser.error(f"{flag} must be a number of seconds greater than 0")
    count = 1 if args.once else args.count
    if count is not None and count < 1:
        parser.error("--count must be at least 1")
    screen = Screen()
    try:
        return run(args.address, args.interval, count, screen, args.timeout)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `pymc top ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    finally:
        try:
            screen.close()
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    sys.exit(main())
