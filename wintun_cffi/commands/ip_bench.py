"""What building or answering one packet costs with :mod:`wintun_cffi.ip`, measured.

``python -m wintun_cffi.commands.ip_bench [SIZE ...]`` prints a table; :func:`ip_rows` gives the rows
(the ``bench`` command's :class:`~wintun_cffi.commands.timing.Row`: nanoseconds per packet of each run,
best and median) for that command to show beside its own. Each run handles a batch of packets in a loop,
as an application does: the convenience helpers (addresses parsed per packet, a new packet
made) next to the fast path (addresses parsed once; an echo request answered in its own
buffer). Packets are whole IP packets of the given size.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from .. import ip
from .timing import Row

_clock = time.perf_counter
SOURCE, DESTINATION = "10.6.7.8", "10.6.7.7"
#: Memory the in-place rows may fill with fresh requests per run.
_BUFFER_BYTES = 16 << 20


def _timed(
    name: str,
    size: int,
    repeats: int,
    count: int,
    run: Callable[[], None],
    prepare: Callable[[], None] | None = None,
) -> Row:
    """``run()`` handles ``count`` packets; time it ``repeats`` times, ``prepare`` untimed."""
    row = Row(name, size)
    for _ in range(repeats):
        if prepare is not None:
            prepare()
        start = _clock()
        run()
        row.samples.append((_clock() - start) / count * 1e9)
    return row


def ip_rows(size: int, repeats: int = 5, packets: int = 2000) -> list[Row]:
    """The rows at ``size`` bytes (an ICMP echo request, or UDP, of that IP size)."""
    if not 48 <= size <= 0xFFFF:
        raise ValueError(f"size must be 48 to 65535 (an ICMPv6 echo fits), not {size}")
    count = max(1, min(packets, _BUFFER_BYTES // size))
    payload = bytes(size - 28)
    builder = ip.PacketBuilder(SOURCE, DESTINATION)
    request = builder.icmp_echo(identifier=1, sequence=1, payload=payload)
    request6 = ip.icmp_echo(
        "fd00::8", "fd00::7", identifier=1, sequence=1, payload=bytes(size - 48)
    )
    packets_range = range(count)
    rows = []

    def each(function: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in packets_range:
                function()

        return run

    rows.append(
        _timed(
            "ip convenience echo_reply_for",
            size,
            repeats,
            count,
            each(lambda: ip.echo_reply_for(request)),
        )
    )
    rows.append(
        _timed(
            "ip convenience icmp_echo",
            size,
            repeats,
            count,
            each(
                lambda: ip.icmp_echo(SOURCE, DESTINATION, identifier=1, sequence=1, payload=payload)
            ),
        )
    )
    rows.append(
        _timed(
            "ip convenience udp_packet",
            size,
            repeats,
            count,
            each(lambda: ip.udp_packet(SOURCE, DESTINATION, 5000, 5001, payload)),
        )
    )
    rows.append(
        _timed(
            "ip fast PacketBuilder.icmp_echo",
            size,
            repeats,
            count,
            each(lambda: builder.icmp_echo(identifier=1, sequence=1, payload=payload)),
        )
    )
    rows.append(
        _timed(
            "ip fast PacketBuilder.udp",
            size,
            repeats,
            count,
            each(lambda: builder.udp(5000, 5001, payload)),
        )
    )
    for name, packet, options in (
        ("ip fast echo_reply_in_place IPv4", request, {}),
        ("ip fast echo_reply_in_place IPv6", request6, {}),
        ("ip fast echo_reply_in_place verify", request, {"verify": True}),
    ):
        rows.append(_in_place(name, size, repeats, count, packet, options))
    return rows


def _in_place(
    name: str, size: int, repeats: int, count: int, request: bytes, options: dict[str, bool]
) -> Row:
    """Answer ``count`` requests, each in its own slice of one buffer (as the views of a
    received batch); the buffer is refilled with requests between runs (untimed)."""
    buffer = bytearray(len(request) * count)
    whole = memoryview(buffer)
    views = [whole[i * len(request) : (i + 1) * len(request)] for i in range(count)]
    requests = request * count
    answer = ip.echo_reply_in_place
    verify = options.get("verify", False)

    def prepare() -> None:
        whole[:] = requests

    def run() -> None:
        for view in views:
            answer(view, verify=verify)

    return _timed(name, size, repeats, count, run, prepare)


def main(argv: list[str]) -> int:
    """Print the rows at each size of ``argv`` (default 64, 1500 and 65535 bytes)."""
    sizes = [int(arg) for arg in argv] or [64, 1500, 65535]
    print(f"{'measurement':40} {'bytes':>6} {'best ns':>9} {'median ns':>10}")
    for size in sizes:
        for row in ip_rows(size):
            print(f"{row.name:40} {row.size:6} {row.best:9,.0f} {row.median:10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
