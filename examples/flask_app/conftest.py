"""The example's fixtures: the app, wired to the real memcached that pymc's pytest plugin
starts (``memcached_server``: one pymc-server per session, flushed before every test)."""

import pytest

from weather_app import create_app


@pytest.fixture
def app(memcached_server):
    return create_app(memcached_server.address)


@pytest.fixture
def client(app):
    return app.test_client()
