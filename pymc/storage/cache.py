"""Cache: memcached's item commands over the item table, with memcached's counters.

Semantics follow memcached 1.6.18: relative/absolute/negative exptimes, one global CAS counter
(-C disables it), 64-bit incr/decr with in-place space padding, append/prepend keeping flags,
flush_all with a delay (memcached's oldest_live/oldest_cas rules), lazy expiry on access plus
a crawler. Results are small ints (STORED, ...); the server maps them to reply lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..protocol.messages import MAX_KEY_LENGTH
from .clock import Clock, realtime
from .items import ACTIVE, HAS_TTL, LRU_IDS, STALE, TOKEN_SENT, ItemTable
from .slabs import PAGE_BYTES, Slabs, item_size

STORED, NOT_STORED, EXISTS, NOT_FOUND, TOO_LARGE, NO_MEMORY = range(6)

DELETED, TOUCHED, NON_NUMERIC = range(6, 9)

U64 = 2**64
NEVER = 2**62
VALUE_PREFIX = b"VALUE "
#: What get_into and get_and_touch_into return at a key memcached refuses (over 250 bytes).
LONG_KEY = -1
_TTL_OR_ACTIVE = HAS_TTL | ACTIVE
_from_bytes = int.from_bytes

GLOBAL_COUNTERS = (
    "cmd_get", "cmd_set", "cmd_flush", "cmd_touch", "get_misses", "get_expired",
    "get_flushed", "delete_misses", "incr_misses", "decr_misses", "cas_misses",
    "touch_misses", "store_too_large", "store_no_memory", "total_items",
    "crawler_reclaimed", "crawler_items_checked", "lru_maintainer_juggles",
    "lru_crawler_starts", "cmd_meta",
)


@dataclass
class CacheSettings:
    limit_bytes: int = 64 * 1024 * 1024
    item_size_max: int = 1024 * 1024
    growth_factor: float = 1.25
    chunk_size: int = 48
    slab_chunk_max: int = PAGE_BYTES // 2
    cas_enabled: bool = True
    evict: bool = True


def value_block(flags: int, data: bytes) -> bytes:
    """What a hit sends after ``VALUE <key>``: `` <flags> <bytes>\\r\\n<data>\\r\\n``."""
    return b"".join((b" %d %d\r\n" % (flags, len(data)), data, b"\r\n"))


def parse_block(block: bytes) -> tuple[int, bytes]:
    """(flags, data) back from a value block."""
    end = block.index(b"\r\n")
    flags = int(block[1:end].split(b" ", 1)[0])
    return flags, block[end + 2:-2]


class Cache:
    def __init__(self, settings: CacheSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.slabs = Slabs(settings.limit_bytes, settings.growth_factor, settings.chunk_size,
                           settings.slab_chunk_max, settings.item_size_max)
        self.table = ItemTable(self.slabs, evict=settings.evict)
        self.cas_enabled = settings.cas_enabled
        self.cas_counter = 0
        self.oldest_live = 0
        self.oldest_cas = 0
        self.flush_check = False       # lazy flush test needed on access
        self._flush_cleared = True     # the pending flush already dropped older items
        self._window: list[int] = []  # slots stored while flush_check was on
        self._wake_at = NEVER
        self._crawl_pos = 0
        self.reset_counters()

    def reset_counters(self) -> None:
        for name in GLOBAL_COUNTERS:
            setattr(self, name, 0)
        table = self.table
        table.segment_hits = [0] * LRU_IDS
        for counters in table.counters:
            counters.__init__()  # type: ignore[misc]
        table.evictions_total = 0
        table.reclaimed_total = 0

    # -- time, CAS and flush ---------------------------------------------------------------------

    def now(self) -> int:
        now = self.clock.now()
        if now >= self._wake_at:
            self._wake(now)
        return now

    def next_cas(self) -> int:
        if not self.cas_enabled:
            return 0
        self.cas_counter += 1
        return self.cas_counter

    def is_flushed(self, slot: int, now: int) -> bool:
        oldest = self.oldest_live
        if not self.flush_check or oldest == 0 or oldest > now:
            return False
        table = self.table
        if table.atime[slot] <= oldest:
            return True
        cas = table.cas[slot]
        return self.oldest_cas != 0 and cas != 0 and cas < self.oldest_cas

    def flush_all(self, delay: int = 0) -> None:
        """memcached's flush_all [delay]: items last touched before the flush time go."""
        now = self.clock.now()
        self.cmd_flush += 1
        new_oldest = realtime(delay, self.clock) if delay > 0 else now
        if self.cas_enabled:
            self.oldest_live = new_oldest - 1
            if self.oldest_live <= now:
                self.oldest_cas = self.next_cas()
        else:
            self.oldest_live = new_oldest
        self._flush_cleared = False
        self._wake_at = self.oldest_live
        self.now()

    def _wake(self, now: int) -> None:
        oldest = self.oldest_live
        if not self._flush_cleared and oldest and oldest <= now:
            # Every item present now was last touched at or before oldest_live.
            self.table.clear()
            self._crawl_pos = 0
            self._flush_cleared = True
            self.flush_check = True
            self._window = []
        if self.flush_check and now > oldest:
            # Items stored during the flush second are flushed too (memcached's rule).
            table = self.table
            for slot in self._window:
                if table.keys[slot] is not None and self.is_flushed(slot, now):
                    table.remove(slot)
            self._window = []
            self.flush_check = False
        if not self._flush_cleared:
            self._wake_at = oldest
        elif self.flush_check:
            self._wake_at = oldest + 1
        else:
            self._wake_at = NEVER

    # -- reads ----------------------------------------------------------------------------------

    def find(self, key: bytes, now: int) -> int:
        """The live slot for a key, or -1; expired or flushed items are removed on the way."""
        table = self.table
        slot = table.slot(key)
        if slot < 0:
            return -1
        exptime = table.exptime[slot]
        if exptime and exptime <= now:
            table.remove(slot)
            self.get_expired += 1
            return -1
        if self.flush_check and self.is_flushed(slot, now):
            table.remove(slot)
            self.get_flushed += 1
            return -1
        return slot

    def get_into(self, keys: list[bytes], out: list[bytes], with_cas: bool = False) -> int:
        """Append the ``VALUE`` blocks of the hits to ``out`` (as one piece when there are
        several); returns the number of hits, or LONG_KEY (nothing appended) at a key over
        250 bytes.

        The server's hot path. The blocks are the stored bytes less their trailer, joined with
        ``VALUE `` as the separator, so a hit on an item with no TTL that is already ACTIVE (the
        usual case for a hot key) costs one lookup, one slice and one counter; anything else (a
        TTL, an LRU bump, a pending flush, gets) takes ``_hit``.
        """
        now = self.clock.now()
        if now >= self._wake_at:
            self._wake(now)
        table = self.table
        index_get = table.index.get
        blocks = [b""]  # the join puts "VALUE " before every block after this one
        append = blocks.append
        hit = self._hit
        if with_cas or self.flush_check:
            for key in keys:
                stored = index_get(key)
                if stored is not None:
                    hit(key, stored, append, now, with_cas)
                elif len(key) > MAX_KEY_LENGTH:
                    return self._stop_at_long_key(keys, key, len(blocks) - 1)
        else:
            segment_hits = table.segment_hits
            cut = slice(None, -table.trailer)
            for key in keys:
                stored = index_get(key)
                if stored is None:
                    if len(key) > MAX_KEY_LENGTH:  # never stored, so only a miss needs the test
                        return self._stop_at_long_key(keys, key, len(blocks) - 1)
                    continue
                if stored[-1] & _TTL_OR_ACTIVE != ACTIVE:
                    hit(key, stored, append, now, False)
                    continue
                append(stored[cut])
                segment_hits[stored[-2]] += 1
        hits = len(blocks) - 1
        if hits == 1:  # the output's own join copies it once; a join here would copy it twice
            out.append(VALUE_PREFIX)
            out.append(blocks[1])
        elif hits:
            out.append(VALUE_PREFIX.join(blocks))
        self.cmd_get += len(keys)
        self.get_misses += len(keys) - hits
        return hits

    def _stop_at_long_key(self, keys: list[bytes], key: bytes, hits: int) -> int:
        """memcached looks keys up in order and stops at one over 250 bytes: the keys before it
        were looked up and count, and the reply is only an error."""
        looked = keys.index(key)
        self.cmd_get += looked
        self.get_misses += looked - hits
        return LONG_KEY

    def _hit(self, key: bytes, stored: bytes, append, now: int, with_cas: bool) -> None:
        """One found item, checked for expiry and flush, sent, counted and bumped."""
        table = self.table
        trailer = table.trailer
        bits = stored[-1]
        slot = _from_bytes(stored[-trailer:-2], "little")
        if bits & HAS_TTL or self.flush_check:
            exptime = table.exptime[slot]
            if (exptime and exptime <= now) or (self.flush_check and self.is_flushed(slot, now)):
                self.find(key, now)  # removes it and counts get_expired / get_flushed
                return
        if with_cas:
            end = stored.index(b"\r\n", len(key))
            append(b"%s %d%s" % (stored[:end], table.cas[slot], stored[end:-trailer]))
        else:
            append(stored[:-trailer])
        table.segment_hits[stored[-2]] += 1
        if not bits & ACTIVE:
            table.bump(slot, now, key, stored)

    def get_and_touch_into(self, keys: list[bytes], exptime: int, out: list[bytes],
                           with_cas: bool = False) -> int:
        """gat/gats: like get, setting a new exptime on every hit (counted as touches).
        At a key over 250 bytes, returns LONG_KEY; the blocks already appended are the
        caller's to drop."""
        now = self.now()
        new_exptime = realtime(exptime, self.clock)
        table = self.table
        hits = 0
        for key in keys:
            slot = self.find(key, now)
            if slot < 0 and len(key) > MAX_KEY_LENGTH:
                return LONG_KEY
            self.cmd_touch += 1
            if slot < 0:
                self.touch_misses += 1
                continue
            table.set_exptime(slot, new_exptime)
            table.counters[table.class_of(slot)].touch_hits += 1
            block = table.block(slot)
            if with_cas:
                end = block.index(b"\r\n")  # type: ignore[union-attr]
                out.append(b"%s%s%s %d%s" % (VALUE_PREFIX, key, block[:end],  # type: ignore
                                             table.cas[slot], block[end:]))  # type: ignore
            else:
                out.append(VALUE_PREFIX + key + block)  # type: ignore[operator]
            table.bump(slot, now)
            hits += 1
        return hits

    # -- writes ---------------------------------------------------------------------------------

    def store(self, command: bytes, key: bytes, flags: int, exptime: int, data: bytes,
              cas_unique: int = 0, *, stale_ok: bool = False, new_cas: int | None = None,
              bits: int = 0, vivify: bool = False) -> int:
        """set/add/replace/append/prepend/cas. Returns STORED, NOT_STORED, EXISTS, NOT_FOUND,
        TOO_LARGE or NO_MEMORY.

        Meta set options: ``cas_unique`` also guards append/prepend; ``stale_ok`` (ms I) lets
        a cas with an older token store the value, marked stale, keeping the old TTL;
        ``new_cas`` (E) replaces the next global CAS; ``bits`` are extra item flags
        (KEY_BINARY); ``vivify`` (ms N) lets append/prepend create a missing item.
        """
        now = self.now()
        table = self.table
        self.cmd_set += 1
        total = item_size(len(key), len(data), flags, self.cas_enabled)
        class_id = self.slabs.class_for(total)
        if class_id == 0:
            self.reject_too_large(key if command == b"set" else None)
            return TOO_LARGE
        old = self.find(key, now)
        table.counters[class_id].cmd_set += 1
        kept_exptime = -1  # a stale cas keeps the item's TTL
        if command == b"set":
            pass
        elif command == b"add":
            if old >= 0:
                table.update(old, now)  # memcached: a failed add refreshes the item's time
                return NOT_STORED
        elif command == b"replace":
            if old < 0:
                return NOT_STORED
        elif command == b"cas":
            if old < 0:
                self.cas_misses += 1
                return NOT_FOUND
            current = table.cas[old]
            counters = table.counters[table.class_of(old)]
            if cas_unique == 0 or (cas_unique != current and not (
                    stale_ok and cas_unique < current)):
                counters.cas_badval += 1
                return EXISTS
            if cas_unique != current:
                # A late writer: its value is kept but stays stale until a real recache.
                kept_exptime = table.exptime[old]
                bits |= STALE | (table.bits(old) & TOKEN_SENT)
            counters.cas_hits += 1
        elif old < 0:  # append / prepend
            if not vivify:
                return NOT_STORED
        else:  # append / prepend keep the old flags and exptime
            if cas_unique and table.cas[old] != cas_unique:
                return EXISTS
            old_flags, old_data = parse_block(table.block(old))
            data = old_data + data if command == b"append" else data + old_data
            total = item_size(len(key), len(data), old_flags, self.cas_enabled)
            class_id = self.slabs.class_for(total)
            if class_id == 0:
                self.store_too_large += 1
                return TOO_LARGE
            return self._write(key, old_flags, table.exptime[old], data, total, class_id, old,
                               now, new_cas)
        if kept_exptime >= 0:
            exptime_rel = kept_exptime
        else:
            exptime_rel = realtime(exptime, self.clock) if exptime else 0
        result = self._write(key, flags, exptime_rel, data, total, class_id, old, now,
                             new_cas, bits)
        if result == NO_MEMORY and command == b"set":
            self.delete_quietly(key)  # memcached: a failed set must not leave the old value
        return result

    def create(self, key: bytes, flags: int, exptime_rel: int, data: bytes,
               cas: int | None = None, bits: int = 0) -> int:
        """Link a new item over whatever the key holds, without store semantics or counters
        (meta vivify, md x). Returns its slot, or -1 when memory is exhausted."""
        total = item_size(len(key), len(data), flags, self.cas_enabled)
        class_id = self.slabs.class_for(total)
        if class_id == 0:
            return -1
        result = self._write(key, flags, exptime_rel, data, total, class_id,
                             self.table.slot(key), self.now(), cas, bits)
        return self.table.slot(key) if result == STORED else -1

    def invalidate(self, slot: int, exptime_rel: int | None = None,
                   new_cas: int | None = None) -> None:
        """md I: mark stale with a fresh CAS so that the next reader wins the recache."""
        table = self.table
        if exptime_rel is not None:
            table.set_exptime(slot, exptime_rel)
        table.set_bits(slot, (table.bits(slot) | STALE) & ~TOKEN_SENT)
        table.cas[slot] = self.next_cas() if new_cas is None else new_cas

    def _write(self, key: bytes, flags: int, exptime_rel: int, data: bytes, total: int,
               class_id: int, old: int, now: int, cas: int | None = None,
               bits: int = 0) -> int:
        table = self.table
        chunks = self.slabs.chunks_for(class_id, total)
        if cas is None:
            cas = self.next_cas()
        if old >= 0 and table.class_of(old) == class_id and \
                chunks == self.slabs.chunks_for(class_id, table.size[old]):
            # Same chunk footprint: reuse the slot (memcached unlinks and relinks; the
            # outcome is the same, without touching the index or the slab counts).
            table.rewrite(old, value_block(flags, data), total, exptime_rel, cas, now, bits)
            self.total_items += 1
            if self.flush_check:
                self._window.append(old)
            return STORED
        table.pinned = old
        try:
            allocated = table.allocate(class_id, chunks, now, self.is_flushed)
        finally:
            table.pinned = -1
        if not allocated:
            self.store_no_memory += 1
            return NO_MEMORY
        old = table.slot(key)
        if old >= 0:
            table.remove(old)
        slot = table.new_slot(key, value_block(flags, data), total, class_id, exptime_rel,
                              cas, now, bits)
        self.total_items += 1
        if self.flush_check:
            self._window.append(slot)
        return STORED

    def reject_too_large(self, unlink_key: bytes | None) -> None:
        """A value over the item size limit: counted, and for set the old value goes."""
        self.store_too_large += 1
        if unlink_key is not None:
            self.delete_quietly(unlink_key)

    def delete_quietly(self, key: bytes) -> None:
        slot = self.table.slot(key)
        if slot >= 0:
            self.table.remove(slot)

    def delete(self, key: bytes) -> int:
        now = self.now()
        slot = self.find(key, now)
        if slot < 0:
            self.delete_misses += 1
            return NOT_FOUND
        table = self.table
        table.counters[table.class_of(slot)].delete_hits += 1
        table.remove(slot)
        return DELETED

    def touch(self, key: bytes, exptime: int) -> int:
        now = self.now()
        self.cmd_touch += 1
        slot = self.find(key, now)
        if slot < 0:
            self.touch_misses += 1
            return NOT_FOUND
        table = self.table
        table.set_exptime(slot, realtime(exptime, self.clock))
        table.counters[table.class_of(slot)].touch_hits += 1
        table.bump(slot, now)
        return TOUCHED

    def arithmetic(self, key: bytes, incr: bool, delta: int, cas_check: int = 0,
                   new_cas: int | None = None, count_miss: bool = True) -> tuple[int, int]:
        """incr/decr: (STORED, new value), (NOT_FOUND, 0), (NON_NUMERIC, 0), (NO_MEMORY, 0),
        or (EXISTS, 0) when ``cas_check`` (ma C) is given and differs. ``new_cas``: ma E."""
        now = self.now()
        table = self.table
        slot = self.find(key, now)
        if slot < 0:
            if count_miss:
                self.count_arithmetic_miss(incr)
            return NOT_FOUND, 0
        flags, data = parse_block(table.block(slot))
        if not data:
            return NON_NUMERIC, 0
        if cas_check and table.cas[slot] != cas_check:
            return EXISTS, 0
        value = parse_counter(data)
        if value is None:
            return NON_NUMERIC, 0
        counters = table.counters[table.class_of(slot)]
        if incr:
            value = (value + delta) % U64
            counters.incr_hits += 1
        else:
            value = value - delta if delta < value else 0
            counters.decr_hits += 1
        digits = b"%d" % value
        if len(digits) <= len(data):
            # memcached rewrites in place, padding with spaces, when the number shrinks.
            digits = digits + b" " * (len(data) - len(digits))
            table.set_block(slot, value_block(flags, digits))
            cas = self.next_cas()
            table.cas[slot] = cas if new_cas is None else new_cas
            table.update(slot, now)
            return STORED, value
        total = item_size(len(key), len(digits), flags, self.cas_enabled)
        cas = self.next_cas()
        result = self._write(key, flags, table.exptime[slot], digits, total,
                             self.slabs.class_for(total), slot, now,
                             cas if new_cas is None else new_cas)
        if result != STORED:
            return NO_MEMORY, 0
        return STORED, value

    def count_arithmetic_miss(self, incr: bool) -> None:
        if incr:
            self.incr_misses += 1
        else:
            self.decr_misses += 1

    def count_bad_chunk(self, key: bytes, flags: int, length: int) -> None:
        """memcached counts a set whose data block was malformed: it had read it into an item."""
        self.cmd_set += 1
        class_id = self.slabs.class_for(item_size(len(key), length, flags, self.cas_enabled))
        self.table.counters[class_id].cmd_set += 1

    # -- housekeeping --------------------------------------------------------------------------

    def maintain(self, crawl_budget: int = 2000) -> None:
        """One maintainer pass: juggle HOT/WARM/COLD per class and reclaim expired items."""
        now = self.now()
        table = self.table
        for slab_class in self.slabs.active():
            if table.juggle(slab_class.id, now, self.is_flushed):
                self.lru_maintainer_juggles += 1
        self.crawl(now, crawl_budget)

    def crawl(self, now: int, budget: int) -> int:
        """Walk up to ``budget`` slots from where the last crawl stopped, freeing dead items."""
        table = self.table
        keys = table.keys
        exptimes = table.exptime
        end = min(len(keys), self._crawl_pos + budget)
        reclaimed = 0
        for slot in range(self._crawl_pos, end):
            if keys[slot] is None:
                continue
            self.crawler_items_checked += 1
            exptime = exptimes[slot]
            if (exptime and exptime <= now) or (self.flush_check and self.is_flushed(slot, now)):
                table.counters[table.class_of(slot)].crawler_reclaimed += 1
                table.remove(slot)
                reclaimed += 1
        self.crawler_reclaimed += reclaimed
        self._crawl_pos = 0 if end >= len(keys) else end
        if self._crawl_pos == 0:
            self.lru_crawler_starts += 1
        return reclaimed

    def set_memory_limit(self, limit_bytes: int) -> None:
        self.slabs.limit_bytes = limit_bytes
        self.settings.limit_bytes = limit_bytes

    # -- counters for stats --------------------------------------------------------------------

    @property
    def get_hits(self) -> int:
        return sum(self.table.segment_hits)

    def class_total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.table.counters)


_COUNTER = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]+)(?:[ \t\n\v\f\r]|\Z)")


def parse_counter(data: bytes) -> int | None:
    """A stored value as memcached's incr/decr reads it: C's strtoull over the data (leading
    white space, a sign, digits, then white space or the end), below 2**64, not negative."""
    if data.isdigit():
        value = int(data)
        return value if value < U64 else None
    match = _COUNTER.match(data)
    if match is None:
        return None
    value = int(match.group(2))
    if value >= U64 or (match.group(1) == b"-" and value):
        return None
    return value
