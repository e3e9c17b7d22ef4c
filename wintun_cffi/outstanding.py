"""The packets a session has handed to the application, shared by both backends.

Each received or allocated packet crosses the Backend protocol as a memoryview over ring
memory plus a token. The backend keeps the view here until the token is released or sent, and
releases it then (and at session end), so that nothing can read ring memory Wintun has taken
back: a released memoryview raises ``ValueError`` on any access.
"""

from __future__ import annotations

from .errors import PacketReleasedError


class Outstanding(dict[object, memoryview]):
    """Views of packets the application still owns, by token."""

    __slots__ = ()

    def take(self, token: object, refusal: str) -> None:
        """Forget ``token`` and release its view; ValueError(refusal) if it is not here.

        A view still exported (a memoryview or array made from it) cannot be released: the
        token stays and :class:`~wintun_cffi.errors.PacketReleasedError` says why.
        """
        try:
            view = self.pop(token)
        except (KeyError, TypeError):
            raise ValueError(refusal) from None
        try:
            view.release()
        except BufferError:
            self[token] = view
            raise PacketReleasedError(
                "the packet's data is still exported (a memoryview or array made from it); "
                "drop those first"
            ) from None

    def release_all(self) -> int:
        """Release every view (the session is ending); returns how many were still exported."""
        exported = 0
        for view in self.values():
            try:
                view.release()
            except BufferError:
                exported += 1
        self.clear()
        return exported
