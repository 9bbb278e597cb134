"""The pymc pytest plugin: real pymc-servers, pymc-routers and the two-DC lab as fixtures.

Registered as the ``pymc`` pytest11 entry point; ``-p pymc.testing.plugin`` or
``pytest_plugins = ["pymc.testing.plugin"]`` load it where the package is not installed.
Loading it both ways at once is fine: whichever registration comes first also takes the other
name (pluggy refuses one module under two names, and skips a name already taken).

Fixtures:

- ``memcached_server`` — one server per session (``memcached_server_session``), made clean
  before each test: clock offset undone, flushed, ``stats reset``, ``cache_memlimit`` and
  ``verbosity`` as started; restarted if a test stopped it.
- ``memcached_server_factory(*flags)`` — fresh servers with their own flags, stopped after
  the test.
- ``mcrouter(config, *flags, server_args=())`` — a pymc-router with its placeholder backends
  started (``pymc.testing.router``), stopped after the test.
- ``pymc_lab`` — the two-DC lab, up once per session (``pymc_lab_session``), healed and
  flushed after each test.

``--pymc-mode=subprocess|inprocess`` (else ini ``pymc_mode``, else $PYMC_TESTING_MODE, else
subprocess) picks how servers and routers run; ini ``pymc_server_args`` adds flags to the
session server.
"""

from __future__ import annotations

import sys

import pytest

from .servers import MODES, default_mode

_NAMES = ("pymc", __name__)  # the entry point's name and the module's


def pytest_addoption(parser) -> None:
    group = parser.getgroup("pymc", "pymc: real memcached servers and routers")
    group.addoption("--pymc-mode", dest="pymc_mode", choices=MODES, default=None,
                    help="run pymc-servers and pymc-routers as subprocesses (default) or "
                         "inside the test process on their own thread")
    parser.addini("pymc_mode", "pymc fixtures: subprocess (default) or inprocess", default="")
    parser.addini("pymc_server_args", "pymc fixtures: extra pymc-server flags for "
                  "memcached_server", type="args", default=[])


def pytest_configure(config) -> None:
    try:
        _mode(config)
    except ValueError as exc:
        raise pytest.UsageError(f"--pymc-mode, ini pymc_mode or $PYMC_TESTING_MODE: {exc}") \
            from None


def _mode(config) -> str:
    return default_mode(config.getoption("pymc_mode") or config.getini("pymc_mode") or None)


class _OtherName:
    """Stands for the plugin under its other name, so it is not registered twice."""


def pytest_plugin_registered(plugin, manager) -> None:
    if plugin is not sys.modules[__name__]:
        return
    for name in _NAMES:
        if manager.get_plugin(name) is None and not manager.is_blocked(name):
            manager.register(_OtherName(), name)


@pytest.fixture(scope="session")
def pymc_mode(pytestconfig) -> str:
    """``subprocess`` or ``inprocess``: --pymc-mode, else the ``pymc_mode`` ini value, else
    $PYMC_TESTING_MODE, else subprocess."""
    return _mode(pytestconfig)


@pytest.fixture(scope="session")
def memcached_server_session(pymc_mode, pytestconfig):
    """The session's pymc-server, as it is (``memcached_server`` resets it per test)."""
    from .servers import MemcachedServer

    server = MemcachedServer(*pytestconfig.getini("pymc_server_args"), mode=pymc_mode)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def memcached_server(memcached_server_session):
    """A real pymc-server on 127.0.0.1, clean for this test (restarted if a test stopped
    it): ``.address``, ``.client()``, ``.stats()``, ``.flush()``, ``.advance_time(s)``."""
    memcached_server_session.reset()
    return memcached_server_session


@pytest.fixture
def memcached_server_factory(pymc_mode):
    """``memcached_server_factory(*flags, **kwargs)``: a new pymc-server with these flags."""
    from .servers import MemcachedServer

    started = []

    def start(*flags: str, **kwargs):
        kwargs.setdefault("mode", pymc_mode)
        server = MemcachedServer(*flags, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def mcrouter(pymc_mode):
    """``mcrouter(config, *flags, server_args=())``: a running pymc-router for an mcrouter
    config (dict, JSON text or path) whose placeholder servers were started for it."""
    from .router import Router

    started = []

    def start(config, *flags: str, **kwargs):
        kwargs.setdefault("mode", pymc_mode)
        router = Router(config, *flags, **kwargs)
        started.append(router)
        return router.start()

    yield start
    for router in reversed(started):
        router.stop()


@pytest.fixture(scope="session")
def pymc_lab_session():
    """The session's two-DC lab, as it is (``pymc_lab`` heals it after each test)."""
    from .lab import TwoDCLab

    lab = TwoDCLab()
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture
def pymc_lab(pymc_lab_session):
    """The two-DC lab (``pymc.testing.TwoDCLab``); faults healed and caches flushed after the
    test."""
    yield pymc_lab_session
    pymc_lab_session.reset()
