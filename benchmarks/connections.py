#!/usr/bin/env python3
"""Hold 10,000 idle client connections open against pymc-router while an active client is served.

One command:  python benchmarks/connections.py [--connections N] [--duration S]

In one run:

  1. start one backend (memcached -t 1 -m 64, or pymc-server when memcached is not installed)
     and one pymc-router in front of it (PoolRoute|A), both pinned to CPU 0; preload 10k keys;
  2. baseline: one active client (a plain blocking socket in this process, pinned to CPU 1)
     does get/set round trips (90/10, 100-byte values) for --duration seconds
     -> ops/s, latency p50/p99/p99.9/max, errors, misses;
  3. open N idle client connections (default 10,000) in batches, checking that the router
     accepts each batch (its `stats detailed` num_client_connections) and answers `version`
     on a sample; then a fraction of them (--live-fraction) send one `get` each;
  4. with all N held open, the same active-client measurement; ratio to the baseline,
     router RSS before/after opening (bytes per connection), router CPU while idle;
  5. close the idle connections, wait until the router's count falls back, stop everything.

Pass: every connection accepted and live, the active client served with no errors or misses
in both phases, its p99 with N idle connections under P99_FACTOR x the baseline p99, and the
router's connection count back to its starting value after the close.

Process handling, the load generator (preload only) and the noise check come from
benchmarks/run.py, the router process from benchmarks/router.py.  See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import random
import resource
import shlex
import shutil
import socket
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (benchmarks/run.py)
from run import (  # noqa: E402
    BUILD_DIR, HOST, PRELOAD_TIMEOUT, BenchError, Server, StartError, finish_report, fmt_num,
    log, log_tails, parse_stats, print_table_rows, run_loadgen, stop_all,
)
from router import PymcRouter  # noqa: E402  (benchmarks/router.py)

SERVER_CPU = run.SERVER_CPU    # backend and pymc-router
CLIENT_CPU = run.CLIENT_CPU    # this process: the active client and the idle connections

PHASES = ["baseline", "held"]  # --only: the active-client measurements
DEFAULT_CONNECTIONS = 10_000
KEYS = 10_000
VALUE_SIZE = 100
VALUE = bytes(ord("a") + i % 26 for i in range(VALUE_SIZE))  # what loadgen's preload stores
SET_FRACTION = 0.10
P99_FACTOR = 10.0              # pass: held p99 < P99_FACTOR x baseline p99
BATCH = 500                    # connects per batch; below the router's listen backlog (1024)
FD_MARGIN = 256                # descriptors besides the idle connections, per process
REQUEST_TIMEOUT = 5.0          # seconds; one active-client request
CONNECT_TIMEOUT = 10.0
ACCEPT_TIMEOUT = 30.0          # seconds without the router's count moving
CLOSE_TIMEOUT = 30.0
IDLE_CPU_SECONDS = 2.0
DEFAULT_JSON = BUILD_DIR / "connections-results.json"


# --------------------------------------------------------------------------- small helpers


def key(i: int) -> bytes:
    return b"key:%08d" % i


def recv_until(sock: socket.socket, done, timeout: float) -> bytes:
    """Read until ``done(data)``; TimeoutError / ConnectionError otherwise."""
    data = b""
    deadline = time.monotonic() + timeout
    while not done(data):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"incomplete reply after {timeout:.0f}s: {data[:80]!r}")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed by the router (got {data[:80]!r})")
        data += chunk
    return data


def get_reply_done(data: bytes) -> bool:
    if data.startswith(b"VALUE "):
        eol = data.find(b"\r\n")
        if eol < 0:
            return False
        try:
            size = int(data[:eol].split()[3])
        except (IndexError, ValueError):
            return True  # malformed header: stop and let the caller count the error
        return len(data) >= eol + 2 + size + 2 + 5
    return data.endswith(b"\r\n")


def check_get(data: bytes, k: bytes) -> str:
    """'' for a hit with the expected value, 'miss' for END, else an error description."""
    if data == b"END\r\n":
        return "miss"
    expect = b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (k, VALUE_SIZE, VALUE)
    if data == expect:
        return ""
    return f"unexpected get reply {data[:80]!r}"


def percentile(sorted_vals: list, p: float):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, max(0, math.ceil(p * len(sorted_vals)) - 1))]


def own_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rss_mb(srv: Server):
    p = srv.real_process()
    try:
        return p.memory_info().rss / 2**20 if p is not None else None
    except psutil.Error:
        return None


def num_fds(srv: Server):
    p = srv.real_process()
    try:
        return p.num_fds() if p is not None else None
    except psutil.Error:
        return None


def fmt_us(v) -> str:
    return "-" if v is None else f"{v:,.0f}"


def fmt_ratio(v) -> str:
    return "-" if v is None else f"{v:.2f}"


# --------------------------------------------------------------------------- limits


def raise_nofile(n: int) -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by the router started afterwards);
    BenchError with what to do when the hard limit is too small for ``n`` connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + FD_MARGIN
    if hard != resource.RLIM_INFINITY and hard < need:
        raise BenchError(
            f"the open-files hard limit (ulimit -Hn) is {hard}, but {n:,} connections need at least "
            f"{need:,} descriptors in this process and in the router. Raise it before running, e.g. "
            f"as root `ulimit -n {max(need, 65536)}` in the same shell (or LimitNOFILE= in a systemd "
            f"unit, `nofile` in /etc/security/limits.conf, `--ulimit nofile=...` for docker), "
            f"or run with --connections {max(hard - FD_MARGIN, 1)}.")
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def check_ports(n: int) -> None:
    try:
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return
    if hi - lo + 1 < n + 100:
        raise BenchError(
            f"the ephemeral port range {lo}-{hi} has fewer than {n:,} ports; widen it "
            f"(sysctl -w net.ipv4.ip_local_port_range='1024 65535') or lower --connections")


# --------------------------------------------------------------------------- router control


class Control:
    """One persistent connection to the router for `stats detailed` (it counts as one of the
    router's client connections, the same one all the time)."""

    def __init__(self, port: int):
        self.port = port
        self.sock: socket.socket | None = None

    def stats(self) -> dict:
        for attempt in range(2):
            try:
                if self.sock is None:
                    self.sock = socket.create_connection((HOST, self.port), timeout=CONNECT_TIMEOUT)
                self.sock.sendall(b"stats detailed\r\n")
                raw = recv_until(self.sock, lambda d: d.endswith(b"END\r\n"), 30.0)
                break
            except OSError:
                self.close()
                if attempt:
                    raise
        return parse_stats(raw)

    def count(self) -> int:
        return int(self.stats()["num_client_connections"])

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def wait_count(ctl: Control, pred, timeout: float) -> tuple[int, float]:
    """Poll the router's client count until ``pred(count)``; (last count, seconds waited).
    The deadline restarts whenever the count moves (slow but progressing is not a failure)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    last = None
    while True:
        try:
            c = ctl.count()
        except (OSError, KeyError, ValueError) as e:
            raise BenchError(f"the router did not answer `stats detailed` on the control connection "
                             f"({type(e).__name__}: {e}); last count {last}") from e
        if pred(c):
            return c, time.monotonic() - t0
        if c != last:
            last, deadline = c, time.monotonic() + timeout
        if time.monotonic() > deadline:
            return c, time.monotonic() - t0
        time.sleep(0.02)


# --------------------------------------------------------------------------- active client


def active_run(port: int, duration: float, warmup: float, seed: int) -> dict:
    """One active client: blocking socket, one request in flight, 90% get / 10% set of the
    preloaded keys for warmup + duration seconds; latency of every measured request."""
    rng = random.Random(seed)
    lat_ns: list[int] = []
    counts = {"gets": 0, "sets": 0, "misses": 0, "errors": 0, "reconnects": 0}
    first_errors: list[str] = []
    sock = None
    perf = time.perf_counter_ns
    t_start = time.monotonic()
    t_measure = t_start + warmup
    t_end = t_measure + duration
    measured_from = None

    def error(msg: str) -> None:
        if measuring:
            counts["errors"] += 1
            if len(first_errors) < 5:
                first_errors.append(msg)

    while True:
        now = time.monotonic()
        if now >= t_end:
            break
        measuring = now >= t_measure
        if measuring and measured_from is None:
            measured_from = now
        if sock is None:
            try:
                sock = socket.create_connection((HOST, port), timeout=CONNECT_TIMEOUT)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as e:
                error(f"connect: {e}")
                counts["reconnects"] += 1
                sock = None
                time.sleep(0.1)
                continue
        i = rng.randrange(KEYS)
        k = key(i)
        is_set = rng.random() < SET_FRACTION
        try:
            if is_set:
                t0 = perf()
                sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (k, VALUE_SIZE, VALUE))
                data = recv_until(sock, lambda d: d.endswith(b"\r\n"), REQUEST_TIMEOUT)
                t1 = perf()
                problem = "" if data == b"STORED\r\n" else f"unexpected set reply {data[:80]!r}"
            else:
                t0 = perf()
                sock.sendall(b"get %s\r\n" % k)
                data = recv_until(sock, get_reply_done, REQUEST_TIMEOUT)
                t1 = perf()
                problem = check_get(data, k)
        except OSError as e:  # timeout, reset, closed: the stream is out of step, reconnect
            error(f"{'set' if is_set else 'get'}: {type(e).__name__}: {e}")
            sock.close()
            sock = None
            counts["reconnects"] += 1
            continue
        if not measuring:
            continue
        lat_ns.append(t1 - t0)
        counts["sets" if is_set else "gets"] += 1
        if problem == "miss":
            counts["misses"] += 1
        elif problem:
            error(problem)
    if sock is not None:
        sock.close()
    seconds = time.monotonic() - (measured_from or t_end)
    lat_ns.sort()
    us = [v / 1000 for v in (percentile(lat_ns, p) for p in (0.5, 0.99, 0.999)) if v is not None]
    out = {
        "requests": len(lat_ns), "seconds": round(seconds, 3),
        "ops_per_sec": len(lat_ns) / seconds if seconds > 0 else 0.0,
        **counts,
        "p50_us": us[0] if us else None, "p99_us": us[1] if us else None,
        "p999_us": us[2] if us else None,
        "max_us": lat_ns[-1] / 1000 if lat_ns else None,
        "mean_us": sum(lat_ns) / len(lat_ns) / 1000 if lat_ns else None,
    }
    if first_errors:
        out["first_errors"] = first_errors
    return out


def measure_active(label: str, router: Server, backend: Server, opts, seed: int) -> dict:
    """The active client --repeat times, plus up to --retries extra runs while other processes
    disturb it; keep the run with the lowest p99 (interference only makes latency worse)."""
    runs: list[dict] = []
    retries = opts.retries
    while True:
        tag = f" (run {len(runs) + 1})" if runs else ""
        log(f"[{label}] active client: {opts.duration:g}s of get/set round trips "
            f"after {opts.warmup:g}s warm-up ...{tag}")
        parts = {"router": router, "backend": backend}
        cpu0 = {k: s.cpu_seconds() for k, s in parts.items()}
        me0, sys0, t0 = own_cpu(), run.system_busy(), time.monotonic()
        r = active_run(router.port, opts.duration, opts.warmup, seed + len(runs))
        wall = time.monotonic() - t0
        cpu1 = {k: s.cpu_seconds() for k, s in parts.items()}
        me1, sys1 = own_cpu(), run.system_busy()
        r["cpu"] = {k: round((cpu1[k] - cpu0[k]) / wall, 3) for k in parts}
        r["cpu"]["client"] = round((me1 - me0) / wall, 3)
        other = (sys1[0] - sys0[0]) - sum(cpu1[k] - cpu0[k] for k in parts) - (me1 - me0)
        r["other_cpu"] = round(max(other / wall, 0.0), 3)
        r["steal_cpu"] = round((sys1[1] - sys0[1]) / wall, 3)
        if not router.alive():
            raise BenchError(f"pymc-router exited during the {label} measurement "
                             f"(see {router.log_path})")
        line = (f"[{label}] {fmt_num(r['ops_per_sec'])} ops/s, p50 {fmt_us(r['p50_us'])}us "
                f"p99 {fmt_us(r['p99_us'])}us p99.9 {fmt_us(r['p999_us'])}us max {fmt_us(r['max_us'])}us, "
                f"errors {r['errors']}, misses {r['misses']}, cpu router {r['cpu']['router']} "
                f"backend {r['cpu']['backend']} client {r['cpu']['client']}")
        if run.is_noisy(r):
            line += (f"  WARNING: other processes used {r['other_cpu']} cores (steal {r['steal_cpu']}),"
                     f" numbers are unreliable")
        log(line)
        if r.get("first_errors"):
            log(f"[{label}] first errors: {r['first_errors']}")
        runs.append(r)
        if len(runs) < opts.repeat:
            continue
        if run.is_noisy(r) and retries > 0:
            retries -= 1
            log(f"[{label}] other processes were busy, measuring again")
            continue
        break
    best = dict(min(runs, key=lambda x: (x["errors"], x["p99_us"] if x["p99_us"] is not None else 1e18)))
    if len(runs) > 1:
        best["all_runs"] = runs
    return best


# --------------------------------------------------------------------------- idle connections


def open_idle(n: int, router: Server, ctl: Control, base: int, sample_every: int,
              socks: list, info: dict) -> None:
    """Open ``n`` connections into ``socks`` (the caller closes them) in batches of BATCH; after
    each batch, a `version` round trip on every ``sample_every``-th new connection and a wait
    until the router's count includes the whole batch.  Figures go into ``info`` as they come
    (so a failure keeps what was measured up to it)."""
    info.update({"requested": n, "opened": 0, "connect_errors": 0, "version_ok": 0,
                 "version_failed": 0, "batches": [], "max_accept_wait_s": 0.0})
    failures: list[str] = []
    t0 = time.monotonic()
    last_line = 0.0
    connect_s = 0.0
    while len(socks) < n:
        want = min(BATCH, n - len(socks))
        tb = time.monotonic()
        first = len(socks)
        for _ in range(want):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(CONNECT_TIMEOUT)
            try:
                s.connect((HOST, router.port))
            except OSError as e:
                s.close()
                info["connect_errors"] += 1
                raise BenchError(f"connect #{len(socks) + 1} failed: {e} "
                                 f"({len(socks):,} connections open)") from e
            socks.append(s)
        tc = time.monotonic()
        connect_s += tc - tb
        # The router answers only connections it has accepted: a sampled `version` doubles
        # as an accept check for that connection.
        for i in range(first, len(socks)):
            if (i + 1) % sample_every and i != len(socks) - 1:
                continue
            try:
                socks[i].sendall(b"version\r\n")
                reply = recv_until(socks[i], lambda d: d.endswith(b"\r\n"), REQUEST_TIMEOUT)
                if reply.startswith(b"VERSION "):
                    info["version_ok"] += 1
                    continue
                failures.append(f"conn #{i + 1}: version -> {reply[:80]!r}")
            except OSError as e:
                failures.append(f"conn #{i + 1}: version -> {type(e).__name__}: {e}")
            info["version_failed"] += 1
        if failures:
            info["version_failures"] = failures[:10]
        count, waited = wait_count(ctl, lambda c: c - base >= len(socks), ACCEPT_TIMEOUT)
        info["max_accept_wait_s"] = max(info["max_accept_wait_s"], round(waited, 3))
        info["batches"].append({"open": len(socks), "connect_s": round(tc - tb, 4),
                                "accept_wait_s": round(waited, 4), "router_count": count})
        if count - base < len(socks):
            info["opened"] = len(socks)
            info["router_count"] = count
            raise BenchError(
                f"the router reports {count - base:,} of {len(socks):,} idle connections after "
                f"{ACCEPT_TIMEOUT:.0f}s without progress (num_client_connections {count}, base {base}); "
                f"see {router.log_path}")
        now = time.monotonic()
        if now - last_line >= 1.0 or len(socks) == n:
            last_line = now
            el = now - t0
            log(f"[idle] {len(socks):,}/{n:,} open, router num_client_connections {count:,}, "
                f"{len(socks) / el:,.0f} conn/s, router RSS {rss_mb(router) or 0:.1f} MB, "
                f"version samples ok {info['version_ok']}/{info['version_ok'] + info['version_failed']}")
        if not router.alive():
            raise BenchError(f"pymc-router exited while connections were opened (see {router.log_path})")
    elapsed = time.monotonic() - t0
    info.update(opened=len(socks), seconds=round(elapsed, 3), connect_seconds=round(connect_s, 3),
                conns_per_sec=len(socks) / elapsed if elapsed > 0 else None)


def live_requests(socks: list, fraction: float) -> dict:
    """One `get` on every (1/fraction)-th idle connection: all sent first, then every reply
    read, so the router sees a burst spread over many connections."""
    if fraction <= 0 or not socks:
        return {"fraction": fraction, "sent": 0, "ok": 0, "failed": 0}
    step = max(1, round(1 / fraction))
    chosen = list(range(0, len(socks), step))
    failures: list[str] = []
    t0 = time.monotonic()
    sent = []
    for i in chosen:
        k = key(i % KEYS)
        try:
            socks[i].sendall(b"get %s\r\n" % k)
            sent.append((i, k))
        except OSError as e:
            failures.append(f"conn #{i + 1}: send: {e}")
    ok = 0
    for i, k in sent:
        try:
            data = recv_until(socks[i], get_reply_done, REQUEST_TIMEOUT)
            problem = check_get(data, k)
        except OSError as e:
            problem = f"{type(e).__name__}: {e}"
        if problem:
            failures.append(f"conn #{i + 1}: get {k.decode()} -> {problem}")
        else:
            ok += 1
    out = {"fraction": fraction, "sent": len(chosen), "ok": ok, "failed": len(chosen) - ok,
           "seconds": round(time.monotonic() - t0, 3)}
    if failures:
        out["failures"] = failures[:10]
    return out


def idle_cpu(router: Server, seconds: float) -> float:
    c0, t0 = router.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return round((router.cpu_seconds() - c0) / (time.monotonic() - t0), 4)


# --------------------------------------------------------------------------- report


def judge(report: dict, only: list[str]) -> list[tuple[str, bool | None, str]]:
    """(check, passed (None = not measured), detail) for the pass criterion."""
    conns = report.get("connections", {})
    phases = report.get("phases", {})
    n = conns.get("requested")
    checks = []
    accepted = conns.get("max_router_count_minus_base")
    checks.append(("every connection accepted",
                   bool(n) and conns.get("opened") == n and (accepted or 0) >= n
                   and conns.get("version_failed", 1) == 0,
                   f"opened {fmt_num(conns.get('opened'))}/{fmt_num(n)}, router count above base "
                   f"{fmt_num(accepted)}, version samples ok {conns.get('version_ok') or 0}"
                   f"/{(conns.get('version_ok') or 0) + (conns.get('version_failed') or 0)}"
                   + (f"; {conns['failed']}" if conns.get("failed") else "")))
    live = conns.get("live") or {}
    if live.get("sent"):
        checks.append(("idle connections live", live.get("failed") == 0,
                       f"{live.get('ok')}/{live.get('sent')} gets answered correctly"))
    for ph in PHASES:
        if ph not in only:
            continue
        r = phases.get(ph) or {}
        good = bool(r) and "failed" not in r and r.get("errors") == 0 and r.get("misses") == 0 \
            and (r.get("requests") or 0) > 0
        detail = r.get("failed") or (f"{fmt_num(r.get('requests'))} requests, errors {r.get('errors')}, "
                                     f"misses {r.get('misses')}" if r else "not reached")
        checks.append((f"active client served ({ph})", good, detail))
    b, h = phases.get("baseline") or {}, phases.get("held") or {}
    if b.get("p99_us") and h.get("p99_us") is not None:
        ratio = h["p99_us"] / b["p99_us"]
        checks.append((f"held p99 < {P99_FACTOR:g} x baseline p99", ratio < P99_FACTOR,
                       f"{fmt_us(h['p99_us'])}us / {fmt_us(b['p99_us'])}us = {ratio:.2f}"))
    else:
        checks.append((f"held p99 < {P99_FACTOR:g} x baseline p99", None, "not measured"))
    close = conns.get("close") or {}
    checks.append(("count falls back after close", close.get("back_to_base"),
                   f"num_client_connections {close.get('router_count')} (base {conns.get('base')}) "
                   f"after {close.get('wait_s')}s" if close else "not reached"))
    return checks


def print_summary(report: dict, checks) -> None:
    phases = report.get("phases", {})
    conns = report.get("connections", {})
    n = conns.get("requested", 0)
    head = ["phase", "idle conns", "requests", "ops/s", "p50 us", "p99 us", "p99.9 us", "max us",
            "errors", "misses", "router RSS MB", "router cpu"]
    table = [head]
    rows = [("baseline", 0, phases.get("baseline")), ("held", conns.get("opened") or n, phases.get("held"))]
    for name, held, r in rows:
        if not r:
            continue
        if "failed" in r:
            table.append([name, fmt_num(held)] + ["FAILED"] + [""] * (len(head) - 3))
            continue
        table.append([name, fmt_num(held), fmt_num(r["requests"]), fmt_num(r["ops_per_sec"]),
                      fmt_us(r["p50_us"]), fmt_us(r["p99_us"]), fmt_us(r["p999_us"]), fmt_us(r["max_us"]),
                      str(r["errors"]), str(r["misses"]),
                      "-" if r.get("router_rss_mb") is None else f"{r['router_rss_mb']:.1f}",
                      f"{r['cpu']['router']:.2f}"])
    b, h = phases.get("baseline") or {}, phases.get("held") or {}
    if b.get("requests") and h.get("requests"):
        def rat(k):
            return fmt_ratio(h[k] / b[k]) if b.get(k) and h.get(k) is not None else "-"
        table.append(["held/baseline", "", "", rat("ops_per_sec"), rat("p50_us"), rat("p99_us"),
                      rat("p999_us"), rat("max_us"), "", "", "", ""])
    print()
    m = report["meta"]
    print(f"layout: {m['backend']} + pymc-router on CPU {SERVER_CPU}, this process (active client and "
          f"idle connections) on CPU {CLIENT_CPU}" if m.get("pinned") else "layout: not pinned")
    print_table_rows(table, right=set(range(1, len(head))))
    print()
    if conns.get("failed"):
        print(f"  connections: FAILED after {fmt_num(conns.get('opened'))} of {fmt_num(n)} "
              f"(router count {fmt_num((conns.get('batches') or [{}])[-1].get('router_count'))}): "
              f"{conns['failed']}")
    elif conns.get("opened"):
        print(f"  connections: {fmt_num(conns['opened'])} opened in {conns.get('seconds', 0):.1f}s "
              f"({fmt_num(conns.get('conns_per_sec'))}/s; longest wait for the router to accept a batch "
              f"{conns.get('max_accept_wait_s')}s), router num_client_connections {fmt_num(conns.get('max_router_count'))} "
              f"(base {conns.get('base')})")
    mem = conns.get("memory") or {}
    if mem.get("rss_before_mb") is not None and mem.get("rss_after_mb") is not None:
        after_close = mem.get("rss_after_close_mb")
        print(f"  router RSS: {mem['rss_before_mb']:.1f} MB before, {mem['rss_after_mb']:.1f} MB with "
              f"{fmt_num(conns.get('opened'))} open (+{mem['rss_after_mb'] - mem['rss_before_mb']:.1f} MB, "
              f"{fmt_num(mem.get('bytes_per_connection'))} bytes/connection), "
              f"{'-' if after_close is None else f'{after_close:.1f}'} MB after close; "
              f"router fds {mem.get('fds_before')} -> {mem.get('fds_after')}")
    if conns.get("idle_cpu") is not None:
        print(f"  router CPU with the connections held and no requests: {conns['idle_cpu']:.3f} cores "
              f"(before opening: {conns.get('idle_cpu_before')})")
    live = conns.get("live") or {}
    if live.get("sent"):
        print(f"  live check: {live['ok']}/{live['sent']} idle connections answered a get "
              f"({live.get('seconds')}s for the burst)")
    print()
    for phase in ("baseline", "held"):
        r = phases.get(phase) or {}
        if run.is_noisy(r):
            print(f"  WARNING: other processes used {r.get('other_cpu')} cores (steal {r.get('steal_cpu')}) "
                  f"during {phase}; its numbers are unreliable. Re-run on an idle machine.")
    print("pass criterion:")
    for name, ok, detail in checks:
        print(f"  {'PASS' if ok else ('n/a ' if ok is None else 'FAIL')}  {name}: {detail}")
    verdict = report.get("verdict")
    print(f"result: {verdict}")
    print(flush=True)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="Hold N idle client connections open against pymc-router while one active "
                    "client is served; compare the active client's latency with a baseline.")
    run.add_run_options(ap, PHASES)
    ap.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS,
                    help=f"idle client connections to hold open (default {DEFAULT_CONNECTIONS:,})")
    ap.add_argument("--live-fraction", type=float, default=0.1,
                    help="fraction of the idle connections that send one get each once all are open "
                         "(default 0.1; 0 to skip)")
    ap.add_argument("--sample-every", type=int, default=100,
                    help="`version` round trip on every K-th new connection while opening (default 100)")
    ap.add_argument("--router-cmd", default=f"{shlex.quote(sys.executable)} -m pymc.router",
                    help="pymc-router command (shell-split; -p PORT --config file:CONF is appended)")
    default_backend = "memcached" if shutil.which("memcached") else f"{shlex.quote(sys.executable)} -m pymc.server"
    ap.add_argument("--backend-cmd", default=default_backend,
                    help="backend command (shell-split; -t 1 -m 64 -p PORT -l 127.0.0.1 -U 0 is appended; "
                         "default memcached if installed, else pymc-server)")
    ap.add_argument("--json", metavar="OUT", default=str(DEFAULT_JSON),
                    help=f"results JSON (default {DEFAULT_JSON.relative_to(REPO)})")
    opts, only = run.parse_run_options(ap, argv, PHASES)
    if opts.connections < 1 or not 0 <= opts.live_fraction <= 1 or opts.sample_every < 1:
        ap.error("--connections must be >= 1, --live-fraction in [0, 1], --sample-every >= 1")
    router_cmd = shlex.split(opts.router_cmd)
    backend_cmd = shlex.split(opts.backend_cmd)
    for what, cmd, hint in (("backend", backend_cmd, "apt-get install memcached, or --backend-cmd"),
                            ("pymc-router", router_cmd, "--router-cmd")):
        if not cmd or shutil.which(cmd[0]) is None:
            print(f"error: {what} command {shlex.join(cmd)!r} not found: {hint}", file=sys.stderr)
            return 2
    try:
        limits = raise_nofile(opts.connections)
        check_ports(opts.connections)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not run.prepare_machine(opts):
        return 2
    if opts.pin:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    # `python -m pymc.router` / `pymc.server` run this checkout, wherever the command starts.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

    run.interrupt_on_signals()

    started = time.time()
    report: dict = {"meta": {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(), "cpus": os.cpu_count(),
        "pinned": opts.pin, "server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU,
        "backend": ("pymc-server" if "pymc.server" in backend_cmd or "pymc-server" in backend_cmd[0]
                    else os.path.basename(backend_cmd[0])),
        "backend_cmd": backend_cmd + ["-t", "1", "-m", "64", "-p", "PORT", "-l", HOST, "-U", "0"],
        "router_cmd": router_cmd + ["-p", "PORT", "--config", "file:CONF"],
        "router_config": {"pools": {"A": {"servers": [f"{HOST}:BACKENDPORT"]}}, "route": "PoolRoute|A"},
        "connections": opts.connections, "batch": BATCH, "keys": KEYS, "value_size": VALUE_SIZE,
        "set_fraction": SET_FRACTION, "live_fraction": opts.live_fraction,
        "sample_every": opts.sample_every, "duration": opts.duration, "warmup": opts.warmup,
        "repeat": opts.repeat, "retries": opts.retries, "phases": only,
        "rlimit_nofile": list(limits), "p99_factor": P99_FACTOR,
    }}
    phases: dict = {}
    conns: dict = {"requested": opts.connections}
    report["phases"] = phases
    report["connections"] = conns
    procs: dict[str, Server] = {}
    socks: list[socket.socket] = []
    ctl: Control | None = None
    exit_code = 0
    try:
        backend = Server("backend", "backend", backend_cmd, 64, opts.pin, "connections-backend")
        procs["backend"] = backend
        backend.start()
        log(f"[backend] preloading {KEYS:,} keys directly ...")
        pre = run_loadgen(backend, ["--workload", "fill", "--conns", "4", "--depth", "32",
                                    "--count", str(KEYS), "--value-size", str(VALUE_SIZE)],
                          opts.pin, opts.duration, opts.warmup, PRELOAD_TIMEOUT + 30, "preload")
        if pre["errors"]:
            raise BenchError(f"preload returned {pre['errors']} errors")
        backend.settle()
        log(f"[backend] {backend.stats().get('curr_items')} items")

        router = PymcRouter(router_cmd, opts.pin, "connections", backend.port)
        procs["pymc-router"] = router
        router.start()
        rp = router.real_process()
        try:
            report["meta"]["router_rlimit_nofile"] = list(rp.rlimit(psutil.RLIMIT_NOFILE))
            report["meta"]["router_pid"] = rp.pid
        except (psutil.Error, AttributeError):
            pass
        log(f"[pymc-router] pid {report['meta'].get('router_pid')}, open files limit "
            f"{report['meta'].get('router_rlimit_nofile')}; this process {list(limits)}")
        rl = report["meta"].get("router_rlimit_nofile")
        if rl and rl[0] != resource.RLIM_INFINITY and rl[0] < opts.connections + 16:
            log(f"[pymc-router] WARNING: the router may open only {rl[0]} files, fewer than the "
                f"{opts.connections:,} connections asked for; expect accept failures")
        ctl = Control(router.port)

        if "baseline" in only:
            try:
                phases["baseline"] = measure_active("baseline", router, backend, opts, seed=1)
                phases["baseline"]["router_rss_mb"] = rss_mb(router)
            except BenchError as e:
                log(f"[baseline] FAILED: {e}")
                phases["baseline"] = {"failed": str(e)}
                if not router.alive():
                    raise

        # The active client's connection is gone once the router has seen its EOF; what is left
        # is the control connection.
        base, _ = wait_count(ctl, lambda c: c <= 1, 5.0)
        conns["base"] = base
        conns["idle_cpu_before"] = idle_cpu(router, IDLE_CPU_SECONDS)
        mem = conns["memory"] = {"rss_before_mb": rss_mb(router), "fds_before": num_fds(router)}
        log(f"[idle] opening {opts.connections:,} connections in batches of {BATCH} "
            f"(router count now {base}, RSS {mem['rss_before_mb'] or 0:.1f} MB) ...")
        try:
            open_idle(opts.connections, router, ctl, base, opts.sample_every, socks, conns)
        except (BenchError, OSError) as e:
            conns["failed"] = str(e) if isinstance(e, BenchError) else f"{type(e).__name__}: {e}"
            raise
        finally:
            conns["opened"] = len(socks)
        st = ctl.stats()
        conns["max_router_count"] = int(st["num_client_connections"])
        conns["max_router_count_minus_base"] = conns["max_router_count"] - base
        conns["router_stats_open"] = st
        mem["rss_after_mb"] = rss_mb(router)
        mem["fds_after"] = num_fds(router)
        if mem["rss_before_mb"] is not None and mem["rss_after_mb"] is not None:
            mem["bytes_per_connection"] = round(
                (mem["rss_after_mb"] - mem["rss_before_mb"]) * 2**20 / max(len(socks), 1))
        log(f"[idle] {len(socks):,} open; router RSS {mem['rss_before_mb'] or 0:.1f} -> "
            f"{mem['rss_after_mb'] or 0:.1f} MB ({fmt_num(mem.get('bytes_per_connection'))} bytes/connection), "
            f"fds {mem['fds_before']} -> {mem['fds_after']}")
        conns["idle_cpu"] = idle_cpu(router, IDLE_CPU_SECONDS)
        log(f"[idle] router CPU with all connections idle: {conns['idle_cpu']:.3f} cores "
            f"(before opening: {conns['idle_cpu_before']:.3f})")
        if opts.live_fraction > 0:
            log(f"[idle] live check: one get on every {max(1, round(1 / opts.live_fraction))}th idle connection ...")
            conns["live"] = live_requests(socks, opts.live_fraction)
            lv = conns["live"]
            log(f"[idle] live check: {lv['ok']}/{lv['sent']} ok in {lv.get('seconds')}s"
                + (f"; first failures {lv['failures'][:3]}" if lv.get("failures") else ""))

        if "held" in only:
            try:
                phases["held"] = measure_active("held", router, backend, opts, seed=1001)
                phases["held"]["router_rss_mb"] = rss_mb(router)
                phases["held"]["router_count"] = ctl.count()
            except BenchError as e:
                log(f"[held] FAILED: {e}")
                phases["held"] = {"failed": str(e)}
                if not router.alive():
                    raise

        log(f"[idle] closing {len(socks):,} connections ...")
        t0 = time.monotonic()
        while socks:
            socks.pop().close()
        closed_s = time.monotonic() - t0
        count, waited = wait_count(ctl, lambda c: c <= base, CLOSE_TIMEOUT)
        mem["rss_after_close_mb"] = rss_mb(router)
        mem["fds_after_close"] = num_fds(router)
        conns["close"] = {"close_s": round(closed_s, 3), "wait_s": round(waited, 2),
                          "router_count": count, "back_to_base": count <= base}
        log(f"[idle] closed in {closed_s:.2f}s; router num_client_connections {count} after {waited:.2f}s "
            f"(base {base}), RSS {mem['rss_after_close_mb'] or 0:.1f} MB, fds {mem['fds_after_close']}")
        try:
            report["router_stats"] = ctl.stats()
            report["backend_stats"] = backend.stats()
        except (OSError, KeyError) as e:
            report["router_stats"] = {"error": str(e)}
    except StartError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        exit_code = 2
    except (BenchError, OSError, KeyError, ValueError) as e:
        msg = str(e) if isinstance(e, BenchError) else f"{type(e).__name__}: {e}"
        print(f"\nerror: {msg}", file=sys.stderr)
        report["error"] = msg
        exit_code = 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        exit_code = 130
    finally:
        run.default_signals()
        if socks:
            log(f"closing {len(socks):,} idle connections")
        for s in socks:
            s.close()
        socks.clear()
        if ctl is not None:
            ctl.close()
        stop_all(procs)

    report["logs"] = log_tails(procs)
    if exit_code in (0, 1):
        checks = judge(report, only)
        report["criterion"] = [{"check": c, "passed": ok, "detail": d} for c, ok, d in checks]
        failed = [c for c, ok, _ in checks if ok is False]
        timing = f"held p99 < {P99_FACTOR:g} x baseline p99"
        report["verdict"] = ("FAIL" if failed or exit_code else
                             "PASS" if all(ok for _, ok, _ in checks) else "INCOMPLETE")
        print_summary(report, checks)
        if exit_code == 0 and any(c != timing for c in failed):
            exit_code = 1
        elif exit_code == 0 and opts.check and report["verdict"] != "PASS":
            exit_code = 1
    return finish_report(report, opts, started, exit_code)


if __name__ == "__main__":
    sys.exit(main())
