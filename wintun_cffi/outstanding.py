"""The packets a session has handed to the application, shared by both backends.

Each received or allocated packet crosses the Backend protocol as a memoryview over ring
memory plus a token. The backend keeps the view here until the token is released or sent, and
releases it then (and at session end), so that nothing can read ring memory Wintun has taken
back: a released memoryview raises ``ValueError`` on any access.

Views *derived* from a packet's view (slices, ``memoryview(view)``, arrays) share its buffer
and survive the release of the view itself. Where the backend gives each packet an exporter of
its own (the native backend: one cffi buffer per packet), the buffer's reference count shows
whether such views remain, and giving the packet back is refused while they do: after that
the memory may be freed (CPython only; elsewhere the check is skipped).
"""

from __future__ import annotations

import sys
from typing import Optional, Tuple

from .errors import PacketInUseError

# References to a packet's exporter inside take() when nothing else holds it: the local name
# and getrefcount's own argument. A surviving derived view keeps one more (its buffer).
_UNSHARED = 2
_getrefcount = getattr(sys, "getrefcount", None)

#: A packet's view and the object exporting its memory, if the packet has one of its own.
Entry = Tuple[memoryview, Optional[object]]


class Outstanding(dict[object, Entry]):
    """Packets the application still owns: ``token -> (view, exporter or None)``."""

    __slots__ = ()

    def take(self, token: object, refusal: str) -> None:
        """Forget ``token`` and release its view; ValueError(refusal) if it is not here.

        Raises :class:`~wintun_cffi.errors.PacketInUseError` and keeps the token while the
        view is exported or views derived from it still exist; the error carries a fresh view
        when the old one had to be released to find that out.
        """
        try:
            view, exporter = self.pop(token)
        except (KeyError, TypeError):
            raise ValueError(refusal) from None
        try:
            view.release()
        except BufferError:
            self[token] = (view, exporter)
            view = exporter = None  # type: ignore[assignment]  # a kept traceback must not hold them
            raise PacketInUseError(
                "the packet's data is still exported (a buffer or array made from it); "
                "drop those first", token,
            ) from None
        if exporter is not None and _getrefcount is not None:
            if _getrefcount(exporter) > _UNSHARED:
                fresh = memoryview(exporter)  # type: ignore[arg-type]
                self[token] = (fresh, exporter)
                exporter = None  # a kept traceback must not count as a derived view
                raise PacketInUseError(
                    "views derived from the packet's data (slices, memoryview(), arrays) "
                    "still exist and would outlive its memory; drop them, then try again",
                    token, fresh,
                )

    def release_all(self) -> int:
        """Release every view (the session is ending); returns how many packets still have
        derived views or exports reaching their memory."""
        exported = 0
        while self:
            _, (view, exporter) = self.popitem()
            try:
                view.release()
            except BufferError:
                exported += 1
                continue
            if exporter is not None and _getrefcount is not None:
                if _getrefcount(exporter) > _UNSHARED:
                    exported += 1
        return exported
