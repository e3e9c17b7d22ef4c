"""``python -m wintun_cffi``: the example program, library information, benchmarks, the
conformance suite and the installer of the official ``wintun.dll``."""

from __future__ import annotations

import argparse
import sys

from ..api import Wintun
from ..constants import API_GENERATIONS
from ..errors import AccessDeniedError, LibraryLoadError, WintunError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wintun_cffi",
        description="Wintun's example program, library information, benchmarks, the "
        "conformance suite and the official wintun.dll's installer.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def backend_options(command: argparse.ArgumentParser) -> None:
        default = "native" if sys.platform == "win32" else "emulator"
        command.add_argument(
            "--backend",
            choices=("native", "emulator", "linux-tun"),
            default=default,
            help=f"where Wintun comes from (default here: {default}); "
            "linux-tun: the emulator with the Linux kernel on the far side "
            "(root), in a network namespace of its own",
        )
        command.add_argument("--dll", help="path of wintun.dll (native backend)")
        command.add_argument(
            "--api",
            choices=API_GENERATIONS,
            default="0.14",
            help="API generation of the emulator (default 0.14)",
        )

    example = commands.add_parser("example", help="run Wintun's example program")
    backend_options(example)
    example.add_argument("--count", type=int, help="stop after this many echo replies")
    example.add_argument("--duration", type=float, help="stop after this many seconds")
    example.add_argument(
        "--pcap",
        metavar="FILE",
        help="record the session's packets in FILE as pcapng (a named pipe works too)",
    )
    example.add_argument(
        "--no-netns",
        action="store_true",
        help="linux-tun: use the current network namespace instead of a new one",
    )

    info = commands.add_parser("info", help="show the backend, library and adapters")
    backend_options(info)
    info.add_argument("--pool", default="WireGuard", help="pool to enumerate (pool era)")

    install = commands.add_parser(
        "install-dll",
        help="install the official wintun.dll for this user",
        description="Download the official Wintun release, check its SHA-256, and put the "
        "wintun.dll for this Python's architecture where wintun_cffi.load() finds it.",
    )
    install.add_argument(
        "--from",
        dest="archive",
        metavar="ZIP",
        help="install from this copy of the release archive (offline)",
    )
    install.add_argument(
        "--url",
        default=None,
        metavar="URL",
        help="download from this mirror (the archive must still be the "
        "official one, by its SHA-256)",
    )

    conformance = commands.add_parser(
        "conformance",
        help="run the conformance suite on backends of your choice",
        description="Run the installed conformance suite on the backends named; arguments "
        "after -- go to pytest. Exit status: 0 if no test failed, 1 if one did, 2 for bad "
        "input.",
    )
    conformance.add_argument(
        "--backend",
        metavar="NAME[,NAME...]",
        help="emulator-0.14, emulator-pool, emulator-seed, double-0.14, double-pool, "
        "double-seed, windows-native, linux-tun-0.14, linux-tun-pool, or module:factory for a "
        "backend of your own (default: every built-in one; those that cannot run here are "
        "skipped with the reason)",
    )
    conformance.add_argument(
        "--dll",
        metavar="PATH",
        help="windows-native: this wintun.dll (default: where wintun_cffi.load() looks)",
    )
    conformance.add_argument(
        "--sha256", metavar="HEX", help="windows-native: refuse the DLL unless its SHA-256 is this"
    )
    conformance.add_argument(
        "--junit-xml", metavar="FILE", help="also write the results as JUnit XML to FILE"
    )
    conformance.add_argument(
        "pytest_args",
        nargs="*",
        metavar="-- PYTEST_ARGS",
        help="passed to pytest as they are (e.g. -- -x -k sessions)",
    )

    bench = commands.add_parser("bench", help="measure what a packet costs on each path")
    bench.add_argument(
        "--json",
        action="store_true",
        help="print exactly one JSON document on stdout (the table not at all)",
    )
    bench.add_argument("--sizes", default="1500,65535", help="packet sizes, comma-separated")
    bench.add_argument(
        "--packets", type=int, default=50000, help="packets per run (a tenth above 1500 bytes)"
    )
    bench.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="runs of each measurement (best and median are reported)",
    )
    return parser


def open_backend(backend: str, dll: str | None, api: str) -> Wintun:
    """The :class:`~wintun_cffi.api.Wintun` a command runs on; :class:`SystemExit` with a
    one-line reason if the native library cannot be loaded."""
    from .. import emulated, load

    if backend != "native":
        host = "linux-tun" if backend == "linux-tun" else "memory"
        return emulated(api, host=host)  # type: ignore[arg-type]
    try:
        return load(dll)
    except (FileNotFoundError, LibraryLoadError) as error:
        if sys.platform != "win32":
            hint = (
                "wintun.dll runs on Windows only: here use --backend emulator (or "
                "linux-tun as root), or --dll with a library exporting Wintun's ABI"
            )
        else:
            hint = "install the official wintun.dll with: python -m wintun_cffi install-dll"
        raise SystemExit(f"error: {error}\n{hint}") from None


def failure_line(error: WintunError) -> str:
    """The one line a command prints for a Wintun call that failed: the error with its
    Wintun log, and for access denied what to do about it."""
    text = " ".join(str(error).split())  # one line, whatever the log lines hold
    if isinstance(error, AccessDeniedError):
        text += "; run as administrator (from an elevated prompt)"
    return f"error: {text}"


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns the exit code (130 after Ctrl+C). A failed Wintun call ends
    the command with one line on standard error (:func:`failure_line`) and exit code 1."""
    args = _parser().parse_args(argv)
    try:
        return _run(args, sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        return 130
    except WintunError as error:
        raise SystemExit(failure_line(error)) from None
    except PermissionError as error:  # e.g. linux-tun --no-netns without root
        raise SystemExit(f"error: {error}") from None


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    if args.command == "example":
        from .example import main as example_main

        if args.backend == "linux-tun" and not args.no_netns:
            from emulator.netns import unavailable_reason

            from .example import rerun_in_new_network_namespace

            reason = unavailable_reason()
            if reason is not None:
                raise SystemExit(f"error: --backend linux-tun cannot run here: {reason}")
            return rerun_in_new_network_namespace(argv)
        wintun = open_backend(args.backend, args.dll, args.api)
        return example_main(wintun, args.backend, args.count, args.duration, pcap=args.pcap)
    if args.command == "info":
        from .info import main as info_main

        wintun = open_backend(args.backend, args.dll, args.api)
        return info_main(wintun, args.backend, args.pool)
    if args.command == "install-dll":
        from . import installer

        return installer.main(
            args.archive, args.url or installer.OFFICIAL_URL, sys.stdout, sys.stderr
        )
    if args.command == "conformance":
        from ..conformance.command import main as conformance_main

        return conformance_main(
            args.backend, args.dll, args.sha256, args.junit_xml, args.pytest_args
        )
    from .bench import main as bench_main

    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        raise SystemExit(
            f"--sizes takes whole numbers separated by commas, not {args.sizes!r}"
        ) from None
    if args.repeats < 1 or args.packets < 1:
        raise SystemExit("--repeats and --packets must be at least 1")
    return bench_main(sizes, args.packets, args.json, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
