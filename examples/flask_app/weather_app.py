"""A small Flask app that caches a slow lookup in memcached (through pymemcache).

    MEMCACHED=127.0.0.1:11211 flask --app weather_app run

GET /forecast/<city> answers from the cache for CACHE_SECONDS; the first request (and the
first after the entry expired) pays for the slow lookup. DELETE /forecast/<city> drops the
cached entry. GET /lookups says how many slow lookups were made.
"""

from __future__ import annotations

import json
import os
import time

from flask import Flask, jsonify
from pymemcache.client.base import Client

CACHE_SECONDS = 600


def slow_forecast(city: str) -> dict:
    """Stands for an expensive call (a remote API, a big query)."""
    time.sleep(0.05)
    return {"city": city, "forecast": "sunny" if len(city) % 2 else "rain"}


def create_app(memcached: str | None = None) -> Flask:
    app = Flask(__name__)
    address = memcached or os.environ.get("MEMCACHED", "127.0.0.1:11211")
    host, port = address.rsplit(":", 1)
    cache = Client((host, int(port)), connect_timeout=2, timeout=2, default_noreply=False)
    app.config["LOOKUPS"] = 0

    @app.get("/forecast/<city>")
    def forecast(city: str):
        key = f"forecast:{city.lower()}"
        cached = cache.get(key)
        if cached is not None:
            return jsonify({**json.loads(cached), "cached": True})
        value = slow_forecast(city)
        app.config["LOOKUPS"] += 1
        cache.set(key, json.dumps(value).encode(), expire=CACHE_SECONDS)
        return jsonify({**value, "cached": False})

    @app.delete("/forecast/<city>")
    def forget(city: str):
        return jsonify(deleted=cache.delete(f"forecast:{city.lower()}"))

    @app.get("/lookups")
    def lookups():
        return jsonify(lookups=app.config["LOOKUPS"])

    return app
