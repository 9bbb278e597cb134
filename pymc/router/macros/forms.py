"""The built-in object forms ``{"type": "transform" | "process" | "foreach", ...}``: loops over
an object or array with key/item (and fold value) variables in scope; macroDef/constDef objects
pass through unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .calls import _Scope
from .errors import _fail
from .values import _MISSING, Json, _is_int, _type_name

if TYPE_CHECKING:
    from .engine import _Preprocessor


def _name_field(obj: dict, field: str, default: str, who: str) -> str:
    name = obj.get(field, default)
    if not isinstance(name, str):
        _fail(f"{who}: {field} is {_type_name(name)}, string expected")
    return name


def _loop_scope(outer: _Scope, *names: str) -> _Scope:
    scope = _Scope(outer=outer)
    for name in names:
        scope.define(name, None)
    return scope


def _form_transform(p: "_Preprocessor", obj: dict, scope: _Scope) -> Json:
    """Map an object's keys/items or a list's items through itemTransform/keyTransform with
    %key% and %item% (renamed by keyName/itemName) in scope."""
    d = p.expand_field(obj, "dictionary", scope, "Transform")
    if not isinstance(d, (dict, list)):
        _fail("Transform: dictionary is not array/object")
    if not d:
        return d
    item_name = _name_field(obj, "itemName", "item", "Transform")
    key_name = _name_field(obj, "keyName", "key", "Transform")
    loop = _loop_scope(scope, key_name, item_name)
    item_t = obj.get("itemTransform", _MISSING)
    if isinstance(d, list):
        if item_t is _MISSING:
            _fail("Transform: itemTransform is required for array")
        out = []
        for i, item in enumerate(d):
            loop.names.update({key_name: i, item_name: item})
            out.append(p.expand_in(item_t, loop, "itemTransform"))
        return out
    key_t = obj.get("keyTransform", _MISSING)
    res: dict = {}
    for key, item in d.items():
        loop.names.update({key_name: key, item_name: item})
        new_key = key if key_t is _MISSING else p.expand_in(key_t, loop, "keyTransform")
        if not isinstance(new_key, (str, list)):
            _fail("Transformed key is not array/string")
        if new_key == []:
            continue  # an empty key list drops the entry
        new_item = item if item_t is _MISSING else p.expand_in(item_t, loop, "itemTransform")
        for k in [new_key] if isinstance(new_key, str) else new_key:
            if not isinstance(k, str):
                _fail("Transformed key list item is not a string")
            res[k] = new_item
    return res


def _entries(d: dict | list) -> list[tuple[Json, Json]]:
    return list(d.items()) if isinstance(d, dict) else list(enumerate(d))


def _form_process(p: "_Preprocessor", obj: dict, scope: _Scope) -> Json:
    """Fold: value = initialValue; for each entry value = transform(%key%, %item%, %value%)."""
    d = p.expand_field(obj, "dictionary", scope, "Process")
    value = p.expand_field(obj, "initialValue", scope, "Process")
    if "transform" not in obj:
        _fail("Process: 'transform' not found")
    if not isinstance(d, (dict, list)):
        _fail("Process: dictionary is not array/object")
    names = [_name_field(obj, f, dflt, "Process")
             for f, dflt in (("keyName", "key"), ("itemName", "item"), ("valueName", "value"))]
    loop = _loop_scope(scope, *names)
    for key, item in _entries(d):
        loop.names.update(zip(names, (key, item, value)))
        value = p.expand_in(obj["transform"], loop, "transform")
    return value


def _form_foreach(p: "_Preprocessor", obj: dict, scope: _Scope) -> Json:
    """Up to `top` entries of `from` that satisfy `where`, each expanded through `use` (default:
    the entry itself) and merged into one list or object."""
    source = p.expand_field(obj, "from", scope, "Foreach")
    if not isinstance(source, (dict, list)):
        _fail("Foreach: from is not object/array")
    item_name = _name_field(obj, "item", "item", "Foreach")
    key_name = _name_field(obj, "key", "key", "Foreach")
    top = len(source)
    if "top" in obj:
        top = p.expand_in(obj["top"], scope, "top")
        if not _is_int(top) or top < 0:
            _fail("Foreach: top should be a non-negative integer")
    loop = _loop_scope(scope, key_name, item_name)
    result: Json = None
    for key, item in _entries(source):
        if top <= 0:
            break
        loop.names.update({key_name: key, item_name: item})
        if "where" in obj:
            keep = p.expand_in(obj["where"], loop, "where")
            if not isinstance(keep, bool):
                _fail("Foreach: expanded 'where' is not boolean")
            if not keep:
                continue
        if "use" in obj:
            result = _foreach_append(result, p.expand_in(obj["use"], loop, "use"))
        elif isinstance(source, list):
            result = _foreach_append(result, [item])
        else:
            result = _foreach_append(result, {key: item})
        top -= 1
    if result is None:
        if "noMatchResult" in obj:
            return p.expand_in(obj["noMatchResult"], scope, "noMatchResult")
        return {} if isinstance(source, dict) else []
    return result


def _foreach_append(result: Json, use: Json) -> Json:
    """Merge one expansion into the result, which is a private copy and so grows in place."""
    if result is None:
        if not isinstance(use, (dict, list)):
            _fail("Foreach: expanded item is not object/array")
        return type(use)(use)
    if isinstance(result, dict):
        if not isinstance(use, dict):
            _fail("Foreach: expanded item is not an object")
        result.update(use)
    else:
        if not isinstance(use, list):
            _fail("Foreach: expanded item is not an array")
        result.extend(use)
    return result


_FORMS: dict[str, Callable[["_Preprocessor", dict, _Scope], Json]] = {
    # macroDef/constDef objects stay as written, so definitions survive @import and merge
    "macroDef": lambda p, obj, scope: obj,
    "constDef": lambda p, obj, scope: obj,
    "transform": _form_transform,
    "process": _form_process,
    "foreach": _form_foreach,
}
