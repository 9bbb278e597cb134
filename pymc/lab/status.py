"""What every process of a lab is doing: ``collect`` asks them all at once (servers ``stats``,
routers ``stats suspect_servers``, proxies ``status``), ``table`` prints it for people."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from .fault_proxy import control
from .faults import describe

TIMEOUT = 1.0


def collect(lab) -> list[dict]:
    """One dict per node: name, kind, dc, address, pid, process (running | stopped (SIGSTOP)
    | dead), up (answered just now), rss_mb, fault ("slow 100", ...) and by kind:
    servers/gutters items, get_hits, get_misses, hit_rate (None without gets);
    routers tko {server node: "status:tko num_failures:3"}; proxies links {name: mode}."""
    with ThreadPoolExecutor(max_workers=max(1, len(lab.nodes))) as pool:
        return list(pool.map(lambda node: _one(lab, node), lab.nodes))


def _one(lab, node: dict) -> dict:
    row = {key: node[key] for key in ("name", "kind", "dc", "address", "pid")}
    row["fault"] = describe(lab.state["faults"].get(node["name"]))
    row["process"], row["rss_mb"] = lab.process_state(node)
    if row["process"] == "dead":
        row["pid"] = None
    row["up"] = False
    if row["process"] != "running":
        return row
    try:
        if node["kind"] in ("server", "gutter"):
            stats = lab.router_stats(node["name"], "", TIMEOUT)
            hits, misses = stats.get("get_hits", 0), stats.get("get_misses", 0)
            row.update(items=stats.get("curr_items", 0), get_hits=hits, get_misses=misses,
                       hit_rate=hits / (hits + misses) if hits + misses else None)
        elif node["kind"] == "router":
            row["tko"] = lab.suspect_servers(node["name"], TIMEOUT)
        else:
            links = json.loads(control(node["address"], "status", TIMEOUT))
            row["links"] = {name: (link["mode"] if link["parameter"] is None
                                   else f"{link['mode']} {link['parameter']}")
                            for name, link in links.items()}
        row["up"] = True
    except (OSError, ValueError, RuntimeError) as exc:
        row["error"] = str(exc) or type(exc).__name__
    return row


def _detail(row: dict) -> str:
    if not row["up"]:
        return row.get("error", "")
    if row["kind"] in ("server", "gutter"):
        gets = row["get_hits"] + row["get_misses"]
        rate = "-" if row["hit_rate"] is None else f"{100 * row['hit_rate']:.1f}%"
        return f"items {row['items']}, hit rate {rate} of {gets} gets"
    if row["kind"] == "router":
        if not row["tko"]:
            return "TKO: none"
        return "TKO: " + ", ".join(f"{name} ({text.replace('status:', '')})"
                                   for name, text in sorted(row["tko"].items()))
    modes: dict[str, int] = {}
    for mode in row["links"].values():
        modes[mode] = modes.get(mode, 0) + 1
    if set(modes) <= {"pass"}:
        return f"{len(row['links'])} links, all pass"
    return f"{len(row['links'])} links: " + ", ".join(
        f"{count} {mode}" for mode, count in sorted(modes.items(), key=lambda m: m[0] != "pass"))


def table(lab, rows: list[dict] | None = None) -> str:
    """``rows`` (default: ``lab.status()``) for people; the caller that passes rows has
    refreshed ``lab`` for them."""
    rows = lab.status() if rows is None else rows
    header = ("NODE", "KIND", "DC", "ADDRESS", "PID", "STATE", "RSS", "FAULT", "DETAIL")
    lines = [header]
    for row in rows:
        state = "up" if row["up"] else ("frozen" if row["process"] == "stopped" else
                                        "DOWN" if row["process"] == "dead" else "no answer")
        lines.append((row["name"], row["kind"], row["dc"], row["address"],
                      str(row["pid"] or "-"), state,
                      "-" if row["rss_mb"] is None else f"{row['rss_mb']:.0f}M",
                      row["fault"] or "-", _detail(row)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1]
           for line in lines]
    up = sum(row["up"] for row in rows)
    total_rss = sum(row["rss_mb"] or 0 for row in rows)
    summary = f"{up}/{len(rows)} processes up, {total_rss:.0f} MB RSS in total"
    partitions = lab.state["partitions"]
    if partitions:
        summary += "; partitioned: " + ", ".join(f"{a} | {b}" for a, b in partitions)
    out.append(summary)
    return "\n".join(line.rstrip() for line in out)
