"""Protocol errors that know the exact line memcached answers with."""


class ProtocolError(Exception):
    """An error that becomes one reply line on the wire."""

    prefix = b"ERROR"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    @property
    def line(self) -> bytes:
        if not self.message:
            return self.prefix + b"\r\n"
        return self.prefix + b" " + self.message.encode() + b"\r\n"


class UnknownCommand(ProtocolError):
    """memcached's bare ``ERROR``: unknown command or wrong token count."""

    prefix = b"ERROR"

    @property
    def line(self) -> bytes:
        return b"ERROR\r\n"


class ClientError(ProtocolError):
    prefix = b"CLIENT_ERROR"


class ServerError(ProtocolError):
    prefix = b"SERVER_ERROR"


BAD_FORMAT = "bad command line format"
