"""The two-DC lab for tests: ``with TwoDCLab() as lab: ...`` brings ``pymc.lab`` up on free
ports in a temporary directory and down again. Every ``Lab`` method works on it
(``lab.fail("eqiad-mc1", "kill")``, ``lab.heal()``, ``lab.router_addresses("eqiad")``, ...).
The lab always runs as processes (it is built to be broken: killed, frozen, partitioned).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .servers import ServerHandle, _Lifecycle, _running


class TwoDCLab(_Lifecycle):
    def __init__(self, topology=None, lab_dir: str | os.PathLike | None = None) -> None:
        self.topology = topology
        self._own_dir = lab_dir is None
        self.dir = Path(lab_dir) if lab_dir is not None else None
        self.lab = None  # the pymc.lab.runner.Lab once started

    def __getattr__(self, name: str):
        lab = self.__dict__.get("lab")
        if lab is None:
            raise AttributeError(f"{name}: the lab is not started")
        return getattr(lab, name)

    def start(self) -> "TwoDCLab":
        from ..lab.runner import Lab

        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="pymc-lab-"))
        self.lab = Lab.create(self.topology, self.dir, base_port=0)
        return self._start_or_clean_up(self.lab.up)

    def stop(self) -> None:
        if self.lab is not None:
            lab, self.lab = self.lab, None
            lab.down()
        if self._own_dir and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        _running.discard(self)

    def reset(self) -> None:
        """Faults healed (killed processes restarted, partitions and WAN latency gone) and
        every server and gutter flushed."""
        self.lab.heal()
        for server in self.caches():
            server.flush()

    def caches(self) -> list[ServerHandle]:
        """Every server and gutter, addressed directly (not through a fault proxy)."""
        return [self.handle(name) for name in self.lab.node_names("server")
                + self.lab.node_names("gutter")]

    def handle(self, name: str) -> ServerHandle:
        """A node (server, gutter or router) as a ``ServerHandle``: stats, command, client."""
        host, port = self.lab.address(name).rsplit(":", 1)
        return ServerHandle(host, int(port), name)

    def router(self, dc: str, index: int = 0) -> ServerHandle:
        """The ``index``-th router of ``dc`` (the app nodes' mcrouter)."""
        names = self.lab.node_names("router", dc)
        if not names:
            raise LookupError(f"no routers in DC {dc!r}; DCs: {', '.join(self.lab.dcs)}")
        return self.handle(names[index])
