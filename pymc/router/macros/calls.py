"""Calling a macro: its parameter list (names, defaults, optionals), the arguments of one call
bound positionally (``"@m(a, b)"``) or by name (``{"type": "m", ...}``), expanded eagerly or on
demand, and the scopes (vars, loop variables, macro parameters) that names resolve in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .errors import _Error, _fail
from .values import Json, _type_name

if TYPE_CHECKING:
    from .engine import _Preprocessor


# -- scopes -------------------------------------------------------------------------------------

class _Lazy:
    """A var not expanded yet (vars may refer to each other in any order)."""
    __slots__ = ("raw", "busy")

    def __init__(self, raw: Json):
        self.raw, self.busy = raw, False


class _Scope:
    """Names visible while expanding. A macro body starts a scope with no outer one: it sees
    only its parameters and the consts, never the caller's variables."""
    __slots__ = ("names", "outer")

    def __init__(self, names: dict[str, Json] | None = None, outer: "_Scope | None" = None):
        self.names = names if names is not None else {}
        self.outer = outer

    def define(self, name: str, value: Json) -> None:
        if name in self.names:
            _fail(f"'{name}' already exists in local scope")
        self.names[name] = value


# -- macros -------------------------------------------------------------------------------------

class _Args:
    """Arguments of one call. Eager macros see them expanded; lazy built-ins (@if, @and, @select,
    ...) expand each one only when asked, in the caller's scope."""

    def __init__(self, prep: "_Preprocessor", caller: _Scope, named: bool):
        self.prep, self.caller, self.named = prep, caller, named
        self._raw: dict[str, Json] = {}
        self._done: dict[str, Json] = {}

    def add_raw(self, name: str, raw: Json) -> None:
        self._check_new(name)
        self._raw[name] = raw

    def add_value(self, name: str, value: Json) -> None:
        self._check_new(name)
        self._done[name] = value

    def _check_new(self, name: str) -> None:
        if name in self._raw or name in self._done:
            _fail(f"'{name}' already exists in local scope")

    def __contains__(self, name: str) -> bool:
        return name in self._raw or name in self._done

    def __getitem__(self, name: str) -> Json:
        if name not in self._done:
            try:
                self._done[name] = self.prep.expand(self._raw.pop(name), self.caller)
            except _Error as e:
                raise e.at(name) if self.named else e
        return self._done[name]

    def names(self) -> list[str]:
        return [*self._raw, *self._done]


class _Macro:
    """A macro: parameters (name, default, required) and a function of the arguments."""

    def __init__(self, name: str, params: list[Json], func: Callable[[_Args], Json],
                 lazy: bool = False):
        self.name, self.func, self.lazy = name, func, lazy
        self.params = [self._param(p) for p in params]
        self.max_args = len(self.params)
        self.min_args = sum(1 for _, _, required in self.params if required)
        self._check_order()

    def _param(self, p: Json) -> tuple[str, Json, bool]:
        if isinstance(p, str):
            return p, None, True
        if not isinstance(p, dict):
            _fail(f"Macro param is {_type_name(p)}, expected string/object")
        if "name" not in p:
            _fail("Macro param object: 'name' not found")
        name = p["name"]
        if not isinstance(name, str):
            _fail(f"Macro param object name is {_type_name(name)}, string expected")
        optional = p.get("optional")
        if optional is not None and not isinstance(optional, bool):
            _fail(f"Incorrect definition for parameter '{name}' in macro '{self.name}'. Expected "
                  f"optional parameter 'optional' to be boolean, but got {_type_name(optional)}!")
        if "default" in p:
            if optional is False:
                _fail(f"Conflicting options provided for parameter '{name}' in macro "
                      f"'{self.name}'. Default was set, but the parameter is also explicitly "
                      "marked as not optional.")
            return name, p["default"], False
        return name, None, not optional

    def _check_order(self) -> None:
        seen_optional = False
        for _, _, required in self.params:
            if required and seen_optional:
                _fail(f"Incorrect defaults/optionals in macro {self.name}. All params after "
                      "optional/default one should also be optional or have default value")
            seen_optional = seen_optional or not required

    def call(self, prep: "_Preprocessor", args: list[str], caller: _Scope) -> Json:
        n = len(args)
        if n < self.min_args:
            _fail(f"Too few arguments for macro {self.name}. "
                  f"Expected at least {self.min_args} got {n}")
        if n > self.max_args:
            _fail(f"Too many arguments for macro {self.name}. "
                  f"Expected at most {self.max_args} got {n}")
        bound = _Args(prep, caller, named=False)
        for (name, _, _), raw in zip(self.params, args):
            bound.add_raw(name, raw)
        for name, default, _ in self.params[n:]:
            if default is not None:  # defaults are used as written, not expanded
                bound.add_value(name, default)
        return self._run(bound)

    def call_named(self, prep: "_Preprocessor", obj: dict, caller: _Scope) -> Json:
        bound = _Args(prep, caller, named=True)
        for name, default, required in self.params:
            if name in obj:
                bound.add_raw(name, obj[name])
            elif required:
                _fail(f"Macro call {self.name}: '{name}' parameter not found")
            elif default is not None:
                bound.add_value(name, default)
        return self._run(bound)

    def _run(self, bound: _Args) -> Json:
        if not self.lazy:
            for name in bound.names():
                bound[name]
        with bound.prep.nesting():
            return self.func(bound)


def _user_macro(name: str, params: list[Json], result: Json) -> _Macro:
    def body(args: _Args) -> Json:
        scope = _Scope({n: args[n] for n in args.names()})
        try:
            return args.prep.expand(result, scope)
        except _Error as e:
            raise e.inside(f"in macro '{name}'")
    return _Macro(name, params, body)


# -- built-in tables ----------------------------------------------------------------------------

def _opt(name: str) -> dict:
    return {"name": name, "optional": True}


# name → (params, function, lazy — arguments expanded only when the function asks)
_BuiltinTable = dict[str, tuple[list[Json], Callable[[_Args], Json], bool]]
