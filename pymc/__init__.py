"""pymc: a memcached server and an mcrouter-style router in pure Python."""

__version__ = "0.1.0"
#: The memcached release whose wire behaviour pymc-server reproduces.
MEMCACHED_VERSION = "1.6.18"
