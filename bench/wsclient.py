"""A small asyncio websocket client (RFC 6455), enough to watch a search page's socket.

The benchmarks need dozens of clients in one process with a timestamp taken
the moment each frame is read, and nothing beyond the standard library; the
browser's side of the protocol is small: a handshake, masked frames out,
unmasked frames in, ping answered with pong.
"""
from __future__ import annotations

import asyncio
import base64
import os
import struct

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeError(RuntimeError):
    pass


class WebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int, path: str, cookie: str = "", origin: str | None = None):
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 f"Origin: {origin or f'http://{host}:{port}'}"]
        if cookie:
            lines.append(f"Cookie: {cookie}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in status + " ":
            writer.close()
            raise HandshakeError(f"websocket handshake refused: {status}")
        return cls(reader, writer)

    async def recv(self) -> tuple[int, bytes] | None:
        """The next whole message as (opcode, payload); None once the server closed."""
        opcode, chunks = None, []
        while True:
            b1, b2 = await self.reader.readexactly(2)
            fin, op, masked, length = b1 & 0x80, b1 & 0x0F, b2 & 0x80, b2 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            mask = await self.reader.readexactly(4) if masked else None
            payload = await self.reader.readexactly(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if op == OP_PING:
                await self._send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                self.closed = True
                return None
            if op != OP_CONT:
                opcode = op
            chunks.append(payload)
            if fin:
                return opcode, b"".join(chunks)

    async def send_text(self, text: str) -> None:
        await self._send_frame(OP_TEXT, text.encode())

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)
        await self.writer.drain()

    async def close(self) -> None:
        if not self.closed:
            try:
                await self._send_frame(OP_CLOSE, struct.pack("!H", 1000))
            except (ConnectionError, RuntimeError):
                pass
            self.closed = True
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
