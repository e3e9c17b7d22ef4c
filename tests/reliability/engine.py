"""The stress run: several threads sending and receiving through one session at once.

App side: ``senders`` threads send (``allocate_send_packet`` + ``send``, or ``Session.send``
with ``on_full="wait"``) and ``receivers`` threads receive (``receive`` or ``receive_many``,
releasing each batch in random order). Far side: one thread delivers batches with
``Host.deliver_many`` (retrying a batch the driver dropped because the ring was full) and one
collects what the application sent. Every packet is checked: nothing lost, nothing
duplicated, each producer's order kept, every byte intact.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from wintun_cffi.constants import record_size
from wintun_cffi.errors import RingFullError

from .traffic import Rig, make_packet, parse_packet, random_size

#: The far side's producer id (the app's senders are 0..senders-1).
HOST_PRODUCER = 1000
#: A call that blocks longer than this means a hang: the run fails instead of waiting forever.
STALL = 60.0


@dataclass
class Figures:
    """What one run moved, and what went wrong (``problems`` empty means it passed)."""

    sent: int = 0
    sent_bytes: int = 0
    collected: int = 0
    delivered: int = 0
    delivered_bytes: int = 0
    received: int = 0
    dropped_batches: int = 0
    dropped_packets: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


class _Run:
    def __init__(
        self, rig: Rig, packets: int, senders: int, receivers: int, seed: int, largest: int
    ) -> None:
        self.rig = rig
        self.packets = packets
        self.senders = senders
        self.receivers = receivers
        self.seed = seed
        self.largest = largest
        self.figures = Figures()
        self.lock = threading.Lock()
        self.problems: list[str] = []
        self.delivered_done = threading.Event()
        self.sent_done = threading.Event()
        self.received_count = 0
        self.all_received = threading.Event()
        self.seen_from_host: set[int] = set()
        self.stop = threading.Event()

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 20:
                self.problems.append(text)
        self.stop.set()

    # -- app side ------------------------------------------------------------------------

    def share(self, index: int, parts: int) -> int:
        return self.packets // parts + (1 if index < self.packets % parts else 0)

    def sender(self, producer: int) -> None:
        rng = random.Random(self.seed * 7919 + producer)
        session = self.rig.session
        count = self.share(producer, self.senders)
        sent_bytes = 0
        for sequence in range(count):
            if self.stop.is_set():
                return
            size = random_size(rng, self.largest)
            packet = make_packet(producer, sequence, size)
            if rng.random() < 0.5:
                session.send(packet, on_full="wait", timeout=STALL)
            else:
                deadline = time.monotonic() + STALL
                while True:
                    try:
                        buffer = session.allocate_send_packet(size)
                        break
                    except RingFullError:
                        if time.monotonic() > deadline:
                            raise TimeoutError("no room in the ring") from None
                        time.sleep(0.0005)
                buffer.data[:] = packet
                buffer.send()
            sent_bytes += size
        with self.lock:
            self.figures.sent += count
            self.figures.sent_bytes += sent_bytes

    def receiver(self, index: int) -> None:
        rng = random.Random(self.seed * 104729 + index)
        session = self.rig.session
        last = -1  # this receiver's packets come in ring order: sequences only grow
        expected = self.packets
        while not self.stop.is_set():
            with self.lock:
                if self.received_count >= expected:
                    return
            if rng.random() < 0.5:
                batch = session.receive_many(rng.randint(1, 16), timeout=0.05)
            else:
                try:
                    batch = [session.receive(timeout=0.05)]
                except TimeoutError:
                    batch = []
            sequences = []
            for packet in batch:
                producer, sequence = parse_packet(packet.data)
                if producer != HOST_PRODUCER:
                    self.problem(f"receiver {index}: packet of unknown producer {producer}")
                sequences.append(sequence)
            rng.shuffle(batch)
            for packet in batch:
                packet.release()
            for sequence in sequences:
                if sequence <= last:
                    self.problem(f"receiver {index}: {sequence} after {last}: out of order")
                last = sequence
            with self.lock:
                duplicates = self.seen_from_host.intersection(sequences)
                self.seen_from_host.update(sequences)
                self.received_count += len(sequences)
                if self.received_count >= expected:
                    self.all_received.set()
            if duplicates:
                self.problem(f"receiver {index}: received twice: {sorted(duplicates)[:5]}")

    # -- far side ------------------------------------------------------------------------

    def deliverer(self) -> None:
        rng = random.Random(self.seed)
        host = self.rig.host
        sequence = 0
        while sequence < self.packets and not self.stop.is_set():
            # A batch larger than the ring could never be written: keep it to half the ring.
            wanted = min(rng.randint(1, 8), self.packets - sequence)
            batch: list[bytes] = []
            room = self.rig.session.capacity // 2
            while len(batch) < wanted:
                size = random_size(rng, self.largest)
                if batch and record_size(size) > room:
                    break
                room -= record_size(size)
                batch.append(make_packet(HOST_PRODUCER, sequence + len(batch), size))
            batch_size = len(batch)
            pause = 0.0001
            while not host.deliver_many(batch):  # the ring was full: the whole batch dropped
                self.figures.dropped_batches += 1
                self.figures.dropped_packets += batch_size
                if self.stop.is_set():
                    return
                time.sleep(pause)
                pause = min(pause * 2, 0.002)
            sequence += batch_size
            self.figures.delivered += batch_size
            self.figures.delivered_bytes += sum(map(len, batch))
        self.delivered_done.set()

    def collector(self) -> None:
        host = self.rig.host
        expected_next = [0] * self.senders
        collected = 0
        idle_since = time.monotonic()
        while collected < self.packets and not self.stop.is_set():
            packets = host.collect()
            if not packets:
                if time.monotonic() - idle_since > STALL:
                    self.problem(f"far side: nothing arrived for {STALL} s")
                    return
                time.sleep(0.0005)
                continue
            idle_since = time.monotonic()
            for packet in packets:
                producer, sequence = parse_packet(packet)
                if not 0 <= producer < self.senders:
                    self.problem(f"far side: packet of unknown producer {producer}")
                    return
                if sequence != expected_next[producer]:
                    self.problem(
                        f"far side: producer {producer} sent {sequence}, expected "
                        f"{expected_next[producer]} (lost, duplicated or reordered)"
                    )
                    return
                expected_next[producer] += 1
            collected += len(packets)
        self.figures.collected = collected


def run_stress(
    rig: Rig,
    packets: int,
    senders: int = 3,
    receivers: int = 3,
    seed: int = 0,
    largest: int = 0xFFFF,
) -> Figures:
    """Push ``packets`` packets each way through ``rig``; see the module documentation."""
    run = _Run(rig, packets, senders, receivers, seed, largest)
    threads: list[tuple[str, threading.Thread]] = []

    def guarded(name: str, target: object, *args: int) -> None:
        def body() -> None:
            try:
                target(*args)  # type: ignore[operator]
            except BaseException as error:  # reported, and stops the others
                run.problem(f"{name}: {type(error).__name__}: {error}")

        threads.append((name, threading.Thread(target=body, name=name, daemon=True)))

    for producer in range(senders):
        guarded(f"sender-{producer}", run.sender, producer)
    for index in range(receivers):
        guarded(f"receiver-{index}", run.receiver, index)
    guarded("deliverer", run.deliverer)
    guarded("collector", run.collector)
    overflow_before = rig.host.capture_overflow
    started = time.perf_counter()
    for _, thread in threads:
        thread.start()
    budget = time.monotonic() + STALL + packets / 200  # generous: a slow machine still ends
    for name, thread in threads:
        thread.join(max(0.0, budget - time.monotonic()))
        if thread.is_alive():
            run.problem(f"{name} did not end: hang")
            run.stop.set()
    run.figures.seconds = time.perf_counter() - started
    figures = run.figures
    figures.received = run.received_count
    if rig.host.capture_overflow != overflow_before:
        run.problems.append("far side: the host's capture buffer overflowed (packets lost)")
    if not run.problems:
        if figures.collected != packets:
            run.problems.append(f"far side collected {figures.collected} of {packets}")
        if len(run.seen_from_host) != packets or figures.received != packets:
            run.problems.append(
                f"app received {figures.received} ({len(run.seen_from_host)} distinct) of "
                f"{packets} delivered"
            )
    figures.problems = run.problems
    return figures
