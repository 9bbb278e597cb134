"""pymc-server: the gevent shell around the cache, with memcached's command line."""
