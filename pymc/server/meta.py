"""Meta commands against the Cache: memcached 1.6.18's mg/ms/md/ma/me/mn decisions.

Reply flags follow the request's flag order, and flags that change the item (T, N) take
effect where they stand: ``T30 t`` shows the new TTL, ``t T30`` the old one (as memcached).
Newer protocol.txt additions are supported where 1.6.18 had nothing to say: E (explicit CAS),
mg C (skip the value when the CAS matches), ms s (size), ms N (append vivify), md x.
"""

from __future__ import annotations

from ..protocol.meta import (MA_MODES, MAX_OPAQUE_LENGTH, MS_MODES, OPAQUE_TOO_LONG, MetaRequest,
                             encode_key, key_token)
from ..storage import cache as c
from ..storage.cache import parse_block
from ..storage.clock import realtime
from ..storage.items import FETCHED, KEY_BINARY, STALE, TOKEN_SENT

U32 = 2**32 - 1
STORE_CODES = {c.STORED: b"HD", c.NOT_STORED: b"NS", c.EXISTS: b"EX", c.NOT_FOUND: b"NF"}
STORE_ERRORS = {c.TOO_LARGE: b"SERVER_ERROR object too large for cache\r\n",
                c.NO_MEMORY: b"SERVER_ERROR out of memory storing object\r\n"}


class MetaCommands:
    def __init__(self, cache: c.Cache) -> None:
        self.cache = cache
        self.handlers = {b"mg": self.mg, b"ms": self.ms, b"md": self.md, b"ma": self.ma,
                         b"me": self.me, b"mn": self.mn}

    def _ttl(self, exptime: int) -> int:
        return realtime(exptime, self.cache.clock)

    # -- mg -----------------------------------------------------------------------------------

    def mg(self, req: MetaRequest, out: list, conn) -> bool:
        cache = self.cache
        table = cache.table
        now = cache.now()
        slot = cache.find(req.key, now)
        created = False
        if slot < 0 and req.vivify is not None:
            slot = cache.create(req.key, 0, 0, b"", req.new_cas)
            created = slot >= 0
        if slot < 0:
            cache.cmd_get += 1
            cache.get_misses += 1
            line = _echo(b"EN", req)
            if line is None:
                out.append(OPAQUE_TOO_LONG)
            elif not req.quiet:
                out.append(line)
            return False

        # memcached bumps at lookup unless a flag needs the item locked; then h and l report
        # the state before this fetch and the bump comes last (skipped after an error).
        bump_late = req.bump_late
        if not bump_late and not req.no_update:
            table.bump(slot, now)
        bits = table.bits(slot)
        last_access = table.atime[slot]
        flags, data = parse_block(table.block(slot))
        send_value = req.value and not (req.cas is not None and table.cas[slot] == req.cas)
        parts = [b"VA %d" % len(data) if send_value else b"HD"]
        won = ttl_set = False
        for token in req.tokens:
            flag = token[0]
            if flag == 84:  # T
                ttl_set = True
                table.set_exptime(slot, self._ttl(req.exptime))  # type: ignore[arg-type]
            elif flag == 78:  # N
                if created:
                    table.set_exptime(slot, self._ttl(req.vivify))  # type: ignore[arg-type]
                    won = True
            elif flag == 82:  # R: the TTL is below the threshold and nobody won yet
                exptime = table.exptime[slot]
                if not bits & TOKEN_SENT and not created and exptime != 0 \
                        and exptime < self._ttl(req.recache):  # type: ignore[arg-type]
                    won = True
            elif flag == 115:  # s
                parts.append(b"s%d" % len(data))
            elif flag == 116:  # t
                parts.append(_ttl_token(table.exptime[slot], now))
            elif flag == 99:  # c
                parts.append(b"c%d" % table.cas[slot])
            elif flag == 102:  # f
                parts.append(b"f%d" % flags)
            elif flag == 108:  # l
                parts.append(b"l%d" % ((now - last_access) & U32))
            elif flag == 104:  # h
                parts.append(b"h1" if bits & FETCHED else b"h0")
            elif flag == 79:  # O
                if len(token) > MAX_OPAQUE_LENGTH:
                    out.append(OPAQUE_TOO_LONG)
                    return False
                parts.append(token)
            elif flag == 107:  # k
                parts.append(key_token(req.key, bool(bits & KEY_BINARY)))
        bits = table.bits(slot)
        if bits & TOKEN_SENT:
            parts.append(b"Z")
        if bits & STALE:
            parts.append(b"X")
            won = won or not bits & TOKEN_SENT
        if won:
            parts.append(b"W")
            table.set_bits(slot, bits | TOKEN_SENT)
        out.append(b" ".join(parts) + b"\r\n")
        if send_value:
            out.append(data + b"\r\n")
        if bump_late and not req.no_update:
            table.bump(slot, now)
        if ttl_set:
            cache.cmd_touch += 1
            table.counters[table.class_of(slot)].touch_hits += 1
        else:
            cache.cmd_get += 1
            table.segment_hits[table.lru_of(slot)] += 1
        return False

    # -- ms -----------------------------------------------------------------------------------

    def ms(self, req: MetaRequest, out: list, conn) -> bool:
        cache = self.cache
        command = MS_MODES[req.mode or b"S"]
        if req.cas is not None and command in (b"set", b"replace"):
            command = b"cas"
        vivify = req.vivify is not None and command in (b"append", b"prepend")
        exptime = req.vivify if vivify else (req.exptime or 0)
        data: bytes = req.data  # type: ignore[assignment]
        result = cache.store(command, req.key, req.client_flags, exptime,  # type: ignore
                             data, req.cas or 0, stale_ok=req.invalidate, new_cas=req.new_cas,
                             bits=KEY_BINARY if req.binary else 0, vivify=vivify)
        if result in STORE_ERRORS:
            cache.delete_quietly(req.key)  # ms in any mode must not leave the old value
            out.append(STORE_ERRORS[result])
            return False
        if result == c.STORED and req.quiet:
            return False
        table = cache.table
        slot = table.slot(req.key) if result == c.STORED else -1
        parts = [STORE_CODES[result]]
        for token in req.tokens:
            flag = token[0]
            if flag == 79:  # O
                parts.append(token)
            elif flag == 107:  # k
                parts.append(key_token(req.key, req.binary))
            elif flag == 99:  # c: the new CAS, 0 when nothing was stored
                parts.append(b"c%d" % (table.cas[slot] if slot >= 0 else 0))
            elif flag == 115:  # s: the stored size (after append/prepend)
                size = len(parse_block(table.block(slot))[1]) if slot >= 0 else len(data)
                parts.append(b"s%d" % size)
        out.append(b" ".join(parts) + b"\r\n")
        return False

    # -- md -----------------------------------------------------------------------------------

    def md(self, req: MetaRequest, out: list, conn) -> bool:
        cache = self.cache
        table = cache.table
        slot = cache.find(req.key, cache.now())
        if slot < 0:
            cache.delete_misses += 1
            code = b"NF"
        elif req.cas is not None and table.cas[slot] != req.cas:
            cache.delete_misses += 1
            code = b"EX"
        else:
            code = b"HD"
            if req.remove_value:
                # A tombstone: the value goes, the item (and its CAS, unless E) stays.
                exptime = self._ttl(req.exptime) if req.exptime is not None else 0
                new_cas = table.cas[slot] if req.new_cas is None else req.new_cas
                slot = cache.create(req.key, req.client_flags, exptime, b"", new_cas)
                if slot < 0:
                    out.append(b"SERVER_ERROR out of memory\r\n")
                    return False
            if req.invalidate:
                exptime = self._ttl(req.exptime) if req.exptime is not None else None
                cache.invalidate(slot, exptime, req.new_cas)
            else:
                table.counters[table.class_of(slot)].delete_hits += 1
                if not req.remove_value:
                    table.remove(slot)
            if req.quiet:
                return False
        out.append(_echo(code, req))  # opaque length checked at parse
        return False

    # -- ma -----------------------------------------------------------------------------------

    def ma(self, req: MetaRequest, out: list, conn) -> bool:
        cache = self.cache
        table = cache.table
        incr = MA_MODES[req.mode] if req.mode is not None else True
        before = table.slot(req.key)
        old_length = len(parse_block(table.block(before))[1]) if before >= 0 else 0
        result, number = cache.arithmetic(req.key, incr, req.delta, req.cas or 0, req.new_cas,
                                          count_miss=False)  # not when vivifying
        created = False
        if result == c.NON_NUMERIC:
            out.append(b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
            return False
        if result == c.NO_MEMORY:
            out.append(b"SERVER_ERROR out of memory\r\n")
            return False
        if result == c.NOT_FOUND and req.vivify is not None:
            number = req.initial
            if cache.create(req.key, 0, 0, b"%d" % number, req.new_cas) < 0:
                out.append(b"SERVER_ERROR Out of memory allocating new item\r\n")
                return False
            result = c.STORED
            created = True
        elif result == c.NOT_FOUND:
            cache.count_arithmetic_miss(incr)
        if result != c.STORED:
            line = _echo(b"NF" if result == c.NOT_FOUND else b"EX", req)
            out.append(OPAQUE_TOO_LONG if line is None else line)
            return False
        slot = table.slot(req.key)
        digits = b"%d" % number
        # A number that outgrew its digits went into a new item; memcached then applies T to
        # (and reports t of) the old, already replaced item: T has no lasting effect.
        detached = not created and len(digits) > old_length
        exptime = table.exptime[slot]
        parts = [b"VA %d" % len(digits) if req.value else b"HD"]
        now = cache.now()
        for token in req.tokens:
            flag = token[0]
            if flag == 99:  # c
                parts.append(b"c%d" % table.cas[slot])
            elif flag == 116:  # t
                parts.append(_ttl_token(exptime, now))
            elif flag == 84:  # T
                exptime = self._ttl(req.exptime)  # type: ignore[arg-type]
                if not detached:
                    table.set_exptime(slot, exptime)
            elif flag == 78:  # N
                if created:
                    exptime = self._ttl(req.vivify)  # type: ignore[arg-type]
                    table.set_exptime(slot, exptime)
            elif flag == 79:  # O
                if len(token) > MAX_OPAQUE_LENGTH:
                    out.append(OPAQUE_TOO_LONG)
                    return False
                parts.append(token)
            elif flag == 107:  # k
                parts.append(key_token(req.key, req.binary))
        if req.quiet and not created:  # 1.6.18 answers a vivifying ma even with q
            return False
        line = b" ".join(parts) + b"\r\n"
        out.append(line + digits + b"\r\n" if req.value else line)
        return False

    # -- me, mn -------------------------------------------------------------------------------

    def me(self, req: MetaRequest, out: list, conn) -> bool:
        cache = self.cache
        table = cache.table
        now = cache.now()
        slot = cache.find(req.key, now)
        cache.cmd_meta += 1
        if slot < 0:
            out.append(b"EN\r\n")
            return False
        bits = table.bits(slot)
        key = encode_key(req.key) if bits & KEY_BINARY else req.key
        exptime = table.exptime[slot]
        # memcached prints now - exptime: -100 for an item with 100 seconds to live.
        out.append(b"ME %s exp=%d la=%d cas=%d fetch=%s cls=%d size=%d\r\n" % (
            key, -1 if exptime == 0 else now - exptime, now - table.atime[slot],
            table.cas[slot], b"yes" if bits & FETCHED else b"no", table.class_of(slot),
            table.size[slot]))
        return False

    def mn(self, req: MetaRequest, out: list, conn) -> bool:
        out.append(b"MN\r\n")
        conn.sent_mark = len(out)  # mn makes memcached send what it has queued
        return False


def _echo(code: bytes, req: MetaRequest) -> bytes | None:
    """A reply line that only echoes O and k (misses, md, failed ma); None if an opaque is
    too long."""
    parts = [code]
    for token in req.tokens:
        flag = token[0]
        if flag == 79:
            if len(token) > MAX_OPAQUE_LENGTH:
                return None
            parts.append(token)
        elif flag == 107:
            parts.append(key_token(req.key, req.binary))
    return b" ".join(parts) + b"\r\n"


def _ttl_token(exptime: int, now: int) -> bytes:
    return b"t-1" if exptime == 0 else b"t%d" % ((exptime - now) & U32)
