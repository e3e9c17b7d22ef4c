"""Small helpers shared by the test packages (the installed conformance suite owns them)."""

from wintun_cffi.conformance.support import wait_until

__all__ = ["wait_until"]
