"""pymc.testing without pytest: a unittest.TestCase with its own server and router.

Runs under pytest like any unittest case, and alone: ``python -m unittest
tests.testing.test_unittest_example`` (``PYMC_TESTING_MODE=inprocess`` for the in-process
mode).
"""

import time
import unittest

from pymc.testing import MemcachedServer, Router


class CacheTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = MemcachedServer()  # mode: $PYMC_TESTING_MODE, else subprocess
        cls.server.start()
        cls.addClassCleanup(cls.server.stop)
        cls.router = Router({"pools": {"A": {"servers": 2}}, "route": "PoolRoute|A"})
        cls.router.start()
        cls.addClassCleanup(cls.router.stop)

    def setUp(self):
        self.server.reset()  # flushed, clock offset undone, counters zeroed
        self.router.reset()  # the same for the router's backends

    def test_ttl_expires_without_sleeping(self):
        client = self.server.client()
        started = time.monotonic()
        client.set("token", b"abc", expire=3600)
        self.server.advance_time(3000)
        self.assertEqual(client.get("token"), b"abc")
        self.server.advance_time(600)
        self.assertIsNone(client.get("token"))
        self.assertLess(time.monotonic() - started, 2)

    def test_a_leaves_an_item(self):
        self.server.client().set("left-over", b"x")

    def test_b_starts_clean(self):  # unittest runs methods in name order: after test_a
        self.assertIsNone(self.server.client().get("left-over"))
        self.assertEqual(self.server.stats()["curr_items"], 0)

    def test_router_spreads_keys_over_its_backends(self):
        client = self.router.client()
        for i in range(40):
            client.set(f"user:{i}", b"%d" % i)
        counts = [server.stats()["curr_items"] for server in self.router.servers["A"]]
        self.assertEqual(sum(counts), 40)
        self.assertTrue(all(counts))
        self.assertEqual(self.router.server_for("user:7").client().get("user:7"), b"7")


if __name__ == "__main__":
    unittest.main()
