"""Mutants of the emulator for the conformance suite: one Backend protocol method each, made to
do nothing (or to return a wrong value), the rest left as it is.

Each is a backend of one's own as the conformance command takes it (``tests.mutants:NAME``):
``NAME`` is ``unchanged_<generation>`` for the emulator as it is, or ``broken_<method>`` for
the mutant of ``method``, in a generation that has that method. Every one gives the suite the
emulator's host as its far side and says it is a fresh machine of its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from emulator import Emulator
from wintun_cffi.conformance.farside import EmulatorFarSide
from wintun_cffi.constants import ApiGeneration
from wintun_cffi.session import Session


class Checked(Emulator):
    """The emulator as a backend of one's own."""

    conformance_fresh_machine = True

    def conformance_far_side(self, session: Session) -> EmulatorFarSide:
        return EmulatorFarSide(session.adapter.host)


def _nothing(self: Any, *args: Any, **kwargs: Any) -> None:
    return None


_never_readable: int | None = None


def _descriptor_never_readable(self: Any, session: object) -> int:
    """The read end of a pipe nobody writes to: a wrong read-wait descriptor."""
    global _never_readable
    if _never_readable is None:
        _never_readable = os.pipe()[0]
    return _never_readable


#: Per mutant: the generation it runs in and what replaces the method.
MUTATIONS: dict[str, tuple[ApiGeneration, Any]] = {
    # The emulator of 0.14 saying it speaks the pool era.
    "api": ("0.14", property(lambda self: "pool")),
    "create_adapter": ("0.14", _nothing),
    "open_adapter": ("0.14", _nothing),
    "close_adapter": ("0.14", _nothing),
    "free_adapter": ("pool", _nothing),
    "delete_adapter": ("pool", _nothing),
    "enum_adapters": ("pool", _nothing),
    "delete_driver": ("0.14", _nothing),
    "delete_pool_driver": ("pool", _nothing),
    "open_adapter_device_object": ("seed", _nothing),
    "get_adapter_luid": ("0.14", _nothing),
    "get_adapter_name": ("pool", _nothing),
    "set_adapter_name": ("pool", _nothing),
    "get_running_driver_version": ("0.14", _nothing),
    "set_logger": ("0.14", _nothing),
    "start_session": ("0.14", _nothing),
    "end_session": ("0.14", _nothing),
    "get_read_wait_event": ("0.14", _nothing),
    "receive_packet": ("0.14", _nothing),
    "release_receive_packet": ("0.14", _nothing),
    "allocate_send_packet": ("0.14", _nothing),
    "send_packet": ("0.14", _nothing),
    "ledgers": ("0.14", _nothing),
    "wait_read_event": ("0.14", _nothing),
    "signal_read_event": ("0.14", _nothing),
    "interrupt_waits": ("0.14", _nothing),
    "read_wait_fd": ("0.14", _descriptor_never_readable),
}


def factory(name: str) -> Callable[[], Emulator]:
    """The factory ``name`` (see the module's docstring); AttributeError if there is none."""
    if name.startswith("unchanged_"):
        api = name.removeprefix("unchanged_").replace("_", ".")
        return lambda: Checked(api)  # type: ignore[arg-type]
    method = name.removeprefix("broken_")
    if not name.startswith("broken_") or method not in MUTATIONS:
        raise AttributeError(name)
    api, replacement = MUTATIONS[method]
    mutant = type(f"Broken_{method}", (Checked,), {method: replacement})
    return lambda: mutant(api)


def __getattr__(name: str) -> Callable[[], Emulator]:
    return factory(name)
