"""The emulator bridged to the Linux kernel, against the same application on a raw TUN device.

Run as root: ``python -m tests.linux_tun.bench_bridge`` (it re-runs itself in a fresh network
namespace). Not a test: it prints figures. Sizes are whole IP packets (20 + 8 + payload).

A responder application answers in place what the kernel sends it (ICMP echo requests with
:func:`wintun_cffi.ip.echo_reply_in_place`, UDP datagrams by swapping addresses and ports).
The same responder runs twice, side by side in one run:

* bridged: on a session of ``wintun_cffi.emulated(host="linux-tun")``: ``receive_batch``,
  answer each packet in ring memory, ``send_many``;
* raw: on a plain TUN descriptor: ``readv`` into one buffer, answer, ``write``.

A client process in the namespace (so that it does not share the responders' interpreter lock)
measures ``ping`` round trips (an ICMP datagram socket, one request at a time) and UDP replies
per second (a window of datagrams in flight). The goals: bridged ping at most twice the raw
one, bridged UDP replies/s at least 0.8 of raw.

Then one UDP flow each way, without a responder:

* application -> kernel: ``Session.send_many`` into the Receive ring; the driver's consumer
  writes each packet to the TUN device; a kernel UDP socket counts what arrives.
* kernel -> application: a UDP socket sends as fast as it can; the host's reader reads the
  TUN device and delivers batches into the Send ring; ``Session.receive_many`` counts.
* raw write: the same packets written straight to the TUN device, one syscall each, to show
  what the kernel side alone costs.
"""

from __future__ import annotations

import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

import wintun_cffi
from emulator.linux_tun import LinuxTunHost, ip_command
from wintun_cffi import Session, ip
from wintun_cffi.constants import MAX_IP_PACKET_SIZE
from wintun_cffi.fdevent import FdEvent

from .netns import REPO, run_in_netns
from .scenarios import APP_V4, TUN_V4, in_fresh_namespace, links

PACKETS = 20000
SIZES = (64, 1400)
PORT_APP, PORT_KERNEL = 4000, 5000
# <asm-generic/socket.h>: buffer sizes above net.core.*mem_max, for root (Python lacks them).
_SO_SNDBUFFORCE, _SO_RCVBUFFORCE = 32, 33
#: How long a receiver waits for more before it calls the run finished.
IDLE = 0.5

# The raw TUN device of the responder's baseline, beside the bridged one (TUN_V4/APP_V4).
RAW_NAME = "Raw"
RAW_TUN_V4, RAW_APP_V4 = "10.6.8.7", "10.6.8.8"
BRIDGE_NAME = "Bench"
#: Ping round trips per run (after a few unmeasured ones), and UDP replies per run.
PINGS, REPLIES = 2000, 30000
#: Pings with a pause before each (the CPUs idle, as with the ``ping`` command), and the pause.
IDLE_PINGS, PING_INTERVAL = 300, 0.005
#: The client's measurements: paced pings, back-to-back pings, UDP replies (in bursts).
MODES = ("ping", "rapid ping", "udp")
UDP_BURSTS = 10
#: UDP datagrams the client keeps in flight.
WINDOW = 32
#: Runs of each measurement, raw and bridged taking turns; the median counts.
ROUNDS = 3
GOALS = {"ping": 2.0, "udp": 0.8}  # bridged/raw round trip at most; replies/s at least


# -- the responder: one application logic, two ways to reach the kernel ------------------------

_ADDRESS_PAIR = struct.Struct("!4s4s")
_PORT_PAIR = struct.Struct("!HH")


def answer(packet: memoryview) -> bool:
    """Turn the packet the kernel sent into its reply, in place; False if there is none.

    UDP over IPv4: swap addresses and ports (every checksum stays right); an echo request:
    its reply.
    """
    if packet[0] == 0x45 and packet[9] == ip.PROTO_UDP:
        source, destination = _ADDRESS_PAIR.unpack_from(packet, 12)
        _ADDRESS_PAIR.pack_into(packet, 12, destination, source)
        source_port, destination_port = _PORT_PAIR.unpack_from(packet, 20)
        _PORT_PAIR.pack_into(packet, 20, destination_port, source_port)
        return True
    try:
        ip.echo_reply_in_place(packet)
    except ValueError:
        return False
    return True


def raw_responder(fd: int, stop: FdEvent) -> None:
    """The responder on a plain TUN descriptor: read what is there, answer, write."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(stop.fileno(), select.POLLIN)
    buffer = bytearray(MAX_IP_PACKET_SIZE)
    view, buffers = memoryview(buffer), [buffer]
    readv, write = os.readv, os.write
    while True:
        poller.poll()
        if stop.is_set():
            return
        try:
            while True:
                packet = view[: readv(fd, buffers)]
                if answer(packet):
                    write(fd, packet)
        except BlockingIOError:
            pass


def bridge_responder(session: Session, stop: threading.Event) -> None:
    """The responder on a session: a batch at a time, answered in ring memory."""
    while not stop.is_set():
        batch = session.receive_batch(256, timeout=0.1)
        if not batch:  # an empty batch has nothing to release
            continue
        with batch:
            replies = [packet for packet in batch if answer(packet)]
            if replies:
                session.send_many(replies)
            del replies


# -- the client: the kernel side, in a process of its own -------------------------------------


PATHS = {"raw": RAW_APP_V4, "bridge": APP_V4}


def ping_client(interval: float, count: int) -> dict[str, dict[str, float]]:
    """Round trips of ICMP echo requests (56 bytes of data) in microseconds, one at a time,
    ``interval`` seconds apart, raw and bridged taking turns (both see the same machine)."""
    sockets = {}
    for path, target in PATHS.items():
        sockets[path] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        sockets[path].settimeout(1.0)
        sockets[path].connect((target, 0))
    data = bytes(56)
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    clock = time.perf_counter
    for sequence in range(count + 50):
        for path, sock in sockets.items():
            if interval:
                time.sleep(interval)
            start = clock()
            sock.send(struct.pack("!BBHHH", ip.ICMP_ECHO_REQUEST, 0, 0, 0, sequence) + data)
            while True:  # a late reply to an earlier request is skipped
                reply = sock.recv(2048)
                if struct.unpack_from("!H", reply, 6)[0] == sequence:
                    break
            if sequence >= 50:
                times[path].append((clock() - start) * 1e6)
    figures = {}
    for path, each in times.items():
        each.sort()
        figures[path] = {
            "median_us": statistics.median(each),
            "p99_us": each[len(each) * 99 // 100],
            "mean_us": statistics.fmean(each),
        }
    return figures


def udp_burst(sock: socket.socket, replies: int) -> tuple[int, float, int]:
    """Keep ``WINDOW`` 64-byte datagrams in flight until ``replies`` came back: (replies,
    seconds, timeouts); a datagram lost is replaced after a quiet 50 ms."""
    payload = bytes(64 - 28)
    received = lost = 0
    start = time.perf_counter()
    for _ in range(WINDOW):
        sock.send(payload)
    while received < replies:
        try:
            sock.recv(2048)
            received += 1
        except TimeoutError:
            lost += 1
        if received + WINDOW - 1 < replies:
            sock.send(payload)
    return received, time.perf_counter() - start, lost


def udp_client() -> dict[str, dict[str, float]]:
    """UDP replies per second, in bursts, raw and bridged taking turns."""
    totals = {path: [0, 0.0, 0] for path in PATHS}
    sockets = {}
    for path, target in PATHS.items():
        sockets[path] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sockets[path].connect((target, PORT_APP))
        sockets[path].settimeout(0.05)
    for _ in range(UDP_BURSTS):
        for path, sock in sockets.items():
            received, seconds, lost = udp_burst(sock, REPLIES // UDP_BURSTS)
            totals[path][0] += received
            totals[path][1] += seconds
            totals[path][2] += lost
    return {
        path: {"replies_per_second": received / seconds, "timeouts": lost}
        for path, (received, seconds, lost) in totals.items()
    }


def run_client(mode: str) -> dict[str, dict[str, float]]:
    """Run the client in a process of its own, in this namespace; its figures by path."""
    environment = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [sys.executable, "-m", "tests.linux_tun.bench_bridge", "--client", mode],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures: dict[str, dict[str, float]] = json.loads(result.stdout)
    return figures


def client_main(mode: str) -> None:
    # Only where the bench made its interfaces: never a packet outside its namespace.
    if set(links()) != {"lo", BRIDGE_NAME, RAW_NAME}:
        sys.exit("the client runs only in the bench's own network namespace")
    if mode == "ping":
        figures = ping_client(PING_INTERVAL, IDLE_PINGS)
    elif mode == "rapid ping":
        figures = ping_client(0.0, PINGS)
    else:
        figures = udp_client()
    print(json.dumps(figures))


def responder_comparison(session: Session) -> None:
    """Ping and UDP replies through the bridge and through a raw TUN device, in turns."""
    with open("/proc/sys/net/ipv4/ping_group_range", "w") as setting:
        setting.write("0 2147483647")  # ICMP datagram sockets for everyone (this namespace)
    raw = LinuxTunHost(RAW_NAME)
    raw.add_address(f"{RAW_TUN_V4}/24")
    ip_command("link", "set", "dev", RAW_NAME, "up")
    raw_stop, bridge_stop = FdEvent(manual_reset=True), threading.Event()
    threads = [
        threading.Thread(target=raw_responder, args=(raw.fileno(), raw_stop)),
        threading.Thread(target=bridge_responder, args=(session, bridge_stop)),
    ]
    for thread in threads:
        thread.start()
    results: dict[str, list[dict[str, dict[str, float]]]] = {}
    try:
        for _ in range(ROUNDS):
            for mode in MODES:
                results.setdefault(mode, []).append(run_client(mode))
    finally:
        raw_stop.set()
        bridge_stop.set()
        for thread in threads:
            thread.join()
        raw_stop.close()
        raw.close()
    report(results)


def report(results: dict[str, list[dict[str, dict[str, float]]]]) -> None:
    """Medians over the runs; each ratio is the median of the runs' own ratios."""

    def median(mode: str, path: str, key: str) -> float:
        return statistics.median(run[path][key] for run in results[mode])

    def ratio(mode: str, key: str) -> float:
        return statistics.median(run["bridge"][key] / run["raw"][key] for run in results[mode])

    print(f"responder ({ROUNDS} runs, raw and bridged taking turns in each; medians):")
    for mode in ("ping", "rapid ping"):
        for path in PATHS:
            print(
                f"  {mode:<10} {path:<6}  median {median(mode, path, 'median_us'):7.1f} us  "
                f"mean {median(mode, path, 'mean_us'):7.1f} us  "
                f"p99 {median(mode, path, 'p99_us'):7.1f} us"
            )
    for path in PATHS:
        print(
            f"  {'UDP':<10} {path:<6}  {median('udp', path, 'replies_per_second'):9,.0f} "
            f"replies/s ({WINDOW} in flight, 64 B)"
        )
    print(
        f"  bridge/raw: ping round trip {ratio('ping', 'median_us'):.2f} "
        f"(goal <= {GOALS['ping']}), UDP replies/s {ratio('udp', 'replies_per_second'):.2f} "
        f"(goal >= {GOALS['udp']}); rapid ping round trip "
        f"{ratio('rapid ping', 'median_us'):.2f}"
    )
    sys.stdout.flush()


def kernel_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, 64 << 20)
    sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, 64 << 20)
    sock.bind((TUN_V4, PORT_KERNEL))
    sock.settimeout(IDLE)
    return sock


def count_arrivals(sock: socket.socket, expected: int) -> tuple[int, float]:
    """(datagrams received, time of the last one)."""
    received, last = 0, time.perf_counter()
    try:
        while received < expected:
            sock.recv(2048)
            received += 1
            last = time.perf_counter()
    except TimeoutError:
        pass
    return received, last


def app_to_kernel(session: Session, sock: socket.socket, size: int) -> tuple[int, float]:
    packet = ip.udp_packet(APP_V4, TUN_V4, PORT_APP, PORT_KERNEL, bytes(size - 28))
    result: list[tuple[int, float]] = []
    counter = threading.Thread(target=lambda: result.append(count_arrivals(sock, PACKETS)))
    counter.start()
    start = time.perf_counter()
    left = PACKETS
    while left:
        sent = session.send_many([packet] * min(left, 256))
        left -= sent
        if not sent:
            time.sleep(0)  # the ring is full: let the driver's consumer run
    sending = time.perf_counter() - start
    counter.join()
    received, last = result[0]
    print(f"  (the application's send_many loop took {sending:.3f} s of {last - start:.3f} s)")
    return received, last - start


def raw_write(host: LinuxTunHost, sock: socket.socket, size: int) -> tuple[int, float]:
    packet = ip.udp_packet(APP_V4, TUN_V4, PORT_APP, PORT_KERNEL, bytes(size - 28))
    result: list[tuple[int, float]] = []
    counter = threading.Thread(target=lambda: result.append(count_arrivals(sock, PACKETS)))
    counter.start()
    start = time.perf_counter()
    fd, write = host.fileno(), os.write
    for _ in range(PACKETS):
        write(fd, packet)
    counter.join()
    received, last = result[0]
    return received, last - start


def kernel_to_app(session: Session, sock: socket.socket, size: int) -> tuple[int, float]:
    payload = bytes(size - 28)
    target = (APP_V4, PORT_APP)

    def blast() -> None:
        for _ in range(PACKETS):
            try:
                sock.sendto(payload, target)
            except OSError:  # ENOBUFS: the device queue is full; count it as lost
                pass

    sender = threading.Thread(target=blast)
    start = time.perf_counter()
    sender.start()
    received, last = 0, start
    while received < PACKETS:
        packets = session.receive_many(256, timeout=IDLE)
        if not packets:
            break
        for packet in packets:
            if len(packet) == size:  # not the kernel's own chatter
                received += 1
            packet.release()
        last = time.perf_counter()
    sender.join()
    return received, last - start


def figures(label: str, size: int, received: int, seconds: float) -> str:
    rate = received / seconds if seconds > 0 else 0.0
    return (
        f"{label:<34} {size:>5} B  {received:>6}/{PACKETS} received  "
        f"{rate:>9,.0f} packets/s  {rate * size * 8 / 1e6:>7.1f} Mbit/s"
    )


def bench() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    wintun = wintun_cffi.emulated("0.14", host="linux-tun")
    with wintun.create_adapter(BRIDGE_NAME, tunnel_type="Bench") as adapter:
        host = adapter.host
        assert isinstance(host, LinuxTunHost)
        host.add_address(f"{TUN_V4}/24")
        with adapter.start_session(0x400000) as session:
            responder_comparison(session)
        print("one flow each way, no responder:")
        with adapter.start_session(0x400000) as session, kernel_socket() as sock:
            for size in SIZES:
                print(
                    figures(
                        "application -> kernel (bridge)", size, *app_to_kernel(session, sock, size)
                    )
                )
                print(
                    figures("application -> kernel (raw write)", size, *raw_write(host, sock, size))
                )
                print(
                    figures(
                        "kernel -> application (bridge)", size, *kernel_to_app(session, sock, size)
                    )
                )
            print(f"driver statistics: {host.statistics.as_dict()}")
            print(f"host write errors: {host.write_errors}")
            [link] = json.loads(ip_command("-j", "-s", "link", "show", "dev", host.name))
            print(
                f"kernel: packets dropped on the way to the TUN reader: "
                f"{link['stats64']['tx']['dropped']} (its queue holds {link['txqlen']})"
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        client_main(sys.argv[2])
    elif in_fresh_namespace():
        bench()
    else:
        result = run_in_netns("-m", "tests.linux_tun.bench_bridge")
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        sys.exit(result.returncode)
