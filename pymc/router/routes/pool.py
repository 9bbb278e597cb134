"""PoolRoute: hash a key to one server of a pool (``{"pool": "A", "hash": ...}`` or
``"PoolRoute|A"``), and Pool: a pool's servers as a child list (``"AllSyncRoute|Pool|A"``).

The pool's ``weights`` switch hashing to WeightedCh3; the route's ``hash`` (a function name or
an object with hash_func, salt, ...) overrides, as in mcrouter's makePoolRoute. ``shadows``
wrap the members their ``index_range`` covers in ShadowRoutes. The hashing
itself is HashRoute's, handed the pool's destinations as ``$children_list$``.
"""

from __future__ import annotations

from .base import CHILDREN_LIST, REGISTRY, RouteHandle, register


def _pool(factory, json):
    factory.check(factory.pools is not None, "pools are not available here")
    return factory.pools.build(factory, json)


@register("PoolRoute")
def make_pool_route(factory, json) -> RouteHandle:
    factory.check(isinstance(json, (dict, str)), "PoolRoute should be object or string")
    if isinstance(json, dict):
        factory.check("pool" in json, "PoolRoute: pool not found")
        with factory.at("pool"):
            pool = _pool(factory, json["pool"])
    else:
        pool = _pool(factory, json)
    hash_json: dict = {}
    if pool.weights is not None:
        hash_json = {"hash_func": "WeightedCh3", "weights": pool.weights}
    if isinstance(json, dict) and "hash" in json:
        jhash = json["hash"]
        factory.check(isinstance(jhash, (dict, str)), "hash is not object/string")
        if isinstance(jhash, str):
            hash_json["hash_func"] = jhash
        else:
            hash_json.update(jhash)
    hash_json["children"] = CHILDREN_LIST
    members = pool.routes
    if isinstance(json, dict) and "shadows" in json:
        from .shadow import make_shadow_routes  # PoolRoute's shadows wrap its members
        members = make_shadow_routes(factory, json, list(members))
    with factory.children_list(members):
        return REGISTRY["HashRoute"](factory, hash_json)


@register("Pool")
def make_pool(factory, json) -> list[RouteHandle]:
    return list(_pool(factory, json).routes)
