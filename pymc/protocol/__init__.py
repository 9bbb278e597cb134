"""Sans-IO memcached protocol: bytes in, requests and replies out, and back.

Nothing here touches sockets or gevent; the server and both sides of the router share it.
"""
