"""Route handles, one per module, each registered under its mcrouter JSON ``"type"``.

Importing this package imports every handle module so the registry is complete.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import REGISTRY, RouteHandle, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "RouteHandle", "register"]
