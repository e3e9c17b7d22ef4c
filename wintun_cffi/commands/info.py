"""``python -m wintun_cffi info``: what this machine's Wintun is."""

from __future__ import annotations

import sys
from typing import TextIO

from ..api import Adapter, Wintun
from ..errors import NotSupportedError, WintunError

#: What each ``--backend`` choice is, as ``info`` prints it.
BACKEND_DESCRIPTIONS = {
    "native": "wintun.dll (or a library exporting its ABI) through cffi",
    "emulator": "the pure-Python emulator",
    "linux-tun": "the emulator, with the Linux kernel on the far side through a TUN interface",
}


def describe(wintun: Wintun, pool: str, out: TextIO, backend: str = "") -> None:
    """Print the backend, library, API generation, driver version and adapters; ``backend``
    is the ``--backend`` choice, printed with what it means."""
    kind = type(wintun.backend).__name__
    label = f"{backend} ({BACKEND_DESCRIPTIONS[backend]})" if backend else kind
    print(f"backend:        {label}", file=out)
    print(f"library:        {wintun.path or '(none: pure-Python emulator)'}", file=out)
    print(f"API generation: {wintun.api}", file=out)
    try:
        major, minor = wintun.running_driver_version
        print(f"driver:         {major}.{minor} running", file=out)
    except WintunError as error:
        if wintun.path is None:  # the emulator: its driver loads with the first adapter
            print("driver:         not loaded (the emulator loads it with an adapter)", file=out)
        else:
            print(f"driver:         not running ({error})", file=out)
    print("backends here:", file=out)
    for name, reason in backend_availability().items():
        print(f"  {name:<10}{'works' if reason is None else 'not here: ' + reason}", file=out)
    if wintun.api == "0.14":
        print("adapters:       (Wintun 0.14 cannot enumerate adapters)", file=out)
        return
    try:
        adapters = wintun.adapters(pool)
    except WintunError as error:
        print(f"adapters:       cannot enumerate pool {pool!r} ({error})", file=out)
        return
    print(f"adapters in pool {pool!r}: {len(adapters)}", file=out)
    for adapter in adapters:
        with adapter:
            interface = getattr(_host(adapter), "interface_name", None)
            where = f"  Linux interface {interface}" if interface is not None else ""
            print(f"  {adapter.name}  LUID {adapter.luid:#018x}{where}", file=out)


def _host(adapter: Adapter) -> object:
    """The adapter's emulated host, or None for a real one."""
    try:
        return adapter.host
    except NotSupportedError:
        return None


def backend_availability() -> dict[str, str | None]:
    """Per ``--backend`` choice: None if it works on this machine, else why not."""
    from ..platform import loader

    native: str | None = None
    if sys.platform != "win32":
        native = "needs Windows and wintun.dll (python -m wintun_cffi install-dll)"
    else:
        try:
            loader.find_library(None)
        except FileNotFoundError:
            native = "no wintun.dll found (python -m wintun_cffi install-dll)"
    linux_tun: str | None
    if not sys.platform.startswith("linux"):
        linux_tun = "needs Linux, root and /dev/net/tun"
    else:
        from emulator.netns import unavailable_reason

        linux_tun = unavailable_reason()
    return {"native": native, "emulator": None, "linux-tun": linux_tun}


def main(wintun: Wintun, backend: str, pool: str, out: TextIO | None = None) -> int:
    """The ``info`` command on ``wintun`` (from ``--backend`` ``backend``), printing to
    ``out`` (default: standard output as it is when called)."""
    wintun.set_logger(None)
    describe(wintun, pool, sys.stdout if out is None else out, backend)
    return 0
