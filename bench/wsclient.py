"""The benchmarks' websocket client: the ``websockets`` package behind the small interface
the benchmarks use (connect with the page's cookie and origin, whole messages, close).

Dozens of these run in one process; each ``recv`` returns as soon as a message is whole,
so the caller's timestamp is the moment it arrived.
"""
from __future__ import annotations

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

OP_TEXT, OP_BINARY = 0x1, 0x2


class HandshakeError(RuntimeError):
    pass


class WebSocket:
    def __init__(self, connection):
        self.connection = connection
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int, path: str, cookie: str = "", origin: str | None = None):
        try:
            connection = await connect(
                f"ws://{host}:{port}{path}", origin=origin or f"http://{host}:{port}",
                additional_headers={"Cookie": cookie} if cookie else None,
                compression=None,  # as the benchmarks measured before: frames as the server sends them
                max_size=None, ping_interval=None)  # the server's pings are answered all the same
        except InvalidHandshake as exc:
            raise HandshakeError(f"websocket handshake refused: {exc}") from exc
        return cls(connection)

    async def recv(self) -> tuple[int, bytes] | None:
        """The next whole message as (opcode, payload); None once the connection closed."""
        try:
            message = await self.connection.recv()
        except ConnectionClosed:
            self.closed = True
            return None
        if isinstance(message, str):
            return OP_TEXT, message.encode()
        return OP_BINARY, message

    async def send_text(self, text: str) -> None:
        await self.connection.send(text)

    async def close(self) -> None:
        self.closed = True
        try:
            await self.connection.close()
        except (ConnectionError, OSError):
            pass
