"""``get __mcrouter__.<command>[(args)]``: mcrouter's service-info commands, answered as a hit
whose value is the text (``ERROR: ...`` when the command fails), as ServiceInfo does.

``route(op,key)`` routes a recording request through the live tree — destinations are noted,
nothing is sent — and lists them ``host:port`` one per line; ``route_handles(op,key)`` prints
the tree that request would walk, one handle per line, indented by depth.
"""

from __future__ import annotations

import time

from ..protocol.messages import STORAGE_COMMANDS, Request, Value
from ..protocol.meta import MetaRequest
from .config import pretty
from .routes import destination as destination_module

PREFIX = b"__mcrouter__."
#: mcrouter request names → how to build a recording request for them.
_CLASSIC = ("get", "gets", "gat", "gats", "set", "add", "replace", "append", "prepend", "cas",
            "delete", "incr", "decr", "touch")
_META = {"metaget": b"mg", "lease-get": b"mg", "lease-set": b"ms"}


class AdminError(Exception):
    pass


class Admin:
    def __init__(self, server) -> None:
        self.server = server
        self.commands = {
            "version": lambda args: server.version,
            "config_age": lambda args: str(int(time.time() - server.config.loaded_at)),
            "config_file": self._config_file,
            "config_md5_digest": self._md5,
            "config_sources_info": self._sources,
            "options": self._options,
            "route": self._route,
            "route_handles": self._route_handles,
            "pools": self._pools,
            "hostid": lambda args: str(server.options.host_id),
            "preprocessed_config": lambda args: pretty(server.config.preprocessed),
            "verbosity": lambda args: str(server.options.verbosity),
        }

    def value(self, key: bytes) -> Value:
        text = self.run(key[len(PREFIX):].decode("utf-8", "replace"))
        return Value(key, 0, text.encode())

    def run(self, command: str) -> str:
        name, args = command, []
        paren = command.find("(")
        if paren >= 0 and command.endswith(")"):
            name, inner = command[:paren], command[paren + 1:-1]
            if inner:
                if name.startswith("route"):
                    op, comma, key = inner.partition(",")
                    args = [op, key] if comma else [inner]
                else:
                    args = inner.split(",")
        try:
            handler = self.commands.get(name)
            if handler is None:
                raise AdminError(f"unknown command: {name}")
            text = handler(args)
        except AdminError as exc:
            return f"ERROR: {exc}"
        return text[:-1] if text.endswith("\n") else text

    # -- commands ---------------------------------------------------------------------------------

    def _config_file(self, args) -> str:
        path = self.server.config.path
        if not path:
            raise AdminError("no config file found!")
        return path

    def _md5(self, args) -> str:
        return self.server.config.md5

    def _sources(self, args) -> str:
        config = self.server.config
        return pretty({"mcrouter_config": config.path or "inline",
                       "config_md5_digest": config.md5})

    def _options(self, args) -> str:
        pairs = self.server.options.as_mcrouter_options()
        if len(args) > 1:
            raise AdminError("options: 0 or 1 args expected")
        if args:
            for name, value in pairs:
                if name == args[0]:
                    return value
            raise AdminError(f"options: option {args[0]} not found")
        return "".join(f"{name} {value}\n" for name, value in pairs)

    def _pools(self, args) -> str:
        pools = self.server.config.pools.built
        return pretty({name: [route.name for route in pool.routes]
                       for name, pool in pools.items()})

    def _request(self, args, what: str):
        if len(args) != 2:
            raise AdminError(f"{what}: 2 args expected")
        op, key = args
        if op in _CLASSIC:
            command = op.encode()
            return Request(command, [key.encode()],
                           data=b"" if command in STORAGE_COMMANDS else None)
        if op in _META:
            return MetaRequest(_META[op], key.encode())
        raise AdminError(f"route: unknown request {op}")

    def _route(self, args) -> str:
        request = self._request(args, "route")
        recorded: list = []
        destination_module.RECORDER = recorded
        try:
            self.server.root.route(request, lambda reply: None)
        finally:
            destination_module.RECORDER = None
        return "\r\n".join(str(d.access_point) for d in recorded)

    def _route_handles(self, args) -> str:
        request = self._request(args, "route_handles")
        lines: list[str] = []

        def walk(handle, level: int) -> None:
            lines.append(" " * level + handle.name)
            for child in handle.traverse(request):
                walk(child, level + 1)
        walk(self.server.root, 0)
        return "\n".join(lines) + "\n"


__all__ = ["Admin", "PREFIX"]
