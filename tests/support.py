"""Small helpers shared by the test packages (``wait_until`` is the conformance suite's)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from emulator.backend import session_ledgers
from emulator.client import SessionClient
from wintun_cffi.conformance.support import wait_until
from wintun_cffi.errors import HandleClosedError
from wintun_cffi.ledger import Held, give_back_token, take_one
from wintun_cffi.validate import check_packet_size

__all__ = ["ClientCalls", "wait_until"]


class ClientCalls:
    """The DLL's four packet calls over a :class:`SessionClient` and its session's ledgers,
    as the emulator's backend makes them (tokens checked), plus their batch forms."""

    def __init__(self, client: SessionClient) -> None:
        self.raw = client
        self.reads, self.writes = session_ledgers(client, "0.14")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def receive_packet(self) -> tuple[memoryview, Any]:
        return take_one(self.reads, 1)

    def release_receive_packet(self, token: Any) -> None:
        self._check_live(self.raw.release_name)
        give_back_token(self.reads, token, "not a packet received from this session")

    def allocate_send_packet(self, size: int) -> tuple[memoryview, Any]:
        check_packet_size(size)
        return take_one(self.writes, (size,))

    def send_packet(self, token: Any) -> None:
        self._check_live("WintunSendPacket")
        give_back_token(self.writes, token, "not a packet allocated in this session")

    def _check_live(self, function: str) -> None:
        if self.raw.ended:  # as the backend refuses the ended session's handle
            raise HandleClosedError.session_ended(function)

    def _entries(self, ledger: Any, tokens: Iterable[Any]) -> list[Any]:
        try:
            return [ledger.entries[token] for token in tokens]
        except (KeyError, TypeError):
            raise ValueError("not a token of this session") from None

    def receive_packets(self, limit: int) -> list[tuple[memoryview, Any]]:
        held: list[Held] = []
        self.reads.fill(limit, held, Held)
        return [(h._view, h._token) for h in held]  # type: ignore[misc]

    def release_receive_packets(self, tokens: Iterable[Any]) -> None:
        self.reads.give_back_many(self._entries(self.reads, tokens))

    def allocate_send_packets(self, sizes: list[int]) -> list[tuple[memoryview, Any]]:
        for size in sizes:
            check_packet_size(size)
        held: list[Held] = []
        self.writes.fill(sizes, held, Held)
        return [(h._view, h._token) for h in held]  # type: ignore[misc]

    def send_packets(self, tokens: Iterable[Any]) -> None:
        self.writes.give_back_many(self._entries(self.writes, tokens))

    def outstanding(self) -> int:
        """Packets received and not released, plus allocated and not sent."""
        return len(self.reads.entries) + len(self.writes.entries)

    def end(self) -> None:
        self.reads.end()
        self.writes.end()
        self.raw.end()
