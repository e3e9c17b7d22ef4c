"""``python -m wintun_cffi``: the example program, library information and benchmarks."""

from __future__ import annotations

import argparse
import sys

from .constants import API_GENERATIONS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wintun_cffi",
        description="Wintun's example program, library information and benchmarks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def backend_options(command: argparse.ArgumentParser) -> None:
        default = "native" if sys.platform == "win32" else "emulator"
        command.add_argument("--backend", choices=("native", "emulator", "linux-tun"),
                             default=default,
                             help=f"where Wintun comes from (default here: {default}); "
                             "linux-tun: the emulator with the Linux kernel on the far side "
                             "(root), in a network namespace of its own")
        command.add_argument("--dll", help="path of wintun.dll (native backend)")
        command.add_argument("--api", choices=API_GENERATIONS, default="0.14",
                             help="API generation of the emulator (default 0.14)")

    example = commands.add_parser("example", help="run Wintun's example program")
    backend_options(example)
    example.add_argument("--count", type=int, help="stop after this many echo replies")
    example.add_argument("--duration", type=float, help="stop after this many seconds")
    example.add_argument("--no-netns", action="store_true",
                         help="linux-tun: use the current network namespace instead of a new one")

    info = commands.add_parser("info", help="show the backend, library and adapters")
    backend_options(info)
    info.add_argument("--pool", default="WireGuard", help="pool to enumerate (pool era)")

    bench = commands.add_parser("bench", help="measure packet throughput")
    bench.add_argument("--json", action="store_true", help="also print the results as JSON")
    bench.add_argument("--sizes", default="64,1500,65535", help="packet sizes, comma-separated")
    bench.add_argument("--packets", type=int, default=50000, help="packets per measurement")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "example":
        from .example import main as example_main

        if args.backend == "linux-tun" and not args.no_netns:
            from .example import rerun_in_new_network_namespace

            return rerun_in_new_network_namespace(argv if argv is not None else sys.argv[1:])
        return example_main(args.backend, args.dll, args.api, args.count, args.duration)
    if args.command == "info":
        from .info import main as info_main

        return info_main(args.backend, args.dll, args.api, args.pool)
    from .bench import main as bench_main

    sizes = [int(size) for size in args.sizes.split(",")]
    return bench_main(sizes, args.packets, args.json)


if __name__ == "__main__":
    sys.exit(main())
