"""A pytest plugin: test code that uses wintun-cffi against the emulator, on any OS, or
against the real Linux kernel.

Installed with wintun-cffi (entry point ``pytest11``), it provides these fixtures:

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

``impaired_adapter``
    A factory: ``impaired_adapter(loss=0.05, delay=0.03, seed=1)`` returns ``emulated_adapter``
    with its host's traffic impaired (:meth:`emulator.Host.impair`): keyword settings of
    :class:`~wintun_cffi.impair.Impairment` apply both ways, or give ``inbound=`` and
    ``outbound=`` each an :class:`~wintun_cffi.impair.Impairment` (``seed`` defaults to 0).
    Call it once per test; change the settings later through ``adapter.host.inbound`` and
    ``adapter.host.outbound``.

``linux_tun_wintun``
    Like ``wintun_emulator``, with the Linux kernel on the far side
    (:func:`wintun_cffi.emulated` with ``host="linux-tun"``): each adapter is a TUN interface.
    The test runs in a network namespace the fixture creates (the test's thread, and the
    threads and processes it starts, are inside it; it has only ``lo`` besides the test's
    interfaces and disappears afterwards), so nothing reaches the machine's own network.
    Skipped, with the reason, where that cannot be done: not Linux, not root, no
    ``/dev/net/tun``, no ``ip`` or ``unshare``.

``linux_tun_adapter``
    Adapter ``"Test"`` on ``linux_tun_wintun``, with ``10.6.7.7/24`` assigned in the kernel:
    the kernel routes 10.6.7.0/24 into the tunnel, so a program in the namespace (``ping``,
    a socket) reaches your application at, say, 10.6.7.8.

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

With the kernel on the far side, the system's own ``ping`` can test an application that
answers through the tunnel::

    import shutil
    import subprocess
    import threading

    import pytest

    from wintun_cffi import ip


    def answer_pings(session, stop):
        # The application under test: it answers the echo requests the tunnel brings.
        while not stop.is_set():
            try:
                packet = session.read(timeout=0.1)
            except TimeoutError:
                continue
            reply = ip.echo_reply_for(packet)
            if reply is not None:
                session.send(reply)


    @pytest.mark.skipif(shutil.which("ping") is None, reason="needs the ping command")
    def test_ping_through_my_app(linux_tun_adapter):
        with linux_tun_adapter.start_session() as session:
            stop = threading.Event()
            app = threading.Thread(target=answer_pings, args=(session, stop))
            app.start()
            try:
                ping = subprocess.run(["ping", "-c", "3", "-i", "0.2", "-W", "5", "10.6.7.8"],
                                      capture_output=True, text=True)
            finally:
                stop.set()
                app.join()
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert " 0% packet loss" in ping.stdout

Over a bad network, in one line::

    from wintun_cffi import ip

    def test_ping_over_loss(impaired_adapter):
        adapter = impaired_adapter(loss=0.2, delay=0.01, seed=3)
        replies = 0
        with adapter.start_session() as session:
            for sequence in range(20):
                session.send(ip.icmp_echo("10.6.7.8", "10.6.7.7", identifier=1, sequence=sequence))
                try:
                    session.read(timeout=0.2)
                    replies += 1
                except TimeoutError:
                    pass
        lost = adapter.host.outbound.statistics.lost + adapter.host.inbound.statistics.lost
        assert replies == 20 - lost

Without the entry point installed, load it with ``pytest -p wintun_cffi.pytest_plugin``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import cast

import pytest

from .api import Adapter, Wintun
from .backend import Backend
from .constants import API_GENERATIONS, ApiGeneration
from .impair import Impairment, Seed

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
        self,
        name: str,
        *,
        tunnel_type: str | None = None,
        pool: str | None = None,
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


def _test_adapter(wintun: TrackingWintun) -> Adapter:
    """Adapter ``"Test"`` with 10.6.7.7/24 assigned on its far side."""
    if wintun.api == "0.14":
        adapter = wintun.create_adapter(ADAPTER_NAME, tunnel_type=ADAPTER_NAME)
    else:
        adapter = wintun.create_adapter(ADAPTER_NAME, pool=ADAPTER_NAME)
    adapter.host.add_address(ADAPTER_INTERFACE)
    return adapter


@pytest.fixture
def emulated_adapter(wintun_emulator: TrackingWintun) -> Iterator[Adapter]:
    """Adapter ``"Test"`` on ``wintun_emulator`` with 10.6.7.7/24; ``.host`` is the far side."""
    adapter = _test_adapter(wintun_emulator)
    try:
        yield adapter
    finally:
        adapter.close()


#: What the ``impaired_adapter`` fixture returns: call it for the impaired adapter.
ImpairedAdapterFactory = Callable[..., Adapter]


@pytest.fixture
def impaired_adapter(emulated_adapter: Adapter) -> ImpairedAdapterFactory:
    """A factory: ``impaired_adapter(loss=0.05, delay=0.03, seed=1)`` (both ways), or
    ``impaired_adapter(inbound=Impairment(...), outbound=Impairment(...), seed=1)``, returns
    ``emulated_adapter`` with its host's traffic impaired."""

    def impair(
        *,
        inbound: Impairment | None = None,
        outbound: Impairment | None = None,
        seed: Seed = 0,
        **both: object,
    ) -> Adapter:
        if both:
            if inbound is not None or outbound is not None:
                raise TypeError("give settings for both ways, or inbound= and outbound=")
            inbound = outbound = Impairment().replace(**both)
        emulated_adapter.host.impair(inbound, outbound, seed=seed)
        return emulated_adapter

    return impair


@pytest.fixture
def linux_tun_wintun(request: pytest.FixtureRequest) -> Iterator[TrackingWintun]:
    """A Wintun whose far side is the Linux kernel, the test running in a network namespace
    of its own (``@pytest.mark.wintun_api(...)`` as for ``wintun_emulator``); skipped with the
    reason where that cannot be."""
    from emulator import Emulator, netns

    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(f"the Linux TUN backend cannot run here: {reason}")
    with netns.isolated():
        emulator = Emulator(_api_of(request), host="linux-tun")
        wintun = TrackingWintun(emulator)
        try:
            yield wintun
        finally:
            try:
                wintun.close()
            finally:
                emulator.close()  # pool-era adapters outlive their handles: delete them now


@pytest.fixture
def linux_tun_adapter(linux_tun_wintun: TrackingWintun) -> Iterator[Adapter]:
    """Adapter ``"Test"`` on ``linux_tun_wintun``: a TUN interface with 10.6.7.7/24 in the
    kernel of the test's own network namespace."""
    adapter = _test_adapter(linux_tun_wintun)
    try:
        yield adapter
    finally:
        adapter.close()
