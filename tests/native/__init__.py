"""Tests of the native backend and the loader, on the C test double."""
