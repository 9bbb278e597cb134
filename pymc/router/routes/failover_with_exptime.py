"""FailoverWithExptimeRoute: a FailoverRoute over ``normal`` then the ``failover`` children,
where each failover child is wrapped in ModifyExptimeRoute "min" with ``failover_exptime``
(default 60 s), so data written to a gutter pool while the normal one is down expires soon.
A ``failover_exptime`` of 0 or less leaves the failover children unwrapped, as in mcrouter.
Takes every FailoverRoute option (failover_errors, failover_limit, ...).
"""

from __future__ import annotations

from .base import RouteHandle, register
from .failover import make_failover
from .modify_exptime import ModifyExptimeRoute

DEFAULT_FAILOVER_EXPTIME = 60


@register("FailoverWithExptimeRoute")
def make_failover_with_exptime_route(factory, json) -> RouteHandle:
    factory.check(isinstance(json, dict), "FailoverWithExptimeRoute is not an object")
    normal = factory.create(factory.require(json, "normal"), "normal")
    exptime = factory.get(json, "failover_exptime", DEFAULT_FAILOVER_EXPTIME, int,
                          "an integer")
    failover = factory.create_list(json["failover"], "failover") if "failover" in json else []
    # As mcrouter's getFailoverChildren: only a positive failover_exptime wraps the failover
    # children; 0 or less leaves them as they are (the client's exptime reaches the gutter).
    # This differs from ModifyExptimeRoute's own "min" builder, which returns its target
    # only for 0 and wraps for a negative exptime.
    if exptime > 0:
        failover = [ModifyExptimeRoute(child, exptime, "min") for child in failover]
    return make_failover(factory, json, [normal] + failover)
