r"""mcrouter's config preprocessor: macros, consts, vars, built-ins, @import, errors.

Most expectations are the input/output pairs of mcrouter's own
lib/config/test/config_preprocessor_test_file.json (and _errors.json), restated here.
Backslashes are written as Python raw strings: r"\\@" in JSON is r"\@" here.
"""

import copy
import json

import pytest

from pymc.router.jsonc import ConfigError, loads
from pymc.router.macros import preprocess
from pymc.router.macros.builtins_data import _fnv64_broken
from pymc.router.macros.builtins_logic import _local_addresses
from pymc.router.macros.syntax import _split_args, _trim
from pymc.router.macros.values import _M64, _double_to_string

GLOBALS = {"testGlobal": "test", "templGlobal": "templ"}


def resolver(path: str) -> str:
    """mcrouter's MockImportResolver."""
    if path == "test":
        return '"mock_test"'
    if path == "templ":
        return '{ "type": "macroDef", "result": "imported_macro" }'
    if path == "do_not_exist":
        raise RuntimeError("Can not import " + path)
    return ""


def expand(value, macros=None, params=GLOBALS, import_resolver=resolver):
    config = {"macros": macros if macros is not None else {}, "orig": value}
    return preprocess(config, params, import_resolver)["orig"]


def mdef(result, *params):
    return {"type": "macroDef", "params": list(params), "result": result}


def cdef(result):
    return {"type": "constDef", "result": result}


def same(a, b) -> bool:
    """Equal including JSON types (True is not 1, 1.0 is not 1)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def check(value, expected, macros=None, **kw):
    got = expand(value, macros, **kw)
    assert same(got, expected), f"{value!r} -> {got!r}, expected {expected!r}"


# -- built-ins ----------------------------------------------------------------------------------

BUILTIN_CASES = [
    # casts
    ("@int( -1 )", -1),
    ("@int(@double(5.0))", 5),
    ("@int(@bool(true))", 1),
    ("@str(@int(5))", "5"),
    ("@str(@double(5.5))", "5.5"),
    ("@str(@double(100))", "100"),
    ("@str(@double(1e21))", "1E21"),
    ("@str(@double(0.000001))", "0.000001"),
    ("@str(@double(1.5e-7))", "1.5E-7"),
    ("@str(@bool(true))", "1"),
    ("@double(5.5)", 5.5),
    ("@double(@int(2))", 2.0),
    ("@bool(true)", True),
    ("@bool(false)", False),
    ("@bool(@int(0) )", False),
    ("@bool( @int(1))", True),
    ("@bool(1)", True),
    ("@bool(Yes)", True),
    ("@bool(off)", False),
    # type tests
    ("@isInt(@int(1))", True),
    ("@isInt(@bool(true))", False),
    ("@isInt(1)", False),
    ("@isString(1)", True),
    ("@isDouble(@double(1))", True),
    ("@isBool(@bool(0))", True),
    ({"type": "isArray", "value": []}, True),
    ({"type": "isObject", "value": {}}, True),
    ({"type": "isObject", "value": []}, False),
    # arithmetic (int64, C++ rounding)
    ("@add(@int(2),@int(3))", 5),
    ("@sub(@int(2),@int(3))", -1),
    ("@mul(@int(-4),@int(3))", -12),
    ("@div(@int(7),@int(3))", 2),
    ("@div(@int(-7),@int(2))", -3),
    ("@div(@int(0),@int(3))", 0),
    ("@mod(@int(5),@int(3))", 2),
    ("@mod(@int(-7),@int(2))", -1),
    ("@add(@int(9223372036854775807),@int(1))", -9223372036854775808),
    # comparisons and logic
    ("@equals(a,a)", True),
    ("@equals(a,b)", False),
    ("@equals(@int(1),@double(1))", True),
    ("@equals(@int(1),1)", False),
    ({"type": "equals", "A": {"x": [1, 2]}, "B": {"x": [1, 2]}}, True),
    ("@less(a,b)", True),
    ("@less(@int(10),@int(9))", False),
    ("@less(@int(1),@double(1.5))", True),
    ("@less(@int(99),a)", True),  # ints order before strings
    ("@and(@not(@or(@bool(false),@bool(1))), @not(@bool(false)))", False),
    ("@and(@bool(false), @fail(Will not fire))", False),
    ("@or(@bool(true), @fail(Will not fire))", True),
    ("@if(@bool(true), abc, @fail(oops))", "abc"),
    ({"type": "if", "condition": False, "is_true": "@fail(oops)", "is_false": "abc"}, "abc"),
    # collections
    ({"type": "keys", "dictionary": {"a": 1}}, ["a"]),
    ({"type": "values", "dictionary": {"a": 1}}, [1]),
    ("@range( @int(-1), @int(5) )", [-1, 0, 1, 2, 3, 4, 5]),
    ("@range(@int(3), @int(2))", []),
    ({"type": "merge", "params": [[1], [2, 3], []]}, [1, 2, 3]),
    ({"type": "merge", "params": [{"a": 1, "b": 1}, {"b": 2}]}, {"a": 1, "b": 2}),
    ({"type": "merge", "params": ["ab", "c", ""]}, "abc"),
    ({"type": "sort", "dictionary": [2, 1, 5, 3, 10]}, [1, 2, 3, 5, 10]),
    ({"type": "sort", "dictionary": ["a", "c", "b"]}, ["a", "b", "c"]),
    ({"type": "sort", "dictionary": ["2", "99", 10, 99]}, [10, 99, "2", "99"]),
    ({"type": "size", "dictionary": [1, 2, 3]}, 3),
    ("@size(abcd)", 4),
    ({"type": "empty", "dictionary": {}}, True),
    ("@empty()", True),
    ("@empty(x)", False),
    ({"type": "contains", "dictionary": [100, 1, 2, 3], "key": 100}, True),
    ({"type": "contains", "dictionary": [100, 1], "key": 100.0}, True),
    ({"type": "contains", "dictionary": [0, 1, 2, 3], "key": 5}, False),
    ({"type": "contains", "dictionary": "abacaba", "key": "aca"}, True),
    ({"type": "contains", "dictionary": "abacaba", "key": "ada"}, False),
    ({"type": "contains", "dictionary": {"a": 1, "b": 2}, "key": "a"}, True),
    ({"type": "contains", "dictionary": {"a": 1, "b": 2}, "key": "c"}, False),
    ({"type": "select", "dictionary": {"a": 1, "b": 2}, "key": "a"}, 1),
    ({"type": "select", "dictionary": ["a", "b", "c"], "key": 1}, "b"),
    ({"type": "select", "dictionary": ["a", "b", "c"], "key": -1}, "c"),
    ({"type": "select", "dictionary": {"a": 1, "b": 2}, "key": "c", "default": 3}, 3),
    ({"type": "select", "dictionary": {"a": 1}, "key": "a", "default": "@fail(No key)"}, 1),
    ({"type": "select", "dictionary": ["a", "b"], "key": 2, "default": 3}, 3),
    ({"type": "select", "dictionary": ["a", "b"], "key": 1, "default": "@fail(No key)"}, "b"),
    ({"type": "slice", "from": "@int(1)", "to": 2, "dictionary": ["a", "b", "c", "d"]},
     ["b", "c"]),
    ({"type": "slice", "from": "b", "to": "c", "dictionary": {"a": 1, "b": 2, "c": 3, "d": 4}},
     {"b": 2, "c": 3}),
    ("@slice(abcd,@int(2),@int(3))", "cd"),
    ("@slice(abcd, @int(0), @int(-1))", ""),
    ("@slice(abcd, @int(-10), @int(10000))", "abcd"),
    ({"type": "split", "dictionary": "a.b.c.", "delim": "."}, ["a", "b", "c", ""]),
    ("@split(,)", [""]),
    ("@split(abacaba,)", ["abacaba"]),
    ("@split(abbabbabb, b)", ["a", "", "a", "", "a", "", ""]),
    ("@split(abbabbabb, bb)", ["a", "a", "a", ""]),
    ({"type": "set", "dictionary": {"a": 1, "b": 2}, "key": "b", "value": 5}, {"a": 1, "b": 5}),
    ({"type": "set", "dictionary": {"a": 1}, "key": "c", "value": 10}, {"a": 1, "c": 10}),
    ({"type": "set", "dictionary": ["a", 1, "b"], "key": 1, "value": "c"}, ["a", "c", "b"]),
    ({"type": "shuffle", "dictionary": []}, []),
    ({"type": "shuffle", "dictionary": [1]}, [1]),
    ({"type": "shuffle", "dictionary": [1, 3], "seed": 11111111}, [1, 3]),
    ({"type": "shuffle", "dictionary": [1, 3], "seed": 123}, [3, 1]),
    ({"type": "define", "vars": {"A": "B"}, "result": "%A%"}, "B"),
    # hashes: mcrouter's known answers
    ("@hash(abcd)", 6660178300034425268),
    ("@hash(@int(2313))", -4996987850411076878),
    ({"type": "weightedHash", "dictionary": {"a": 0.5}, "key": 2015}, "a"),
    ({"type": "weightedHash", "dictionary": {"a": 0, "b": 1}, "key": "hello world"}, "b"),
    ({"type": "define", "vars": {"weights": {"a": 0, "b": 1, "c": 0.5}},
      "result": "@weightedHash(%weights%, @int(12345))"}, "b"),
    # bitwise, on int64
    ("@bitwiseAnd(@int(1), @int(15))", 1),
    ("@bitwiseOr(@int(1), @int(2))", 3),
    ("@bitwiseXor(@int(1), @int(3))", 2),
    ("@bitwiseNot(@int(-1))", 0),
    ("@bitwiseNot(@int(9223372036854775807))", -9223372036854775808),
    ("@bitwiseLeftShift(@int(1), @int(4))", 16),
    ("@bitwiseLeftShift(@int(1), @int(63))", -9223372036854775808),
    ("@bitwiseLeftShift(@int(-9223372036854775808), @int(1))", 0),
    ("@bitwiseRightShift(@int(16), @int(4))", 1),
    ("@bitwiseRightShift(@int(-9223372036854775808), @int(63))", 1),
    ("@bitwiseRightShift(@int(-2), @int(1))", 9223372036854775807),
    # misc
    ("@isLocalIp(127.0.0.1)", True),
    ("@isLocalIp(not an ip)", False),
    ("@isLocalIp(192.0.2.254)", False),
    ("@defined(testGlobal)", True),
    ("@defined(name)", False),
]


@pytest.mark.parametrize("orig, expected", BUILTIN_CASES, ids=[str(c[0])[:60] for c in
                                                              BUILTIN_CASES])
def test_builtins(orig, expected):
    check(orig, expected)


@pytest.mark.parametrize("text", ["::1", "::0001", "[::1]"])
def test_is_local_ip_ipv6_loopback(text):
    if not any(str(a) == "::1" for a in _local_addresses()):
        pytest.skip("no IPv6 loopback here")
    check(f"@isLocalIp({text})", True)


def test_unseeded_shuffle_is_a_permutation():
    got = expand({"type": "shuffle", "dictionary": list(range(50))})
    assert sorted(got) == list(range(50))


def test_seeded_shuffle_is_repeatable_for_longer_lists():
    call = {"type": "shuffle", "dictionary": list(range(9)), "seed": 7}
    first = expand(call)
    assert first == expand(call) and sorted(first) == list(range(9))


def test_fnv64_broken_matches_folly_vector():
    # folly's golden vector (seed differs, so replay it through the same mixing step)
    h, data = 0x0123456789ABCDEF, b"hello\x00\x80world"
    for byte in data:
        h = (h + (h << 1) + (h << 4) + (h << 5) + (h << 7) + (h << 8) + (h << 40)) & _M64
        h ^= (byte - 256) & _M64 if byte >= 0x80 else byte
    assert h == 8948791659412961051
    assert _fnv64_broken(b"") == 14695981039346656037


# -- user macros, consts, params ----------------------------------------------------------------

INNER = {
    "s": mdef("string"),
    "sParam": mdef("%a%", "a"),
    "subst": mdef("@%inner%", "inner"),
    "concat": mdef("%p1%%p2%", "p1", {"name": "p2", "default": "321"}),
    "multiple_concat": mdef("%a%2%b%", "a", "b"),
    "def": mdef("%a%", {"name": "a", "default": 15}),
    "opt": mdef("@if(%a%, hello, %b%)", {"name": "a"}, {"name": "b", "optional": True}),
    "mix": mdef("@if(%a%, @if(%c%, bla, %d%), %b%)",
                {"name": "a", "default": True}, {"name": "b", "optional": True},
                {"name": "c", "default": True}, {"name": "d", "optional": True}),
    "factorial": mdef({"type": "if", "condition": "@less(@int(1),%x%)",
                       "is_true": "@mul(%x%,@factorial(@sub(%x%,@int(1))))",
                       "is_false": "@int(1)"}, "x"),
    "typed": mdef({"v": "%v%", "s": "<%v%>"}, "v"),
}

MACRO_CASES = [
    ("@s", "string"),
    ("@sParam(  )", ""),
    (r"@sParam(a\ )", "a "),
    (r"@sParam(  \)  )", ")"),
    ("@subst(s)", "string"),
    ("@concat(@s,123)", "string123"),
    ("@concat(@s)", "string321"),
    ("@multiple_concat(1,3)", "123"),
    ("@concat(hello, world)", "helloworld"),
    ("@def", 15),  # defaults keep their JSON type
    ("@def(abc)", "abc"),
    ("@opt(@bool(true))", "hello"),
    ("@opt(@bool(false), world)", "world"),
    ("@mix", "bla"),
    ("@mix(@bool(false), blah)", "blah"),
    ("@mix(@bool(true))", "bla"),
    ("@mix(@bool(true), 123, @bool(false), blabla)", "blabla"),
    ({"type": "concat", "p1": "x"}, "x321"),
    ({"type": "concat", "p1": "x", "p2": "y"}, "xy"),
    ({"type": "def"}, 15),
    ("@factorial(@int(5))", 120),
    ("@factorial(@int(0))", 1),
    ("@typed(x)", {"v": "x", "s": "<x>"}),
]


@pytest.mark.parametrize("orig, expected", MACRO_CASES, ids=[str(c[0])[:60] for c in MACRO_CASES])
def test_user_macros(orig, expected):
    check(orig, expected, INNER)


def test_percent_param_keeps_type():
    macros = {"wrap": mdef({"value": "%x%", "list": ["%x%"]}, "x")}
    for arg, expected in [({"a": 1}, {"a": 1}), (5, 5), (2.5, 2.5), (True, True), ([], [])]:
        check({"type": "wrap", "x": arg}, {"value": expected, "list": [expected]}, macros)


def test_consts_and_globals():
    macros = {"pool": cdef("mc-%testGlobal%"), "servers": cdef(["a:1", "b:2"]),
              "port": cdef(11211)}
    check({"p": "%pool%", "s": "%servers%", "n": "%port%", "g": "%testGlobal%"},
          {"p": "mc-test", "s": ["a:1", "b:2"], "n": 11211, "g": "test"}, macros)


def test_const_overrides_global_and_globals_are_expanded():
    check("%testGlobal%", "mine", {"testGlobal": cdef("mine")})
    check("%g%", 6, params={"g": "@add(@int(1),@int(5))"})


def test_config_params_usable_as_macro_and_const_names():
    macros = {"eqiad": mdef("pool-eqiad"), "codfw": mdef("pool-codfw")}
    check("@%dc%", "pool-codfw", macros, params={"dc": "codfw"})
    check("/%dc%/mw/", "/codfw/mw/", macros, params={"dc": "codfw"})


def test_consts_in_consts_and_macro_arrays():
    macros = [
        {"a": cdef("A")},
        [
            {"type": "merge", "params": [
                {"A": mdef("%c%%param%", "param"), "b": cdef("%a%b")},
                {"c": cdef("%b%c")}]},
            {"d": cdef("@A(d)")},
        ],
    ]
    for orig, expected in [("%a%", "A"), ("%b%", "Ab"), ("%c%", "Abc"), ("%d%", "Abcd"),
                           ("@%a%(%c%)", "AbcAbc")]:
        check(orig, expected, macros)


def test_macro_bodies_bind_late_so_order_does_not_matter():
    macros = {"outer": mdef("@inner(x)"), "inner": mdef("<%v%>", "v")}
    check("@outer", "<x>", macros)


def test_user_macro_overrides_builtin():
    check("@int(5)", "five", {"int": mdef("five", "v")})


def test_macro_body_cannot_see_caller_variables():
    macros = {"a": mdef("%item%")}
    with pytest.raises(ConfigError, match="in macro 'a': Param in string: 'item' not found"):
        expand({"type": "transform", "dictionary": [1], "itemTransform": "@a"}, macros)


# -- escapes ------------------------------------------------------------------------------------

ESCAPE_MACROS = {
    "amp": cdef(r"\@"),
    r"\@": mdef(r"\@\(\\\)"),
    "a": mdef(r"@\@"),
    "b": mdef({r"\@a": "@%a%", r"\@b": "@%a%%b%", "@a": r"\%a\%%amp%"}, "a", "b"),
    "c": mdef("%a%", "a"),
}

ESCAPE_CASES = [
    (r"\%\\", "%\\"),
    ("@a", r"@(\)"),
    (r"@\a", r"@(\)"),
    (r"@b(\a,)", {"@a": r"@(\)", "@b": r"@(\)", r"@(\)": "%a%@"}),
    ({"type": "merge", "params": [[r"\\"], [r"\@"], [r"@\@"]]}, ["\\", "@", r"@(\)"]),
    ({"type": "transform", "itemTransform": r"\%%item1%", "keyTransform": r"%key1%\@",
      "keyName": "key1", "itemName": "item1", "dictionary": {r"\@": r"\\"}}, {"@@": "%\\"}),
    ({"type": "transform", "itemTransform": r"\%%item1%", "itemName": "item1",
      "dictionary": [r"\@", r"\\"]}, ["%@", "%\\"]),
    (r"@c(  \   \\ \   )", "   \\  "),
    (r"@c(\\\ )", "\\ "),
    ("@c( )", ""),
    (r"@c(a\,b)", "a,b"),
    ("plain text, no macros", "plain text, no macros"),
    ("email@example.org", "email@example.org"),  # only a leading @ is a call
]


@pytest.mark.parametrize("orig, expected", ESCAPE_CASES,
                         ids=[str(c[0])[:60] for c in ESCAPE_CASES])
def test_escapes(orig, expected):
    check(orig, expected, ESCAPE_MACROS)


@pytest.mark.parametrize("text, args", [
    ("", [""]),
    ("a,b", ["a", "b"]),
    (" a , b ", ["a", "b"]),
    ("a,", ["a", ""]),
    ("@f(1,2),x", ["@f(1,2)", "x"]),
    ("@f(1,2)", ["@f(1,2)"]),
    ("x,@f(1,@g(2,3)),y", ["x", "@f(1,@g(2,3))", "y"]),
    (r"a\,b,c", [r"a\,b", "c"]),
    ('[1,2]', ["[1", "2]"]),  # only parentheses nest, as in mcrouter
])
def test_argument_splitting(text, args):
    assert _split_args(text) == args


# -- transform, process, foreach, vars ----------------------------------------------------------

LOOP_MACROS = {
    "concat": mdef("%a%%b%", "a", "b"),
    "indexof": mdef({"type": "process", "initialValue": "@int(-1)", "dictionary": "%list%",
                     "transform": {"type": "if",
                                   "condition": "@and(@equals(%value%,@int(-1)),"
                                                "@equals(%item%,%x%))",
                                   "is_true": "%key%", "is_false": "%value%"}},
                    "list", "x"),
    "objectToString": mdef({"type": "merge", "params": [
        "{",
        {"type": "process", "initialValue": "", "dictionary": "%dictionary%",
         "transform": {"type": "merge", "params": [
             r"@if(@empty(%value%), %key%:, %value%\,%key%:)",
             "@if(@isObject(%item%), @objectToString(%item%), %item%)"]}},
        "}"]}, "dictionary"),
    "minEl": mdef({"type": "process", "initialValue": "@select(%list%,@int(0))",
                   "dictionary": "@slice(%list%,@int(1),@size(%list%))",
                   "transform": {"type": "if", "condition": "@less(%item%,%value%)",
                                 "is_true": "%item%", "is_false": "%value%"}}, "list"),
    "shadow_var": mdef({"vars": {"param": 1}, "ret": "%param%"}, "param"),
}

LOOP_CASES = [
    ({"type": "transform", "dictionary": ["a", "b", "c"], "itemTransform": "@concat(%item%,1)"},
     ["a1", "b1", "c1"]),
    ({"type": "transform", "dictionary": {"a": "1", "b": "2", "c": "3"},
      "keyTransform": "%key%1", "itemTransform": "@concat(%item%,%key%)"},
     {"a1": "1a", "b1": "2b", "c1": "3c"}),
    ({"type": "transform", "itemName": "list", "keyName": "listKey",
      "itemTransform": {"type": "transform", "dictionary": "%list%",
                        "itemTransform": "@concat(%listKey%,@str(%item%))"},
      "dictionary": {"a": [1, 2, 3], "b": [4, 5, 6]}},
     {"a": ["a1", "a2", "a3"], "b": ["b4", "b5", "b6"]}),
    ({"type": "transform", "keyTransform": "%item%", "itemTransform": "%key%",
      "dictionary": {"a": ["1", "2", "3"], "b": ["4", "5", "6"]}},
     {"1": "a", "2": "a", "3": "a", "4": "b", "5": "b", "6": "b"}),
    ({"type": "transform", "keyTransform": "@if(@equals(%key%,a),%item%,%key%)",
      "dictionary": {"a": [], "b": 1}}, {"b": 1}),
    ({"type": "transform", "dictionary": [], "itemTransform": "@fail(never)"}, []),
    ({"type": "indexof", "list": ["a", "b", "c", "d", "e"], "x": "a"}, 0),
    ({"type": "indexof", "list": ["a", "b", "c", "d", "e"], "x": "d"}, 3),
    ({"type": "objectToString", "dictionary": {"a": "b"}}, "{a:b}"),
    ({"type": "objectToString", "dictionary": {"a": {"b": "c"}}}, "{a:{b:c}}"),
    ({"type": "minEl", "list": ["fd", "b", "d", "bab"]}, "b"),
    ({"type": "minEl", "list": [1, 3, 0, 4]}, 0),
    ({"type": "foreach", "from": ["a", "b"], "use": ["%item%1"]}, ["a1", "b1"]),
    ({"type": "foreach", "from": ["a", "b"], "top": 1}, ["a"]),
    ({"type": "foreach", "from": {}, "top": 1}, {}),
    ({"type": "foreach", "from": ["a"]}, ["a"]),
    ({"type": "foreach", "from": [1, 2], "where": "@less(@int(1), %item%)",
      "use": {"@str(%key%)": "%item%"}}, {"1": 2}),
    ({"type": "foreach", "from": [1, 2, 3, 4, 5, 6],
      "where": "@equals(@mod(%item%, @int(2)), @int(0))", "top": 2,
      "use": {"type": "define", "vars": {"item2": "@mul(%item%, @int(2))"},
              "result": {"@str(%item%)": "%item%", "@str(%item2%)": "%item2%"}}},
     {"2": 2, "4": 4, "8": 8}),
    ({"type": "foreach", "from": {r"\@": "b"}, "use": ["%key%%item%", "%item%%key%"]},
     ["@b", "b@"]),
    ({"type": "foreach", "key": "k", "item": "v", "from": {"a": "b", "d": "c", "z": r"\@a"},
      "where": "@less(%v%, %k%)"}, {"d": "c", "z": "@a"}),
    ({"type": "foreach", "from": {}, "use": [], "noMatchResult": {}}, {}),
    ({"type": "foreach", "from": {"a": "b"}, "use": [], "noMatchResult": {}}, []),
    ({"type": "foreach", "from": [1, 2, 3], "top": "@add(@int(1), @int(1))"}, [1, 2]),
    ({"type": "foreach", "from": [], "use": {}}, []),
    ({"vars": {"a": "%b%", "b": "abacaba"}, "my_key": "%a%"}, {"my_key": "abacaba"}),
    ({"vars": {"a": "123"}, "type": "foreach", "from": ["a", "b"], "use": ["%item%%a%"]},
     ["a123", "b123"]),
    ({"type": "foreach", "from": {"a": "b", "c": "d"},
      "use": {"vars": {"concat": "%key%%item%"}, "%key%": "%concat%"}},
     {"a": "ab", "c": "cd"}),
    ({"vars": {"fst": "a"},
      "my_key1": {"vars": {"scnd": "b", "thrd": "%fst%%scnd%"}, "my_key2": "%fst%%scnd%%thrd%"}},
     {"my_key1": {"my_key2": "abab"}}),
    ({"a": {"vars": {"a": 5}, "result": "%a%"}, "b": {"vars": {"a": 10}, "result": "%a%"}},
     {"a": {"result": 5}, "b": {"result": 10}}),
    ("@shadow_var(2)", {"ret": 1}),
    ({"vars": {"item": 15}, "type": "transform", "dictionary": {"a": 1, "b": 2},
      "itemTransform": "@add(%item%, @int(1))"}, {"a": 2, "b": 3}),
    ({"type": "transform", "dictionary": {"a": 1, "b": 2},
      "itemTransform": {"vars": {"my_key": "%key%"}, "type": "transform",
                        "dictionary": "@range(@int(0), %item%)",
                        "itemTransform": {"type": "merge",
                                          "params": ["%my_key%", "@str(%item%)"]}}},
     {"a": ["a0", "a1"], "b": ["b0", "b1", "b2"]}),
]


@pytest.mark.parametrize("orig, expected", LOOP_CASES, ids=[f"case{i}" for i in
                                                            range(len(LOOP_CASES))])
def test_loops_and_vars(orig, expected):
    check(orig, expected, LOOP_MACROS)


def test_defined_sees_caller_scope_and_consts_not_macros():
    macros = {"myMacro": mdef({"a": "@defined(a)", "b": "@defined(b)", "c": "@defined(c)",
                               "params": "@defined(params)", "local": "@defined(local)",
                               "myMacro": "@defined(myMacro)", "arg": "%a%"}, "a", "b")}
    in_macro = {"arg": True, "a": True, "b": True, "c": False, "local": False,
                "myMacro": False, "params": False}
    check({"vars": {"local": True}, "in_macro": "@myMacro(@defined(local),2)",
           "outside_macro": {"a": "@defined(a)", "local": "@defined(local)",
                             "myMacro": "@defined(myMacro)"}},
          {"in_macro": in_macro,
           "outside_macro": {"a": False, "local": True, "myMacro": False}}, macros)
    check({"vars": {"local": True}, "type": "foreach",
           "from": {"type": "myMacro", "a": "@defined(local)", "b": 2},
           "use": {"%key%": "%item%"}}, in_macro, macros)
    check({"type": "transform", "keyName": "my_key", "dictionary": [1, 2, 3],
           "itemTransform": "@and(@defined(my_key), @defined(item))"}, [True, True, True])


# -- @import ------------------------------------------------------------------------------------

IMPORT_MACROS = {"type": "merge", "params": [{"imported": "@import(%templGlobal%)"}]}


@pytest.mark.parametrize("orig, expected", [
    ("@import(test)", "mock_test"),
    ("@import(%testGlobal%)", "mock_test"),
    ("@imported", "imported_macro"),
    (r"@import(do_not_exist, Oops\, something went wrong)", "Oops, something went wrong"),
    ("@import(test, @fail(Import failed))", "mock_test"),
])
def test_import(orig, expected):
    check(orig, expected, IMPORT_MACROS)


def test_import_reads_each_path_once_and_expands_imported_text():
    calls = []

    def files(path):
        calls.append(path)
        return {"pools.json": """// comments allowed
                   {"a": {"servers": ["%testGlobal%:1", "@str(@int(2))"],}}"""}[path]

    config = {"pools": "@import(pools.json)", "again": "@import(pools.json)"}
    out = preprocess(config, GLOBALS, files)
    assert out["pools"] == out["again"] == {"a": {"servers": ["test:1", "2"]}}
    assert calls == ["pools.json"]
    out["pools"]["a"]["servers"].append("x")  # the two copies are independent
    assert out["again"] == {"a": {"servers": ["test:1", "2"]}}


def test_import_without_resolver():
    with pytest.raises(ConfigError, match=r"route: Import 'x.json': no import resolver"):
        preprocess({"route": "@import(x.json)"})
    assert preprocess({"route": "@import(x.json, NullRoute)"}) == {"route": "NullRoute"}


def test_import_failures_name_the_path():
    with pytest.raises(ConfigError, match="pools: Import 'do_not_exist': Can not import"):
        preprocess({"pools": "@import(do_not_exist)"}, GLOBALS, resolver)

    def broken(path):
        return '{"a": "@nope"}'
    with pytest.raises(ConfigError, match="pools: Import 'p': a: Macro: 'nope' not found"):
        preprocess({"pools": "@import(p)"}, None, broken)
    with pytest.raises(ConfigError, match=r"Import 'bad': invalid JSON at line 1"):
        preprocess({"pools": "@import(bad)"}, None, lambda p: "{oops")


def test_import_cycle_is_named():
    files = {"a.json": '{"b": "@import(b.json)"}', "b.json": '["@import(a.json)"]'}
    with pytest.raises(ConfigError) as info:
        preprocess({"pools": "@import(a.json)"}, None, files.__getitem__)
    message = str(info.value)
    assert message.startswith("pools: Import 'a.json': b: Import 'b.json': [0]: ")
    assert message.endswith("Import cycle: a.json -> b.json -> a.json")
    # as any failed import, a cycle falls back to the default
    assert preprocess({"pools": "@import(a.json, fallback)"}, None, files.__getitem__) == \
        {"pools": "fallback"}


# -- errors -------------------------------------------------------------------------------------

ERROR_CASES = [
    ({"macros": {"a": mdef("@a")}, "ret": "@a"},
     r"ret: in macro 'a' \(x\d+\): Too many nested macros. Check for cycles."),
    ({"macros": {"a": mdef({"type": "a"})}, "ret": {"type": "a"}}, "Too many nested macros"),
    ({"macros": {"a": "str"}}, "macros.a: 'a' macro definition is not an object"),
    ({"macros": {"a": {"result": "a"}}}, "macros.a: macro definition: 'type' not found"),
    ({"macros": {"a": {"type": "macroDef"}}}, "macros.a: Macro definition: 'result' not found"),
    ({"macros": {"a": {"type": "lambda", "result": 1}}},
     "macros.a: Unknown macro definition type: lambda"),
    ({"macros": "x"}, "config macros is not an array/object"),
    ({"macros": [{"a": cdef(1)}, {"b": 5}]}, r"macros\[1\].b: 'b' macro definition is not"),
    ({"ret": {"type": "merge", "params": [[], {}]}}, "ret: Merge: param 1 is not an array"),
    ({"ret": {"type": "select", "key": "b", "dictionary": {"a": 1}}},
     "ret: Select: 'b' not found, default not specified"),
    ({"ret": {"type": "select", "key": ["a", "a"], "dictionary": {"a": 1}}},
     "ret: Select: dictionary is an object, key is not a string"),
    ({"ret": {"type": "select", "dictionary": ["a"], "key": 2, "default": "@fail(No key)"}},
     "ret.default: No key"),
    ({"ret": {"type": "select", "key": [0, 1, 0], "dictionary": ["a", "b"]}},
     "ret: Select: dictionary is an array, key is not an integer"),
    ({"ret": "@select(@split(a,b), @int(5))"}, r"Select: index 5 is out of range \[0, 1\)"),
    ({"ret": {"type": "transform", "dictionary": [1]}},
     "ret: Transform: itemTransform is required for array"),
    ({"ret": {"type": "transform", "itemName": "not_item", "itemTransform": "%item%",
              "dictionary": {"a": 1}}},
     "ret.itemTransform: Param in string: 'item' not found"),
    ({"ret": {"type": "transform", "itemTransform": "%item%"}},
     "ret: Transform: 'dictionary' not found"),
    ({"ret": {"type": "process", "dictionary": [1], "initialValue": 0}},
     "ret: Process: 'transform' not found"),
    ({"ret": {"type": "foreach", "from": "x"}}, "ret: Foreach: from is not object/array"),
    ({"ret": {"type": "foreach", "from": [1], "where": "x"}},
     "ret: Foreach: expanded 'where' is not boolean"),
    ({"ret": {"type": "foreach", "from": [1], "top": -1}},
     "ret: Foreach: top should be a non-negative integer"),
    ({"macros": {"a": mdef("a", {"name": "a", "default": 1}, "b")}},
     "macros.a: Incorrect defaults/optionals in macro a. All params after optional/default "
     "one should also be optional or have default value"),
    ({"macros": {"a": mdef("%p%", {"name": "p", "optional": False, "default": 0})}},
     "macros.a: Conflicting options provided for parameter 'p' in macro 'a'"),
    ({"macros": {"a": mdef("%p%", {"name": "p", "optional": "yes"})}},
     "Expected optional parameter 'optional' to be boolean, but got string!"),
    ({"macros": {"a": mdef("%p%", 5)}}, "macros.a: Macro param is int64, expected string/object"),
    ({"ret": "@double(1.a)"}, "ret: Can not cast string to double"),
    ({"ret": "@int(1.5)"}, "ret: Can not cast string to int"),
    ({"ret": "@int(@double(1.5))"}, "ret: Can not cast double to int"),
    ({"ret": "@int(1_000)"}, "ret: Can not cast string to int"),
    ({"ret": "@bool(maybe)"}, "ret: Can not cast string to boolean"),
    ({"ret": {"type": "str", "value": []}}, "ret: Can not cast array to string"),
    ({"macros": {"a": mdef("%a%", "a", {"name": "b", "default": "1"})}, "ret": "@a"},
     "ret: Too few arguments for macro a. Expected at least 1 got 0"),
    ({"macros": {"a": mdef("%a%", "a", {"name": "b", "default": "1"})}, "ret": "@a(1,2,3)"},
     "ret: Too many arguments for macro a. Expected at most 2 got 3"),
    ({"macros": {"a": mdef("x")}, "ret": "@a()"},
     "Too many arguments for macro a. Expected at most 0 got 1"),  # "()" is one empty arg
    ({"macros": {"a": mdef("%a%", "a")}, "ret": {"type": "a"}},
     "ret: Macro call a: 'a' parameter not found"),
    ({"macros": {"a": mdef("%a%", "a")}, "ret": "@a()a"},
     "ret: No closing bracket for call '@a\\(\\)a'"),
    ({"ret": "@int(@int(1)"}, "ret: No closing bracket"),
    ({"ret": "@div(@int(5),@int(0))"}, "ret: div: B == 0"),
    ({"ret": "@mod(@int(5),@int(0))"}, "ret: mod: B == 0"),
    ({"ret": "@add(@int(5),5)"}, "ret: add: B is not an integer"),
    ({"ret": {"type": "less", "A": {}, "B": {}}}, "ret: Can not compare objects"),
    ({"ret": "@fail(Custom failure here)"}, "ret: Custom failure here"),
    ({"ret": {"type": "fail", "msg": {"a": 1}}}, 'ret: {\n  "a": 1\n}'),
    ({"ret": {"type": "set", "dictionary": [1, 2], "key": 2, "value": 3}},
     r"ret: Set: key '2' is out of range \[0..2\)"),
    ({"macros": {"a": mdef("%item%")},
      "ret": {"type": "transform", "dictionary": [1, 2, 3], "itemTransform": "@a"}},
     "ret.itemTransform: in macro 'a': Param in string: 'item' not found"),
    ({"macros": {"a": mdef("%p%", "p", "p")}, "ret": "@a(1,2)"},
     "ret: 'p' already exists in local scope"),
    ({"ret": {"type": "weightedHash", "dictionary": {}, "key": 15}},
     "ret: WeightedHash: dictionary is empty"),
    ({"ret": {"type": "weightedHash", "dictionary": {"a": 0}, "key": 15}},
     "ret: WeightedHash: failed to compute hash: Sum of weights is 0"),
    ({"ret": {"type": "weightedHash", "dictionary": {"a": -1}, "key": 15}},
     "ret: WeightedHash: a weight -1 is negative"),
    ({"ret": "@hash(@bool(true))"}, "ret: Hash: can not cast boolean to int or string"),
    ({"ret": "@if(x, a, b)"}, "ret: If: condition is not bool"),
    ({"ret": "@and(@int(1), @bool(true))"}, "ret: and: A is int64, expected bool"),
    ({"ret": "@not(x)"}, "ret: not: A is not bool"),
    ({"ret": "@range(a, @int(1))"}, "ret: Range: from is not an integer"),
    ({"ret": {"type": "range", "from": 0, "to": 10**10}},
     "ret: Range: 10000000001 numbers from 0 to 10000000000, more than 1048576"),
    ({"ret": "@keys(x)"}, "ret: Keys: dictionary is not object"),
    ({"ret": "@sort(x)"}, "ret: sort: dictionary is not an array"),
    ({"ret": {"type": "shuffle", "dictionary": [1], "seed": -1}},
     "ret: Shuffle: seed must be a non-negative integer"),
    ({"macros": {"c": mdef("%a%", "a")}, "ret": "@c(@c(x,y))"},
     "ret: Too many arguments for macro c. Expected at most 1 got 2"),
    ({"ret": "@unknown(1)"}, "ret: Macro: 'unknown' not found"),
    ({"route": {"children": ["a", "b", "@foo"]}},
     r"route.children\[2\]: Macro: 'foo' not found"),
    ({"routes": {"/eqiad/mw/": {"x": "@foo"}}},
     r'routes\["/eqiad/mw/"\].x: Macro: \'foo\' not found'),
    ({"ret": "%nope%"}, "ret: Param in string: 'nope' not found"),
    ({"ret": "50%"}, "ret: Odd number of percent signs in string around ''"),
    ({"ret": "%a"}, "ret: Odd number of percent signs in string around 'a'"),
    ({"ret": {"vars": {"a": "%nope%"}}}, "ret: in var 'a': Param in string: 'nope' not found"),
    ({"ret": {"vars": {"a": "%b%", "b": "%a%"}}}, "refers to itself"),
    ({"ret": {"vars": []}}, "ret: vars is array, expected object"),
    ({"macros": {"c": cdef("%c%")}, "ret": "%c%"}, "ret: in const 'c': Const 'c' refers to itself"),
    ({"macros": {"c": cdef({"x": ["@nope"]})}, "ret": "%c%"},
     r"ret: in const 'c' at x\[0\]: Macro: 'nope' not found"),
    ({"macros": {"a": mdef({"children": ["@b"]}), "b": mdef("@nope")},
      "route": {"x": "@a"}},
     r"route.x: in macro 'a' at children\[0\]: in macro 'b': Macro: 'nope' not found"),
    ({"macros": {"a": mdef("%v%", "v")}, "route": {"type": "a", "v": "@nope"}},
     r"route.v: Macro: 'nope' not found"),
    ({"macros": {"m": mdef("<%v%>", "v")}, "route": {"type": "m", "v": [1]}},
     r"route: in macro 'm': Param in string 'v' is not a string"),
    ({"macros": {"m": mdef("<%v%>", "v")}, "route": "@m(@int(7))"},
     r"route: in macro 'm': Param in string 'v' is not a string"),
    ({"ret": {"@str(@int(1))": 1, "@int(1)": 2}}, r'ret\["@int\(1\)"\]: Expanded key is not'),
]


@pytest.mark.parametrize("config, message", ERROR_CASES,
                         ids=[f"err{i}" for i in range(len(ERROR_CASES))])
def test_errors_name_path_and_reason(config, message):
    with pytest.raises(ConfigError) as info:
        preprocess(config, GLOBALS, resolver)
    assert info.match(message), str(info.value)


def test_config_must_be_object():
    with pytest.raises(ConfigError, match="config is not an object"):
        preprocess([])


def test_nested_limit_is_configurable():
    deep = "x"
    for _ in range(30):
        deep = {"a": deep}
    with pytest.raises(ConfigError, match="Too many nested macros"):
        preprocess({"v": deep}, nested_limit=20)
    assert preprocess({"v": deep})["v"] == deep


# -- whole configs ------------------------------------------------------------------------------

def test_input_is_not_modified_and_result_shares_nothing():
    config = {"macros": {"srv": cdef(["a:1"])}, "pools": {"p": {"servers": "%srv%"},
                                                           "q": {"servers": "%srv%"}}}
    before = copy.deepcopy(config)
    out = preprocess(config)
    assert config == before and "macros" not in out
    out["pools"]["p"]["servers"].append("b:2")
    assert out["pools"]["q"]["servers"] == ["a:1"]


def test_large_foreach_over_transform():
    """mcrouter's objectKeyMutationStress: 4096 entries through transform, foreach and merge."""
    entries = {f"key{i}": f"value{i}" for i in range(4096)}
    call = {"type": "foreach",
            "from": {"type": "transform", "dictionary": entries, "keyTransform": "%key%",
                     "itemTransform": "%item%"},
            "use": {"%key%": {"type": "merge",
                              "params": [{"source": "%item%"}, {"key": "%key%"}]}}}
    got = expand(call)
    assert len(got) == 4096
    assert got["key17"] == {"source": "value17", "key": "key17"}
    assert got["key4095"] == {"source": "value4095", "key": "key4095"}


def test_import_default_is_expanded_in_callers_scope():
    config = {"vars": {"a": "x"}, "r": "@import(missing, %a%)", "s": "%a%"}
    assert preprocess(config, None, resolver) == {"r": "x", "s": "x"}


def test_mcrouter_routing_prefix_config():
    text = """{
      "macros": {
        "policy": {
          "type": "macroDef",
          "params": [ "cluster" ],
          "result": {
            "type": "OperationSelectorRoute",
            "default_policy": "PoolRoute|%cluster%.wildcard",
            "operation_policies": {
              "delete": {"type": "AllSyncRoute", "name": "all-sync",
                         "children": ["PoolRoute|A.wildcard", "PoolRoute|B.wildcard"]}
            }
          }
        }
      },
      "pools": {"A.wildcard": {"servers": ["localhost:12345"]}},
      "routes": [
        {"aliases": ["/a/a/"], "route": "@policy(A)"},
        {"aliases": ["/b/b/"], "route": "@policy(B)"}
      ]
    }"""
    out = preprocess(loads(text))
    assert out["routes"][1]["route"]["default_policy"] == "PoolRoute|B.wildcard"
    assert out["routes"][0]["route"]["operation_policies"]["delete"]["name"] == "all-sync"


def test_mcrouter_same_pool_failover_config():
    config = {
        "macros": {
            "hashWithSalt": mdef({"type": "HashRoute", "name": "salted-pool-%pool-name%-%salt%",
                                  "salt": "%salt%", "children": "Pool|%pool-name%"},
                                 "pool-name", "salt"),
            "reliablePool": mdef({"type": "FailoverWithExptimeRoute",
                                  "normal": "@hashWithSalt(%pool-name%,%initial-salt%)",
                                  "failover": {"type": "transform",
                                               "itemTransform":
                                                   "@hashWithSalt(%pool-name%,salt%item%)",
                                               "dictionary": ["0", "1"]}},
                                 "pool-name", "initial-salt"),
        },
        "route": "@reliablePool(A.wildcard,)",
    }
    route = preprocess(config)["route"]
    assert route["normal"] == {"type": "HashRoute", "name": "salted-pool-A.wildcard-",
                               "salt": "", "children": "Pool|A.wildcard"}
    assert [c["salt"] for c in route["failover"]] == ["salt0", "salt1"]


WIKIMEDIA_SHAPED = r"""
// Shaped like Wikimedia's mcrouter config for MediaWiki: per data centre a local pool with a
// gutter pool to fail over to, and WANObjectCache purges (/dc/mw-wan/) replicated to the other
// data centre's mcrouter proxies.
{
  "macros": {
    "datacenters": {"type": "constDef", "result": {"eqiad": "1", "codfw": "2"}},
    "failover": {"type": "constDef", "result": ["timeout", "connect_error", "tko"]},
    "local_pool": {
      "type": "macroDef",
      "params": ["dc", {"name": "gutter_ttl", "default": 600}],
      "result": {
        "type": "FailoverWithExptimeRoute",
        "normal": "PoolRoute|%dc%-servers",
        "failover": "PoolRoute|%dc%-gutter",
        "failover_exptime": "%gutter_ttl%",
        "failover_errors": "%failover%",
      }
    },
    "replicated": {
      "type": "macroDef",
      "params": ["dc"],
      "result": {
        "type": "AllSyncRoute",
        "children": {
          "type": "foreach", "from": "@keys(%datacenters%)",
          "use": ["@if(@equals(%item%,%dc%),@local_pool(%dc%),PoolRoute|%item%-proxies)"]
        }
      }
    },
    "dc_routes": {
      "type": "macroDef",
      "params": ["dc"],
      "result": [
        {"aliases": ["/%dc%/mw/"], "route": "@local_pool(%dc%)"},
        {
          "aliases": ["/%dc%/mw-wan/"],
          "route": {
            "type": "OperationSelectorRoute",
            "default_policy": "@local_pool(%dc%)",
            "operation_policies": {"set": "@replicated(%dc%)", "delete": "@replicated(%dc%)"}
          }
        }
      ]
    }
  },
  "pools": {
    "type": "foreach", "key": "dc", "item": "n", "from": "%datacenters%",
    "use": {
      "%dc%-servers": {"servers": ["10.64.%n%.1:11211", "10.64.%n%.2:11211"]},
      "%dc%-gutter": {"servers": ["10.64.%n%.9:11211"]},
      "%dc%-proxies": {"servers": ["10.192.%n%.1:11214:ascii:ssl"]}
    }
  },
  "routes": {"type": "foreach", "from": "@keys(%datacenters%)", "use": "@dc_routes(%item%)"}
}
"""


def test_wikimedia_shaped_config():
    out = preprocess(loads(WIKIMEDIA_SHAPED), {"default-route": "/eqiad/mw/"})
    assert out["pools"] == {
        "eqiad-servers": {"servers": ["10.64.1.1:11211", "10.64.1.2:11211"]},
        "eqiad-gutter": {"servers": ["10.64.1.9:11211"]},
        "eqiad-proxies": {"servers": ["10.192.1.1:11214:ascii:ssl"]},
        "codfw-servers": {"servers": ["10.64.2.1:11211", "10.64.2.2:11211"]},
        "codfw-gutter": {"servers": ["10.64.2.9:11211"]},
        "codfw-proxies": {"servers": ["10.192.2.1:11214:ascii:ssl"]},
    }
    routes = out["routes"]
    assert [r["aliases"] for r in routes] == [["/eqiad/mw/"], ["/eqiad/mw-wan/"],
                                             ["/codfw/mw/"], ["/codfw/mw-wan/"]]
    local = {"type": "FailoverWithExptimeRoute", "normal": "PoolRoute|codfw-servers",
             "failover": "PoolRoute|codfw-gutter", "failover_exptime": 600,
             "failover_errors": ["timeout", "connect_error", "tko"]}
    assert routes[2]["route"] == local
    wan = routes[3]["route"]
    assert wan["default_policy"] == local
    assert wan["operation_policies"]["delete"] == {
        "type": "AllSyncRoute", "children": ["PoolRoute|eqiad-proxies", local]}
    assert wan["operation_policies"]["set"] == wan["operation_policies"]["delete"]


# -- number formatting and trimming helpers -----------------------------------------------------

@pytest.mark.parametrize("value, text", [
    (5.5, "5.5"), (5.0, "5"), (-0.0, "-0"), (0.0, "0"), (1e20, "100000000000000000000"),
    (1e21, "1E21"), (1.25e-6, "0.00000125"), (1e-7, "1E-7"), (123456.789, "123456.789"),
    (float("inf"), "Infinity"), (float("nan"), "NaN"), (-2.5e30, "-2.5E30"),
])
def test_double_to_string(value, text):
    assert _double_to_string(value) == text


@pytest.mark.parametrize("raw, trimmed", [
    ("  a  ", "a"), (r"a\ ", r"a\ "), (r"a\\ ", r"a\\"), (r"a\\\  ", r"a\\\ "), (" ", ""),
    ("\t\na b\r", "a b"),
])
def test_trim(raw, trimmed):
    assert _trim(raw) == trimmed
