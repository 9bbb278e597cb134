#!/usr/bin/env python3
"""Benchmark pymc-router against nutcracker (twemproxy), both in front of one memcached.

One command:  python benchmarks/router.py [--only get50,pipelined,multiget100] [--duration S]

In one run, with the same CPU pinning for every configuration, this measures:

  direct       loadgen -> memcached
  nutcracker   loadgen -> nutcracker  -> memcached   (one pool, ketama, 1 server connection)
  pymc-router  loadgen -> pymc-router -> memcached   (PoolRoute|A, one server)

Layout (2 CPUs): memcached and the proxy are pinned to CPU 0 (`taskset -c 0`),
the load generator to CPU 1, for all three configurations.  "direct" is the
same memcached on CPU 0 with nothing else busy there.

One memcached (`memcached -t 1 -m 64 -U 0 -l 127.0.0.1 -p PORT`, plus
`-u nobody` as root) is started once and preloaded directly with 10k keys;
both proxies are started once and stay up; each workload then runs against
direct, nutcracker and pymc-router back to back, so slow drift of the machine
hits all three alike.

The load generator, process handling, measurement/retry logic and noise
detection come from benchmarks/run.py.  See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (benchmarks/run.py)
from run import (  # noqa: E402
    BUILD_DIR, HOST, LOG_DIR, PRELOAD_TIMEOUT, TIMED, BenchError, Server, StartError,
    finish_report, fmt_num, free_port, is_noisy, log, log_tails, measure, print_table_rows,
    run_loadgen, stop_all,
)

BACKEND_CPU = run.SERVER_CPU   # memcached
PROXY_CPU = run.SERVER_CPU     # nutcracker / pymc-router share memcached's CPU
CLIENT_CPU = run.CLIENT_CPU    # loadgen (run_loadgen pins it there)

KEYS = 10_000
CONFIGS = ["direct", "nutcracker", "pymc-router"]
WORKLOADS = ["get50", "pipelined", "multiget100"]
TARGET = 0.80  # pymc-router / nutcracker
DEFAULT_JSON = BUILD_DIR / "router-results.json"


# --------------------------------------------------------------------------- processes


class Proxy(Server):
    """A proxy process managed like run.Server (own session, stop by PID,
    readiness = answers `version`), but with its own command line."""

    def __init__(self, role: str, pin: bool, tag: str, backend_port: int):
        super().__init__(role, role, [role], 0, pin, tag)
        self.backend_port = backend_port

    def command(self) -> list[str]:
        raise NotImplementedError

    def argv(self) -> list[str]:
        argv = self.command()
        if self.pin:
            argv = ["taskset", "-c", PROXY_CPU] + argv
        return argv

    def extra_stats(self) -> dict:
        return {}


class Nutcracker(Proxy):
    def __init__(self, binary: str, pin: bool, tag: str, backend_port: int):
        super().__init__("nutcracker", pin, tag, backend_port)
        self.binary = binary
        self.conf_path = BUILD_DIR / f"nutcracker-{tag}.yml"
        self.nc_log = LOG_DIR / f"nutcracker-{tag}.nclog"
        self.pid_file = BUILD_DIR / f"nutcracker-{tag}.pid"
        self.stats_port = 0

    def command(self) -> list[str]:
        self.stats_port = free_port()
        self.conf_path.write_text(
            "bench:\n"
            f"  listen: {HOST}:{self.port}\n"
            "  hash: fnv1a_64\n"
            "  distribution: ketama\n"
            "  auto_eject_hosts: false\n"
            "  server_connections: 1\n"
            "  servers:\n"
            f"    - {HOST}:{self.backend_port}:1\n"
        )
        self.nc_log.unlink(missing_ok=True)
        return [self.binary, "-c", str(self.conf_path), "-o", str(self.nc_log),
                "-p", str(self.pid_file), "-a", HOST, "-s", str(self.stats_port)]

    def _log_tail(self, n: int = 2000) -> str:
        out = super()._log_tail(n)
        try:
            out += self.nc_log.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            pass
        return out

    def extra_stats(self) -> dict:
        """nutcracker's JSON stats (port -s; aggregated every 30 s by default)."""
        data = b""
        with socket.create_connection((HOST, self.stats_port), timeout=5) as s:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)


class PymcRouter(Proxy):
    def __init__(self, cmd: list[str], pin: bool, tag: str, backend_port: int):
        super().__init__("pymc-router", pin, tag, backend_port)
        self.base_cmd = cmd
        self.conf_path = BUILD_DIR / f"pymc-router-{tag}.json"

    def command(self) -> list[str]:
        self.conf_path.write_text(json.dumps(
            {"pools": {"A": {"servers": [f"{HOST}:{self.backend_port}"]}}, "route": "PoolRoute|A"}) + "\n")
        return self.base_cmd + ["-p", str(self.port), "--config", f"file:{self.conf_path}"]

    def extra_stats(self) -> dict:
        return self.stats()  # mcrouter-style `stats` through the router


class Stack:
    """What run.measure/run_loadgen see as "the server": the process the load
    generator talks to plus memcached behind it.  CPU is the sum of both
    (so the noise check does not count memcached as a foreign process); every
    cpu_seconds() call also records each process's own CPU time, which is
    turned into a per-process breakdown after each measurement."""

    def __init__(self, name: str, backend: Server, front: Proxy | None):
        self.role = name
        self.backend = backend
        self.front = front
        self.parts = [("memcached", backend)] + ([(name, front)] if front else [])
        self.snaps: list[tuple[float, dict]] = []

    @property
    def port(self) -> int:
        return (self.front or self.backend).port

    @property
    def log_path(self) -> Path:
        return (self.front or self.backend).log_path

    def alive(self) -> bool:
        return all(s.alive() for _, s in self.parts)

    def cpu_seconds(self) -> float:
        per = {name: srv.cpu_seconds() for name, srv in self.parts}
        self.snaps.append((time.monotonic(), per))
        return sum(per.values())


def start_or_fail(srv: Server) -> str | None:
    try:
        srv.start()
        return None
    except StartError as e:
        return str(e)


# --------------------------------------------------------------------------- measuring


def measure_stack(stack: Stack, name: str, opts) -> dict:
    args, metric = TIMED[name]
    first = len(stack.snaps)
    best = measure(stack, args + ["--keys", str(KEYS)], name, name, metric, opts)
    snaps = stack.snaps[first:]
    runs = best.get("all_runs") or [best]
    for i, r in enumerate(runs):
        if 2 * i + 1 < len(snaps):
            (t0, a), (t1, b) = snaps[2 * i], snaps[2 * i + 1]
            wall = max(t1 - t0, 1e-9)
            r["cpu_by_process"] = {k: round((b[k] - a[k]) / wall, 3) for k in a}
    idx = max(range(len(runs)), key=lambda i: runs[i][metric])
    if "cpu_by_process" in runs[idx]:
        best["cpu_by_process"] = runs[idx]["cpu_by_process"]
    cpu = best.get("cpu_by_process", {})
    log(f"[{stack.role}] {name}: cpu " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
        + f", loadgen {best.get('client_cpu')} (cores)")
    return best


def failure(stack: Stack, err: str) -> dict:
    out = {"failed": err}
    srv = stack.front or stack.backend
    tail = srv._log_tail(4000).strip()
    if tail:
        out["log_tail"] = tail
        out["log_path"] = str(srv.log_path)
    return out


# --------------------------------------------------------------------------- report


def summarize(results: dict, only: list[str]) -> list[dict]:
    rows = []
    for name in only:
        metric = TIMED[name][1]
        row = {"workload": name, "metric": "keys/s" if metric == "keys_per_sec" else "ops/s",
               "target": f">= {TARGET:.2f}", "notes": []}
        vals = {}
        for cfg in CONFIGS:
            r = results.get(cfg, {}).get(name)
            if r is None:
                vals[cfg] = None
                continue
            if "failed" in r:
                vals[cfg] = None
                row["notes"].append(f"{cfg} FAILED: {r['failed'].splitlines()[0][:200]}")
                continue
            vals[cfg] = r[metric]
            cpu = r.get("cpu_by_process", {})
            note = (f"{cfg}: errors {r['errors']}, misses {r['misses']}, cpu "
                    + " + ".join(f"{k} {v:.2f}" for k, v in cpu.items())
                    + f" | loadgen {r.get('client_cpu')}")
            if r.get("depth") == 1 and r.get("p50_us") is not None:
                note += f", p50 {r['p50_us']:.0f}us p99 {r['p99_us']:.0f}us"
            if metric == "keys_per_sec":
                note += f", {fmt_num(r['ops_per_sec'])} req/s"
            if is_noisy(r):
                note += f"  (NOISY: other processes {r.get('other_cpu')} cores)"
            row["notes"].append(note)
        row.update(direct=vals["direct"], nutcracker=vals["nutcracker"], pymc_router=vals["pymc-router"])
        row["ratio"] = (vals["pymc-router"] / vals["nutcracker"]
                        if vals["pymc-router"] is not None and vals["nutcracker"] else None)
        pr = results.get("pymc-router", {}).get(name) or {}
        clean = "failed" not in pr and not pr.get("errors") and not pr.get("misses")
        row["passed"] = row["ratio"] is not None and row["ratio"] >= TARGET and clean
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    head = ["workload", "metric", "direct", "nutcracker", "pymc-router", "pymc/nutcracker", "target", "result"]
    table = [head]
    for r in rows:
        table.append([r["workload"], r["metric"], fmt_num(r["direct"]), fmt_num(r["nutcracker"]),
                      fmt_num(r["pymc_router"]), "-" if r["ratio"] is None else f"{r['ratio']:.2f}",
                      r["target"], "PASS" if r["passed"] else "FAIL"])
    print()
    print(f"layout: memcached + proxy on CPU {BACKEND_CPU}, loadgen on CPU {CLIENT_CPU} "
          "(direct: memcached alone on CPU 0)")
    print_table_rows(table, right={2, 3, 4, 5})
    print()
    for r in rows:
        for n in r["notes"]:
            print(f"  {r['workload']} {n}")
    print(flush=True)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="pymc-router vs nutcracker vs direct memcached.")
    run.add_run_options(ap, WORKLOADS)
    ap.add_argument("--router-cmd", default=f"{shlex.quote(sys.executable)} -m pymc.router",
                    help="pymc-router command (shell-split; -p PORT --config file:CONF is appended)")
    ap.add_argument("--nutcracker", default=shutil.which("nutcracker") or "/usr/sbin/nutcracker",
                    help="nutcracker binary (default: from PATH, else /usr/sbin/nutcracker)")
    ap.add_argument("--memcached", default="memcached", help="memcached binary (default memcached)")
    ap.add_argument("--json", metavar="OUT", default=str(DEFAULT_JSON),
                    help=f"results JSON (default {DEFAULT_JSON.relative_to(REPO)})")
    opts, only = run.parse_run_options(ap, argv, WORKLOADS)
    router_cmd = shlex.split(opts.router_cmd)
    for what, path, hint in (("memcached", opts.memcached, "apt-get install memcached"),
                             ("nutcracker", opts.nutcracker, "apt-get install nutcracker"),
                             ("pymc-router", router_cmd[0] if router_cmd else "", "--router-cmd")):
        if not path or shutil.which(path) is None:
            print(f"error: {what} ({path!r}) not found: {hint}", file=sys.stderr)
            return 2

    if not run.prepare_machine(opts):
        return 2

    run.interrupt_on_signals()

    started = time.time()
    report: dict = {"meta": {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(), "cpus": os.cpu_count(),
        "pinned": opts.pin, "memcached_cpu": BACKEND_CPU, "proxy_cpu": PROXY_CPU, "loadgen_cpu": CLIENT_CPU,
        "memcached_cmd": f"{opts.memcached} -t 1 -m 64 -p PORT -l {HOST} -U 0",
        "nutcracker_cmd": f"{opts.nutcracker} -c CONF -o LOG -p PIDFILE -a {HOST} -s STATSPORT",
        "router_cmd": router_cmd + ["-p", "PORT", "--config", "file:CONF"],
        "keys": KEYS, "duration": opts.duration, "warmup": opts.warmup,
        "repeat": opts.repeat, "retries": opts.retries, "workloads": only,
    }}
    results: dict = {cfg: {} for cfg in CONFIGS}
    procs: dict = {}
    exit_code = 0
    try:
        backend = Server("memcached", "memcached", [opts.memcached], 64, opts.pin, "router-backend")
        procs["memcached"] = backend
        backend.start()
        log(f"[memcached] preloading {KEYS:,} keys directly ...")
        pre = run_loadgen(backend, ["--workload", "fill", "--conns", "4", "--depth", "32",
                                    "--count", str(KEYS)], opts.pin, opts.duration, opts.warmup,
                          PRELOAD_TIMEOUT + 30, "preload")
        if pre["errors"]:
            raise BenchError(f"preload returned {pre['errors']} errors")
        backend.settle()
        log(f"[memcached] {backend.stats().get('curr_items')} items")

        stacks = {"direct": Stack("direct", backend, None)}
        make = {
            "nutcracker": lambda tag: Nutcracker(opts.nutcracker, opts.pin, tag, backend.port),
            "pymc-router": lambda tag: PymcRouter(router_cmd, opts.pin, tag, backend.port),
        }
        startup_errors = {}
        for cfg in ("nutcracker", "pymc-router"):
            proxy = procs[cfg] = make[cfg]("bench")
            err = start_or_fail(proxy)
            if err:
                log(f"[{cfg}] FAILED TO START:\n{err}")
                startup_errors[cfg] = err
                for name in only:
                    results[cfg][name] = {"failed": f"did not start: {err}"}
            else:
                stacks[cfg] = Stack(cfg, backend, proxy)
        time.sleep(0.5)

        for name in only:
            log(f"=== {name}: {' '.join(TIMED[name][0])} ===")
            for cfg in CONFIGS:
                stack = stacks.get(cfg)
                if stack is None:
                    continue
                try:
                    results[cfg][name] = measure_stack(stack, name, opts)
                except BenchError as e:
                    log(f"[{cfg}] {name}: FAILED: {e}")
                    results[cfg][name] = failure(stack, str(e))
                    if not backend.alive():
                        raise BenchError(f"memcached exited (see {backend.log_path})") from e
                    if stack.front is not None and not stack.front.alive():
                        log(f"[{cfg}] restarting after failure; log:\n{results[cfg][name].get('log_tail', '')}")
                        tag = f"restart{len(procs)}"
                        proxy = procs[f"{cfg}-{tag}"] = make[cfg](tag)
                        err = start_or_fail(proxy)
                        if err:
                            log(f"[{cfg}] restart failed:\n{err}")
                            stacks.pop(cfg)
                        else:
                            stacks[cfg] = Stack(cfg, backend, proxy)

        # diagnostics: proxy-side counters, memcached's view
        extra = {}
        for cfg in ("nutcracker", "pymc-router"):
            p = stacks.get(cfg)
            if p is not None and p.front.alive():
                try:
                    extra[cfg] = p.front.extra_stats()
                except (OSError, ValueError) as e:
                    extra[cfg] = {"error": str(e)}
        try:
            extra["memcached"] = backend.stats()
        except OSError as e:
            extra["memcached"] = {"error": str(e)}
        report["stats"] = extra
        report["startup_errors"] = startup_errors
        for cfg, proxy in procs.items():
            if cfg != "memcached" and not proxy.alive() and proxy.proc is not None:
                report.setdefault("exited", {})[cfg] = proxy._log_tail(4000)
    except StartError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        exit_code = 2
    except BenchError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        exit_code = 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        exit_code = 130
    finally:
        run.default_signals()
        stop_all(procs)

    report["logs"] = log_tails(procs)
    report["results"] = results
    if exit_code == 0:
        rows = summarize(results, only)
        report["summary"] = rows
        print_table(rows)
        noisy = [f"{cfg}/{n}" for cfg in CONFIGS for n, r in results[cfg].items() if is_noisy(r)]
        if noisy:
            print(f"WARNING: other processes used the CPUs during {', '.join(noisy)}; "
                  "those numbers are unreliable. Re-run on an idle machine.\n")
        if any("failed" in r for cfg in CONFIGS for r in results[cfg].values()):
            exit_code = 1
        elif opts.check and not all(r["passed"] for r in rows):
            exit_code = 1
    return finish_report(report, opts, started, exit_code)


if __name__ == "__main__":
    sys.exit(main())
