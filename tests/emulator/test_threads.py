"""Many threads through one emulated session: nothing lost, duplicated or reordered."""

from __future__ import annotations

import functools
import struct
import threading
import time
from collections.abc import Callable

from emulator import Emulator
from wintun_cffi import ip
from wintun_cffi.errors import NoMoreItemsError, RingFullError

from .conftest import CAP

SENDERS = 4
RECEIVERS = 2
PER_SENDER = 300
DELIVERED = 1200
BATCH = 25
DEADLINE = 30.0  # a bound that ends a broken run, never reached by a working one


def tagged(producer: int, sequence: int) -> bytes:
    return ip.udp_packet(
        "10.1.0.2",
        "10.1.0.1",
        1000 + producer,
        9,
        struct.pack("!II", producer, sequence) + bytes(sequence % 50),
    )


def tag_of(packet: bytes) -> tuple[int, int]:
    producer, sequence = struct.unpack_from("!II", packet, 28)
    return int(producer), int(sequence)


def test_concurrent_senders_and_receivers() -> None:
    wintun = Emulator("0.14")
    adapter, _ = wintun.create_adapter("Threads", tunnel_type="Test")
    host = wintun.host(adapter)
    session = wintun.start_session(adapter, CAP)
    end = time.monotonic() + DEADLINE
    errors: list[BaseException] = []
    received: list[list[tuple[int, int]]] = [[] for _ in range(RECEIVERS)]
    host_seen: list[tuple[int, int]] = []
    delivery_done = threading.Event()

    def guard(target: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                errors.append(error)

        return threading.Thread(target=run)

    def sender(producer: int) -> None:
        for sequence in range(PER_SENDER):
            packet = tagged(producer, sequence)
            while True:
                try:
                    view, token = wintun.allocate_send_packet(session, len(packet))
                    break
                except RingFullError:
                    assert time.monotonic() < end, "the driver never made room"
                    time.sleep(0.0005)  # no event signals free space; the C API has none
            view[:] = packet
            wintun.send_packet(session, token)

    def receiver(index: int) -> None:
        while True:
            try:
                view, token = wintun.receive_packet(session)
            except NoMoreItemsError:
                if delivery_done.is_set() and sum(map(len, received)) >= DELIVERED:
                    return
                assert time.monotonic() < end, "deliveries stopped arriving"
                wintun.wait_read_event(session, 0.05)
                continue
            received[index].append(tag_of(bytes(view)))
            wintun.release_receive_packet(session, token)

    def system() -> None:
        sequence = 0
        while sequence < DELIVERED:
            batch = [tagged(9, s) for s in range(sequence, min(sequence + BATCH, DELIVERED))]
            if host.deliver_many(batch):
                sequence += len(batch)
            else:
                assert time.monotonic() < end, "the receivers never made room"
                time.sleep(0.0005)
        delivery_done.set()

    def collector() -> None:
        expected = SENDERS * PER_SENDER
        while len(host_seen) < expected:
            try:
                packet = host.receive(timeout=max(0.0, end - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"only {len(host_seen)} of {expected} arrived") from None
            host_seen.append(tag_of(packet))

    threads = [guard(functools.partial(sender, p)) for p in range(SENDERS)]
    threads += [guard(functools.partial(receiver, i)) for i in range(RECEIVERS)]
    threads += [guard(system), guard(collector)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE + 5)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors

    # Everything the application sent reached the system once, in per-producer order.
    assert len(host_seen) == SENDERS * PER_SENDER
    for producer in range(SENDERS):
        assert [s for p, s in host_seen if p == producer] == list(range(PER_SENDER))
    # Everything the system delivered was received exactly once.
    got = sorted(tag for part in received for tag in part)
    assert got == [(9, s) for s in range(DELIVERED)]
    for part in received:  # each receiver saw its share in ring order
        sequences = [s for _, s in part]
        assert sequences == sorted(sequences)
    stats = host.statistics
    assert stats.in_packets == SENDERS * PER_SENDER and stats.out_packets == DELIVERED
    assert stats.in_discards == stats.in_errors == 0
    wintun.end_session(session)
    wintun.close_adapter(adapter)
