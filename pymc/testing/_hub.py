"""In-process mode: one native thread with its own gevent hub that hosts every in-process
pymc-server and pymc-router of the test process.

pymc never monkey-patches, so the test's own thread keeps blocking sockets and this thread's
hub (a loop of its own, not gevent's default loop) serves the listeners. One thread hosts them
all because the shells share per-process state that assumes one thread (``pymc.sockets``
reads into one buffer; the router's background-work bound is a module global); it is
started on first use and stopped when the last instance on it stops.
"""

from __future__ import annotations

import queue
import threading

CALL_TIMEOUT = 30.0

_lock = threading.Lock()
_hub: "HubThread | None" = None
_users = 0


class HubThread:
    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._ready = threading.Event()
        self._wakeup = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="pymc-inprocess", daemon=True)
        self.thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            import gevent
            import gevent.event
            hub = gevent.get_hub()  # this thread's own hub and loop
            done = gevent.event.Event()
            wakeup = hub.loop.async_()  # keeps the loop alive while the thread runs
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            return

        def drain() -> None:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    return
                if job is None:
                    done.set()
                else:
                    gevent.spawn(job)

        wakeup.start(drain)
        self._wakeup = wakeup
        self._ready.set()
        try:
            done.wait()
        finally:
            wakeup.close()
            hub.destroy(destroy_loop=True)

    def call(self, function, timeout: float = CALL_TIMEOUT):
        """Run ``function()`` in a greenlet on the hub thread; its result or exception."""
        finished = threading.Event()
        box: dict = {}

        def job() -> None:
            try:
                box["result"] = function()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                box["error"] = exc
            finally:
                finished.set()

        self._jobs.put(job)
        self._wakeup.send()
        if not finished.wait(timeout):
            raise TimeoutError(f"the pymc in-process thread did not answer in {timeout:g} s")
        if "error" in box:
            raise box["error"]
        return box["result"]

    def stop(self) -> None:
        self._jobs.put(None)
        self._wakeup.send()
        self.thread.join(CALL_TIMEOUT)


def acquire() -> HubThread:
    """The hub thread, started if needed; pair every call with ``release()``."""
    global _hub, _users
    with _lock:
        if _hub is None:
            _hub = HubThread()
        _users += 1
        return _hub


def release() -> None:
    global _hub, _users
    with _lock:
        _users -= 1
        if _users <= 0 and _hub is not None:
            _hub.stop()
            _hub, _users = None, 0
