#!/usr/bin/env python3
"""Benchmark a memcached-compatible server command against real memcached.

One command:  python benchmarks/run.py

Both servers are run in the same invocation, one after the other, pinned to
CPU 0 (taskset -c 0) with `-t 1 -m 64 -p PORT -l 127.0.0.1 -U 0`; the load
generator (benchmarks/loadgen.c, compiled on demand into benchmarks/.build/)
runs pinned to CPU 1.  See benchmarks/README.md for what each workload does.

Needs: Python 3.11, psutil, memcached (apt-get install memcached), a C
compiler (cc), taskset (util-linux).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
BUILD_DIR = HERE / ".build"
LOG_DIR = BUILD_DIR / "logs"
LOADGEN_SRC = HERE / "loadgen.c"
LOADGEN_BIN = BUILD_DIR / "loadgen"
CC_FLAGS = ["-O2"]

SERVER_CPU = "0"
CLIENT_CPU = "1"
HOST = "127.0.0.1"

WORKLOADS = ["get50", "mix50", "pipelined", "multiget100", "memory", "scale"]

# Workload parameters.
KEYS_SMALL = 10_000
KEYS_LARGE = 1_000_000
MEMORY_FILL = 600_000
PRELOAD_TIMEOUT = 120.0  # seconds; bound for every preload / fill phase
START_TIMEOUT = 20.0

TIMED = {
    # name: (loadgen args, metric used for the ratio)
    "get50": (["--workload", "get", "--conns", "50", "--depth", "1"], "ops_per_sec"),
    "mix50": (["--workload", "mix", "--conns", "50", "--depth", "1"], "ops_per_sec"),
    "pipelined": (["--workload", "get", "--conns", "4", "--depth", "16"], "ops_per_sec"),
    "multiget100": (
        ["--workload", "multiget", "--conns", "8", "--depth", "1", "--multi", "100"],
        "keys_per_sec",
    ),
}

TARGETS = {
    "get50": ">= 0.60",
    "mix50": ">= 0.60",
    "pipelined": ">= 1.00",
    "multiget100": ">= 1.00",
    "memory": "RSS <= 130 MB and items >= 0.90",
    "scale": ">= 0.80",
}


class BenchError(Exception):
    pass


class StartError(BenchError):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- build


def build_loadgen() -> Path:
    """Compile loadgen.c into .build/ unless an up-to-date binary is there."""
    cc = os.environ.get("CC", "cc")
    if not LOADGEN_SRC.exists():
        raise BenchError(f"missing {LOADGEN_SRC}")
    src = LOADGEN_SRC.read_bytes()
    stamp_text = hashlib.sha256(src + " ".join([cc] + CC_FLAGS).encode()).hexdigest()
    stamp = BUILD_DIR / "loadgen.stamp"
    if LOADGEN_BIN.exists() and stamp.exists() and stamp.read_text().strip() == stamp_text:
        return LOADGEN_BIN
    if shutil.which(cc) is None:
        raise BenchError(f"C compiler '{cc}' not found: install one (apt-get install gcc) or set CC")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    tmp = BUILD_DIR / f"loadgen.tmp{os.getpid()}"
    cmd = [cc, *CC_FLAGS, "-o", str(tmp), str(LOADGEN_SRC)]
    log(f"building load generator: {' '.join(cmd)}")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BenchError(f"compiling loadgen.c failed:\n{res.stderr}")
    os.replace(tmp, LOADGEN_BIN)
    stamp.write_text(stamp_text + "\n")
    return LOADGEN_BIN


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def memcached_request(port: int, payload: bytes, terminator: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(payload)
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(terminator):
            if time.monotonic() > deadline:
                raise TimeoutError("no complete reply")
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


class Server:
    def __init__(self, role: str, label: str, cmd: list[str], mem_mb: int, pin: bool, tag: str):
        self.role = role
        self.label = label
        self.cmd = cmd
        self.mem_mb = mem_mb
        self.pin = pin
        self.tag = tag
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path = LOG_DIR / f"{role}-{tag}.log"

    def argv(self) -> list[str]:
        argv = list(self.cmd) + [
            "-t", "1", "-m", str(self.mem_mb), "-p", str(self.port), "-l", HOST, "-U", "0",
        ]
        # memcached refuses to start as root unless told which user to become.
        if os.geteuid() == 0 and os.path.basename(self.cmd[0]) == "memcached" and "-u" not in self.cmd:
            argv += ["-u", "nobody"]
        if self.pin:
            argv = ["taskset", "-c", SERVER_CPU] + argv
        return argv

    def start(self) -> None:
        last_err = ""
        for attempt in range(2):  # a second try only covers a lost race for the port
            self.port = free_port()
            argv = self.argv()
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            logf = open(self.log_path, "wb")
            log(f"[{self.role}] starting (port {self.port}): {shlex.join(argv)}")
            try:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as e:
                raise StartError(f"cannot run {argv[0]!r}: {e}") from e
            finally:
                logf.close()
            try:
                self._wait_ready()
                return
            except StartError as e:
                last_err = str(e)
                self.stop()
                if attempt == 0 and "in use" in self._log_tail().lower():
                    continue
                break
        raise StartError(last_err)

    def _log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(
                    f"{self.role} server exited with code {self.proc.returncode} before answering "
                    f"'version'. Output ({self.log_path}):\n{self._log_tail()}"
                )
            try:
                reply = memcached_request(self.port, b"version\r\n", b"\r\n", timeout=1.0)
                if reply.startswith(b"VERSION"):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise StartError(
            f"{self.role} server did not answer 'version' on {HOST}:{self.port} within "
            f"{START_TIMEOUT:.0f}s. Output ({self.log_path}):\n{self._log_tail()}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root] + root.children(recursive=True)
        except psutil.Error:
            return []

    def real_process(self) -> psutil.Process | None:
        """The process doing the work: if the command is a wrapper (shell
        script, launcher) this is the descendant with the largest RSS."""
        best, best_rss = None, -1
        for p in self.processes():
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            if rss > best_rss:
                best, best_rss = p, rss
        return best

    def memory(self) -> dict:
        p = self.real_process()
        if p is None:
            return {}
        info = {"pid": p.pid, "name": p.name(), "rss_mb": p.memory_info().rss / 2**20}
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    info["peak_rss_mb"] = int(line.split()[1]) / 1024
        except OSError:
            pass
        return info

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def settle(self, max_wait: float = 10.0) -> float:
        """Wait until the server is idle (background work after a bulk load,
        e.g. memcached growing its hash table, would otherwise land in the
        next measurement).  Returns the seconds waited."""
        t0 = time.monotonic()
        prev, quiet = self.cpu_seconds(), 0
        while time.monotonic() - t0 < max_wait:
            time.sleep(0.2)
            cur = self.cpu_seconds()
            quiet = quiet + 1 if cur - prev < 0.01 else 0
            prev = cur
            if quiet >= 2:
                break
        return time.monotonic() - t0

    def stats(self) -> dict:
        raw = memcached_request(self.port, b"stats\r\n", b"END\r\n", timeout=10.0)
        return parse_stats(raw)

    def stop(self) -> None:
        if self.proc is None:
            return
        pid = self.proc.pid
        if self.proc.poll() is None:
            try:
                os.killpg(pid, signal.SIGTERM)  # the session we started for it
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        # a wrapper may have exited and left children in the group
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# --------------------------------------------------------------------------- loadgen


def print_table_rows(table: list[list[str]], right: set[int]) -> None:
    """Rows of text cells in aligned columns (``right``: right-aligned column indexes), a rule
    under the first row."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        print("  ".join(c.rjust(widths[j]) if j in right else c.ljust(widths[j])
                        for j, c in enumerate(row)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def parse_stats(raw: bytes) -> dict:
    """A ``stats`` reply as {name: value text}."""
    out = {}
    for line in raw.decode(errors="replace").split("\r\n"):
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            out[parts[1]] = parts[2]
    return out


def stop_all(procs: dict) -> None:
    """Stop every started process by PID, newest first, whatever fails."""
    for name, srv in reversed(list(procs.items())):
        pid = srv.proc.pid if srv.proc is not None else None
        try:
            srv.stop()
        except Exception as e:  # keep stopping the others
            print(f"warning: stopping {name} (pid {pid}): {e}", file=sys.stderr)
        else:
            if pid is not None:
                log(f"[{name}] stopped (pid {pid}, exit {srv.proc.returncode})")


def log_tails(procs: dict) -> dict:
    """The end of each process's log, for errors that did not kill it."""
    logs = {}
    for name, srv in procs.items():
        tail = srv._log_tail(4000).strip()
        if tail:
            logs[name] = {"path": str(srv.log_path), "tail": tail}
    return logs


#: Signals that end a run the way Ctrl-C does, so that its cleanup stops every process.
INTERRUPTING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds into the caller's cleanup


def interrupt_on_signals() -> None:
    """SIGTERM and SIGHUP raise KeyboardInterrupt (undone by default_signals)."""
    for signum in INTERRUPTING_SIGNALS:
        signal.signal(signum, _interrupt)


def default_signals() -> None:
    for signum in INTERRUPTING_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)


def finish_report(report: dict, opts, started: float, exit_code: int) -> int:
    """Shared end of a benchmark: show pymc-router log errors, the elapsed time, write JSON."""
    for name, info in report.get("logs", {}).items():
        if name.startswith("pymc-router") and any(
                w in info["tail"] for w in ("Traceback", "ERROR", "Error", "error", "failed")):
            print(f"{name} log ({info['path']}) has errors:\n{info['tail'][-2000:]}\n")
    report["meta"]["elapsed_sec"] = round(time.time() - started, 1)
    log(f"total time {report['meta']['elapsed_sec']}s")
    if opts.json:
        Path(opts.json).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
        log(f"results written to {opts.json}")
    return exit_code


def run_loadgen(server: Server, args: list[str], pin: bool, duration: float, warmup: float,
                bound: float, name: str) -> dict:
    argv = [str(LOADGEN_BIN), "--host", HOST, "--port", str(server.port),
            "--duration", str(duration), "--warmup", str(warmup),
            "--timeout", str(PRELOAD_TIMEOUT), *args]
    if pin:
        argv = ["taskset", "-c", CLIENT_CPU] + argv
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    sys0, kids0 = system_busy(), children_cpu()
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=bound)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"load generator did not finish within {bound:.0f}s") from e
    wall = time.monotonic() - t0
    cpu1 = server.cpu_seconds()
    sys1, kids1 = system_busy(), children_cpu()
    lines = [l for l in res.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise BenchError(f"load generator failed (exit {res.returncode}): {res.stderr.strip()[-1000:]}")
    out = json.loads(lines[-1])
    out["server_cpu"] = round((cpu1 - cpu0) / wall, 3) if wall > 0 else None
    # CPU used by anything other than the server and the load generator
    # (other jobs on the machine make the numbers unreliable).
    other = ((sys1[0] - sys0[0]) - (cpu1 - cpu0) - (kids1 - kids0)) / wall if wall > 0 else 0.0
    out["other_cpu"] = round(max(other, 0.0), 3)
    out["steal_cpu"] = round((sys1[1] - sys0[1]) / wall, 3) if wall > 0 else 0.0
    if res.stderr.strip():
        out["stderr"] = res.stderr.strip()[-1000:]
    if "error" in out or not out.get("ok", False):
        msg = out.get("stderr", "") or out.get("error", "")
        raise BenchError(f"load generator reported failure: {msg}")
    if not server.alive():
        raise BenchError(f"{server.role} server exited during the run (see {server.log_path})")
    return out


def system_busy() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, steal seconds)."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
    return busy, getattr(t, "steal", 0.0)


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


OTHER_CPU_WARN = 0.05  # cores; an idle machine shows about 0.01


def is_noisy(r: dict) -> bool:
    return (r.get("other_cpu") or 0) > OTHER_CPU_WARN or (r.get("steal_cpu") or 0) > OTHER_CPU_WARN


def fmt_num(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v < 1000:
        return f"{v:,.1f}"
    return f"{v:,.0f}"


def describe(r: dict, metric: str) -> str:
    s = f"{fmt_num(r[metric])} {'keys/s' if metric == 'keys_per_sec' else 'ops/s'}"
    if r.get("depth") == 1 and r.get("p50_us") is not None:
        s += f", p50 {r['p50_us']:.0f}us p99 {r['p99_us']:.0f}us"
    s += f", errors {r['errors']}"
    if r.get("misses"):
        s += f", misses {r['misses']}"
    s += f", server cpu {r.get('server_cpu')}, loadgen cpu {r.get('client_cpu')}"
    if is_noisy(r):
        s += (f"  WARNING: other processes used {r.get('other_cpu')} cores (steal {r.get('steal_cpu')})"
              f" during this run, numbers are unreliable")
    return s


# --------------------------------------------------------------------------- workloads


def measure(srv: Server, args: list[str], name: str, label: str, metric: str, opts) -> dict:
    """Run one timed measurement --repeat times, plus up to --retries extra
    runs while the last one was disturbed by other processes; keep the best
    (interference only ever makes a run slower)."""
    bound = PRELOAD_TIMEOUT + opts.duration + opts.warmup + 30
    runs: list[dict] = []
    retries = opts.retries
    while True:
        tag = f" (run {len(runs) + 1})" if runs else ""
        log(f"[{srv.role}] {label} ...{tag}")
        r = run_loadgen(srv, args, opts.pin, opts.duration, opts.warmup, bound, name)
        log(f"[{srv.role}] {label}: {describe(r, metric)}")
        runs.append(r)
        if len(runs) < opts.repeat:
            continue
        if is_noisy(r) and retries > 0:
            retries -= 1
            log(f"[{srv.role}] {label}: other processes were busy, measuring again")
            continue
        break
    best = dict(max(runs, key=lambda x: x[metric]))
    if len(runs) > 1:
        best["all_runs"] = runs
    return best


def bench_target(role: str, label: str, cmd: list[str], only: list[str], opts) -> dict:
    """Run the selected workloads against one server command."""
    pin = opts.pin
    d, w = opts.duration, opts.warmup
    bound = PRELOAD_TIMEOUT + d + w + 30
    results: dict = {}

    timed = [n for n in TIMED if n in only]
    if timed:
        srv = Server(role, label, cmd, 64, pin, "main")
        srv.start()
        try:
            for name in timed:
                args, metric = TIMED[name]
                try:
                    results[name] = measure(srv, args + ["--preload", str(KEYS_SMALL), "--keys", str(KEYS_SMALL)],
                                            name, name, metric, opts)
                except BenchError as e:
                    log(f"[{role}] {name}: FAILED: {e}")
                    results[name] = {"failed": str(e)}
                    if not srv.alive():
                        srv.stop()
                        srv = Server(role, label, cmd, 64, pin, "main-restart")
                        srv.start()
        finally:
            srv.stop()

    if "memory" in only:
        srv = Server(role, label, cmd, 64, pin, "memory")
        srv.start()
        try:
            log(f"[{role}] memory: {MEMORY_FILL:,} sets of unique keys with 100-byte values (-m 64) ...")
            try:
                r = run_loadgen(srv, ["--workload", "fill", "--conns", "4", "--depth", "32",
                                      "--count", str(MEMORY_FILL)], pin, d, w, bound, "memory")
                srv.settle()
                st = srv.stats()
                mem = srv.memory()
                res = {
                    "fill_ops_per_sec": r["ops_per_sec"],
                    "fill_seconds": r["seconds"],
                    "fill_errors": r["errors"],
                    "fill_other_cpu": r["other_cpu"],
                    "curr_items": int(st["curr_items"]) if "curr_items" in st else None,
                    "evictions": int(st["evictions"]) if "evictions" in st else None,
                    "bytes": int(st["bytes"]) if "bytes" in st else None,
                    **mem,
                }
                if r.get("stderr"):
                    res["fill_stderr"] = r["stderr"]
                log(f"[{role}] memory: items {fmt_num(res['curr_items'])}, evictions "
                    f"{fmt_num(res['evictions'])}, RSS {res.get('rss_mb', 0):.1f} MB "
                    f"(pid {res.get('pid')} {res.get('name')}), fill {fmt_num(r['ops_per_sec'])} sets/s, "
                    f"errors {r['errors']}")
                results["memory"] = res
            except (BenchError, OSError, ValueError) as e:
                log(f"[{role}] memory: FAILED: {e}")
                results["memory"] = {"failed": str(e)}
        finally:
            srv.stop()

    if "scale" in only:
        srv = Server(role, label, cmd, 1024, pin, "scale")
        srv.start()
        try:
            args, metric = TIMED["get50"]
            try:
                small = measure(srv, args + ["--preload", str(KEYS_SMALL), "--keys", str(KEYS_SMALL)],
                                "scale", "scale 10k", metric, opts)
                log(f"[{role}] scale: loading up to {KEYS_LARGE:,} keys ...")
                fill = run_loadgen(srv, ["--workload", "fill", "--conns", "4", "--depth", "32",
                                         "--key-offset", str(KEYS_SMALL),
                                         "--count", str(KEYS_LARGE - KEYS_SMALL)], pin, d, w, bound, "scale")
                waited = srv.settle()
                items = srv.stats().get("curr_items")
                log(f"[{role}] scale: loaded in {fill['seconds']:.1f}s ({fmt_num(fill['ops_per_sec'])} sets/s), "
                    f"curr_items {items}, server idle after {waited:.1f}s")
                large = measure(srv, args + ["--keys", str(KEYS_LARGE)], "scale", "scale 1M", metric, opts)
                results["scale"] = {
                    "ops_per_sec_10k": small["ops_per_sec"],
                    "ops_per_sec_1m": large["ops_per_sec"],
                    "ratio_1m_10k": large["ops_per_sec"] / small["ops_per_sec"] if small["ops_per_sec"] else None,
                    "curr_items_1m": int(items) if items is not None else None,
                    "misses_1m": large["misses"],
                    "errors": small["errors"] + fill["errors"] + large["errors"],
                    "rss_mb_1m": srv.memory().get("rss_mb"),
                    "run_10k": small,
                    "run_1m": large,
                }
            except (BenchError, OSError, ValueError) as e:
                log(f"[{role}] scale: FAILED: {e}")
                results["scale"] = {"failed": str(e)}
        finally:
            srv.stop()
    return results


# --------------------------------------------------------------------------- report


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def summarize(ref: dict, cand: dict, only: list[str]) -> list[dict]:
    rows = []
    for name in WORKLOADS:
        if name not in only:
            continue
        r, c = ref.get(name, {}), cand.get(name, {})
        row = {"workload": name, "target": TARGETS[name]}
        if "failed" in r or "failed" in c:
            row.update(metric="-", reference=None, candidate=None, ratio=None, passed=False,
                       note="failed: " + (c.get("failed") or r.get("failed") or "")[:60])
            rows.append(row)
            continue
        if name in TIMED:
            metric = TIMED[name][1]
            row.update(metric="keys/s" if metric == "keys_per_sec" else "ops/s",
                       reference=r[metric], candidate=c[metric], ratio=ratio(c[metric], r[metric]))
            row["passed"] = row["ratio"] is not None and row["ratio"] >= float(TARGETS[name].split()[-1])
            errs = c.get("errors", 0) + c.get("misses", 0)
            row["note"] = f"errors ref {r['errors']} / cand {c['errors']}"
            if c.get("misses") or r.get("misses"):
                row["note"] += f", misses ref {r.get('misses')} / cand {c.get('misses')}"
            if errs:
                row["passed"] = False
            row["extra"] = {"reference_ops_per_sec": r["ops_per_sec"], "candidate_ops_per_sec": c["ops_per_sec"]}
            if metric == "keys_per_sec":
                row["note"] += f"; ops/s ref {fmt_num(r['ops_per_sec'])} / cand {fmt_num(c['ops_per_sec'])}"
        elif name == "memory":
            items_ratio = ratio(c.get("curr_items"), r.get("curr_items"))
            rss = c.get("rss_mb")
            row.update(metric="items", reference=r.get("curr_items"), candidate=c.get("curr_items"),
                       ratio=items_ratio,
                       reference_rss_mb=r.get("rss_mb"), candidate_rss_mb=rss)
            row["passed"] = (items_ratio is not None and items_ratio >= 0.9 and rss is not None and rss <= 130)
            row["note"] = (f"RSS MB ref {fmt_num(r.get('rss_mb'))} / cand {fmt_num(rss)}; evictions ref "
                           f"{fmt_num(r.get('evictions'))} / cand {fmt_num(c.get('evictions'))}; fill errors ref "
                           f"{r.get('fill_errors')} / cand {c.get('fill_errors')}")
        elif name == "scale":
            row.update(metric="get50 1M/10k", reference=r.get("ratio_1m_10k"), candidate=c.get("ratio_1m_10k"),
                       ratio=c.get("ratio_1m_10k"))
            row["passed"] = row["ratio"] is not None and row["ratio"] >= 0.8 and not c.get("misses_1m")
            row["note"] = (f"ops/s 10k->1M ref {fmt_num(r.get('ops_per_sec_10k'))}->{fmt_num(r.get('ops_per_sec_1m'))}"
                           f" / cand {fmt_num(c.get('ops_per_sec_10k'))}->{fmt_num(c.get('ops_per_sec_1m'))}")
            if c.get("misses_1m"):
                row["note"] += f", cand misses {c['misses_1m']}"
        rows.append(row)
    return rows


def noisy_runs(report: dict) -> list[dict]:
    """Kept measurements during which other processes used the CPUs."""
    out = []
    for role in ("reference", "candidate"):
        for name, res in report.get(role, {}).items():
            if name == "memory":
                continue  # items and RSS do not depend on CPU contention
            runs = [res]
            if name == "scale":
                runs = [res.get("run_10k", {}), res.get("run_1m", {})]
            for r in runs:
                if is_noisy(r):
                    out.append({"role": role, "workload": name,
                                "other_cpu": max(r.get("other_cpu") or 0, r.get("steal_cpu") or 0)})
    return out


def print_table(rows: list[dict], ref_label: str, cand_label: str) -> None:
    def cell(v, metric):
        if v is None:
            return "-"
        if metric == "get50 1M/10k":
            return f"{v:.2f}"
        return fmt_num(v)

    head = ["workload", "metric", "reference", "candidate", "ratio", "target", "result"]
    table = [head]
    for r in rows:
        table.append([
            r["workload"], r["metric"], cell(r["reference"], r["metric"]), cell(r["candidate"], r["metric"]),
            "-" if r["ratio"] is None else f"{r['ratio']:.2f}", r["target"],
            "PASS" if r["passed"] else "FAIL",
        ])
        if r["workload"] == "memory":
            rss_ok = r.get("candidate_rss_mb") is not None and r["candidate_rss_mb"] <= 130
            table.append(["memory", "RSS MB", cell(r.get("reference_rss_mb"), ""),
                          cell(r.get("candidate_rss_mb"), ""), "-", "<= 130 MB",
                          "PASS" if rss_ok else "FAIL"])
    print()
    print(f"reference = {ref_label}    candidate = {cand_label}")
    print_table_rows(table, right={2, 3, 4})
    print()
    for r in rows:
        if r.get("note"):
            print(f"  {r['workload']}: {r['note']}")
    print(flush=True)


# --------------------------------------------------------------------------- main


def add_run_options(ap: argparse.ArgumentParser, workloads: list[str]) -> None:
    """The options every benchmark script shares (measurement length, repeats, selection,
    output); read them back with parse_run_options."""
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per workload (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each measurement (default 1)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each timed workload N times and keep the best (default 1)")
    ap.add_argument("--retries", type=int, default=1,
                    help="extra runs of a timed measurement while other processes disturb it (default 1)")
    ap.add_argument("--only", default=",".join(workloads),
                    help=f"comma-separated subset of: {','.join(workloads)}")
    ap.add_argument("--check", action="store_true", help="exit with status 1 if any target is missed")


def parse_run_options(ap: argparse.ArgumentParser, argv, workloads: list[str]):
    """(options, selected workloads), refusing bad values with a usage error."""
    opts = ap.parse_args(argv)
    only = [s.strip() for s in opts.only.split(",") if s.strip()]
    bad = [s for s in only if s not in workloads]
    if bad or not only:
        ap.error(f"--only: unknown workload(s) {bad}; choose from {','.join(workloads)}")
    if opts.duration <= 0 or opts.warmup < 0 or opts.repeat < 1 or opts.retries < 0:
        ap.error("--duration must be > 0, --warmup >= 0, --repeat >= 1 and --retries >= 0")
    return opts, only


def prepare_machine(opts) -> bool:
    """Decide pinning (``opts.pin``) and build the load generator; False (with a message)
    when the load generator cannot be built."""
    opts.pin = shutil.which("taskset") is not None and {0, 1} <= os.sched_getaffinity(0)
    if not opts.pin:
        log("warning: not pinning (needs taskset and CPUs 0 and 1); numbers will be noisier")
    try:
        build_loadgen()
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return False
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Compare a memcached-compatible server with real memcached.")
    ap.add_argument("--server-cmd", default="pymc-server",
                    help="candidate server command (shell-split); run with -t 1 -m MB -p PORT -l 127.0.0.1 -U 0")
    ap.add_argument("--reference-cmd", default="memcached", help="reference server command (default memcached)")
    add_run_options(ap, WORKLOADS)
    ap.add_argument("--json", metavar="OUT", help="write all results as JSON to OUT")
    opts, only = parse_run_options(ap, argv, WORKLOADS)

    ref_cmd = shlex.split(opts.reference_cmd)
    cand_cmd = shlex.split(opts.server_cmd)
    for role, cmd, hint in (
        ("reference", ref_cmd, "install memcached (apt-get install memcached) or pass --reference-cmd"),
        ("candidate", cand_cmd, "install the server (pip install -e .) or pass --server-cmd 'COMMAND ...'"),
    ):
        if not cmd or shutil.which(cmd[0]) is None:
            print(f"error: {role} server command {' '.join(cmd)!r} not found on PATH: {hint}", file=sys.stderr)
            return 2

    if not prepare_machine(opts):
        return 2

    started = time.time()
    report = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "pinned": opts.pin,
            "server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU,
            "reference_cmd": ref_cmd, "candidate_cmd": cand_cmd,
            "server_flags": "-t 1 -m 64 -p PORT -l 127.0.0.1 -U 0 (scale: -m 1024)",
            "duration": opts.duration, "warmup": opts.warmup, "repeat": opts.repeat, "retries": opts.retries,
            "workloads": only,
        },
    }
    exit_code = 0
    results = {}
    try:
        # Fail fast: make sure both servers start before spending minutes on one.
        log("checking that both servers start ...")
        for role, cmd in (("reference", ref_cmd), ("candidate", cand_cmd)):
            srv = Server(role, shlex.join(cmd), cmd, 64, opts.pin, "preflight")
            try:
                srv.start()
            finally:
                srv.stop()
        for role, cmd in (("reference", ref_cmd), ("candidate", cand_cmd)):
            log(f"=== {role}: {shlex.join(cmd)} ===")
            results[role] = bench_target(role, shlex.join(cmd), cmd, only, opts)
    except StartError as e:
        print(f"\nerror: {e}\n"
              f"The server must accept '-t 1 -m MB -p PORT -l 127.0.0.1 -U 0' and answer 'version' on the port. "
              f"Check the command (--server-cmd / --reference-cmd), that it is installed, and the log above.",
              file=sys.stderr)
        exit_code = 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        exit_code = 130

    report["reference"] = results.get("reference", {})
    report["candidate"] = results.get("candidate", {})
    if exit_code == 0:
        rows = summarize(report["reference"], report["candidate"], only)
        report["summary"] = rows
        print_table(rows, shlex.join(ref_cmd), shlex.join(cand_cmd))
        noisy = noisy_runs(report)
        report["noisy_runs"] = noisy
        if noisy:
            worst = max(n["other_cpu"] for n in noisy)
            names = sorted({f"{n['role']}/{n['workload']}" for n in noisy})
            print(f"WARNING: other processes were using up to {worst:.2f} cores during {', '.join(names)};"
                  f" those numbers are unreliable. Re-run on an idle machine.\n", flush=True)
        if any("failed" in v for side in ("reference", "candidate") for v in report[side].values()):
            exit_code = 1
        elif opts.check and not all(r["passed"] for r in rows):
            exit_code = 1
    return finish_report(report, opts, started, exit_code)


if __name__ == "__main__":
    sys.exit(main())
