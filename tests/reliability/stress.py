"""The long stress run: ``python -m tests.reliability.stress [options]``.

Pushes ``--packets`` packets each way through one session per backend with several sending
and receiving threads (see :mod:`tests.reliability.engine`), prints throughput and counts, and
exits 1 if any packet was lost, duplicated, reordered or damaged, or a thread hung.
"""

from __future__ import annotations

import argparse
import sys

from wintun_cffi.conformance.double.build import double_available

from .engine import run_stress
from .traffic import BACKENDS, NO_DOUBLE, DoubleBuilds, open_rig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability.stress",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--backend", choices=(*BACKENDS, "all"), default="all")
    parser.add_argument(
        "--packets",
        type=int,
        default=1_000_000,
        help="packets per direction per backend (default 1,000,000)",
    )
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--receivers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--capacity",
        type=lambda text: int(text, 0),
        default=0x400000,
        help="ring capacity (default 0x400000)",
    )
    parser.add_argument(
        "--largest", type=int, default=0xFFFF, help="largest packet size (default 0xFFFF)"
    )
    args = parser.parse_args(argv)
    if args.packets < 1 or args.senders < 1 or args.receivers < 1:
        parser.error("--packets, --senders and --receivers must be positive")
    if not 28 <= args.largest <= 0xFFFF:
        parser.error("--largest must be 28..65535")
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    builds = DoubleBuilds()
    failed = False
    try:
        for backend in backends:
            if backend == "double" and not double_available():
                print(f"{backend}: skipped ({NO_DOUBLE})")
                continue
            with open_rig(backend, args.capacity, builds) as rig:
                figures = run_stress(
                    rig, args.packets, args.senders, args.receivers, args.seed, args.largest
                )
            seconds = max(figures.seconds, 1e-9)
            moved = figures.sent + figures.received
            octets = figures.sent_bytes + figures.delivered_bytes
            print(
                f"{backend}: {args.packets} packets each way, {args.senders} senders, "
                f"{args.receivers} receivers, seed {args.seed}, capacity {args.capacity:#x}\n"
                f"  sent {figures.sent} ({figures.sent_bytes} bytes), far side collected "
                f"{figures.collected}\n"
                f"  delivered {figures.delivered} ({figures.delivered_bytes} bytes), app "
                f"received {figures.received}; dropped batches {figures.dropped_batches} "
                f"({figures.dropped_packets} packets, all retried)\n"
                f"  {seconds:.1f} s: {moved / seconds:,.0f} packets/s, "
                f"{octets / seconds / 1e6:,.1f} MB/s (both directions)"
            )
            for problem in figures.problems:
                print(f"  PROBLEM: {problem}")
            failed = failed or bool(figures.problems)
    finally:
        builds.close()
    print("FAILED" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
