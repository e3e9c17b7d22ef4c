"""``python -m wintun_cffi info``: what this machine's Wintun is."""

from __future__ import annotations

import sys
from typing import TextIO

from .api import Wintun
from .errors import WintunError


def describe(wintun: Wintun, pool: str, out: TextIO) -> None:
    """Print the backend, library, API generation, driver version and adapters."""
    print(f"backend:        {type(wintun.backend).__name__}", file=out)
    print(f"library:        {wintun.path or '(none: pure-Python emulator)'}", file=out)
    print(f"API generation: {wintun.api}", file=out)
    try:
        major, minor = wintun.running_driver_version
        print(f"driver:         {major}.{minor} running", file=out)
    except WintunError as error:
        print(f"driver:         not running ({error})", file=out)
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
            print(f"  {adapter.name}  LUID {adapter.luid:#018x}", file=out)


def main(backend: str, dll: str | None, api: str, pool: str, out: TextIO = sys.stdout) -> int:
    """The ``info`` command."""
    from . import emulated, load

    if backend == "native":
        wintun = load(dll)
    else:  # no adapter is created: the linux-tun host would show the same
        wintun = emulated(api)  # type: ignore[arg-type]
    wintun.set_logger(None)
    describe(wintun, pool, out)
    return 0
