"""Scenarios run inside a fresh network namespace: ``python -m tests.linux_tun.scenarios NAME``.

Each creates TUN interfaces through the emulator (``host="linux-tun"``), talks only to
addresses of its own namespace (10.6.7.7 and fd00:6:7::7 on the interface, the application
being 10.6.7.8 and fd00:6:7::8) and exits non-zero with a traceback if an assertion fails.
The entry point refuses to run in its parent's namespace or one that has other interfaces.
"""

from __future__ import annotations

import errno
import gc
import ipaddress
import json
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable

import wintun_cffi
from emulator import Emulator, Host, netns
from emulator.linux_tun import LinuxTunHost
from wintun_cffi import Adapter, Session, ip
from wintun_cffi.constants import ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS
from wintun_cffi.errors import (
    AccessDeniedError,
    AdapterNotFoundError,
    AlreadyExistsError,
    SessionClosedError,
    SessionEndedError,
)

NAME = "Demo"
TUN_V4, APP_V4 = "10.6.7.7", "10.6.7.8"
TUN_V6, APP_V6 = "fd00:6:7::7", "fd00:6:7::8"
#: Bound on every wait for a packet, so a lost packet fails instead of hanging.
WAIT = 5.0


# -- looking at the kernel ----------------------------------------------------------------------


def ip_json(*args: str) -> list[dict[str, object]]:
    output = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True)
    result: list[dict[str, object]] = json.loads(output.stdout or "[]")
    return result


def links() -> dict[str, dict[str, object]]:
    """The namespace's interfaces by name."""
    return {str(link["ifname"]): link for link in ip_json("link", "show")}


def is_up(name: str) -> bool:
    flags = links()[name]["flags"]
    assert isinstance(flags, list)
    return "UP" in flags


def kernel_addresses(name: str) -> set[str]:
    """The interface's global addresses as ``address/prefix``."""
    [link] = ip_json("addr", "show", "dev", name)
    infos = link["addr_info"]
    assert isinstance(infos, list)
    return {f"{i['local']}/{i['prefixlen']}" for i in infos if i.get("scope") == "global"}


def kernel_mtu(name: str) -> dict[int, int]:
    link_mtu = links()[name]["mtu"]
    assert isinstance(link_mtu, int)
    with open(f"/proc/sys/net/ipv6/conf/{name}/mtu") as setting:
        return {4: link_mtu, 6: int(setting.read())}


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def only_main_thread() -> bool:
    return threading.enumerate() == [threading.main_thread()]


# -- packets --------------------------------------------------------------------------------


def read_matching(session: Session, wanted: Callable[[bytes], bool]) -> bytes:
    """The next packet ``wanted`` accepts; the kernel's own chatter (router solicitations,
    MLD reports) is skipped."""
    while True:
        packet = session.read(timeout=WAIT)
        if wanted(packet):
            return packet


def is_proto(source: str, destination: str, protocol: int) -> Callable[[bytes], bool]:
    expected = (ipaddress.ip_address(source), ipaddress.ip_address(destination), protocol)
    return lambda packet: ip.addresses(packet) == expected


def transport(packet: bytes) -> bytes:
    """The bytes after the IP header (IPv4 options skipped)."""
    if packet[0] >> 4 == 4:
        return packet[(packet[0] & 0x0F) * 4 :]
    return packet[40:]


def pseudo_header(packet: bytes, protocol: int) -> bytes:
    """The IPv4/IPv6 pseudo-header for the transport checksum of ``packet``."""
    length = len(transport(packet))
    if packet[0] >> 4 == 4:
        return packet[12:20] + struct.pack("!BBH", 0, protocol, length)
    return packet[8:40] + struct.pack("!I3xB", length, protocol)


def new_adapter(emulator_api: str = "0.14") -> tuple[wintun_cffi.Wintun, Adapter]:
    wintun = wintun_cffi.emulated(emulator_api, host="linux-tun")  # type: ignore[arg-type]
    if emulator_api == "0.14":
        return wintun, wintun.create_adapter(NAME, tunnel_type="Test")
    return wintun, wintun.create_adapter(NAME, pool="Test")


# -- scenarios ----------------------------------------------------------------------------------


def create_and_close() -> None:
    """The adapter is a TUN interface of its name, down without a session, deleted with the
    adapter; the name is never changed behind the user's back; nothing leaks."""
    fds = open_fds()
    wintun, adapter = new_adapter()
    assert isinstance(adapter.host, LinuxTunHost)
    link = links()[NAME]
    assert link["link_type"] == "none"  # a layer-3 TUN device: no link-layer address
    assert not is_up(NAME)
    try:
        wintun.create_adapter(NAME, tunnel_type="Test")
    except FileExistsError as error:
        # In Linux terms, and still Wintun's error for code that matches on it.
        assert str(error).startswith(f"cannot create TUN interface {NAME!r}"), error
        assert isinstance(error, AlreadyExistsError) and error.winerror == ERROR_ALREADY_EXISTS
        assert str(error).endswith(f"(Win32 error {ERROR_ALREADY_EXISTS})"), error
    else:
        raise AssertionError("a second interface of the same name was created")
    assert wintun.backend.adapter_names() == [NAME]  # type: ignore[attr-defined]
    assert set(links()) == {"lo", NAME}
    adapter.close()
    assert set(links()) == {"lo"}
    assert adapter_closed_everything(fds)
    # The name is free again.
    again = wintun.create_adapter(NAME, tunnel_type="Test")
    assert NAME in links()
    again.close()
    assert set(links()) == {"lo"}
    assert adapter_closed_everything(fds)


def emulator_shutdown() -> None:
    """Shutting the emulator down deletes every interface, even of adapters only freed (pool
    era); a host dropped without close() deletes its interface when collected."""
    fds = open_fds()
    wintun = wintun_cffi.emulated("pool", host="linux-tun")
    first = wintun.create_adapter("One", pool="Test")
    session = first.start_session(0x20000)
    wintun.create_adapter("Two", pool="Test").close()  # freed, not deleted: it stays
    assert set(links()) == {"lo", "One", "Two"}
    wintun.backend.close()  # type: ignore[attr-defined]
    assert set(links()) == {"lo"}
    try:
        session.read(timeout=WAIT)
    except SessionEndedError:
        pass
    else:
        raise AssertionError("the session outlived the emulator")
    session.close()
    first.close()
    host = LinuxTunHost("Dropped")
    assert "Dropped" in links()
    del host
    gc.collect()
    assert set(links()) == {"lo"}
    assert adapter_closed_everything(fds)


def adapter_closed_everything(fds_before: set[str]) -> bool:
    return open_fds() == fds_before and only_main_thread()


def addresses_and_mtu() -> None:
    """Addresses and MTUs reach the kernel, and the records of the Linux host and the
    in-memory host agree after the same calls."""
    _, adapter = new_adapter()
    host = adapter.host
    memory = Host("memory")
    host.add_address(f"{TUN_V4}/24")
    host.add_address(f"{TUN_V6}/64")
    assert kernel_addresses(NAME) == {f"{TUN_V4}/24", f"{TUN_V6}/64"}
    for mtu, family in [(1400, None), (1300, 6), (1450, 4), (9000, None), (1280, 6)]:
        host.set_mtu(mtu, family)  # type: ignore[arg-type]
        memory.set_mtu(mtu, family)  # type: ignore[arg-type]
        assert host.mtu == memory.mtu == kernel_mtu(NAME), (mtu, family, host.mtu)
    try:
        host.set_mtu(9001, 6)
    except ValueError as error:
        assert "link MTU" in str(error)
    else:
        raise AssertionError("an IPv6 MTU above the link MTU was accepted")
    assert host.mtu == kernel_mtu(NAME) == {4: 9000, 6: 1280}
    # Addresses survive a session (link up, then down), IPv6 ones included.
    adapter.start_session(0x20000).close()
    assert kernel_addresses(NAME) == {f"{TUN_V4}/24", f"{TUN_V6}/64"}
    host.remove_address(f"{TUN_V6}/64")
    assert kernel_addresses(NAME) == {f"{TUN_V4}/24"}
    assert [str(i) for i in host.interfaces] == [f"{TUN_V4}/24"]
    adapter.close()


def icmp_echo() -> None:
    """The kernel answers echo requests the application sends through the Wintun API."""
    _, adapter = new_adapter()
    adapter.host.add_address(f"{TUN_V4}/24")
    adapter.host.add_address(f"{TUN_V6}/64")
    with adapter.start_session(0x20000) as session:
        session.send(ip.icmp_echo(APP_V4, TUN_V4, identifier=0x77, sequence=3, payload=b"ping4"))
        reply = read_matching(session, is_proto(TUN_V4, APP_V4, ip.PROTO_ICMP))
        assert ip.checksum(reply[:20]) == 0  # IPv4 header checksum
        message = transport(reply)
        assert ip.checksum(message) == 0
        assert message[0] == ip.ICMP_ECHO_REPLY
        assert struct.unpack_from("!HH", message, 4) == (0x77, 3)
        assert message[8:] == b"ping4"

        session.send(ip.icmp_echo(APP_V6, TUN_V6, identifier=0x66, sequence=9, payload=b"ping6"))
        reply = read_matching(session, is_proto(TUN_V6, APP_V6, ip.PROTO_ICMPV6))
        message = transport(reply)
        assert ip.checksum(pseudo_header(reply, ip.PROTO_ICMPV6) + message) == 0
        assert message[0] == ip.ICMPV6_ECHO_REPLY
        assert struct.unpack_from("!HH", message, 4) == (0x66, 9)
        assert message[8:] == b"ping6"
        statistics = adapter.host.statistics
        assert statistics.in_packets >= 2 and statistics.out_packets >= 2
    adapter.close()


def no_unsolicited_packets() -> None:
    """With IPv6 enabled and both kinds of address, a session sees nothing the application
    did not cause: the kernel sends no router solicitations through the interface."""
    _, adapter = new_adapter()
    adapter.host.add_address(f"{TUN_V4}/24")
    adapter.host.add_address(f"{TUN_V6}/64")
    with open(f"/proc/sys/net/ipv6/conf/{NAME}/router_solicitations") as setting:
        assert setting.read().strip() == "0"
    with adapter.start_session(0x20000) as session:
        # Linux solicits at once when the link comes up (then every 4 s): 2 s shows it.
        try:
            packet = session.read(timeout=2.0)
        except TimeoutError:
            pass
        else:
            raise AssertionError(f"the kernel sent {ip.describe(packet)}")
    adapter.close()


def kernel_routes(name: str, version: int) -> set[str]:
    """The routes through ``name`` that were not made by the kernel itself, as
    ``destination [via hop]``."""
    found = ip_json(f"-{version}", "route", "show", "dev", name)
    return {
        str(route["dst"]) + (f" via {route['gateway']}" if "gateway" in route else "")
        for route in found
        if route.get("protocol") != "kernel"
    }


def send_udp(destination: str, payload: bytes) -> None:
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, (destination, 9999))


def routes() -> None:
    """Routes added through netconfig make the kernel send matching traffic into the tunnel
    (IPv4 and IPv6, on-link and via a next hop); removed, the traffic has no route; they
    survive the link going down between sessions and go with the adapter."""
    from wintun_cffi import netconfig

    _, adapter = new_adapter()
    netconfig.add_address(adapter, f"{TUN_V4}/24")
    netconfig.add_address(adapter, f"{TUN_V6}/64")
    netconfig.add_route(adapter, "10.99.0.0/16", metric=5)  # before any session: link down
    netconfig.add_route(adapter, "fd00:99::/64")
    assert kernel_routes(NAME, 4) == set()
    for _ in range(2):  # the second session puts them back after the link went down
        with adapter.start_session(0x20000) as session:
            assert kernel_routes(NAME, 4) == {"10.99.0.0/16"}
            assert kernel_routes(NAME, 6) == {"fd00:99::/64"}
            send_udp("10.99.1.2", b"into the tunnel")
            packet = read_matching(session, is_proto(TUN_V4, "10.99.1.2", ip.PROTO_UDP))
            assert transport(packet)[8:] == b"into the tunnel"
            send_udp("fd00:99::5", b"into the tunnel, IPv6")
            packet = read_matching(session, is_proto(TUN_V6, "fd00:99::5", ip.PROTO_UDP))
            assert transport(packet)[8:] == b"into the tunnel, IPv6"
        assert kernel_routes(NAME, 4) == set()
        assert len(netconfig.routes(adapter)) == 2

    with adapter.start_session(0x20000) as session:
        netconfig.add_route(adapter, "10.98.0.0/16", next_hop="10.77.0.1")  # while up
        assert kernel_routes(NAME, 4) == {"10.99.0.0/16", "10.98.0.0/16 via 10.77.0.1"}
        send_udp("10.98.3.4", b"via a next hop")
        packet = read_matching(session, is_proto(TUN_V4, "10.98.3.4", ip.PROTO_UDP))
        assert transport(packet)[8:] == b"via a next hop"

        netconfig.remove_route(adapter, "10.99.0.0/16")
        netconfig.remove_route(adapter, "10.98.0.0/16", next_hop="10.77.0.1")
        netconfig.remove_route(adapter, "fd00:99::/64")
        assert kernel_routes(NAME, 4) == kernel_routes(NAME, 6) == set()
        for destination in ("10.99.1.2", "fd00:99::5"):
            try:
                send_udp(destination, b"nowhere to go")
            except OSError as error:
                assert error.errno == errno.ENETUNREACH, error
            else:
                raise AssertionError(f"{destination} still had a route")
    netconfig.add_route(adapter, "10.97.0.0/16")
    host = adapter.host
    adapter.close()
    assert host.routes == () and NAME not in links()


def bad_routes() -> None:
    """A route the kernel would refuse is a ValueError that changes nothing, with the link
    down (no session: the route is only recorded) or up, and sessions still start after."""
    from wintun_cffi import netconfig

    _, adapter = new_adapter()
    netconfig.add_address(adapter, f"{TUN_V4}/24")
    netconfig.add_route(adapter, "10.99.0.0/16")
    refused: list[tuple[object, object]] = [
        ("10.98.0.0/16", "127.0.0.1"),
        ("fd00:98::/64", "::1"),
        (ipaddress.IPv6Network("fe80::%3/64"), None),
        (ipaddress.IPv6Address("fe80::9%1"), None),
    ]
    for running in (False, True):
        session = adapter.start_session(0x20000) if running else None
        expected = {"10.99.0.0/16"} if running else set()
        cases = refused + ([("10.97.0.0/16", TUN_V4)] if running else [])  # our own address
        for destination, next_hop in cases:
            try:
                netconfig.add_route(adapter, destination, next_hop=next_hop)  # type: ignore[arg-type]
            except ValueError:
                pass
            else:
                raise AssertionError(f"{destination} via {next_hop} was accepted ({running=})")
            assert [str(r.destination) for r in netconfig.routes(adapter)] == ["10.99.0.0/16"]
            assert kernel_routes(NAME, 4) == expected and kernel_routes(NAME, 6) == set()
        if session is not None:
            session.close()
    with adapter.start_session(0x20000):  # the refused routes left nothing behind
        assert kernel_routes(NAME, 4) == {"10.99.0.0/16"}
    adapter.close()


def udp_both_ways() -> None:
    """A kernel UDP socket receives what the application sends, and the application receives
    what the socket sends."""
    _, adapter = new_adapter()
    adapter.host.add_address(f"{TUN_V4}/24")
    with (
        adapter.start_session(0x20000) as session,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        sock.bind((TUN_V4, 5000))
        sock.settimeout(WAIT)
        session.send(ip.udp_packet(APP_V4, TUN_V4, 4000, 5000, b"from the application"))
        payload, sender = sock.recvfrom(2048)
        assert payload == b"from the application"
        assert sender == (APP_V4, 4000)

        sock.sendto(b"from the kernel", (APP_V4, 4000))
        packet = read_matching(session, is_proto(TUN_V4, APP_V4, ip.PROTO_UDP))
        datagram = transport(packet)
        assert struct.unpack_from("!HHH", datagram) == (5000, 4000, 8 + len(b"from the kernel"))
        assert datagram[8:] == b"from the kernel"
        assert ip.checksum(pseudo_header(packet, ip.PROTO_UDP) + datagram) == 0
    adapter.close()


def replay_and_record() -> None:
    """A capture replayed into a Linux TUN session reaches the application in order, and a
    recorder sees what the application sends to the kernel (which still gets it)."""
    from emulator.replay import Recorder, replay
    from wintun_cffi.capture_read import INBOUND, CaptureRecord

    _, adapter = new_adapter()
    adapter.host.add_address(f"{TUN_V4}/24")
    sent = [ip.udp_packet("10.9.9.9", APP_V4, 53, 4000, b"replayed %d" % i) for i in range(20)]
    records = [CaptureRecord(i * 1000, packet, INBOUND) for i, packet in enumerate(sent)]
    with (
        adapter.start_session(0x20000) as session,
        Recorder(adapter.host) as recorder,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        assert replay(adapter.host, records).delivered == 20
        wanted = is_proto("10.9.9.9", APP_V4, ip.PROTO_UDP)
        assert [read_matching(session, wanted) for _ in sent] == sent

        sock.bind((TUN_V4, 5000))
        sock.settimeout(WAIT)
        packet = ip.udp_packet(APP_V4, TUN_V4, 4000, 5000, b"answer")
        session.send(packet)
        assert sock.recvfrom(2048)[0] == b"answer"
        assert packet in [record.data for record in recorder.wait_for(1)]
    adapter.close()


def session_lifecycle() -> None:
    """A session brings the link up and starts the driver's thread, which reads the device
    too (no thread of its own); its end brings the link down and stops the thread; closing
    the adapter deletes the interface."""
    fds = open_fds()
    _, adapter = new_adapter()
    for _ in range(2):
        session = adapter.start_session(0x20000)
        assert is_up(NAME)
        names = [t.name for t in threading.enumerate() if t.name.startswith("wintun-")]
        assert names == [f"wintun-driver-{NAME}"]
        session.close()
        assert not is_up(NAME)
        assert not any(t.name.startswith("wintun-") for t in threading.enumerate())
    session = adapter.start_session(0x20000)
    adapter.close()  # with the session still open
    assert session.closed
    assert NAME not in links()
    assert adapter_closed_everything(fds)


def terminate_and_delete() -> None:
    """The adapter disappearing (terminate; pool-era delete) ends the session with EOF and
    deletes the interface."""
    fds = open_fds()
    wintun, adapter = new_adapter()
    session = adapter.start_session(0x20000)
    outcome: list[Exception] = []

    def reader() -> None:
        try:
            while True:  # the kernel's own chatter may come first
                session.read(timeout=WAIT)
        except Exception as error:  # noqa: BLE001 - what the blocked reader got
            outcome.append(error)

    thread = threading.Thread(target=reader)
    thread.start()
    adapter.host.terminate()
    thread.join()
    assert len(outcome) == 1 and isinstance(outcome[0], SessionEndedError), outcome
    assert NAME not in links()
    try:
        wintun.open_adapter(NAME)
    except AdapterNotFoundError:
        pass
    else:
        raise AssertionError("the terminated adapter can still be opened")
    session.close()
    adapter.close()

    _, pool_adapter = new_adapter("pool")
    pool_session = pool_adapter.start_session(0x20000)
    assert is_up(NAME)
    pool_adapter.delete()  # closes the session too
    assert pool_session.closed
    assert NAME not in links()
    pool_adapter.close()
    assert adapter_closed_everything(fds)


def close_from_any_thread() -> None:
    """A session of an adapter made in a namespace of its own (``netns.isolated``) closes from
    threads outside that namespace (the main thread; a worker made before): the link goes
    down in the adapter's namespace, a receiver blocked on a thread outside it learns the
    session was closed, and nothing is left (interface, descriptors, threads)."""
    fds = open_fds()
    jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
    outside = threading.Thread(target=lambda: [job() for job in iter(jobs.get, None)], daemon=True)
    outside.start()  # made before the namespace exists: it stays outside
    with netns.isolated():
        inside = netns.open_current()
        wintun = wintun_cffi.emulated("0.14", host="linux-tun")
        adapter = wintun.create_adapter(NAME, tunnel_type="Test")
    assert NAME not in links()  # the main thread is back outside
    for closer in ("the main thread", "a worker made before"):
        session = adapter.start_session(0x20000)  # started from outside too
        with netns.entered(inside):
            assert is_up(NAME)
        received: list[BaseException] = []
        closed: queue.Queue[BaseException | None] = queue.Queue()

        def receive(session: Session = session, received: list[BaseException] = received) -> None:
            try:
                while True:  # the kernel's own chatter may come first
                    session.read()
            except BaseException as got:  # noqa: BLE001 - what the blocked receiver got
                received.append(got)

        def close(
            session: Session = session, closed: queue.Queue[BaseException | None] = closed
        ) -> None:
            try:
                session.close()
            except BaseException as got:  # noqa: BLE001 - reported below
                closed.put(got)
            else:
                closed.put(None)

        receiver = threading.Thread(target=receive)
        receiver.start()
        if closer == "the main thread":
            close()
        else:
            jobs.put(close)
        failure = closed.get()
        assert failure is None, (closer, failure)
        receiver.join()
        assert len(received) == 1 and isinstance(received[0], SessionClosedError), received
        with netns.entered(inside):
            assert not is_up(NAME), closer
    jobs.put(None)
    outside.join()
    adapter.close()
    with netns.entered(inside):
        assert set(links()) == {"lo"}
    os.close(inside)
    assert adapter_closed_everything(fds)


def mapped_names() -> None:
    """Adapter names Wintun takes and Linux refuses ("My VPN", long names) become interface
    names Linux takes: the host says which, info prints it, and the kernel work uses it."""
    import io

    from wintun_cffi.commands.info import describe

    wintun = wintun_cffi.emulated("pool", host="linux-tun")
    names = ["My VPN", "A much longer adapter name than Linux allows"]
    adapters = [wintun.create_adapter(name, pool="Test") for name in names]
    interfaces = [adapter.host.interface_name for adapter in adapters]  # type: ignore[attr-defined]
    assert set(links()) == {"lo", *interfaces} and len(set(interfaces)) == 2, interfaces
    assert [adapter.name for adapter in adapters] == names
    adapters[0].host.add_address(f"{TUN_V4}/24")
    with adapters[0].start_session(0x20000) as session:
        assert is_up(interfaces[0]) and kernel_addresses(interfaces[0]) == {f"{TUN_V4}/24"}
        session.send(ip.icmp_echo(APP_V4, TUN_V4, identifier=1, sequence=1, payload=b"hi"))
        read_matching(session, is_proto(TUN_V4, APP_V4, ip.PROTO_ICMP))
    out = io.StringIO()
    describe(wintun, "Test", out, "linux-tun")
    for name, interface in zip(names, interfaces, strict=True):
        assert (
            f"{name}  LUID" in out.getvalue() and f"Linux interface {interface}" in out.getvalue()
        )
    for adapter in adapters:
        adapter.delete()
        adapter.close()
    assert set(links()) == {"lo"}


def without_privileges() -> None:
    """Run without root: the TUN host says what it needs (nothing is created)."""
    try:
        LinuxTunHost(NAME)
    except PermissionError as error:
        assert str(error).startswith("creating a TUN interface needs root (CAP_NET_ADMIN)")
        assert isinstance(error, AccessDeniedError) and error.winerror == ERROR_ACCESS_DENIED
    else:
        raise AssertionError("a TUN interface was created without privileges")
    try:
        Emulator(host="linux-tun").create_adapter(NAME, tunnel_type="Test")
    except PermissionError as error:
        assert "needs root (CAP_NET_ADMIN)" in str(error), error
    else:
        raise AssertionError("an adapter was created without privileges")


SCENARIOS: dict[str, Callable[[], None]] = {
    f.__name__: f
    for f in (
        create_and_close,
        emulator_shutdown,
        addresses_and_mtu,
        icmp_echo,
        no_unsolicited_packets,
        routes,
        bad_routes,
        udp_both_ways,
        replay_and_record,
        session_lifecycle,
        terminate_and_delete,
        close_from_any_thread,
        mapped_names,
        without_privileges,
    )
}


def in_fresh_namespace() -> bool:
    """True in a network namespace other than the launching process's (``unshare`` runs us
    in its place, so our parent is the test) that has only a loopback interface."""
    try:
        if os.readlink("/proc/self/ns/net") == os.readlink(f"/proc/{os.getppid()}/ns/net"):
            return False
    except OSError:  # cannot tell: assume the worst
        return False
    return set(links()) == {"lo"}


def main(name: str) -> None:
    if name != "without_privileges":  # that one runs unprivileged and creates nothing
        if not in_fresh_namespace():
            sys.exit("refusing to create interfaces outside a fresh network namespace")
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    SCENARIOS[name]()


if __name__ == "__main__":
    main(sys.argv[1])
