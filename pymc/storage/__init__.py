"""The cache engine: slab classes, segmented LRU, TTL, CAS and stats. No I/O; time comes
from an injected Clock."""
