"""Build route trees from (preprocessed) config JSON, as mcrouter's RouteHandleFactory does.

A handle may be written as an object with ``type``, an array (flattened into a child list),
a name of a handle defined elsewhere (``named_handles`` or any object carrying ``name``),
a bare type name (``"NullRoute"``), or the short form ``"Type|arg"`` (``"PoolRoute|A"``,
``"AllSyncRoute|Pool|A"``). The same string always yields the same handle object.
Every error names the JSON path where it was found: one raised inside ``at(step)`` without a
path gets the path including that step. A handle that refers to itself (a named handle naming
itself, a pool whose servers route to the pool) is a ConfigError naming the cycle.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .jsonc import ConfigError
from .routes import REGISTRY, RouteHandle
from .routes.base import CHILDREN_LIST


class RouteFactory:
    def __init__(self, pools=None, named: dict | None = None, options=None) -> None:
        #: ``pools.Pools``: pool definitions and their destination routes (None in unit tests).
        self.pools = pools
        #: Router options (``options.RouterOptions``) some builders consult (host id, timeouts).
        self.options = options
        self._registered: dict[str, object] = dict(named or {})
        self._seen: dict[str, list[RouteHandle]] = {}
        self._path: list[str] = []
        self._children_lists: list[list[RouteHandle]] = []
        #: what is being built, outermost first: ("RouteHandle", name) or ("Pool", name)
        self._building: list[tuple[str, str]] = []

    # -- errors and paths -----------------------------------------------------------------------

    @contextmanager
    def at(self, step: str | int) -> Iterator[None]:
        """Within this block the path includes ``step``; a ConfigError raised here without a
        path (by code that knows no paths, such as Pools) gets this one."""
        self._path.append(f"[{step}]" if isinstance(step, int) else str(step))
        try:
            yield
        except ConfigError as exc:
            if getattr(exc, "located", False):
                raise
            raise self.error(str(exc)) from None
        finally:
            self._path.pop()

    @contextmanager
    def relative(self) -> Iterator[None]:
        """Paths restart here (a pool's servers: their errors read ``servers[0]...`` and the
        pool adds its name and the place that referred to it)."""
        saved, self._path = self._path, []
        try:
            yield
        finally:
            self._path = saved

    @contextmanager
    def building(self, kind: str, name: str, check: bool = True) -> Iterator[None]:
        """Mark ``name`` as being built; with ``check``, building it again before it is done
        is a cycle (a ConfigError without a path: the caller's ``at`` or ``_build`` adds it)."""
        if check and (kind, name) in self._building:
            raise ConfigError(self.cycle(kind, name))
        self._building.append((kind, name))
        try:
            yield
        finally:
            self._building.pop()

    def cycle(self, kind: str, name: str) -> str:
        """``Pool A references itself: A -> B -> A``; steps of another kind are named with
        it (``RouteHandle x references itself: x -> Pool A -> x``)."""
        loop = self._building[self._building.index((kind, name)):] + [(kind, name)]
        chain = " -> ".join(n if k == kind else f"{k} {n}" for k, n in loop)
        return f"{kind} {name} references itself: {chain}"

    @property
    def path(self) -> str:
        text = ""
        for step in self._path:
            text += step if step.startswith("[") or not text else "." + step
        return text or "(top)"

    def error(self, message: str) -> ConfigError:
        error = ConfigError(f"{self.path}: {message}")
        error.located = True  # type: ignore[attr-defined]
        return error

    def check(self, condition: object, message: str) -> None:
        if not condition:
            raise self.error(message)

    # -- building -------------------------------------------------------------------------------

    def create(self, json, step: str | int | None = None) -> RouteHandle:
        """Exactly one handle (mcrouter: "N RouteHandles in list, expected 1")."""
        if step is not None:
            with self.at(step):
                return self.create(json)
        handles = self.create_list(json)
        self.check(len(handles) == 1, f"{len(handles)} RouteHandles in list, expected 1")
        return handles[0]

    def create_list(self, json, step: str | int | None = None) -> list[RouteHandle]:
        if step is not None:
            with self.at(step):
                return self.create_list(json)
        if isinstance(json, list):
            handles: list[RouteHandle] = []
            for index, item in enumerate(json):
                with self.at(index):
                    handles.extend(self.create_list(item))
            return handles
        if isinstance(json, dict):
            name = json.get("name")
            if isinstance(name, str):
                return self._named(name, json)
            return self._build(self._type_of(json), json)
        if isinstance(json, str):
            return self._from_string(json)
        raise self.error(f"RouteHandle is {_json_type(json)}, expected object/array/string")

    def optional(self, json: dict, key: str) -> RouteHandle | None:
        """A child that may be absent (``null``/missing/empty string)."""
        value = json.get(key)
        if value is None or value == "":
            return None
        return self.create(value, key)

    def add_named(self, name: str, json) -> None:
        """Register a ``named_handles`` entry, built when first referenced."""
        self.check(name not in self._registered and name not in self._seen,
                   f"Route handle '{name}' was already registered")
        self._registered[name] = json

    @contextmanager
    def children_list(self, handles: list[RouteHandle]) -> Iterator[None]:
        """Within this block the string ``"$children_list$"`` stands for ``handles`` (how
        PoolRoute hands its destinations to the hashing route, as in mcrouter)."""
        self._children_lists.append(handles)
        try:
            yield
        finally:
            self._children_lists.pop()

    def _from_string(self, text: str) -> list[RouteHandle]:
        if not text:
            return []
        if text == CHILDREN_LIST:
            self.check(self._children_lists, "$children_list$ used outside a pool route")
            return self._children_lists[-1]
        if text in self._seen:
            return self._seen[text]
        if text in self._registered:
            return self._named(text, self._registered.pop(text))
        type_name, bar, arg = text.partition("|")
        if ("RouteHandle", text) in self._building and type_name not in REGISTRY:
            # a named handle naming itself: mcrouter reports "Unknown RouteHandle"
            raise self.error(self.cycle("RouteHandle", text))
        handles = self._build(type_name, arg if bar else None)
        self._seen[text] = handles
        return handles

    def _named(self, name: str, json) -> list[RouteHandle]:
        if name in self._seen:
            return self._seen[name]
        registered = self._registered.pop(name, None)
        if registered is not None:
            json = registered
        # An object inside "x" may be named "x" too (built anew, as mcrouter does); only a
        # reference by name to "x" while it is built is a cycle (see _from_string).
        with self.building("RouteHandle", name, check=False):
            if isinstance(json, dict):
                handles = self._build(self._type_of(json), json)
            else:
                handles = self.create_list(json)
        self._seen[name] = handles
        return handles

    def _type_of(self, json: dict) -> str:
        type_name = json.get("type")
        self.check(type_name is not None, "No type field in RouteHandle json object")
        self.check(isinstance(type_name, str), "Type field in RouteHandle is not a string")
        return type_name

    def _build(self, type_name: str, json) -> list[RouteHandle]:
        builder = REGISTRY.get(type_name)
        if builder is None:
            raise self.error(f"Unknown RouteHandle: {type_name}")
        with self.at(type_name) if not isinstance(json, dict) else _nothing():
            try:
                built = builder(self, json)
            except ConfigError as exc:
                if getattr(exc, "located", False):
                    raise
                raise self.error(str(exc)) from None
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                raise self.error(f"{type_name}: {exc}") from None
        return built if isinstance(built, list) else [built]

    # -- helpers for builders --------------------------------------------------------------------

    def children(self, json, key: str = "children") -> list[RouteHandle]:
        """The child list of a route written as ``{"children": ...}`` or ``"Type|children"``."""
        if isinstance(json, dict):
            self.check(key in json, f"'{key}' property is missing")
            return self.create_list(json[key], key)
        self.check(json, "children are missing")
        return self.create_list(json)

    def require(self, json, key: str, kind: type | tuple = object, what: str = ""):
        self.check(isinstance(json, dict), "expected an object")
        self.check(key in json, f"'{key}' property is missing")
        value = json[key]
        if kind is not object:
            self.check(isinstance(value, kind) and not (kind in (int, float, (int, float))
                                                        and isinstance(value, bool)),
                       f"'{key}' is not {what or _kind_name(kind)}")
        return value

    def get(self, json, key: str, default, kind: type | tuple = object, what: str = ""):
        if not isinstance(json, dict) or key not in json:
            return default
        return self.require(json, key, kind, what)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _kind_name(kind) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
             list: "an array", dict: "an object"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__
