"""Views derived from a packet's data must not outlive its ring memory (native backend).

A slice or memoryview() of ``packet.data`` shares its buffer and survives the release of the
view itself. The native backend gives each packet an exporter of its own and refuses to give
the packet back while such views exist; at session end it keeps the rings allocated rather
than free memory they still reach.
"""

from __future__ import annotations

import gc

import pytest

from wintun_cffi.errors import PacketReleasedError

from .conftest import Double


def test_release_is_refused_while_a_derived_view_exists(double: Double) -> None:
    backend = double.backend
    session, host = double.session()
    assert host.deliver(bytes([0x45]) + bytes(39))
    view, token = backend.receive_packet(session)
    derived = view[4:]
    with pytest.raises(PacketReleasedError, match="derived"):
        backend.release_receive_packet(session, token)
    assert derived[0] == 0  # the memory is still the ring's and still valid
    del derived
    gc.collect()
    backend.release_receive_packet(session, token)  # now it is given back
    with pytest.raises(ValueError):
        backend.release_receive_packet(session, token)


def test_send_is_refused_while_a_derived_view_exists(double: Double) -> None:
    backend = double.backend
    session, host = double.session()
    view, token = backend.allocate_send_packet(session, 40)
    view[:] = bytes([0x45]) + bytes(39)
    kept = memoryview(view)
    with pytest.raises(PacketReleasedError):
        backend.send_packet(session, token)
    del kept
    backend.send_packet(session, token)
    assert host.receive(timeout=5) == bytes([0x45]) + bytes(39)


def test_session_end_keeps_rings_that_derived_views_reach(double: Double) -> None:
    backend = double.backend
    session, host = double.session()
    assert host.deliver(bytes([0x45]) + bytes(39))
    view, _ = backend.receive_packet(session)
    derived = view[:8]
    before = double.session_count()
    with pytest.warns(ResourceWarning, match="kept allocated"):
        backend.end_session(session)
    assert double.session_count() == before  # not freed: the derived view stays valid
    assert bytes(derived[:1]) == b"\x45"
    with pytest.raises(ValueError):
        view[0]  # the packet's own view was released
    del derived
    host.detach()
    backend._lib.WintunEndSession(session.pointer)  # the test frees what the backend kept
    assert double.session_count() == before - 1
