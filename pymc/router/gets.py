"""Client retrievals (get, gets, gat, gats) through the router.

mcrouter routes every key of a multi-get on its own. Doing that per key in Python costs more
than memcached spends on the key, so plain get/gets take a shortcut that gives the same
answers: each key is *resolved* to the server the route tree would send it to if all goes well
(``RouteHandle.resolve``), keys are grouped per server and sent as one multi-key get, and when
the keys reach the server unchanged the reply is forwarded as it came (``RawGet``). A group
whose reply is an error is sent key by key through the full tree, with the failed server
already counted as answered (``destination.ANSWERED``), so failover behaves as if each key had
been routed alone. gat/gats, admin keys and keys that do not resolve take the full tree.

Replies keep the client's key order; the first error among the keys replaces END, as
mcrouter's multi-op does.
"""

from __future__ import annotations

from ..protocol.client import RAW_SINGLE_GET, RawGet, frame_request
from ..protocol.messages import CR, LF, NUL, SPACE, Reply, Request
from .admin import PREFIX as ADMIN_PREFIX
from .keys import RoutedKey
from .results import ErrorReply
from .routes import destination as destination_module

END = b"END\r\n"
_RESOLVABLE = {b"get": "get", b"gets": "gets"}


def error_line(reply) -> bytes:
    """A one-line reply (an error, STORED, ...) as the client sees it."""
    if type(reply) is ErrorReply:
        return reply.line()
    return reply.result + (b" " + reply.message if reply.message else b"") + b"\r\n"


def value_lines(reply, key: bytes) -> bytes:
    """VALUE blocks of a get reply under the client's key (the server may have seen the key
    without its routing prefix)."""
    out = []
    for value in reply.values:
        if value.cas is None:
            out.append(b"VALUE %s %d %d\r\n%s\r\n" % (key, value.flags, len(value.data),
                                                     value.data))
        else:
            out.append(b"VALUE %s %d %d %d\r\n%s\r\n" % (key, value.flags, len(value.data),
                                                        value.cas, value.data))
    return b"".join(out)


def is_hit_list(reply) -> bool:
    return type(reply) is Reply and reply.result == b"END"


class MultiGet:
    """The answer to one client retrieval, assembled from per-key parts."""

    __slots__ = ("conn", "slot", "keys", "parts", "error", "waiting")

    def __init__(self, conn, slot: list, keys: list[bytes]) -> None:
        self.conn = conn
        self.slot = slot
        self.keys = keys
        self.parts: list = [b""] * len(keys)
        self.error = None
        self.waiting = len(keys)

    def put(self, index: int, data: bytes) -> None:
        self.parts[index] = data
        self._one_done()

    def fail(self, reply) -> None:
        if self.error is None:
            self.error = reply
        self._one_done()

    def _one_done(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            tail = END if self.error is None else error_line(self.error)
            self.conn.fill(self.slot, b"".join(self.parts) + tail)

    def done_for(self, index: int):
        def done(reply) -> None:
            if is_hit_list(reply):
                self.put(index, value_lines(reply, self.keys[index]) if reply.values else b"")
            else:
                self.fail(reply)
        return done


def retrieve(proxy, conn, req: Request) -> None:
    keys = req.keys
    slot = conn.slot()
    op = _RESOLVABLE.get(req.command)
    if len(keys) == 1:
        key = keys[0]
        if key.startswith(ADMIN_PREFIX):
            _single_done(conn, slot, key)(Reply(b"END", values=[proxy.admin.value(key)]))
            return
        target = None
        if op is not None:
            root = proxy.root
            if key[:1] != b"/":
                target = root.default.fixed(op)
            if target is None:
                target = root.resolve(op, key)
        if target is not None and (key[:1] != b"/" or target.keep_routing_prefix):
            _send_raw(proxy, conn, slot, req, target)
        else:
            _route_one(proxy, conn, slot, req)
        return
    if op is not None:
        target = proxy.root.default.fixed(op)
        if target is not None:
            firsts = {key[:1] for key in keys}
            if b"/" not in firsts and b"_" not in firsts:  # no routing prefix, no admin key
                _send_raw(proxy, conn, slot, req, target)
                return
    groups: dict = {}
    loose: list[int] = []
    resolve = proxy.root.resolve
    for index, key in enumerate(keys):
        target = resolve(op, key) if op is not None and \
            not key.startswith(ADMIN_PREFIX) else None
        if target is None:
            loose.append(index)
        else:
            group = groups.get(target)
            if group is None:
                groups[target] = [index]
            else:
                group.append(index)
    if len(groups) == 1 and not loose:
        target = next(iter(groups))
        if target.keep_routing_prefix or not any(key[:1] == b"/" for key in keys):
            _send_raw(proxy, conn, slot, req, target)
            return
    multi = MultiGet(conn, slot, keys)
    for target, indices in groups.items():
        _send_group(proxy, multi, req, target, indices)
    for index in loose:
        _route_key(proxy, multi, req, index)


def forward_simple_gets(proxy, conn, data: bytes) -> bool:
    """The commonest pipelined read: nothing but ``get <key>`` lines with plain keys (no
    routing prefix, no admin key). They are forwarded as the client wrote them, grouped by
    server, and each reply goes back as it came. False (nothing done) for anything else.
    A read of one line takes forward_get_line instead (ClientConn.on_readable picks)."""
    if not data.endswith(b"\r\n"):
        return False
    lines = data.split(b"\r\n")
    lines.pop()
    for line in lines:
        if line[:4] != b"get " or not 4 < len(line) <= 254 or line[4] in _NOT_PLAIN or \
                SPACE in line[5:] or LF in line or NUL in line:
            return False
    root = proxy.root
    fixed = root.fixed_get
    if fixed is None:
        targets = [root.resolve("get", line[4:]) for line in lines]
        if None in targets:
            return False
    slots = [conn.slot() for _ in lines]
    dones = [_filler(conn, slot, proxy, line[4:]) for slot, line in zip(slots, lines)]
    proxy.stats.count(b"get", len(lines))
    if fixed is not None:
        fixed.destination.forward(data, [RAW_SINGLE_GET] * len(dones), dones)
        return True
    groups: dict = {}
    for index, target in enumerate(targets):
        groups.setdefault(target, []).append(index)
    for target, indices in groups.items():
        wire = data if len(indices) == len(lines) else \
            b"".join([lines[i] + b"\r\n" for i in indices])
        target.destination.forward(wire, [RAW_SINGLE_GET] * len(indices),
                                       [dones[i] for i in indices])
    return True


_NOT_PLAIN = frozenset(b"/_ ")


def forward_get_line(proxy, conn, line: bytes) -> bool:
    """forward_simple_gets for a read holding one ``get`` line (non-pipelined clients):
    the same checks and steps without the list work."""
    key = line[4:-2]
    if SPACE in key:
        return _forward_multi(proxy, conn, line)
    if not 0 < len(key) <= 250 or key[0] in _NOT_PLAIN or NUL in key or CR in key:
        return False
    root = proxy.root
    target = root.fixed_get
    if target is None:
        target = root.resolve("get", key)
        if target is None:
            return False
    slot = [None]
    conn.slots.append(slot)
    proxy.stats.single_gets += 1
    target.destination.send_get(line, _filler(conn, slot, proxy, key))
    return True


def _filler(conn, slot, proxy, key: bytes):
    def done(reply) -> None:
        if reply.raw is not None:
            slot[0] = reply.raw
            slots = conn.slots
            if slots and slots[0] is slot:
                conn.drain()
            return
        req = Request(b"get", [key])
        target = proxy.root.resolve("get", key)
        if target is None:
            _route_one(proxy, conn, slot, req)
        else:
            _reroute(proxy, req, target, reply, _single_done(conn, slot, key))
    return done


def _forward_multi(proxy, conn, data: bytes) -> bool:
    """One ``get k1 k2 ...`` line whose keys all go to one server (a one-server pool): the
    line is forwarded as written, framed, and the reply forwarded as it came."""
    line = data[:-2]
    # Keys are single-space separated, so a key starting with / or _ shows as " /" or " _".
    if line.find(b"  ") >= 0 or line[-1:] == b" " or line.find(b" /") >= 0 or \
            line.find(b" _") >= 0 or NUL in line or CR in line:
        return False
    target = proxy.root.fixed_get
    if target is None:
        return False
    keys = line[4:].split(b" ")
    if max(map(len, keys)) > 250:
        return False
    slot = [None]
    conn.slots.append(slot)
    proxy.stats.count(b"get", len(keys))
    _send_raw(proxy, conn, slot, Request(b"get", keys), target, wire=data)
    return True


def _send_raw(proxy, conn, slot, req: Request, target, wire: bytes | None = None) -> None:
    """All keys to one server, unchanged: its reply is the client's reply. ``wire`` is the
    client's own line when it can be forwarded as written. A multi-key get is framed when
    the server speaks meta (see RawGet)."""
    keys = req.keys

    def done(reply) -> None:
        if reply.raw is not None:
            conn.fill(slot, reply.raw)
        elif len(keys) == 1:
            _reroute(proxy, req, target, reply, _single_done(conn, slot, keys[0]))
        else:
            multi = MultiGet(conn, slot, keys)
            for index in range(len(keys)):
                _reroute(proxy, _key_request(req, index), target, reply, multi.done_for(index))
    destination = target.destination
    token = destination.next_token() if len(keys) > 1 and destination.frames else 0
    marker = RawGet(req.command, keys, token)
    if wire is None:
        destination.send(marker, done)
    else:
        destination.forward(wire + frame_request(token) if token else wire, [marker], [done])


def _send_group(proxy, multi: MultiGet, req: Request, target, indices: list[int]) -> None:
    keys = multi.keys
    sent = [_strip(keys[i], target) for i in indices]

    def done(reply) -> None:
        if not is_hit_list(reply):
            for index in indices:
                _reroute(proxy, _key_request(req, index), target, reply, multi.done_for(index))
            return
        found: dict[bytes, list] = {}
        for value in reply.values:
            found.setdefault(value.key, []).append(value)
        for index, key in zip(indices, sent):
            values = found.get(key)
            multi.put(index, value_lines(Reply(b"END", values=values[:1]), keys[index])
                      if values else b"")
    target.destination.send(Request(req.command, sent), done)


def _strip(key: bytes, target) -> bytes:
    if key[:1] == b"/" and not target.keep_routing_prefix:
        return RoutedKey(key).without_route
    return key


def _key_request(req: Request, index: int) -> Request:
    return Request(req.command, [req.keys[index]], exptime=req.exptime)


def _route_key(proxy, multi: MultiGet, req: Request, index: int) -> None:
    key = req.keys[index]
    done = multi.done_for(index)
    if key.startswith(ADMIN_PREFIX):
        done(Reply(b"END", values=[proxy.admin.value(key)]))
    else:
        proxy.root.route(_key_request(req, index), done)


def _single_done(conn, slot, key: bytes):
    def done(reply) -> None:
        if is_hit_list(reply):
            data = value_lines(reply, key) + END if reply.values else END
        else:
            data = error_line(reply)
        conn.fill(slot, data)
    return done


def _route_one(proxy, conn, slot, req: Request) -> None:
    proxy.root.route(req, _single_done(conn, slot, req.keys[0]))


def _reroute(proxy, req: Request, target, reply, done) -> None:
    """Route ``req`` through the full tree, ``target`` having answered ``reply`` already."""
    destination_module.ANSWERED = {target.destination: reply}
    try:
        proxy.root.route(req, done)
    finally:
        destination_module.ANSWERED = None
