"""The far side of an adapter: the network stack that the application talks to.

Every backend is tested against one small interface, :class:`FarSide`, built on what both a
real kernel and the emulator can do: send a UDP datagram to the application and receive a UDP
datagram the application sent. Addresses (fixed for the whole suite):

* :data:`FAR_INTERFACE` ``10.6.7.7/24`` is assigned to the adapter, i.e. to the far side (the
  operating system's end of the tunnel); the far side's UDP port is :data:`FAR_PORT`.
* :data:`APP_ADDRESS` ``10.6.7.8`` is the application's address (beyond the adapter, in the
  subnet); the application writes and reads whole IPv4 packets with it, port :data:`APP_PORT`.

Implementations: :class:`EmulatorFarSide` wraps an :class:`emulator.Host` (the emulator and the
C double); :class:`SocketFarSide` uses a UDP socket of the real network stack (Windows, later a
Linux TUN) and does only socket work: the caller assigns the address to the adapter first.

Only the emulator host can also deliver arbitrary packets, collect whole packets, read the
driver's statistics, terminate the adapter and inject faults: that is :attr:`FarSide.raw`,
``None`` elsewhere (tests needing it skip).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from emulator.driver import AdapterStatistics
from emulator.host import Host
from wintun_cffi import Session, ip

#: The adapter's (far side's) address and prefix.
FAR_INTERFACE = ipaddress.IPv4Interface("10.6.7.7/24")
FAR_ADDRESS = FAR_INTERFACE.ip
#: The application's address, in the adapter's subnet.
APP_ADDRESS = ipaddress.IPv4Address("10.6.7.8")
#: The far side's UDP port.
FAR_PORT = 40007
#: The application's UDP port.
APP_PORT = 40008

_PROTO_UDP = 17


@dataclass(frozen=True)
class Datagram:
    """A UDP datagram as one side saw it."""

    source: ipaddress.IPv4Address
    source_port: int
    destination_port: int
    payload: bytes


def udp_to_far(payload: bytes, source_port: int = APP_PORT) -> bytes:
    """The whole IPv4 packet the application sends for a datagram to the far side."""
    return ip.udp_packet(APP_ADDRESS, FAR_ADDRESS, source_port, FAR_PORT, payload)


def parse_udp(
    packet: bytes | memoryview,
) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address, Datagram] | None:
    """``(source, destination, datagram)`` of an IPv4 UDP packet, or None for anything else."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != _PROTO_UDP:
        return None
    header = (packet[0] & 0x0F) * 4
    total = struct.unpack_from("!H", packet, 2)[0]
    if header < 20 or total > len(packet) or total < header + 8:
        return None
    source_port, destination_port, length = struct.unpack_from("!HHH", packet, header)
    payload = bytes(packet[header + 8 : header + length])
    source = ipaddress.IPv4Address(bytes(packet[12:16]))
    destination = ipaddress.IPv4Address(bytes(packet[16:20]))
    return source, destination, Datagram(source, source_port, destination_port, payload)


def datagram_for_app(packet: bytes | memoryview) -> Datagram | None:
    """The datagram in ``packet`` if the far side sent it to the application, else None
    (a real system also sends its own traffic through the adapter)."""
    parsed = parse_udp(packet)
    if parsed is None:
        return None
    source, destination, datagram = parsed
    if source != FAR_ADDRESS or destination != APP_ADDRESS or datagram.destination_port != APP_PORT:
        return None
    return datagram


def app_receive_udp(session: Session, timeout: float) -> Datagram:
    """The next datagram from the far side, received by the application (other packets are
    released and skipped); :class:`TimeoutError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with session.receive(max(0.0, deadline - time.monotonic())) as packet:
            datagram = datagram_for_app(packet.data)
        if datagram is not None:
            return datagram


class RawFarSide(Protocol):
    """What only the emulator host offers (:class:`emulator.Host` has exactly these)."""

    @property
    def statistics(self) -> AdapterStatistics: ...

    def deliver(self, packet: bytes | bytearray | memoryview) -> bool: ...

    def receive(self, timeout: float | None = None) -> bytes: ...

    def collect(self) -> list[bytes]: ...

    def terminate(self) -> None: ...

    def corrupt_record(
        self, ring: Literal["send", "receive"], offset: int, size_field: int
    ) -> None: ...

    def ring_field(
        self, ring: Literal["send", "receive"], field: Literal["head", "tail", "alertable"]
    ) -> int: ...

    def set_ring_field(
        self,
        ring: Literal["send", "receive"],
        field: Literal["head", "tail", "alertable"],
        value: int,
    ) -> None: ...

    def pause(self) -> None: ...

    def resume(self, packets: int | None = None) -> None: ...

    @property
    def held_packet(self) -> bytes | None: ...

    def consume_tail_moved(self) -> bool: ...


class FarSide(Protocol):
    """The network stack beyond the adapter, as the conformance tests use it."""

    #: Raw packet access and fault injection, or None where only sockets exist.
    raw: RawFarSide | None

    def send_udp(self, payload: bytes, *, destination_port: int = APP_PORT) -> None:
        """Send a datagram from FAR_ADDRESS:FAR_PORT to APP_ADDRESS (out through the adapter)."""
        ...

    def receive_udp(self, timeout: float) -> Datagram:
        """The next datagram the application sent to FAR_ADDRESS:FAR_PORT;
        :class:`TimeoutError` if none arrives within ``timeout`` seconds."""
        ...

    def close(self) -> None:
        """Release what the far side holds (sockets)."""
        ...


class EmulatorFarSide:
    """The far side played by an emulator :class:`~emulator.Host` (emulator and C double)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.raw: RawFarSide | None = host
        host.add_address(FAR_INTERFACE)

    def send_udp(self, payload: bytes, *, destination_port: int = APP_PORT) -> None:
        packet = ip.udp_packet(FAR_ADDRESS, APP_ADDRESS, FAR_PORT, destination_port, payload)
        if not self.host.deliver(packet):
            raise OSError("the driver dropped the datagram (Send ring full or not in use)")

    def receive_udp(self, timeout: float) -> Datagram:
        deadline = time.monotonic() + timeout
        while True:
            packet = self.host.receive(max(0.0, deadline - time.monotonic()))
            parsed = parse_udp(packet)
            if parsed is None:
                continue
            _, destination, datagram = parsed
            if destination == FAR_ADDRESS and datagram.destination_port == FAR_PORT:
                return datagram

    def close(self) -> None:
        pass


class SocketFarSide:
    """The far side as a real network stack: one UDP socket bound to the adapter's address.

    ``far_address`` must already be assigned to the adapter (IP Helper on Windows; a netlink
    or ``ip addr`` call on Linux) so that datagrams to ``app_address`` route through it.
    """

    raw: RawFarSide | None = None

    def __init__(
        self,
        far_address: str | ipaddress.IPv4Address = FAR_ADDRESS,
        app_address: str | ipaddress.IPv4Address = APP_ADDRESS,
        port: int = FAR_PORT,
    ) -> None:
        self.far_address = ipaddress.IPv4Address(far_address)
        self.app_address = ipaddress.IPv4Address(app_address)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A full ring reaches the socket in one burst: make room for all of it (Linux: 33 is
        # SO_RCVBUFFORCE, which goes past net.core.rmem_max for root).
        option = 33 if sys.platform.startswith("linux") else socket.SO_RCVBUF
        self._socket.setsockopt(socket.SOL_SOCKET, option, 16 << 20)
        try:
            self._socket.bind((str(self.far_address), port))
        except OSError:
            self._socket.close()
            raise

    @property
    def port(self) -> int:
        """The far side's UDP port (as bound; ``port=0`` picks a free one)."""
        return int(self._socket.getsockname()[1])

    def send_udp(self, payload: bytes, *, destination_port: int = APP_PORT) -> None:
        self._socket.sendto(payload, (str(self.app_address), destination_port))

    def receive_udp(self, timeout: float) -> Datagram:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no datagram from the application within {timeout} s")
            self._socket.settimeout(remaining)
            try:
                payload, (address, port) = self._socket.recvfrom(0x10000)
            except TimeoutError:
                continue
            source = ipaddress.IPv4Address(address)
            if source == self.app_address:
                return Datagram(source, port, self.port, payload)

    def close(self) -> None:
        self._socket.close()
