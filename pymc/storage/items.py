"""The item table: every stored item as one slot across parallel arrays, plus per-class
segmented LRUs (HOT/WARM/COLD) linked through those arrays.

Why arrays: a Python object per item costs ~120 bytes more than memcached's own header, and the
-m limit must hold about as many items as memcached does within a bounded RSS. A slot costs a
list entry for its key and a few machine words in ``array``s.

The index maps each key straight to its stored bytes: the key, then the tail of memcached's
get reply (`` <flags> <bytes>\r\n`` + data + ``\r\n``), then a trailer of the item's slot
number (``slot_bytes``, little-endian), its LRU id (1 byte: class * 4 + segment) and its flags
(1 byte). Like memcached's item, the stored bytes carry their key, so a hit sends
``b"VALUE "`` and ``stored[:-trailer]`` without building the line. No per-item int object is
needed, and a hit reads the bits with ``stored[-1]``, decoding the slot only when the item has
a TTL, a flush is pending or the LRU must be told. Slots take 3 bytes until a table holds 2**24
of them, then every trailer is rewritten with 4 (an item costs a byte less in the common case).
"""

from __future__ import annotations

from array import array

from .slabs import MAX_CLASSES, Slabs

HOT, WARM, COLD = 0, 1, 2
SEGMENT_MASK = 3
# flags (the trailer's last byte)
ACTIVE = 4    # fetched at least twice since last LRU move
FETCHED = 8   # fetched at least once
HAS_TTL = 16  # exptime != 0: hits must check it
# meta protocol state (memcached's ITEM_TOKEN_SENT, ITEM_STALE, ITEM_KEY_BINARY)
TOKEN_SENT = 32  # a client was told it won the recache (W); others now see Z
STALE = 64       # invalidated by md I (or a stale ms I): readers see X
KEY_BINARY = 128  # stored through a base64 key: k returns it encoded
LRU_IDS = (MAX_CLASSES + 1) * 4
#: How many tail items an allocation looks at before giving up on a class (memcached: 5).
TAIL_SEARCH = 5
#: memcached's ITEM_UPDATE_INTERVAL: access times move at most this often outside fetches.
UPDATE_INTERVAL = 60
SLOT_BYTES = 3
WIDE_SLOT_BYTES = 4
_from_bytes = int.from_bytes
_BYTE = [bytes((n,)) for n in range(256)]

CLASS_COUNTERS = (
    "evicted", "evicted_nonzero", "evicted_time", "outofmemory", "tailrepairs", "reclaimed",
    "expired_unfetched", "evicted_unfetched", "evicted_active", "crawler_reclaimed",
    "crawler_items_checked", "lrutail_reflocked", "moves_to_cold", "moves_to_warm",
    "moves_within_lru", "direct_reclaims",
)


class ClassCounters:
    """Per slab class counters shown by ``stats items`` and ``stats slabs``."""

    __slots__ = CLASS_COUNTERS + ("cmd_set", "delete_hits", "incr_hits", "decr_hits",
                                  "cas_hits", "cas_badval", "touch_hits")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)


class ItemTable:
    """Slots, the key index, LRU links and memory accounting. Knows nothing of commands."""

    def __init__(self, slabs: Slabs, evict: bool = True) -> None:
        self.slabs = slabs
        self.evict = evict
        self.counters = [ClassCounters() for _ in range(MAX_CLASSES + 1)]
        #: get hits per LRU id (class * 4 + segment): memcached's hits_to_hot/warm/cold.
        self.segment_hits = [0] * LRU_IDS
        self.hot_lru_pct = 20
        self.warm_lru_pct = 40
        self.hot_max_factor = 0.2
        self.warm_max_factor = 2.0
        self.pinned = -1  # a slot that allocation must not evict (the item being replaced)
        self.slot_bytes = SLOT_BYTES
        self.trailer = SLOT_BYTES + 2
        self.evictions_total = 0
        self.reclaimed_total = 0
        self.clear()

    def clear(self) -> None:
        """Drop every item at once (flush_all); pages stay with their classes."""
        self.index: dict[bytes, bytes] = {}
        self.keys: list[bytes | None] = []
        self.cas = array("Q")
        self.exptime = array("i")
        self.atime = array("i")
        self.prev = array("i")
        self.next = array("i")
        self.size = array("I")
        self.free: list[int] = []
        self.heads = [-1] * LRU_IDS
        self.tails = [-1] * LRU_IDS
        self.counts = [0] * LRU_IDS
        self.lru_bytes = [0] * LRU_IDS
        self.curr_items = 0
        self.total_bytes = 0
        for slab_class in self.slabs.classes[1:]:
            if slab_class is not None:
                slab_class.used_chunks = 0
                slab_class.requested_bytes = 0

    # -- slots -------------------------------------------------------------------------------

    def _stored(self, slot: int) -> bytes:
        return self.index[self.keys[slot]]  # type: ignore[index]

    def block(self, slot: int) -> bytes:
        """The value block of a live slot (without its key and trailer)."""
        key = self.keys[slot]
        return self.index[key][len(key):-self.trailer]  # type: ignore

    def set_block(self, slot: int, block: bytes) -> None:
        key = self.keys[slot]
        self.index[key] = b"".join((key, block, self.index[key][-self.trailer:]))  # type: ignore

    def bits(self, slot: int) -> int:
        """The item's flags (ACTIVE, FETCHED, HAS_TTL)."""
        return self._stored(slot)[-1]

    def class_of(self, slot: int) -> int:
        return self._stored(slot)[-2] >> 2

    def segment(self, slot: int) -> int:
        return self._stored(slot)[-2] & SEGMENT_MASK

    def lru_of(self, slot: int) -> int:
        return self._stored(slot)[-2]

    def set_bits(self, slot: int, bits: int) -> None:
        key = self.keys[slot]
        self.index[key] = self.index[key][:-1] + _BYTE[bits]  # type: ignore[index]

    def _set_trailer(self, slot: int, lru: int, bits: int) -> None:
        key = self.keys[slot]
        self.index[key] = self.index[key][:-2] + _BYTE[lru] + _BYTE[bits]  # type: ignore

    def set_exptime(self, slot: int, exptime: int) -> None:
        self.exptime[slot] = exptime
        bits = self.bits(slot)
        wanted = bits | HAS_TTL if exptime else bits & ~HAS_TTL
        if wanted != bits:
            self.set_bits(slot, wanted)

    def slot(self, key: bytes) -> int:
        """The slot of a key, or -1 (no expiry checks)."""
        stored = self.index.get(key)
        return -1 if stored is None else _from_bytes(stored[-self.trailer:-2], "little")

    def new_slot(self, key: bytes, block: bytes, size: int, class_id: int, exptime: int,
                 cas: int, now: int, bits: int = 0) -> int:
        if self.free:
            slot = self.free.pop()
            self.keys[slot] = key
            self.cas[slot] = cas
            self.exptime[slot] = exptime
            self.atime[slot] = now
            self.size[slot] = size
        else:
            slot = len(self.keys)
            if slot >> (8 * self.slot_bytes):
                self._widen_slots()
            self.keys.append(key)
            self.cas.append(cas)
            self.exptime.append(exptime)
            self.atime.append(now)
            self.prev.append(-1)
            self.next.append(-1)
            self.size.append(size)
        self.index[key] = b"".join((key, block, slot.to_bytes(self.slot_bytes, "little"),
                                    _BYTE[class_id * 4 + HOT],
                                    _BYTE[bits | HAS_TTL if exptime else bits]))
        self.curr_items += 1
        self.total_bytes += size
        self.slabs.classes[class_id].requested_bytes += size  # type: ignore[union-attr]
        self._link(slot, class_id * 4 + HOT, size)
        return slot

    def rewrite(self, slot: int, block: bytes, size: int, exptime: int, cas: int,
                now: int, bits: int = 0) -> None:
        """Store a new value for a live slot of the same class, as a fresh HOT item."""
        key = self.keys[slot]
        stored = self.index[key]  # type: ignore[index]
        class_id = stored[-2] >> 2
        old_size = self.size[slot]
        self._unlink(slot, stored[-2])
        self.index[key] = b"".join((key, block, stored[-self.trailer:-2],  # type: ignore
                                    _BYTE[class_id * 4 + HOT],
                                    _BYTE[bits | HAS_TTL if exptime else bits]))
        self.cas[slot] = cas
        self.exptime[slot] = exptime
        self.atime[slot] = now
        self.size[slot] = size
        self.total_bytes += size - old_size
        self.slabs.classes[class_id].requested_bytes += size - old_size  # type: ignore
        self._link(slot, class_id * 4 + HOT, size)

    def _widen_slots(self) -> None:
        """The table outgrew 3-byte slot numbers: rewrite every trailer with 4."""
        index = self.index
        for key, stored in index.items():
            slot = _from_bytes(stored[-self.trailer:-2], "little")
            index[key] = b"".join((stored[:-self.trailer],
                                   slot.to_bytes(WIDE_SLOT_BYTES, "little"), stored[-2:]))
        self.slot_bytes = WIDE_SLOT_BYTES
        self.trailer = WIDE_SLOT_BYTES + 2

    def remove(self, slot: int) -> None:
        """Unlink an item from the index and its LRU and give its chunks back."""
        key = self.keys[slot]
        stored = self.index.pop(key)  # type: ignore[arg-type]
        class_id = stored[-2] >> 2
        self._unlink(slot, stored[-2])
        size = self.size[slot]
        self.slabs.release(class_id, self.slabs.chunks_for(class_id, size))
        self.slabs.classes[class_id].requested_bytes -= size  # type: ignore[union-attr]
        self.curr_items -= 1
        self.total_bytes -= size
        self.keys[slot] = None
        self.free.append(slot)

    # -- LRU links ---------------------------------------------------------------------------

    def _link(self, slot: int, lru: int, size: int) -> None:
        head = self.heads[lru]
        self.prev[slot] = -1
        self.next[slot] = head
        if head >= 0:
            self.prev[head] = slot
        else:
            self.tails[lru] = slot
        self.heads[lru] = slot
        self.counts[lru] += 1
        self.lru_bytes[lru] += size

    def _unlink(self, slot: int, lru: int) -> None:
        before = self.prev[slot]
        after = self.next[slot]
        if before >= 0:
            self.next[before] = after
        else:
            self.heads[lru] = after
        if after >= 0:
            self.prev[after] = before
        else:
            self.tails[lru] = before
        self.counts[lru] -= 1
        self.lru_bytes[lru] -= self.size[slot]

    def move(self, slot: int, segment: int, clear_active: bool = True) -> None:
        stored = self._stored(slot)
        lru, bits = stored[-2], stored[-1]
        size = self.size[slot]
        self._unlink(slot, lru)
        if clear_active:
            bits &= ~ACTIVE
        new_lru = (lru & ~SEGMENT_MASK) | segment
        self._set_trailer(slot, new_lru, bits)
        self._link(slot, new_lru, size)

    def update(self, slot: int, now: int) -> None:
        """memcached's do_item_update: refresh the access time, at most once a minute; unlike
        a fetch it does not mark the item fetched."""
        if self.atime[slot] < now - UPDATE_INTERVAL:
            self.atime[slot] = now

    def bump(self, slot: int, now: int, key: bytes | None = None,
             stored: bytes | None = None) -> None:
        """A fetch of an item: memcached's do_item_bump in segmented mode. A caller that has
        just looked the item up passes its key and stored bytes: with a large table every
        further lookup is a cache miss."""
        if stored is None:
            key = self.keys[slot]
            stored = self.index[key]  # type: ignore[index]
        bits = stored[-1]
        if bits & ACTIVE:
            return
        if not bits & FETCHED:
            self.index[key] = stored[:-1] + _BYTE[bits | FETCHED]  # type: ignore[index]
            return
        self.atime[slot] = now
        if stored[-2] & SEGMENT_MASK == COLD:
            # Hits to COLD move to WARM at once (memcached's async bump).
            self.move(slot, WARM)
        else:
            self.index[key] = stored[:-1] + _BYTE[bits | ACTIVE]  # type: ignore[index]

    # -- reclaim, juggle, evict ----------------------------------------------------------------

    def is_dead(self, slot: int, now: int, flushed) -> bool:
        exptime = self.exptime[slot]
        return (exptime != 0 and exptime <= now) or flushed(slot, now)

    def pull_tail(self, class_id: int, segment: int, now: int, flushed,
                  evict: bool = False, max_age: int | None = None,
                  class_bytes: int = 0) -> int:
        """memcached's lru_pull_tail: reclaim dead tail items, then move or evict one.

        ``class_bytes`` sizes the HOT/WARM share; 0 (an allocation in need) moves any
        inactive tail item to COLD. Returns how many items were reclaimed, moved or evicted.
        """
        lru = class_id * 4 + segment
        counters = self.counters[class_id]
        done = 0
        slot = self.tails[lru]
        for _ in range(TAIL_SEARCH):
            if slot < 0:
                break
            before = self.prev[slot]
            if slot == self.pinned:
                slot = before
                continue
            if self.is_dead(slot, now, flushed):
                counters.reclaimed += 1
                self.reclaimed_total += 1
                if not self.bits(slot) & FETCHED:
                    counters.expired_unfetched += 1
                self.remove(slot)
                done += 1
                slot = before
                continue
            bits = self.bits(slot)
            if segment in (HOT, WARM):
                pct = self.hot_lru_pct if segment == HOT else self.warm_lru_pct
                limit = class_bytes * pct // 100
                if bits & ACTIVE:
                    done += 1
                    if segment == WARM:
                        counters.moves_within_lru += 1
                        self.move(slot, WARM)
                    else:
                        counters.moves_to_warm += 1
                        self.move(slot, WARM)
                elif self.lru_bytes[lru] > limit or (
                        max_age is not None and now - self.atime[slot] > max_age):
                    counters.moves_to_cold += 1
                    self.move(slot, COLD, clear_active=False)
                    done += 1
            elif evict:
                if self.evict:
                    counters.evicted += 1
                    self.evictions_total += 1
                    counters.evicted_time = now - self.atime[slot]
                    if self.exptime[slot]:
                        counters.evicted_nonzero += 1
                    if not bits & FETCHED:
                        counters.evicted_unfetched += 1
                    if bits & ACTIVE:
                        counters.evicted_active += 1
                    self.remove(slot)
                    done += 1
            elif bits & ACTIVE:
                counters.moves_to_warm += 1
                self.move(slot, WARM)
                done += 1
            break
        return done

    def allocate(self, class_id: int, chunks: int, now: int, flushed) -> bool:
        """Reserve chunks in a class, reclaiming or evicting from its tails as memcached does."""
        slabs = self.slabs
        counters = self.counters[class_id]
        attempts = 0
        while not slabs.try_reserve(class_id, chunks):
            attempts += 1
            if attempts > 10 * chunks:
                break
            if self.pull_tail(class_id, COLD, now, flushed, evict=True):
                continue
            if self.pull_tail(class_id, HOT, now, flushed):
                continue
            if not self.pull_tail(class_id, WARM, now, flushed):
                break
        else:
            if attempts:
                counters.direct_reclaims += attempts
            return True
        counters.outofmemory += 1
        return False

    def juggle(self, class_id: int, now: int, flushed, budget: int = 500) -> int:
        """The LRU maintainer's pass over one class: keep HOT and WARM within their share."""
        cold_tail = self.tails[class_id * 4 + COLD]
        cold_age = now - self.atime[cold_tail] if cold_tail >= 0 else 0
        hot_age = int(cold_age * self.hot_max_factor)
        warm_age = int(cold_age * self.warm_max_factor)
        class_bytes = sum(self.lru_bytes[class_id * 4:class_id * 4 + 3])
        moves = 0
        for _ in range(budget):
            did = (self.pull_tail(class_id, HOT, now, flushed, max_age=hot_age,
                                  class_bytes=class_bytes)
                   or self.pull_tail(class_id, WARM, now, flushed, max_age=warm_age,
                                     class_bytes=class_bytes))
            did += self.pull_tail(class_id, COLD, now, flushed)
            if not did:
                break
            moves += 1
        return moves

    def tail_age(self, class_id: int, segment: int, now: int) -> int:
        tail = self.tails[class_id * 4 + segment]
        return now - self.atime[tail] if tail >= 0 else 0
