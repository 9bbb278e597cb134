"""Config JSON with comments and trailing commas, as mcrouter accepts it."""

import pytest

from pymc.router.jsonc import ConfigError, loads


def test_comments_and_trailing_commas():
    text = """
    // Wikimedia-style header comment
    {
      "pools": {
        "eqiad": {"servers": ["127.0.0.1:11211", /* inline */ "127.0.0.1:11212",]},
      },
      "route": "PoolRoute|eqiad", // trailing comment
      "url": "http://example.org/a//b", "glob": "/*/mw-wan/",
      /* multi
         line */
      "list": [1, 2, 3,  ],
    }
    """
    assert loads(text) == {
        "pools": {"eqiad": {"servers": ["127.0.0.1:11211", "127.0.0.1:11212"]}},
        "route": "PoolRoute|eqiad", "url": "http://example.org/a//b", "glob": "/*/mw-wan/",
        "list": [1, 2, 3]}


def test_strings_keep_comment_like_text_and_escapes():
    assert loads(r'{"a": "x // y /* z */", "b": "q\"// still string", }') == {
        "a": "x // y /* z */", "b": 'q"// still string'}


@pytest.mark.parametrize("text, where", [
    ('{"a": 1,\n "b": }', "line 2"),
    ('{"a": [1, 2}', "line 1"),
    ("/* never closed", "unterminated"),
    ('{"a": 1} trailing', "line 1"),
])
def test_errors_say_where(text, where):
    with pytest.raises(ConfigError, match=where):
        loads(text)


@pytest.mark.parametrize("text, message", [
    ('{"server_timeout": NaN}', "NaN"),
    ('{"weights": [Infinity]}', "Infinity"),
    ('{"server_timeout": -Infinity}', "-Infinity"),
    ('{"server_timeout": 1e400}', "1e400 is out of range"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
])
def test_what_json_cannot_hold_is_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        loads(text)
