"""``python -m wintun_cffi example``: the behaviour of Wintun's example program, in Python.

Creates adapter ``Demo`` (tunnel type / pool ``Example``, a fixed GUID), assigns
``10.6.7.7/24`` to it, starts a 4 MiB session, then runs two threads: one prints every packet
it receives, the other sends an ICMP echo request from 10.6.7.8 to 10.6.7.7 every second
(dropped silently when the ring is full). The system on the far side answers the requests: the
Windows network stack with the real driver, the emulator's echo responder elsewhere.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from .. import ip, netconfig
from ..api import Wintun
from ..constants import LOG_ERR, LOG_INFO
from ..errors import SessionEndedError, WintunError
from ..session import Session

ADAPTER_NAME = "Demo"
TUNNEL_TYPE = "Example"
ADAPTER_GUID = uuid.UUID("deadbabe-cafe-beef-0123-456789abcdef")
ADAPTER_ADDRESS = "10.6.7.7/24"
APPLICATION_ADDRESS = "10.6.7.8"
SESSION_CAPACITY = 0x400000
#: Signals that stop the example cleanly, as Ctrl+C does (those this platform has).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
#: Set by :func:`rerun_in_new_network_namespace` for its child: the parent's process ID.
PARENT_VARIABLE = "WINTUN_CFFI_EXAMPLE_PARENT"


class ExampleLog:
    """Log lines in the example's shape: timestamp, ``[+]``/``[-]``/``[!]``, message."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def __call__(self, level: int, timestamp: datetime.datetime | None, message: str) -> None:
        mark = "+" if level == LOG_INFO else "!" if level == LOG_ERR else "-"
        when = (timestamp or datetime.datetime.now(datetime.timezone.utc)).astimezone()
        with self._lock:
            print(
                f"{when:%Y-%m-%d %H:%M:%S}.{when.microsecond // 100:04d} [{mark}] {message}",
                file=self._out,
                flush=True,
            )

    def info(self, message: str) -> None:
        """Log an info line of the example's own."""
        self(LOG_INFO, None, message)

    def error(self, message: str) -> None:
        """Log an error line of the example's own."""
        self(LOG_ERR, None, message)


def _receive_loop(session: Session, log: ExampleLog, replies: threading.Semaphore) -> None:
    try:
        for packet in session:
            with packet:
                description = ip.describe(packet.data)
            log.info(f"Received {description}")
            if description.startswith("IPv4 ICMP echo reply"):
                replies.release()
    except SessionEndedError:
        log.error("Adapter is terminating")
    except WintunError as error:
        log.error(f"Packet read failed: {error}")


def _send_loop(session: Session, log: ExampleLog, stop: threading.Event) -> None:
    sequence = 0
    while not stop.is_set():
        sequence += 1
        request = ip.icmp_echo(
            APPLICATION_ADDRESS,
            ADAPTER_ADDRESS.split("/")[0],
            identifier=0x5757,
            sequence=sequence,
            payload=b"wintun-cffi example",
        )
        try:
            if session.send(request, on_full="drop"):
                log.info(f"Sent {ip.describe(request)}")
        except WintunError as error:
            if not stop.is_set():
                log.error(f"Packet write failed: {error}")
            return
        stop.wait(1.0)


@contextmanager
def _stop_signals_as_a_flag() -> Iterator[list[int]]:
    """Inside the block, Ctrl+C, SIGTERM and SIGHUP (:data:`STOP_SIGNALS`) append their
    number to the list it yields instead of raising or killing the process (main thread
    only; elsewhere the list stays empty).

    A KeyboardInterrupt raised inside the pure-Python code of threading's locks (the wait
    for a reply) can leave a lock half released, and the example would end with a traceback
    instead of cleaning up; the loop polls the flag instead.
    """
    interrupted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return
    previous = {
        signum: signal.signal(signum, lambda number, frame: interrupted.append(number))
        for signum in STOP_SIGNALS
    }
    try:
        yield interrupted
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_example(
    wintun: Wintun,
    log: ExampleLog,
    *,
    count: int | None = None,
    duration: float | None = None,
    pcap: str | None = None,
) -> int:
    """Run the example on ``wintun`` until ``count`` replies, ``duration`` seconds, Ctrl+C,
    SIGTERM or SIGHUP (each of those, even while it starts, ends it cleanly); with ``pcap``,
    record the session's packets in that file as pcapng."""
    with _stop_signals_as_a_flag() as interrupted:
        return _run_example(wintun, log, interrupted, count, duration, pcap)


def _run_example(
    wintun: Wintun,
    log: ExampleLog,
    interrupted: list[int],
    count: int | None,
    duration: float | None,
    pcap: str | None,
) -> int:
    wintun.set_logger(log)
    if wintun.api == "0.14":
        adapter = wintun.create_adapter(ADAPTER_NAME, tunnel_type=TUNNEL_TYPE, guid=ADAPTER_GUID)
    else:
        adapter = wintun.create_adapter(ADAPTER_NAME, pool=TUNNEL_TYPE, guid=ADAPTER_GUID)
    with adapter:
        major, minor = wintun.running_driver_version
        log.info(f"Wintun v{major}.{minor} loaded")
        netconfig.wait_for_interface(adapter)
        netconfig.add_address(adapter, ADAPTER_ADDRESS)
        with adapter.start_session(SESSION_CAPACITY) as session:
            capture = None if pcap is None else session.capture(pcap)
            if capture is not None:
                log.info(f"Capturing the session's packets to {pcap}")
            replies = threading.Semaphore(0)
            stop = threading.Event()
            receiver = threading.Thread(
                target=_receive_loop, args=(session, log, replies), name="receiver", daemon=True
            )
            sender = threading.Thread(
                target=_send_loop, args=(session, log, stop), name="sender", daemon=True
            )
            log.info("Launching threads and mangling packets...")
            receiver.start()
            sender.start()
            deadline_timer = None
            if duration is not None:
                deadline_timer = threading.Timer(duration, stop.set)
                deadline_timer.start()
            received = 0
            while not stop.is_set() and not interrupted:
                if replies.acquire(timeout=0.2):
                    received += 1
                    if count is not None and received >= count:
                        break
                if not receiver.is_alive():
                    break
            if deadline_timer is not None:
                deadline_timer.cancel()
            if interrupted:
                log.info("Cancelling")
            # Clean up in order: threads, then the session, then the adapter.
            stop.set()
            sender.join()
            session.close()
            receiver.join()
            if capture is not None:  # closed with the session, every record written
                log.info(
                    f"Captured {capture.written} packets to {pcap} "
                    f"({capture.dropped} records dropped)"
                )
        log.info("Session ended, closing the adapter")
    return 0


def main(
    wintun: Wintun,
    backend: str,
    count: int | None,
    duration: float | None,
    out: TextIO | None = None,
    pcap: str | None = None,
) -> int:
    """The ``example`` command on ``wintun`` (from ``--backend`` ``backend``), printing to
    ``out`` (default: standard output as it is when called), recording the session in
    ``pcap`` if given."""
    log = ExampleLog(sys.stdout if out is None else out)
    if backend == "native":
        log.info(f"Using wintun.dll from {wintun.path} (API {wintun.api})")
    elif backend == "linux-tun":
        log.info(
            f"Using the wintun-cffi emulator (API {wintun.api}) with the Linux kernel on "
            "the far side, through a TUN interface"
        )
    else:
        log.info(f"Using the wintun-cffi emulator (API {wintun.api}): no real driver involved")
    parent = os.environ.get(PARENT_VARIABLE)
    if parent is not None and sys.platform.startswith("linux"):
        from emulator.netns import end_with_parent

        # The re-run child: SIGTERM when the parent ends, however it ends (even SIGKILL).
        if not end_with_parent(int(parent), signal.SIGTERM):
            log.error("The parent process is gone, not starting")
            return 1
    return run_example(wintun, log, count=count, duration=duration, pcap=pcap)


def rerun_in_new_network_namespace(argv: list[str]) -> int:
    """Run this command again inside a new network namespace (``unshare --net``), so the TUN
    interface and every packet stay there and vanish with it; its exit code.

    Ctrl+C, SIGTERM and SIGHUP to this process are passed on to the child, which cleans up
    and exits, and this one waits for it instead of dying with a traceback. The child ends
    itself if this process dies without passing anything on (SIGKILL).
    """
    import subprocess

    from emulator.netns import namespace_command

    # unshare executes the command in its own place: the child's parent is this process.
    child = subprocess.Popen(
        namespace_command([sys.executable, "-m", "wintun_cffi", *argv, "--no-netns"]),
        env=dict(os.environ, **{PARENT_VARIABLE: str(os.getpid())}),
    )

    def pass_on(signum: int, frame: object) -> None:
        if child.returncode is None:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, pass_on) for signum in STOP_SIGNALS}
    try:
        return child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
