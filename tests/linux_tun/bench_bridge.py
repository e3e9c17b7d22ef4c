"""Throughput of the emulator bridged to the Linux kernel: one UDP flow each way.

Run as root: ``python -m tests.linux_tun.bench_bridge`` (it re-runs itself in a fresh network
namespace). Not a test: it prints figures. Sizes are whole IP packets (20 + 8 + payload).

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
import socket
import subprocess
import sys
import threading
import time

import wintun_cffi
from emulator.linux_tun import LinuxTunHost, ip_command
from wintun_cffi import Session, ip

from .netns import run_in_netns
from .scenarios import APP_V4, TUN_V4, in_fresh_namespace

PACKETS = 20000
SIZES = (64, 1400)
PORT_APP, PORT_KERNEL = 4000, 5000
# <asm-generic/socket.h>: buffer sizes above net.core.*mem_max, for root (Python lacks them).
_SO_SNDBUFFORCE, _SO_RCVBUFFORCE = 32, 33
#: How long a receiver waits for more before it calls the run finished.
IDLE = 0.5


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
    with wintun.create_adapter("Bench", tunnel_type="Bench") as adapter:
        host = adapter.host
        assert isinstance(host, LinuxTunHost)
        host.add_address(f"{TUN_V4}/24")
        with adapter.start_session(0x400000) as session, kernel_socket() as sock:
            for size in SIZES:
                print(figures("application -> kernel (bridge)", size,
                              *app_to_kernel(session, sock, size)))
                print(figures("application -> kernel (raw write)", size,
                              *raw_write(host, sock, size)))
                print(figures("kernel -> application (bridge)", size,
                              *kernel_to_app(session, sock, size)))
            print(f"driver statistics: {host.statistics.as_dict()}")
            print(f"host write errors: {host.write_errors}")
            [link] = json.loads(ip_command("-j", "-s", "link", "show", "dev", host.name))
            print(f"kernel: packets dropped on the way to the TUN reader: "
                  f"{link['stats64']['tx']['dropped']} (its queue holds {link['txqlen']})")


if __name__ == "__main__":
    if in_fresh_namespace():
        bench()
    else:
        result = run_in_netns("-m", "tests.linux_tun.bench_bridge")
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        sys.exit(result.returncode)
