"""The weather app against a real memcached: caching, expiry (without sleeping) and
invalidation."""

import weather_app


def lookups(client) -> int:
    return client.get("/lookups").get_json()["lookups"]


def test_second_request_comes_from_the_cache(client):
    first = client.get("/forecast/Paris").get_json()
    second = client.get("/forecast/paris").get_json()
    assert first == {"city": "Paris", "forecast": "sunny", "cached": False}
    assert second == {"city": "Paris", "forecast": "sunny", "cached": True}
    assert lookups(client) == 1


def test_the_entry_expires_after_cache_seconds(client, memcached_server):
    client.get("/forecast/Oslo")
    memcached_server.advance_time(weather_app.CACHE_SECONDS - 10)  # the server's clock, not ours
    assert client.get("/forecast/Oslo").get_json()["cached"] is True
    memcached_server.advance_time(10)
    assert client.get("/forecast/Oslo").get_json()["cached"] is False
    assert lookups(client) == 2


def test_delete_forgets_the_entry(client, memcached_server):
    client.get("/forecast/Rome")
    assert memcached_server.stats()["curr_items"] == 1
    assert client.delete("/forecast/Rome").get_json() == {"deleted": True}
    assert client.get("/forecast/Rome").get_json()["cached"] is False


def test_every_test_starts_with_an_empty_cache(client, memcached_server):
    # the tests above cached Paris, Oslo and Rome; the fixture flushed them before this one
    assert memcached_server.stats()["curr_items"] == 0
    assert client.get("/forecast/Paris").get_json()["cached"] is False
