"""pymc-router: an mcrouter-compatible router (config, hashing, routes, destinations)."""
