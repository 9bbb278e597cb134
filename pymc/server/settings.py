"""pymc-server settings and memcached's command line.

Flags, defaults and the start-up checks (and their messages) follow memcached 1.6.18, so that
tools which spawn ``memcached`` can spawn ``pymc-server`` instead. Bad arguments raise
UsageError, which the CLI prints before exiting with memcached's EX_USAGE (64).
"""

from __future__ import annotations

import getopt
from dataclasses import dataclass, field

from .. import MEMCACHED_VERSION, __version__

EX_USAGE = 64
MB = 1024 * 1024
PAGE_BYTES = MB


class UsageError(Exception):
    """A command-line problem; the message says what to change."""


#: -o options we act on (name -> parser of the value). Values land in Settings.extended.
#: Options memcached knows that only tune its C internals are accepted and recorded.
HARMLESS_OPTIONS = frozenset((
    "maxconns_fast", "no_maxconns_fast", "hashpower", "no_hashexpand", "slab_reassign",
    "no_slab_reassign", "slab_automove", "no_slab_automove", "slab_automove_ratio",
    "slab_automove_window", "tail_repair_time", "hash_algorithm", "lru_crawler",
    "no_lru_crawler", "lru_crawler_sleep", "lru_crawler_tocrawl", "lru_maintainer",
    "no_lru_maintainer", "temporary_ttl", "watcher_logbuf_size", "worker_logbuf_size",
    "slab_sizes", "track_sizes", "no_inline_ascii_resp", "inline_ascii_resp", "modern",
    "no_modern", "no_chunked_items", "no_drop_privileges", "drop_privileges",
    "resp_obj_mem_limit", "read_buf_mem_limit", "relaxed_privileges",
))


@dataclass
class Settings:
    port: int = 11211
    listen: str = "127.0.0.1"
    unix_socket: str | None = None
    udp_port: int = 0
    memory_limit_mb: int = 64
    evict: bool = True
    max_connections: int = 1024
    threads: int = 4
    cas_enabled: bool = True
    flush_enabled: bool = True
    shutdown_command: bool = False
    item_size_max: int = MB
    growth_factor: float = 1.25
    chunk_size: int = 48
    slab_chunk_max: int = PAGE_BYTES // 2
    reqs_per_event: int = 20
    backlog: int = 1024
    protocol: str = "auto"
    auth_file: str | None = None
    verbosity: int = 0
    idle_timeout: int = 0
    hot_lru_pct: int = 20
    warm_lru_pct: int = 40
    hot_max_factor: float = 0.2
    warm_max_factor: float = 2.0
    debugtime: bool = False
    slab_automove: int = 1
    lru_crawler: bool = True
    user: str | None = None
    pid_file: str | None = None
    daemonize: bool = False
    metrics_port: int = 0  # 0: no /metrics endpoint
    extended: dict[str, str | None] = field(default_factory=dict)

    @property
    def limit_bytes(self) -> int:
        return self.memory_limit_mb * MB


SHORT_OPTIONS = "a:Ap:s:U:m:Mc:hiVkvl:dru:P:f:n:t:D:B:I:Y:o:b:e:LSZN:R:CFX"
LONG_OPTIONS = [
    "unix-mask=", "enable-shutdown", "port=", "unix-socket=", "udp-port=", "memory-limit=",
    "disable-evictions", "conn-limit=", "help", "license", "version", "enable-coredumps",
    "verbose", "listen=", "daemon", "enable-largepages", "user=", "pidfile=",
    "slab-growth-factor=", "slab-min-size=", "threads=", "protocol=", "max-item-size=",
    "auth-file=", "extended=", "listen-backlog=", "memory-file=", "disable-cas",
    "disable-flush-all", "max-reqs-per-event=", "disable-dumping", "napi-ids=", "enable-ssl",
    "metrics-port=",
]
_LONG_TO_SHORT = {
    "--unix-mask": "-a", "--enable-shutdown": "-A", "--port": "-p", "--unix-socket": "-s",
    "--udp-port": "-U", "--memory-limit": "-m", "--disable-evictions": "-M",
    "--conn-limit": "-c", "--help": "-h", "--license": "-i", "--version": "-V",
    "--enable-coredumps": "-r", "--verbose": "-v", "--listen": "-l", "--daemon": "-d",
    "--enable-largepages": "-L", "--user": "-u", "--pidfile": "-P",
    "--slab-growth-factor": "-f", "--slab-min-size": "-n", "--threads": "-t",
    "--protocol": "-B", "--max-item-size": "-I", "--auth-file": "-Y", "--extended": "-o",
    "--listen-backlog": "-b", "--memory-file": "-e", "--disable-cas": "-C",
    "--disable-flush-all": "-F", "--max-reqs-per-event": "-R", "--disable-dumping": "-X",
    "--napi-ids": "-N", "--enable-ssl": "-Z",
}


def _int(value: str, what: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise UsageError(f"{what} must be a whole number, got {value!r}") from None


def _positive(value: str, flag: str, what: str) -> int:
    number = _int(value, flag)
    if number <= 0:
        raise UsageError(f"{what} must be greater than 0")  # memcached's wording
    return number


def parse_size(value: str) -> int:
    """memcached's -I value: bytes, or with a k/m suffix."""
    unit = value[-1:].lower()
    if unit in ("k", "m"):
        return _int(value[:-1], "-I") * (1024 if unit == "k" else MB)
    return _int(value, "-I")


def parse_args(argv: list[str]) -> tuple[Settings, str | None]:
    """Parse memcached's flags. Returns (settings, action) where action is "help",
    "version" or None."""
    try:
        options, rest = getopt.gnu_getopt(argv, SHORT_OPTIONS, LONG_OPTIONS)
    except getopt.GetoptError as exc:
        raise UsageError(f"{exc}; see pymc-server -h") from None
    if rest:
        raise UsageError(f"unexpected argument {rest[0]!r}; see pymc-server -h")
    settings = Settings()
    chunk_max_set = False
    for flag, value in options:
        flag = _LONG_TO_SHORT.get(flag, flag)
        if flag == "-h":
            return settings, "help"
        if flag == "-V":
            return settings, "version"
        if flag == "-i":
            return settings, "license"
        if flag == "-p":
            settings.port = _int(value, "-p")
        elif flag == "-l":
            settings.listen = value
        elif flag == "-s":
            settings.unix_socket = value
        elif flag == "-U":
            settings.udp_port = _int(value, "-U")
        elif flag == "-m":
            settings.memory_limit_mb = _parse_memory(value)
        elif flag == "-M":
            settings.evict = False
        elif flag == "-c":
            settings.max_connections = _positive(value, "-c", "Maximum connections")
        elif flag == "-t":
            settings.threads = _positive(value, "-t", "Number of threads")
        elif flag == "-C":
            settings.cas_enabled = False
        elif flag == "-F":
            settings.flush_enabled = False
        elif flag == "-A":
            settings.shutdown_command = True
        elif flag == "-I":
            settings.item_size_max = parse_size(value)
        elif flag == "-f":
            settings.growth_factor = _parse_factor(value)
        elif flag == "-n":
            settings.chunk_size = _positive(value, "-n", "Chunk size")
        elif flag == "-R":
            settings.reqs_per_event = _positive(value, "-R", "Number of requests per event")
        elif flag == "-B":
            if value not in ("auto", "binary", "ascii"):
                raise UsageError(f'Invalid value for binding protocol: {value}\n'
                                 ' -- should be one of auto, binary, or ascii')
            settings.protocol = value
        elif flag == "-Y":
            settings.auth_file = value
        elif flag == "-v":
            settings.verbosity += 1
        elif flag == "-b":
            settings.backlog = _int(value, "-b")
        elif flag == "-u":
            settings.user = value
        elif flag == "-P":
            settings.pid_file = value
        elif flag == "-d":
            settings.daemonize = True
        elif flag == "-o":
            chunk_max_set |= _apply_extended(settings, value)
        elif flag == "--metrics-port":
            settings.metrics_port = _metrics_port(value, "--metrics-port")
        elif flag == "-S":
            raise UsageError("This server is not built with SASL support.")
        elif flag == "-Z":
            raise UsageError("This server is not built with TLS support.")
        # -a -r -k -L -D -e -N -X: accepted; they tune things a Python server does not have.
    _check(settings, chunk_max_set)
    return settings, None


def _metrics_port(value: str, flag: str) -> int:
    from ..metrics import MetricsPortError, parse_port
    try:
        return parse_port(value, flag)
    except MetricsPortError as exc:
        raise UsageError(str(exc)) from None


def _parse_memory(value: str) -> int:
    unit = value[-1:].lower()
    scale = {"k": 1 / 1024, "m": 1, "g": 1024}.get(unit)
    if scale is None:
        return _int(value, "-m")
    return max(1, int(_int(value[:-1], "-m") * scale))


def _parse_factor(value: str) -> float:
    try:
        factor = float(value)
    except ValueError:
        raise UsageError("Factor must be a number, got %r" % value) from None
    if factor <= 1.0:
        raise UsageError("Factor must be greater than 1")
    return factor


def _apply_extended(settings: Settings, spec: str) -> bool:
    """Apply one -o list. Returns True when slab_chunk_max was given."""
    chunk_max_set = False
    for part in spec.split(","):
        if not part:
            continue
        name, _, value = part.partition("=")
        has_value = "=" in part
        if name == "idle_timeout":
            settings.idle_timeout = _int(value, "idle_timeout")
        elif name == "slab_chunk_max":
            settings.slab_chunk_max = _int(value, "slab_chunk_max")
            chunk_max_set = True
        elif name == "no_chunked_items":
            settings.slab_chunk_max = PAGE_BYTES
            chunk_max_set = True
        elif name == "hot_lru_pct":
            settings.hot_lru_pct = _int(value, "hot_lru_pct")
        elif name == "warm_lru_pct":
            settings.warm_lru_pct = _int(value, "warm_lru_pct")
        elif name == "hot_max_factor":
            settings.hot_max_factor = float(value)
        elif name == "warm_max_factor":
            settings.warm_max_factor = float(value)
        elif name == "debugtime":
            settings.debugtime = True
        elif name == "metrics_port":
            settings.metrics_port = _metrics_port(value, "-o metrics_port")
        elif name == "slab_automove":
            settings.slab_automove = _int(value or "1", "slab_automove")
        elif name == "no_slab_automove":
            settings.slab_automove = 0
        elif name == "no_lru_crawler":
            settings.lru_crawler = False
        elif name not in HARMLESS_OPTIONS:
            raise UsageError(f'Illegal suboption "{part}"')
        settings.extended[name] = value if has_value else None
    return chunk_max_set


def _check(settings: Settings, chunk_max_set: bool) -> None:
    """memcached's start-up checks, with its messages."""
    if not 0 <= settings.port <= 65535:
        raise UsageError(f"Invalid port number: \"{settings.port}\"")
    if settings.item_size_max < 1024:
        raise UsageError("Item max size cannot be less than 1024 bytes.")
    if settings.item_size_max > settings.limit_bytes // 2:
        raise UsageError("Cannot set item size limit higher than 1/2 of memory max.")
    if settings.item_size_max > 1024 * MB:
        raise UsageError("Cannot set item size limit higher than a gigabyte.")
    if settings.item_size_max > MB and not chunk_max_set:
        settings.slab_chunk_max = PAGE_BYTES // 2
    if settings.slab_chunk_max > settings.item_size_max:
        raise UsageError(f"slab_chunk_max (bytes: {settings.slab_chunk_max}) cannot be larger "
                         f"than -I (item_size_max {settings.item_size_max})")
    if settings.slab_chunk_max <= 0 or settings.item_size_max % settings.slab_chunk_max:
        raise UsageError(f"-I (item_size_max: {settings.item_size_max}) must be evenly divisible"
                         f" by slab_chunk_max (bytes: {settings.slab_chunk_max})")
    if PAGE_BYTES % settings.slab_chunk_max:
        raise UsageError(f"slab_chunk_max (bytes: {settings.slab_chunk_max}) must divide evenly "
                         f"into {PAGE_BYTES} (slab_page_size)")
    if settings.hot_lru_pct + settings.warm_lru_pct > 80:
        raise UsageError("hot_lru_pct + warm_lru_pct cannot be more than 80% combined")


def version_line() -> str:
    return f"memcached {MEMCACHED_VERSION} (pymc-server {__version__})"


HELP = """memcached {mc} (pymc-server {ver}: a memcached-compatible server in pure Python)
-p, --port=<num>          TCP port to listen on (default: 11211)
-s, --unix-socket=<file>  UNIX socket to listen on (disables network support)
-A, --enable-shutdown     enable ascii "shutdown" command
-a, --unix-mask=<mask>    access mask for UNIX socket, in octal (accepted, ignored)
-l, --listen=<addr>       interface to listen on (default: 127.0.0.1)
-U, --udp-port=<num>      UDP port to listen on (UDP is not served; only 0 is meaningful)
-d, --daemon              run as a daemon
-u, --user=<user>         accepted for compatibility
-m, --memory-limit=<num>  item memory in megabytes (default: 64)
-M, --disable-evictions   return error on memory exhausted instead of evicting
-c, --conn-limit=<num>    max simultaneous connections (default: 1024)
-v, --verbose             verbose (print errors/warnings while in event loop)
-vv                       very verbose (also print client commands/responses)
-vvv                      extremely verbose (internal state transitions)
-h, --help                print this help and exit
-i, --license             print license information and exit
-V, --version             print version and exit
-P, --pidfile=<file>      save PID in <file>, only used with -d option
-f, --slab-growth-factor=<num> chunk size growth factor (default: 1.25)
-n, --slab-min-size=<bytes> min space used for key+value+flags (default: 48)
-t, --threads=<num>       number of threads to use (accepted; pymc-server uses one)
-B, --protocol=<name>     protocol - one of ascii, binary, or auto (default: auto-negotiate)
-I, --max-item-size=<num> adjusts max item size (default: 1m, min: 1k, max: 1024m)
-Y, --auth-file=<file>    (EXPERIMENTAL) enable ASCII protocol authentication. format:
                          user:pass\\nuser2:pass2\\n
-C, --disable-cas         disable use of CAS
-F, --disable-flush-all   disable flush_all command
-R, --max-reqs-per-event  maximum number of requests per event (default: 20)
-b, --listen-backlog=<num> set the backlog queue limit (default: 1024)
--metrics-port=<num>      serve Prometheus metrics at http://<first -l address>:<num>/metrics
                          (memcached_exporter's metric names; default 0: not served)
-o, --extended            comma separated list of extended options
                          - idle_timeout:          timeout for idle connections
                          - slab_chunk_max:        maximum slab size in bytes
                          - hot_lru_pct, warm_lru_pct, hot_max_factor, warm_max_factor
                          - modern, no_modern, slab_automove, lru_crawler, ... (accepted)
                          - debugtime:             enable the debug command
                                                   'debugtime <seconds>' (shifts the clock)
                          - metrics_port=<num>:    the same as --metrics-port
"""


def help_text() -> str:
    return HELP.format(mc=MEMCACHED_VERSION, ver=__version__)
