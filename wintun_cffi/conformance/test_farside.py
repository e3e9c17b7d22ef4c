"""The socket far side itself, over loopback only (no adapter needed): it must send to the
application's address and accept only datagrams from it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from .farside import SocketFarSide

TIMEOUT = 5.0


@pytest.fixture
def app_socket() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("127.0.0.1", 9))  # a route lookup, nothing sent
        except OSError as error:
            pytest.skip(
                f"loopback is unusable here ({error.strerror}): in a new network namespace "
                "bring it up first (ip link set lo up)"
            )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(TIMEOUT)
    yield sock
    sock.close()


def test_socket_far_side_round_trip(app_socket: socket.socket) -> None:
    far = SocketFarSide("127.0.0.1", "127.0.0.1", port=0)
    try:
        app_port = app_socket.getsockname()[1]
        far.send_udp(b"to the app", destination_port=app_port)
        payload, (address, port) = app_socket.recvfrom(100)
        assert (payload, address, port) == (b"to the app", "127.0.0.1", far.port)
        app_socket.sendto(b"to the far side", ("127.0.0.1", far.port))
        datagram = far.receive_udp(TIMEOUT)
        assert datagram.payload == b"to the far side"
        assert (str(datagram.source), datagram.source_port) == ("127.0.0.1", app_port)
        assert datagram.destination_port == far.port
        assert far.raw is None
        with pytest.raises(TimeoutError):
            far.receive_udp(0.02)
    finally:
        far.close()


def test_socket_far_side_ignores_other_sources(app_socket: socket.socket) -> None:
    far = SocketFarSide("127.0.0.1", "127.0.0.2", port=0)
    try:
        app_socket.sendto(b"from a stranger", ("127.0.0.1", far.port))  # source 127.0.0.1
        with pytest.raises(TimeoutError):
            far.receive_udp(0.1)
    finally:
        far.close()
