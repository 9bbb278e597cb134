"""Slab classes and page accounting, as memcached sizes them.

Classes grow from ``48 + chunk_size`` by ``growth_factor`` (rounded up to 8 bytes) up to
``slab_chunk_max``; memory is handed to a class one page (1 MB) at a time out of the -m limit.
Items larger than ``slab_chunk_max`` are chunked: they take several chunks of the largest class.
Only counts live here; the item table owns the items.
"""

from __future__ import annotations

import math
from bisect import bisect_left

ITEM_HEADER_BYTES = 48
CAS_BYTES = 8
FLAGS_BYTES = 4
CHUNK_ALIGN = 8
PAGE_BYTES = 1024 * 1024
MAX_CLASSES = 63


def item_size(key_length: int, value_length: int, flags: int, cas_enabled: bool) -> int:
    """memcached's ITEM_ntotal for a value of ``value_length`` bytes (CRLF added here)."""
    return (ITEM_HEADER_BYTES + key_length + 1 + (FLAGS_BYTES if flags else 0)
            + value_length + 2 + (CAS_BYTES if cas_enabled else 0))


class SlabClass:
    __slots__ = ("id", "chunk_size", "per_page", "pages", "used_chunks", "requested_bytes")

    def __init__(self, class_id: int, chunk_size: int, per_page: int) -> None:
        self.id = class_id
        self.chunk_size = chunk_size
        self.per_page = per_page
        self.pages = 0
        self.used_chunks = 0
        self.requested_bytes = 0

    @property
    def total_chunks(self) -> int:
        return self.pages * self.per_page

    @property
    def free_chunks(self) -> int:
        return self.total_chunks - self.used_chunks


class Slabs:
    """The class table and the page budget."""

    def __init__(self, limit_bytes: int, growth_factor: float = 1.25, chunk_size: int = 48,
                 slab_chunk_max: int = PAGE_BYTES // 2, item_size_max: int = PAGE_BYTES,
                 page_bytes: int = PAGE_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self.page_bytes = page_bytes
        self.item_size_max = item_size_max
        self.slab_chunk_max = slab_chunk_max
        self.malloced_bytes = 0
        self.classes: list[SlabClass | None] = [None]  # class ids start at 1
        size = ITEM_HEADER_BYTES + chunk_size
        class_id = 1
        # memcached's slabs_init: ids 1..62 grow by the factor, the largest (up to 63) holds
        # slab_chunk_max; the growth stops once the unaligned size reaches max / factor.
        while class_id < MAX_CLASSES and size < slab_chunk_max / growth_factor:
            if size % CHUNK_ALIGN:
                size += CHUNK_ALIGN - size % CHUNK_ALIGN
            self.classes.append(SlabClass(class_id, size, page_bytes // size))
            size = int(size * growth_factor)
            class_id += 1
        self.classes.append(SlabClass(class_id, slab_chunk_max, page_bytes // slab_chunk_max))
        self.largest = class_id
        self._sizes = [c.chunk_size for c in self.classes[1:]]  # type: ignore[union-attr]

    def class_for(self, total_bytes: int) -> int:
        """Smallest class whose chunk holds ``total_bytes``; the largest for chunked items;
        0 when the item exceeds the item size limit."""
        if total_bytes > self.item_size_max:
            return 0
        if total_bytes > self.slab_chunk_max:
            return self.largest
        return bisect_left(self._sizes, total_bytes) + 1

    def chunks_for(self, class_id: int, total_bytes: int) -> int:
        if class_id == self.largest and total_bytes > self.slab_chunk_max:
            return math.ceil(total_bytes / self.slab_chunk_max)
        return 1

    def try_reserve(self, class_id: int, chunks: int) -> bool:
        """Take ``chunks`` free chunks of a class, adding pages while the budget allows.

        As in memcached, a class that has no page yet may always take its first one.
        """
        cls = self.classes[class_id]
        assert cls is not None
        while cls.free_chunks < chunks:
            if (self.limit_bytes and cls.pages > 0
                    and self.malloced_bytes + self.page_bytes > self.limit_bytes):
                return False
            cls.pages += 1
            self.malloced_bytes += self.page_bytes
        cls.used_chunks += chunks
        return True

    def release(self, class_id: int, chunks: int) -> None:
        cls = self.classes[class_id]
        assert cls is not None
        cls.used_chunks -= chunks

    def active(self) -> list[SlabClass]:
        return [c for c in self.classes[1:] if c is not None and c.pages]
