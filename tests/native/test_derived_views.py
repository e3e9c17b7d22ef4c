"""Views derived from a packet's data must not outlive its ring memory (native backend).

A slice or memoryview() of ``packet.data`` shares its buffer and survives the release of the
view itself. The native backend gives each packet an exporter of its own and refuses to give
the packet back while such views exist; at session end it keeps the rings allocated rather
than free memory they still reach.
"""

from __future__ import annotations

import gc
import threading

import pytest

import wintun_cffi
from wintun_cffi.errors import HandleClosedError, PacketInUseError, SessionActiveError

from .conftest import Double


def test_release_is_refused_while_a_derived_view_exists(double: Double) -> None:
    backend = double.backend
    session, host = double.session()
    assert host.deliver(bytes([0x45]) + bytes(39))
    view, token = backend.receive_packet(session)
    derived = view[4:]
    with pytest.raises(PacketInUseError, match="derived") as refused:
        backend.release_receive_packet(session, token)
    assert refused.value.token == token
    assert refused.value.view is not None and bytes(refused.value.view[:1]) == b"\x45"
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
    with pytest.raises(PacketInUseError):
        backend.send_packet(session, token)
    del kept
    backend.send_packet(session, token)
    assert host.receive(timeout=5) == bytes([0x45]) + bytes(39)


def _adapter(wintun: wintun_cffi.Wintun, double: Double, name: str) -> wintun_cffi.Adapter:
    """A new adapter on the double, as its generation creates one."""
    if double.api == "0.14":
        return wintun.create_adapter(name, tunnel_type="T")
    return wintun.create_adapter(name, pool="P")


def test_session_end_keeps_rings_that_derived_views_reach(double: Double) -> None:
    backend = double.backend
    session, host = double.session()
    assert host.deliver(bytes([0x45]) + bytes(39))
    view, _ = backend.receive_packet(session)
    derived = view[:8]
    before = double.session_count()
    with pytest.warns(ResourceWarning, match="stay allocated until they are gone"):
        backend.end_session(session)
    assert double.session_count() == before  # not freed: the derived view stays valid
    assert bytes(derived[:1]) == b"\x45"
    with pytest.raises(ValueError):
        view[0]  # the packet's own view was released
    backend.end_session(session)  # again: still kept while the derived view exists
    assert double.session_count() == before
    del derived
    backend.end_session(session)  # once it is gone, the session ends
    assert double.session_count() == before - 1
    with pytest.raises(HandleClosedError):
        backend.end_session(session)


def test_a_session_kept_by_a_derived_view_ends_once_the_view_is_gone(double: Double) -> None:
    wintun = wintun_cffi.load(double.path)
    adapter = _adapter(wintun, double, "Kept")
    with adapter:
        session = adapter.start_session(0x20000)
        host = double.kernel.host_for(session._handle.pointer)  # type: ignore[attr-defined]
        assert host.deliver(bytes([0x45]) + bytes(39))
        packet = session.receive(timeout=5)
        derived = packet.data[:4]
        with pytest.warns(ResourceWarning):
            session.close()
        assert session.closed
        with pytest.raises(SessionActiveError, match="views derived from its packets"):
            adapter.start_session(0x20000)  # refused, and says why
        assert bytes(derived[:1]) == b"\x45"  # the rings are still there
        del derived, packet
        with adapter.start_session(0x20000) as again:  # the kept session ended first
            assert again.receive_packet() is None


def test_high_level_release_refused_keeps_the_packet_usable(double: Double) -> None:
    wintun = wintun_cffi.load(double.path)
    adapter = _adapter(wintun, double, "HL")
    with adapter, adapter.start_session(0x20000) as session:
        host = double.kernel.host_for(session._handle.pointer)  # type: ignore[attr-defined]
        assert host.deliver_many([bytes([0x45]) + bytes(39), bytes([0x45, 1]) + bytes(38)])
        first, second = session.receive_many(2, timeout=5)
        header = second.data[:2]
        with pytest.raises(PacketInUseError):
            session.release_many([first, second])
        assert not first.released and not second.released  # all or none: nothing changed
        assert bytes(first.data[:1]) == b"\x45" and bytes(second.data[:2]) == b"\x45\x01"
        del header
        session.release_many([first, second])
        assert first.released and second.released


def test_a_dropped_packet_with_a_live_derived_view_does_not_break_the_session(
    double: Double,
) -> None:
    wintun = wintun_cffi.load(double.path)
    adapter = _adapter(wintun, double, "Drop")
    with adapter:
        session = adapter.start_session(0x20000)
        host = double.kernel.host_for(session._handle.pointer)  # type: ignore[attr-defined]
        assert host.deliver(bytes([0x45]) + bytes(39))
        packet = session.receive(timeout=5)
        kept = packet.data[:4]
        del packet  # abandoned: released at the next call, but the slice still reaches it
        gc.collect()
        assert session.receive_packet() is None  # the next call carries on; nothing stranded
        waiter = threading.Thread(target=lambda: session.receive_packet())
        waiter.start()
        waiter.join(5)
        assert not waiter.is_alive()
        del kept
        assert session.receive_packet() is None  # now the abandoned packet goes back
        closer = threading.Thread(target=session.close)
        closer.start()
        closer.join(10)
        assert not closer.is_alive() and session.closed  # close() never hangs
