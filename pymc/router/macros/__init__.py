"""mcrouter's config preprocessor (lib/config/ConfigPreprocessor.cpp): macros, consts, vars,
``%param%`` substitution, ``@import`` and the built-in functions, applied to parsed JSON.

Vocabulary, as in mcrouter:

* ``"macros"`` at the top of a config: object name → ``{"type": "macroDef", "params": [...],
  "result": ...}`` or ``{"type": "constDef", "result": ...}``, or an array of such objects
  (processed in order). The section itself is expanded first, so it may use ``@import``,
  ``merge`` and anything defined by an earlier element of the array.
* A call is a string ``"@name(a, b)"`` / ``"@name"`` (arguments split at top-level commas; only
  parentheses nest, ``\\`` escapes the next character) or an object ``{"type": "name", ...}``
  whose keys are the named arguments. Macro bodies and consts are expanded when used, so a body
  may call any macro defined anywhere in the section.
* ``"%name%"`` is replaced by a macro parameter, loop variable, var or const. A string that is
  exactly one ``%name%`` takes the value with its JSON type; inside a longer string the value
  must be a string.
* ``"vars": {...}`` inside any object defines variables visible in that object.

Errors are :class:`ConfigError` whose message starts with the JSON path where the expansion
failed, followed by mcrouter's wording, e.g. ``route.children[2]: Macro: 'foo' not found``.

This package owns :func:`preprocess`, the only entry point; the pieces are:

* ``errors``: :class:`_Error` and how its path and frames read in a message;
* ``values``: JSON values as folly::dynamic sees them (types, ordering, conversions);
* ``syntax``: splitting ``"@name(a, b)"`` and ``%name%`` substitution;
* ``calls``: macro parameters, argument binding, scopes;
* ``engine``: the preprocessor (definitions, consts, vars, @import cache, the expansion walk);
* ``builtins_data`` / ``builtins_logic``: the built-in macros;
* ``forms``: the object forms transform, process and foreach.
"""

from __future__ import annotations

from typing import Callable

from pymc.router.jsonc import ConfigError

from .calls import _Scope
from .engine import _Preprocessor
from .errors import _describe, _Error, _fail
from .values import _clone

__all__ = ["preprocess", "NESTED_LIMIT"]

NESTED_LIMIT = 250  # mcrouter's default nestedLimit


def preprocess(config: dict, params: dict[str, object] | None = None,
               import_resolver: Callable[[str], str] | None = None,
               nested_limit: int = NESTED_LIMIT) -> dict:
    """Expand a parsed mcrouter config: define its "macros", then return the rest with every
    call, %param% and escape resolved. `params` are the global consts (--config-params and the
    like); `import_resolver(path)` returns the text for @import."""
    if not isinstance(config, dict):
        raise ConfigError("config is not an object")
    prep = _Preprocessor(dict(params or {}), import_resolver, nested_limit)
    body = {k: v for k, v in config.items() if k != "macros"}
    try:
        if "macros" in config:
            try:
                prep.define_all(config["macros"])
            except _Error as e:
                raise e.at("macros")
        result = prep.expand(body, _Scope())
        if not isinstance(result, dict):
            _fail("config is not an object")
    except _Error as e:
        raise ConfigError(_describe(e)) from None
    except RecursionError:
        raise ConfigError("Too many nested macros. Check for cycles.") from None
    return _clone(result)
