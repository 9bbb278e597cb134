"""Reading pymc-server's and pymc-router's /metrics from tests: the scrape, its parsed
families and samples, ``stats`` replies to compare them with, and the checks both services'
metrics tests make (a taken port, requests served while scrapes run)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families



def scrape(port: int, accept: str | None = None) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def wait_for_metrics(port: int, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while True:
        try:
            scrape(port)
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def family_of(found: dict, name: str):
    """The family serving ``name`` (the parser keys counter families without _total)."""
    family = found.get(name) or found.get(name[:-len("_total")])
    assert family is not None, f"{name} not served"
    return family


def sample(found: dict, name: str, **labels) -> float:
    """The value of the sample ``name{labels}``."""
    family = family_of(found, name)
    for s in family.samples:
        if s.name == name and s.labels == labels:
            return s.value
    raise AssertionError(f"{name}{labels} not served; have {[s.labels for s in family.samples]}")


def served_names(found: dict) -> set[str]:
    return {s.name for family in found.values() for s in family.samples}


@contextlib.contextmanager
def taken_port():
    """A loopback port something else is listening on, for as long as the block runs."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield taken.getsockname()[1]


def serve_while_scraping(client, port: int, up_line: str,
                         seconds: float = 3.0) -> tuple[int, int, float]:
    """set/get round trips on ``client`` for ``seconds`` while another thread scrapes ``port``
    without pause, each scrape showing ``up_line``: (round trips made, scrapes made, the
    slowest round trip in seconds). A failed scrape fails here, in the test's thread."""
    stop = threading.Event()
    scrapes = 0
    errors: list[BaseException] = []

    def scraper():
        nonlocal scrapes
        try:
            while not stop.is_set():
                assert up_line in scrape(port)
                scrapes += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            errors.append(exc)

    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    worst = 0.0
    deadline = time.monotonic() + seconds
    i = 0
    try:
        while time.monotonic() < deadline:
            value = b"%d" % i
            started = time.monotonic()
            assert client.call(b"set load%d 0 0 %d\r\n%s\r\n" % (i % 50, len(value), value)) \
                == b"STORED\r\n"
            assert client.until_end(b"get load%d\r\n" % (i % 50)) == \
                b"VALUE load%d 0 %d\r\n%s\r\nEND\r\n" % (i % 50, len(value), value)
            worst = max(worst, time.monotonic() - started)
            i += 1
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    return i, scrapes, worst
