"""A pure-Python, in-memory Wintun: the same rings, packet allocation and error semantics as
the real DLL and driver, byte layout included. See :class:`Emulator`."""

from .backend import Emulator
from .driver import AdapterStatistics
from .host import Host
from .releases import RELEASES, Release

__all__ = ["RELEASES", "AdapterStatistics", "Emulator", "Host", "Release"]
