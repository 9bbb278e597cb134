"""Router options: the mcrouter command-line flags pymc-router honours, with their defaults.

Names follow mcrouter's option names (``server_timeout_ms`` is ``-t/--server-timeout``), so
``__mcrouter__.options`` prints them the way mcrouter does.
"""

from __future__ import annotations

import socket
import zlib
from dataclasses import dataclass, field, fields


def default_host_id() -> int:
    """A stable per-host number (mcrouter derives one from the host); LatestRoute and HostIdRoute
    use it so each host picks its own child."""
    return zlib.crc32(socket.gethostname().encode())


@dataclass
class RouterOptions:
    port: int = 5000
    listen_addresses: str = "127.0.0.1"
    config: str = ""
    config_file: str = ""
    route_prefix: str = "/././"
    send_invalid_route_to_default: bool = False
    server_timeout_ms: int = 1000
    connect_timeout_ms: int = 1000
    timeouts_until_tko: int = 3
    probe_timeout_initial_ms: int = 10000
    probe_timeout_max_ms: int = 60000
    disable_tko_tracking: bool = False
    target_max_pending_requests: int = 100000
    max_async_requests: int = 10000
    validate_config: str = ""
    config_params: dict = field(default_factory=dict)
    enable_flush_cmd: bool = False
    disable_reload_configs: bool = False
    reconfiguration_delay_ms: int = 1000
    file_observer_poll_period_ms: int = 100
    file_observer_sleep_before_update_ms: int = 1000
    host_id: int = field(default_factory=default_host_id)
    verbosity: int = 0
    metrics_port: int = 0  # pymc's own: /metrics on the first listen address; 0 = none

    def as_mcrouter_options(self) -> list[tuple[str, str]]:
        """(name, value) pairs in declaration order, values printed as mcrouter prints them."""
        pairs = []
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool):
                text = "1" if value else "0"
            elif isinstance(value, dict):
                text = ",".join(f"{k}:{v}" for k, v in value.items())
            else:
                text = str(value)
            pairs.append((item.name, text))
        return pairs
