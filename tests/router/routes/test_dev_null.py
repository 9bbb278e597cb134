"""DevNullRoute: NullRoute's replies, counted in dev_null_requests."""

from pymc.router.routes.dev_null import DevNullRoute

from ..recording import build as meta, delete, get, route, set_


def test_default_replies_and_count(build):
    handle = build("DevNullRoute")
    assert isinstance(handle, DevNullRoute) and handle.name == "devnull"
    before = DevNullRoute.dev_null_requests
    assert route(handle, get()).result == b"END"
    assert route(handle, set_()).result == b"NOT_STORED"
    assert route(handle, delete()).result == b"NOT_FOUND"
    assert route(handle, meta(b"mg", b"k", b"v")).code == b"EN"
    assert DevNullRoute.dev_null_requests == before + 4


def test_count_is_shared_by_every_instance(build):
    before = DevNullRoute.dev_null_requests
    route(build({"type": "DevNullRoute"}), get())
    route(DevNullRoute(), get())
    assert DevNullRoute.dev_null_requests == before + 2


def test_no_children():
    assert DevNullRoute().traverse(get()) == []
