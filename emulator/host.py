"""The operating system on the far side of an emulated adapter.

A :class:`Host` is what tests and users hold to play the network stack: it delivers packets to
the application (as if the system sent them out through the adapter), collects the packets the
application sent (those the driver accepted), answers ICMP/ICMPv6 echo requests for the
addresses assigned to the adapter, keeps the adapter's network configuration (addresses, MTU,
routes, DNS), reads the driver's statistics, injects faults, impairs the traffic each way
(:meth:`Host.impair`) and makes the adapter disappear.
"""

from __future__ import annotations

import collections
import ipaddress
import threading
import time
from collections.abc import Callable, Iterable
from typing import Literal

from wintun_cffi import ip
from wintun_cffi.constants import MAX_IP_PACKET_SIZE, RING_DEAD_MARKER
from wintun_cffi.fdevent import FdEvent
from wintun_cffi.impair import ImpairedPath, Impairer, Impairment, Scheduler, Seed
from wintun_cffi.netconfig.values import DnsSettings, Route
from wintun_cffi.validate import check_mtu as check_mtu  # the Linux TUN host's too

from .driver import AdapterStatistics, SessionDriver
from .releases import NEWEST, Release
from .ring import U32, Ring

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
RingName = Literal["send", "receive"]
RingField = Literal["head", "tail", "alertable"]
#: An IP family, as :meth:`Host.set_mtu` takes it: 4 (IPv4) or 6 (IPv6).
Family = Literal[4, 6]

#: Packets the host keeps for :meth:`Host.receive` before it drops the oldest.
DEFAULT_CAPTURE_LIMIT = 65536


class Host:
    """The system side of one adapter; a session's driver is attached while it runs."""

    def __init__(
        self,
        name: str,
        *,
        capture_limit: int = DEFAULT_CAPTURE_LIMIT,
        release: Release | None = None,
    ) -> None:
        self.name = name
        #: The Wintun release whose driver runs this adapter's sessions (default: the newest).
        self.release = release or NEWEST["0.14"]
        self.statistics = AdapterStatistics()
        #: Answer echo requests to the adapter's addresses, as an operating system would.
        self.echo_responder = True
        #: Packets dropped because more than ``capture_limit`` were waiting to be collected.
        self.capture_overflow = 0
        self._capture_limit = capture_limit
        self._interfaces: list[Interface] = []
        # A Wintun adapter reports the largest packet it carries until the system sets an MTU.
        self._mtu: dict[Family, int] = {4: MAX_IP_PACKET_SIZE, 6: MAX_IP_PACKET_SIZE}
        self._routes: list[Route] = []
        self._dns = DnsSettings()
        # Appended by the driver's consumer without a lock (deque operations are atomic);
        # the condition is taken only while someone waits for a packet.
        self._captured: collections.deque[bytes] = collections.deque()
        self._arrived = threading.Condition(threading.Lock())
        self._waiting = 0
        self._driver: SessionDriver | None = None
        self._registration_faults: list[tuple[RingName, RingField, int]] = []
        self._on_terminate: Callable[[], None] | None = None
        self.terminated = False
        # Impairments (None: that way is not impaired, and costs nothing).
        self._inbound: ImpairedPath | None = None
        self._outbound: ImpairedPath | None = None
        self._scheduler: Scheduler | None = None
        # Replaced, never changed in place: the consumer thread iterates it without a lock.
        self._observers: tuple[Callable[[bytes], None], ...] = ()

    # -- addresses ------------------------------------------------------------------------

    @property
    def interfaces(self) -> tuple[Interface, ...]:
        """The unicast addresses assigned to the adapter, with their prefix lengths."""
        return tuple(self._interfaces)

    def add_address(self, address: str | Interface) -> None:
        """Assign ``address`` (``"10.6.7.7/24"``); the echo responder answers for it."""
        interface = ipaddress.ip_interface(address)
        if interface not in self._interfaces:
            self._interfaces.append(interface)

    def remove_address(self, address: str | Interface) -> None:
        """Unassign ``address``; :class:`KeyError` if it is not assigned."""
        interface = ipaddress.ip_interface(address)
        if interface not in self._interfaces:
            raise KeyError(f"{interface} is not assigned to {self.name!r}")
        self._interfaces.remove(interface)

    # -- MTU --------------------------------------------------------------------------------

    @property
    def mtu(self) -> dict[Family, int]:
        """The adapter's MTU per IP family (``{4: ..., 6: ...}``)."""
        return dict(self._mtu)

    def set_mtu(self, mtu: int, family: Family | None = None) -> None:
        """Set the MTU of one IP family (4 or 6), or of both (``None``): at least
        :data:`~wintun_cffi.constants.MIN_MTU` (576 for IPv4, 1280 for IPv6), as on Windows."""
        families = check_mtu(mtu, family)
        for each in families:
            self._mtu[each] = mtu

    # -- routes and DNS --------------------------------------------------------------------

    @property
    def routes(self) -> tuple[Route, ...]:
        """The routes through the adapter (:class:`~wintun_cffi.netconfig.Route`), oldest
        first; the emulated system adds none of its own."""
        return tuple(self._routes)

    def add_route(self, route: Route) -> None:
        """Add ``route``, replacing a route with the same destination and next hop."""
        self._routes = [kept for kept in self._routes if kept.key != route.key] + [route]

    def remove_route(self, route: Route) -> None:
        """Remove the route with the destination and next hop of ``route``; :class:`KeyError`
        if there is none."""
        kept = [existing for existing in self._routes if existing.key != route.key]
        if len(kept) == len(self._routes):
            raise KeyError(f"{route.destination} has no such route on {self.name!r}")
        self._routes = kept

    @property
    def dns(self) -> DnsSettings:
        """The adapter's DNS servers and search domains
        (:class:`~wintun_cffi.netconfig.DnsSettings`)."""
        return self._dns

    def set_dns(self, settings: DnsSettings) -> None:
        """Replace the adapter's DNS settings (an empty :class:`DnsSettings` clears them)."""
        self._dns = settings

    # -- the session's driver -------------------------------------------------------------

    @property
    def driver(self) -> SessionDriver | None:
        """The driver of the running session, if any."""
        return self._driver

    def attach(
        self,
        send_ring: Ring,
        receive_ring: Ring,
        read_wait_event: FdEvent,
        receive_tail_moved: FdEvent,
    ) -> SessionDriver:
        """Start the driver of a new session on these rings and events.

        Raises :class:`~emulator.driver.RegistrationRefused` as the driver refuses the rings.
        """
        if self._driver is not None and not self._driver.stopped:
            raise RuntimeError(f"{self.name!r} already has a running session")
        faults, self._registration_faults = self._registration_faults, []
        for ring, field, value in faults:
            _set_field(send_ring if ring == "send" else receive_ring, field, value)
        driver = SessionDriver(
            send_ring,
            receive_ring,
            read_wait_event,
            receive_tail_moved,
            self._from_application if self._outbound is None else self._outbound.put,
            self.statistics,
            self.name,
            stops_at_non_ip=self.release.stops_at_non_ip,
            start=False,
        )
        self._driver = driver  # known before its thread runs: detach() can always stop it
        self._starting(driver)
        driver.start()
        return driver

    def _starting(self, driver: SessionDriver) -> None:
        """Called just before ``driver``'s consumer thread starts (the Linux TUN host has the
        thread read its device too)."""

    def detach(self) -> None:
        """Stop the session's driver (dead markers on both rings, a blocked reader woken)."""
        driver = self._driver
        if driver is not None:
            driver.stop()  # kept until stopped: a detach cut short is redone in full
            self._driver = None
        self._stop_impairments()

    def set_terminate_hook(self, hook: Callable[[], None] | None) -> None:
        """What :meth:`terminate` does besides stopping the driver (the emulator removes the
        adapter from its registry)."""
        self._on_terminate = hook

    def close(self) -> None:
        """The emulator removed the adapter: stop the driver and release what the host holds
        (a kernel interface for a Linux TUN host). Its routes and DNS settings go with it."""
        self.detach()
        if self._scheduler is not None:
            self._scheduler.close()
        self._routes = []
        self._dns = DnsSettings()

    def terminate(self) -> None:
        """The adapter disappears: the session's rings die and its reader wakes with EOF."""
        self.terminated = True
        if self._driver is not None:
            self._driver.stop()
        if self._scheduler is not None:
            self._scheduler.close()
        self._stop_impairments()
        if self._on_terminate is not None:
            self._on_terminate()

    # -- traffic ---------------------------------------------------------------------------

    def deliver(self, packet: bytes | bytearray | memoryview) -> bool:
        """Send one packet out through the adapter (to the application); False if dropped."""
        return self.deliver_many((packet,))

    def deliver_many(self, packets: Iterable[bytes | bytearray | memoryview]) -> bool:
        """Send a batch, all or nothing, as the driver does; False if it was dropped.

        With an inbound impairment (:meth:`impair`) the packets go through it instead, each
        delivered on its own when released (a packet that then finds the ring full is
        dropped and counted in ``out_discards``), and the result is True: what became of
        them shows in :attr:`inbound`'s statistics and the driver's.
        """
        driver = self._driver
        if driver is None or driver.stopped:
            self.statistics.out_discards += sum(1 for _ in packets)
            return False
        if self._inbound is not None:
            self._inbound.put_many(packets)
            return True
        return driver.deliver(packets)

    def _deliver_released(self, packet: bytes) -> None:
        """The inbound impairment releases a packet: into the Send ring, alone."""
        driver = self._driver
        if driver is None:  # the session ended meanwhile
            self.statistics.out_discards += 1
        else:
            driver.deliver((packet,))  # counts it in out_discards if it does not fit

    def send_room(self) -> int | None:
        """Bytes free in the Send ring for :meth:`deliver` now (a packet of ``n`` bytes takes
        :func:`~wintun_cffi.constants.record_size` of ``n``); None without a running
        session. What waits for room (:func:`emulator.replay.replay`) polls it: the
        application frees room without telling the system."""
        driver = self._driver
        return None if driver is None or driver.stopped else driver.send_room()

    def add_observer(self, observer: Callable[[bytes], None]) -> None:
        """Call ``observer(packet)`` with every packet the application sends, as the system
        takes it (after an outbound impairment; :meth:`receive` still gets it). It runs on
        the driver's thread: keep it short, and let it not raise."""
        self._observers = (*self._observers, observer)

    def remove_observer(self, observer: Callable[[bytes], None]) -> None:
        """Stop calling ``observer``; :class:`ValueError` if it was not added."""
        observers = list(self._observers)
        observers.remove(observer)
        self._observers = tuple(observers)

    def _observe(self, packet: bytes) -> None:
        for observer in self._observers:
            observer(packet)

    def receive(self, timeout: float | None = None) -> bytes:
        """The next packet the application sent; :class:`TimeoutError` after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        captured = self._captured
        with self._arrived:
            self._waiting += 1  # before looking: a packet appended after is announced
            try:
                while True:
                    try:
                        return captured.popleft()
                    except IndexError:
                        pass
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"no packet from the application within {timeout} s")
                    self._arrived.wait(remaining)
            finally:
                self._waiting -= 1

    def collect(self) -> list[bytes]:
        """Every packet the application sent that is waiting now, oldest first."""
        captured = self._captured
        packets = []
        while True:
            try:
                packets.append(captured.popleft())
            except IndexError:
                return packets

    def _from_application(self, packet: bytes) -> None:
        """The driver's consumer hands over an accepted packet (runs on its thread; with an
        outbound impairment, the impairment hands it over when it releases it)."""
        if self._observers:
            self._observe(packet)
        captured = self._captured
        captured.append(packet)
        if len(captured) > self._capture_limit:
            try:
                captured.popleft()
                self.capture_overflow += 1
            except IndexError:  # a reader took them meanwhile
                pass
        if self._waiting:
            with self._arrived:
                self._arrived.notify_all()
        if self.echo_responder and self._interfaces:
            reply = self._answer(packet)
            if reply is not None:
                self.deliver(reply)

    def _answer(self, packet: bytes) -> bytes | None:
        found = ip.addresses(packet)
        if found is None or not any(found[1] == i.ip for i in self._interfaces):
            return None
        return ip.echo_reply_for(packet)

    # -- impairments -----------------------------------------------------------------------

    def impair(
        self,
        inbound: Impairment | None = None,
        outbound: Impairment | None = None,
        *,
        seed: Seed = 0,
    ) -> None:
        """Impair the traffic from now on, each way (see :mod:`wintun_cffi.impair`).

        ``inbound`` applies to what the system sends the application (:meth:`deliver`,
        :meth:`deliver_many`, the echo responder's replies), ``outbound`` to what the
        application sends, before the system sees it (:meth:`receive`, the echo responder).
        None leaves that way unimpaired (at no cost). Each way gets a new
        :class:`~wintun_cffi.impair.Impairer` seeded from ``seed`` (inbound with
        ``f"{seed}/inbound"``, outbound with ``f"{seed}/outbound"``); packets the previous
        ones still held are discarded. Valid with or without a running session, and for the
        sessions to come; change the settings later through :attr:`inbound` and
        :attr:`outbound`. ``host.impair()`` removes both.

        Delayed packets are released by one thread per host, started when a packet is first
        held for later and stopped when the session ends (the packets still held are then
        discarded) or the adapter goes away.
        """
        for settings in (inbound, outbound):
            if settings is not None and not isinstance(settings, Impairment):
                raise TypeError(f"expected an Impairment or None, not {type(settings).__name__}")
        if self._scheduler is None:
            self._scheduler = Scheduler(self.name)
        scheduler = self._scheduler
        for old in (self._inbound, self._outbound):
            if old is not None:
                scheduler.remove(old)
                old.impairer.discard()
        self._inbound = self._outbound = None
        if inbound is not None:
            impairer = Impairer(inbound, seed=f"{seed}/inbound")
            self._inbound = ImpairedPath(impairer, self._deliver_released, scheduler)
        if outbound is not None:
            impairer = Impairer(outbound, seed=f"{seed}/outbound")
            self._outbound = ImpairedPath(impairer, self._from_application, scheduler)
        driver = self._driver
        if driver is not None:
            driver.set_to_system(
                self._from_application if self._outbound is None else self._outbound.put
            )

    @property
    def inbound(self) -> Impairer | None:
        """The impairment of the packets to the application (None: none); set its
        :attr:`~wintun_cffi.impair.Impairer.settings`, read its
        :attr:`~wintun_cffi.impair.Impairer.statistics`."""
        path = self._inbound
        return None if path is None else path.impairer

    @property
    def outbound(self) -> Impairer | None:
        """The impairment of the packets from the application (None: none)."""
        path = self._outbound
        return None if path is None else path.impairer

    def _stop_impairments(self) -> None:
        """The session ended: stop releasing; what the impairments held is discarded."""
        if self._scheduler is not None:
            self._scheduler.stop()
        for path in (self._inbound, self._outbound):
            if path is not None:
                path.impairer.discard()

    # -- fault injection -------------------------------------------------------------------

    def _running_driver(self) -> SessionDriver:
        if self._driver is None:
            raise RuntimeError(f"{self.name!r} has no running session")
        return self._driver

    def _ring(self, ring: RingName) -> Ring:
        driver = self._running_driver()
        return driver.send_ring if ring == "send" else driver.receive_ring

    def ring_field(self, ring: RingName, field: RingField) -> int:
        """Read a ring's Head, Tail or Alertable as the driver sees it."""
        return _get_field(self._ring(ring), field)

    def set_ring_field(self, ring: RingName, field: RingField, value: int) -> None:
        """Overwrite a ring's Head, Tail or Alertable (no event is signalled)."""
        _set_field(self._ring(ring), field, value)

    def corrupt_at_registration(self, ring: RingName, field: RingField, value: int) -> None:
        """When the next session registers its rings, ``field`` of ``ring`` holds ``value``
        (as if the client had not zeroed its memory); the driver then judges the rings."""
        if field not in _FIELDS:
            raise ValueError(f"field must be one of {', '.join(_FIELDS)}, not {field!r}")
        self._registration_faults.append((ring, field, value))

    def pause(self) -> None:
        """The system stops taking the application's packets, as Windows may keep received
        packets for a while: the driver holds the next one, and the Receive ring's Head
        stays before it, until :meth:`resume`. A session's end resumes it."""
        self._running_driver().pause_system()

    def resume(self, packets: int | None = None) -> None:
        """Take packets again: every one (``None``), or only the next ``packets``."""
        self._running_driver().resume_system(packets)

    @property
    def held_packet(self) -> bytes | None:
        """The packet the driver holds for the paused system, if any."""
        driver = self._driver
        return None if driver is None else driver.held_packet

    def consume_tail_moved(self) -> bool:
        """Take the signal of the Receive ring's TailMoved event, if the application gave one
        (with the driver held by :meth:`pause`, nothing else takes it)."""
        return self._running_driver().receive_tail_moved.consume()

    def corrupt_record(self, ring: RingName, offset: int, size_field: int) -> None:
        """Overwrite the Size field of the record at data ``offset`` of a ring."""
        U32.pack_into(self._ring(ring).data, offset, size_field)

    def corrupt_index(
        self, ring: RingName, field: Literal["head", "tail"], value: int = RING_DEAD_MARKER
    ) -> None:
        """Overwrite a ring's Head or Tail with ``value`` (e.g. out of range)."""
        _set_field(self._ring(ring), field, value)
        if ring == "send" and self._driver is not None:
            self._driver.read_wait_event.set()  # let a blocked reader see it


_FIELDS: tuple[RingField, ...] = ("head", "tail", "alertable")


def _get_field(ring: Ring, field: RingField) -> int:
    if field == "head":
        return ring.head
    return ring.tail if field == "tail" else ring.alertable


def _set_field(ring: Ring, field: RingField, value: int) -> None:
    if field == "head":
        ring.head = value
    elif field == "tail":
        ring.tail = value
    else:
        ring.alertable = value
