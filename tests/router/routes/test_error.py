"""ErrorRoute: an error reply for every request."""

import pytest

from pymc.router.jsonc import ConfigError
from pymc.router.routes.error import ErrorRoute

from ..recording import build as meta, get, route, set_


def test_bare_type_is_a_local_error_without_message(build):
    handle = build("ErrorRoute")
    assert isinstance(handle, ErrorRoute) and handle.name == "error|log|mc_res_local_error"
    reply = route(handle, get())
    assert reply.kind == "local_error" and reply.line() == b"SERVER_ERROR local error\r\n"


def test_short_form_message(build):
    handle = build("ErrorRoute|no route here")
    assert handle.name == "error|log|mc_res_local_error|no route here"
    assert route(handle, set_()).line() == b"SERVER_ERROR no route here\r\n"


def test_object_form(build):
    handle = build({"type": "ErrorRoute", "response": "go away", "result": "mc_res_busy",
                    "enable_logging": False})
    assert handle.name == "error|no-log|mc_res_busy|go away"
    reply = route(handle, get())
    assert reply.kind == "busy" and reply.line() == b"SERVER_ERROR go away\r\n"
    assert route(build({"type": "ErrorRoute", "result": "timeout"}), get()).kind == "timeout"
    client = route(build({"type": "ErrorRoute", "result": "client_error"}), get())
    assert client.line() == b"CLIENT_ERROR\r\n"


def test_meta_requests_get_the_error_too(build):
    assert route(build("ErrorRoute|x"), meta(b"mg", b"k", b"v")).kind == "local_error"


@pytest.mark.parametrize("json, message", [
    ({"type": "ErrorRoute", "result": "mc_res_found"}, "not a valid error result"),
    ({"type": "ErrorRoute", "result": "nonsense"}, "not a valid error result"),
    ({"type": "ErrorRoute", "response": 5}, "'response' is not a string"),
    ({"type": "ErrorRoute", "enable_logging": "yes"}, "'enable_logging' is not a boolean"),
])
def test_bad_config(build, json, message):
    with pytest.raises(ConfigError, match=message):
        build(json)


def test_no_children():
    assert ErrorRoute().traverse(get()) == []
