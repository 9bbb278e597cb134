"""Real memcached servers, routers and the two-DC lab for tests.

pytest: the plugin (``pymc.testing.plugin``, registered as the ``pymc`` pytest11 entry point)
gives the fixtures ``memcached_server``, ``memcached_server_factory``, ``mcrouter`` and
``pymc_lab``. Anything else (unittest, scripts) uses the context managers::

    with MemcachedServer(mode="inprocess") as server:
        server.client().set("k", b"v")
        server.advance_time(60)           # the server's clock, via debugtime
    with Router({"pools": {"A": {"servers": 3}}, "route": "PoolRoute|A"}) as router: ...
    with TwoDCLab() as lab: ...
"""

from .lab import TwoDCLab
from .router import Router
from .servers import MODES, MemcachedServer, ServerHandle, free_port

__all__ = ["MODES", "MemcachedServer", "Router", "ServerHandle", "TwoDCLab", "free_port"]
