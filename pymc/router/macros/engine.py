"""The expansion engine: the "macros" section (macroDef/constDef definitions), consts and vars
forced lazily with cycle detection, @import caching, the nesting limit, and the walk over
strings (calls and %name%), objects (vars, object calls, forms) and arrays.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from pymc.router.jsonc import loads

from .builtins_data import _DATA_BUILTINS
from .builtins_logic import _LOGIC_BUILTINS
from .calls import _Lazy, _Macro, _Scope, _user_macro
from .errors import _Error, _fail
from .forms import _FORMS
from .syntax import _parse_call, _substitute
from .values import _MISSING, Json, _type_name

_BUILTINS = {**_DATA_BUILTINS, **_LOGIC_BUILTINS}


class _Const:
    __slots__ = ("raw", "value", "state")

    def __init__(self, raw: Json):
        self.raw, self.value, self.state = raw, None, "raw"


class _Preprocessor:
    def __init__(self, params: dict[str, Json],
                 import_resolver: Callable[[str], str] | None, nested_limit: int):
        self.resolver = import_resolver
        self.nested_limit = nested_limit
        self.depth = 0
        self.import_cache: dict[str, Json] = {}
        #: Paths being imported, outermost first: a file importing itself again is a cycle.
        self.importing: list[str] = []
        self.consts: dict[str, _Const] = {name: _Const(v) for name, v in params.items()}
        self.macros: dict[str, _Macro] = {
            name: _Macro(name, params_, func, lazy)
            for name, (params_, func, lazy) in _BUILTINS.items()}

    # definitions

    def define_all(self, section: Json) -> None:
        """The "macros" section: expanded first, then an object of definitions or an array of
        sections handled in order."""
        section = self.expand(section, _Scope())
        if isinstance(section, dict):
            for name, definition in section.items():
                try:
                    self.define(name, definition)
                except _Error as e:
                    raise e.at(name)
        elif isinstance(section, list):
            for i, item in enumerate(section):
                try:
                    self.define_all(item)
                except _Error as e:
                    raise e.at(i)
        else:
            _fail("config macros is not an array/object")

    def define(self, name: str, obj: Json) -> None:
        if not isinstance(obj, dict):
            _fail(f"'{name}' macro definition is not an object")
        kind = obj.get("type", _MISSING)
        if kind is _MISSING:
            _fail("macro definition: 'type' not found")
        if not isinstance(kind, str):
            _fail(f"macro definition type is {_type_name(kind)}, string expected")
        if kind == "macroDef":
            if "result" not in obj:
                _fail("Macro definition: 'result' not found")
            params = obj.get("params", [])
            if not isinstance(params, list):
                _fail(f"'{name}' macroDef params is not an array")
            self.macros[name] = _user_macro(name, params, obj["result"])
        elif kind == "constDef":
            if "result" not in obj:
                _fail("constDef: 'result' not found")
            self.consts[name] = _Const(obj["result"])  # replaces a global of the same name
        else:
            _fail(f"Unknown macro definition type: {kind}")

    # lookups

    def lookup(self, name: str, scope: _Scope | None) -> Json:
        while scope is not None:
            if name in scope.names:
                value = scope.names[name]
                return self._force_var(scope, name, value) if isinstance(value, _Lazy) else value
            scope = scope.outer
        const = self.consts.get(name)
        return _MISSING if const is None else self._force_const(name, const)

    def is_defined(self, name: str, scope: _Scope | None) -> bool:
        while scope is not None:
            if name in scope.names:
                return True
            scope = scope.outer
        return name in self.consts

    def _force_var(self, scope: _Scope, name: str, var: _Lazy) -> Json:
        if var.busy:
            _fail(f"Variable '{name}' refers to itself")
        var.busy = True
        try:
            scope.names[name] = self.expand(var.raw, scope)
        except _Error as e:
            var.busy = False
            raise e.inside(f"in var '{name}'")
        return scope.names[name]

    def _force_const(self, name: str, const: _Const) -> Json:
        if const.state == "busy":
            _fail(f"Const '{name}' refers to itself")
        if const.state == "raw":
            const.state = "busy"
            try:
                const.value = self.expand(const.raw, _Scope())
            except _Error as e:
                const.state = "raw"
                raise e.inside(f"in const '{name}'")
            const.state = "done"
        return const.value

    def import_file(self, path: str) -> Json:
        if self.resolver is None:
            raise _Error("no import resolver configured")
        if path in self.importing:
            cycle = self.importing[self.importing.index(path):] + [path]
            _fail(f"Import cycle: {' -> '.join(cycle)}")
        self.importing.append(path)
        try:
            return self.expand(loads(self.resolver(path)), _Scope())
        finally:
            self.importing.pop()

    # expansion

    def expand(self, value: Json, scope: _Scope) -> Json:
        if isinstance(value, str):
            step = self._expand_string
        elif isinstance(value, dict):
            step = self._expand_object
        elif isinstance(value, list):
            step = self._expand_array
        else:
            return value
        with self.nesting():
            return step(value, scope)

    @contextmanager
    def nesting(self) -> Iterator[None]:
        # mcrouter bounds nesting (e.g. a macro calling itself) rather than recursion depth;
        # expansions and macro calls both count, as its expandMacros and expandStringMacro do
        self.depth += 1
        try:
            if self.depth >= self.nested_limit:
                _fail("Too many nested macros. Check for cycles.")
            yield
        finally:
            self.depth -= 1

    def expand_in(self, value: Json, scope: _Scope, segment: str | int) -> Json:
        """Expand a value found under `segment`, adding it to the path of any error."""
        try:
            return self.expand(value, scope)
        except _Error as e:
            raise e.at(segment)

    def expand_field(self, obj: dict, field: str, scope: _Scope, who: str) -> Json:
        if field not in obj:
            _fail(f"{who}: '{field}' not found")
        return self.expand_in(obj[field], scope, field)

    def _expand_string(self, s: str, scope: _Scope) -> Json:
        if not s.startswith("@"):
            return self.substitute(s, scope)
        name_text, args = _parse_call(s)
        name = self.substitute(name_text, scope)  # "@%m%(x)" picks the macro by a variable
        if not isinstance(name, str):
            _fail(f"Macro name is {_type_name(name)}, string expected")
        macro = self.macros.get(name)
        if macro is None:
            _fail(f"Macro: '{name}' not found")
        return macro.call(self, args, scope)

    def substitute(self, s: str, scope: _Scope) -> Json:
        return _substitute(s, lambda name: self.lookup(name, scope))

    def _expand_object(self, obj: dict, scope: _Scope) -> Json:
        if "vars" in obj:
            scope = self._bind_vars(obj["vars"], scope)
            obj = {k: v for k, v in obj.items() if k != "vars"}
        if "type" in obj:
            kind = self.expand_in(obj["type"], scope, "type")
            if isinstance(kind, str):
                call = self._object_call(kind, obj, scope)
                if call is not _MISSING:
                    return call
        out = {}
        for key, value in obj.items():
            try:
                new_key = self.expand(key, scope)
                if not isinstance(new_key, str):
                    _fail("Expanded key is not a string")
                out[new_key] = self.expand(value, scope)
            except _Error as e:
                raise e.at(key)
        return out

    def _object_call(self, kind: str, obj: dict, scope: _Scope) -> Json:
        form = _FORMS.get(kind)
        if form is not None:
            return form(self, obj, scope)
        macro = self.macros.get(kind)
        if macro is not None:
            return macro.call_named(self, obj, scope)
        return _MISSING  # an ordinary object such as a route handle

    def _bind_vars(self, names: Json, outer: _Scope) -> _Scope:
        if not isinstance(names, dict):
            _fail(f"vars is {_type_name(names)}, expected object")
        scope = _Scope({k: _Lazy(v) for k, v in names.items()}, outer)
        for name in names:  # all of them, so a broken var is reported even if unused
            self.lookup(name, scope)
        return scope

    def _expand_array(self, items: list, scope: _Scope) -> Json:
        return [self.expand_in(item, scope, i) for i, item in enumerate(items)]
