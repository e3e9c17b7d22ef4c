"""The Wintun releases the emulator can be, and the rules in which they differ.

An API generation (``"0.14"``, ``"pool"``, ``"seed"``) fixes the exported functions; inside a
generation the DLL and the driver still changed. Each :class:`Release` carries what the
emulator (and the C test double) needs to behave as that release did, as read in Wintun's
sources of each tag:

* the driver version ``WintunGetRunningDriverVersion`` reports, ``(major, minor)`` of
  ``wintun.sys`` (0.9, 0.9.1 and 0.9.2 all shipped driver 0.9; the 2020-11 snapshot's driver
  was still numbered 0.8);
* whether ``WintunSendPacket`` signals the driver even when Tail did not move (the snapshot,
  0.9 and 0.9.1) or only when it moved (0.9.2 on), judged against the ring's Tail field,
  whoever wrote it last;
* whether ``WintunEndSession`` signals the read-wait event before closing it (the snapshot
  to 0.10.4; 0.10.5 stopped);
* what the driver does with a record that is not IP follows from the generation
  (:func:`wintun_cffi.send_rules.driver_stops_at_non_ip`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from wintun_cffi.constants import API_GENERATIONS, ApiGeneration
from wintun_cffi.send_rules import driver_stops_at_non_ip


@dataclass(frozen=True)
class Release:
    """One Wintun release (a tag, or the 2020-11 snapshot) as the emulator reproduces it."""

    #: The tag (``"0.9.1"``), or ``"2020-11"`` for the snapshot.
    name: str
    api: ApiGeneration
    #: ``(major, minor)`` of the driver it installs.
    driver_version: tuple[int, int]
    #: ``WintunSendPacket`` signals an alertable driver even when Tail did not move.
    signals_unmoved_tail: bool
    #: ``WintunEndSession`` signals the read-wait event (waking a reader) before closing it.
    end_session_signals: bool = False

    @property
    def driver_version_word(self) -> int:
        """The driver version as ``WintunGetRunningDriverVersion`` returns it."""
        major, minor = self.driver_version
        return (major << 16) | minor

    @property
    def stops_at_non_ip(self) -> bool:
        """The driver stops reading the Receive ring at a record that is not IP."""
        return driver_stops_at_non_ip(self.api)

    @property
    def release_function(self) -> str:
        """The exported name of the function that releases a received packet."""
        return "WintunReceiveRelease" if self.api == "seed" else "WintunReleaseReceivePacket"


#: The pool-era releases whose WintunEndSession still signals the read-wait event.
_END_SIGNALLING = ("0.9", "0.9.1", "0.9.2", "0.10", "0.10.1", "0.10.2", "0.10.3", "0.10.4")


def _pool(name: str, signals_unmoved_tail: bool = False) -> Release:
    minor = int(name.split(".")[1])
    return Release(name, "pool", (0, minor), signals_unmoved_tail, name in _END_SIGNALLING)


#: Every release the emulator knows, oldest first.
RELEASES: Final[dict[str, Release]] = {
    release.name: release
    for release in (
        Release("2020-11", "seed", (0, 8), signals_unmoved_tail=True, end_session_signals=True),
        _pool("0.9", signals_unmoved_tail=True),
        _pool("0.9.1", signals_unmoved_tail=True),
        _pool("0.9.2"),
        *map(_pool, ("0.10", "0.10.1", "0.10.2", "0.10.3", "0.10.4", "0.10.5")),
        *map(_pool, ("0.11", "0.12", "0.13")),
        Release("0.14", "0.14", (0, 14), signals_unmoved_tail=False),
        Release("0.14.1", "0.14", (0, 14), signals_unmoved_tail=False),
    )
}

#: The release each generation emulates unless told otherwise: its newest.
NEWEST: Final[dict[ApiGeneration, Release]] = {
    api: [r for r in RELEASES.values() if r.api == api][-1] for api in API_GENERATIONS
}


def find_release(api: ApiGeneration, name: str | None = None) -> Release:
    """The release ``name`` of generation ``api`` (its newest if None); ValueError if that
    release is unknown or of another generation."""
    if name is None:
        return NEWEST[api]
    release = RELEASES.get(name)
    if release is None or release.api != api:
        known = ", ".join(r.name for r in RELEASES.values() if r.api == api)
        raise ValueError(f"release must be one of {known} for API generation {api!r}, not {name!r}")
    return release


__all__ = ["NEWEST", "RELEASES", "Release", "find_release"]
