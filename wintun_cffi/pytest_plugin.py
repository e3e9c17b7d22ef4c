"""A pytest plugin: test code that uses wintun-cffi against the emulator, on any OS.

Installed with wintun-cffi (entry point ``pytest11``), it provides two fixtures:

``wintun_emulator``
    A :class:`~wintun_cffi.Wintun` over a fresh pure-Python emulator. The API generation is
    ``"0.14"`` unless the test is marked ``@pytest.mark.wintun_api("pool")`` (or ``"seed"``).
    Every adapter created or opened through it is closed after the test.

``emulated_adapter``
    An adapter named ``"Test"`` on ``wintun_emulator`` (tunnel type ``"Test"`` in 0.14, pool
    ``"Test"`` before), with ``10.6.7.7/24`` assigned to it. Its :attr:`~wintun_cffi.Adapter.host`
    is the operating system on the far side: ``host.deliver(packet)`` sends a packet to the
    application, ``host.receive(timeout)`` returns one the application sent, and the host
    answers pings to 10.6.7.7.

Example::

    import ipaddress

    import pytest

    from wintun_cffi import ip

    def test_ping(emulated_adapter):
        with emulated_adapter.start_session() as session:
            session.send(ip.icmp_echo("10.6.7.8", "10.6.7.7", identifier=1, sequence=1))
            reply = session.read(timeout=5)
            assert ip.addresses(reply)[0] == ipaddress.ip_address("10.6.7.7")

    @pytest.mark.wintun_api("pool")
    def test_pool_names(wintun_emulator):
        with wintun_emulator.create_adapter("A", pool="Mine") as adapter:
            adapter.name = "B"
            assert [a.name for a in wintun_emulator.adapters("Mine")] == ["B"]

Without the entry point installed, load it with ``pytest -p wintun_cffi.pytest_plugin``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import cast

import pytest

from .api import Adapter, Wintun
from .backend import Backend
from .constants import API_GENERATIONS, ApiGeneration

#: The address the ``emulated_adapter`` fixture assigns to the adapter (the far side).
ADAPTER_INTERFACE = "10.6.7.7/24"
#: The name (and tunnel type or pool) of the ``emulated_adapter`` fixture's adapter.
ADAPTER_NAME = "Test"


class TrackingWintun(Wintun):
    """A :class:`Wintun` that remembers every adapter it creates or opens, for :meth:`close`."""

    def __init__(self, backend: Backend, *, path: str | None = None) -> None:
        super().__init__(backend, path=path)
        self._tracked: list[Adapter] = []

    @classmethod
    def adopt(cls, wintun: Wintun) -> TrackingWintun:
        """A tracking Wintun over the backend of ``wintun`` (e.g. from :func:`wintun_cffi.load`)."""
        return cls(wintun.backend, path=wintun.path)

    def create_adapter(
        self, name: str, *, tunnel_type: str | None = None, pool: str | None = None,
        guid: uuid.UUID | None = None,
    ) -> Adapter:
        adapter = super().create_adapter(name, tunnel_type=tunnel_type, pool=pool, guid=guid)
        self._tracked.append(adapter)
        return adapter

    def open_adapter(self, name: str, *, pool: str | None = None) -> Adapter:
        adapter = super().open_adapter(name, pool=pool)
        self._tracked.append(adapter)
        return adapter

    @property
    def open_adapters(self) -> list[Adapter]:
        """The adapters created or opened through this object and not closed yet."""
        return [adapter for adapter in self._tracked if not adapter.closed]

    def close(self) -> None:
        """Close every adapter (and so every session) created or opened through this object,
        the newest first; the first error is raised after all were tried."""
        tracked, self._tracked = self._tracked, []
        first: BaseException | None = None
        for adapter in reversed(tracked):
            try:
                adapter.close()
            except Exception as error:
                first = first or error
        if first is not None:
            raise first


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "wintun_api(api): the Wintun API generation of the wintun_emulator fixture "
        f"(one of {', '.join(API_GENERATIONS)}; default 0.14)",
    )


def _api_of(request: pytest.FixtureRequest) -> ApiGeneration:
    marker = request.node.get_closest_marker("wintun_api")
    if marker is None:
        return "0.14"
    api = marker.args[0] if marker.args else marker.kwargs.get("api")
    if api not in API_GENERATIONS:
        raise pytest.UsageError(
            f"wintun_api marker: api must be one of {', '.join(API_GENERATIONS)}, not {api!r}"
        )
    return cast(ApiGeneration, api)


@pytest.fixture
def wintun_emulator(request: pytest.FixtureRequest) -> Iterator[TrackingWintun]:
    """A Wintun over a fresh emulator (``@pytest.mark.wintun_api(...)``, default ``"0.14"``)."""
    from emulator import Emulator

    wintun = TrackingWintun(Emulator(_api_of(request)))
    try:
        yield wintun
    finally:
        wintun.close()


@pytest.fixture
def emulated_adapter(wintun_emulator: TrackingWintun) -> Iterator[Adapter]:
    """Adapter ``"Test"`` on ``wintun_emulator`` with 10.6.7.7/24; ``.host`` is the far side."""
    if wintun_emulator.api == "0.14":
        adapter = wintun_emulator.create_adapter(ADAPTER_NAME, tunnel_type=ADAPTER_NAME)
    else:
        adapter = wintun_emulator.create_adapter(ADAPTER_NAME, pool=ADAPTER_NAME)
    adapter.host.add_address(ADAPTER_INTERFACE)
    try:
        yield adapter
    finally:
        adapter.close()
