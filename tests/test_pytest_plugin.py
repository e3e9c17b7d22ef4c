"""The pytest plugin (wintun_cffi.pytest_plugin): users' tests written with its fixtures run,
and what the fixtures create is closed afterwards."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from emulator import Emulator
from wintun_cffi.pytest_plugin import TrackingWintun

pytest_plugins = ["pytester"]


def plugin_args() -> list[str]:
    """Load the plugin explicitly unless its pytest11 entry point is installed (then pytest
    loads it itself, and loading it twice would be refused)."""
    installed = any(ep.name == "wintun_cffi" for ep in entry_points(group="pytest11"))
    quiet = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--strict-markers"]
    return quiet + ([] if installed else ["-p", "wintun_cffi.pytest_plugin"])


USER_TESTS = """
import ipaddress

import pytest

from wintun_cffi import ip

KEPT = {}


def test_default_generation(wintun_emulator):
    assert wintun_emulator.api == "0.14"


def test_ping_the_adapter(emulated_adapter):
    assert ipaddress.ip_interface("10.6.7.7/24") in emulated_adapter.host.interfaces
    with emulated_adapter.start_session() as session:
        session.send(ip.icmp_echo("10.6.7.8", "10.6.7.7", identifier=7, sequence=1))
        reply = session.read(timeout=5)
    source, destination, _ = ip.addresses(reply)
    assert (str(source), str(destination)) == ("10.6.7.7", "10.6.7.8")


def test_host_is_the_far_side(emulated_adapter):
    host = emulated_adapter.host
    with emulated_adapter.start_session() as session:
        packet = ip.udp_packet("10.6.7.7", "10.6.7.8", 53, 5353, b"to the app")
        assert host.deliver(packet)
        assert session.read(timeout=5) == packet
        reply = ip.udp_packet("10.6.7.8", "10.6.7.7", 5353, 53, b"to the host")
        session.send(reply)
        assert host.receive(timeout=5) == reply


@pytest.mark.wintun_api("pool")
def test_pool_generation(wintun_emulator):
    assert wintun_emulator.api == "pool"
    adapter = wintun_emulator.create_adapter("A", pool="Mine")
    adapter.name = "B"
    found = wintun_emulator.adapters("Mine")
    assert [a.name for a in found] == ["B"]


@pytest.mark.wintun_api("seed")
def test_adapter_fixture_follows_the_marker(emulated_adapter):
    assert emulated_adapter.wintun.api == "seed"
    assert emulated_adapter.pool == "Test" and emulated_adapter.name == "Test"


def test_leave_things_open(wintun_emulator, emulated_adapter):
    KEPT["session"] = emulated_adapter.start_session()
    KEPT["extra"] = wintun_emulator.open_adapter("Test")


def test_they_were_closed():
    assert KEPT["session"].closed
    assert KEPT["extra"].closed
"""


def test_users_write_tests_with_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest(*plugin_args())
    result.assert_outcomes(passed=7)


def test_unknown_generation_in_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
import pytest

@pytest.mark.wintun_api("0.15")
def test_it(wintun_emulator):
    pass
"""
    )
    result = pytester.runpytest(*plugin_args())
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*wintun_api marker: api must be one of*"])


def test_marker_is_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers", *plugin_args())
    result.stdout.fnmatch_lines(["@pytest.mark.wintun_api(api):*"])


def test_tracking_wintun_closes_everything() -> None:
    wintun = TrackingWintun(Emulator("pool"))
    created = wintun.create_adapter("One", pool="P")
    session = created.start_session()
    opened = wintun.open_adapter("One", pool="P")
    opened.close()
    assert wintun.open_adapters == [created]
    wintun.close()
    assert created.closed and session.closed
    assert wintun.open_adapters == []
    wintun.close()  # idempotent


# -- the Linux kernel on the far side ----------------------------------------------------------


def docstring_example(marker: str) -> str:
    """The indented example that follows ``marker`` in the plugin's docstring, dedented."""
    import textwrap

    import wintun_cffi.pytest_plugin as plugin

    text = plugin.__doc__ or ""
    lines: list[str] = []
    for line in text[text.index(marker) + len(marker) :].splitlines():
        if line.strip() and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


LINUX_TESTS = """
import json
import os
import subprocess

import pytest


def test_the_adapter_is_a_kernel_interface(linux_tun_adapter):
    [link] = json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", "Test"],
                                       capture_output=True, text=True, check=True).stdout)
    assert {"10.6.7.7"} <= {info["local"] for info in link["addr_info"]}
    names = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True,
                                      check=True).stdout)
    assert sorted(entry["ifname"] for entry in names) == ["Test", "lo"]  # a namespace of its own


@pytest.mark.wintun_api("pool")
def test_the_marker_picks_the_generation(linux_tun_wintun):
    assert linux_tun_wintun.api == "pool"
    linux_tun_wintun.create_adapter("Kept", pool="Mine").close()  # freed, not deleted
"""


def test_users_test_against_the_kernel_with_the_system_ping(pytester: pytest.Pytester) -> None:
    from emulator import netns

    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    outside = netns.interface_names()
    pytester.makepyfile(
        test_ping=docstring_example("answers through the tunnel::"), test_linux=LINUX_TESTS
    )
    result = pytester.runpytest(*plugin_args(), "-rs")
    if __import__("shutil").which("ping") is None:
        result.assert_outcomes(passed=2, skipped=1)
    else:
        result.assert_outcomes(passed=3)
    assert netns.interface_names() == outside  # nothing was left in this namespace


def test_the_kernel_fixtures_skip_with_the_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emulator import netns

    monkeypatch.setattr(netns, "unavailable_reason", lambda: "needs root (for this test)")
    pytester.makepyfile(test_linux=LINUX_TESTS)
    result = pytester.runpytest(*plugin_args(), "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        ["*the Linux TUN backend cannot run here: needs root (for this test)*"]
    )


# -- impaired traffic ----------------------------------------------------------------------------

IMPAIRED_TESTS = """
import threading

import pytest

from wintun_cffi import ip
from wintun_cffi.impair import Impairment


def test_one_line_for_both_ways(impaired_adapter):
    adapter = impaired_adapter(loss=0.25, duplicate=0.5, seed=7)
    host = adapter.host
    assert host.inbound.settings == host.outbound.settings == Impairment(loss=0.25, duplicate=0.5)
    with adapter.start_session() as session:
        for index in range(200):
            host.deliver(ip.udp_packet("10.6.7.7", "10.6.7.8", 53, 5353, bytes([index])))
        stats = host.inbound.statistics
        assert stats.lost > 0 and stats.duplicated > 0
        assert len(session.receive_many(1000, timeout=5)) == stats.delivered


def test_each_way_on_its_own(impaired_adapter):
    adapter = impaired_adapter(outbound=Impairment(loss=1.0))
    assert adapter.host.inbound is None
    with adapter.start_session() as session:
        session.send(ip.icmp_echo("10.6.7.8", "10.6.7.7", identifier=1, sequence=1))
        with pytest.raises(TimeoutError):
            session.read(timeout=0.05)
    assert adapter.host.outbound.statistics.lost == 1


@pytest.mark.wintun_api("pool")
def test_the_generation_marker_applies(impaired_adapter):
    adapter = impaired_adapter(delay=0.01)
    assert adapter.wintun.api == "pool" and adapter.host.inbound.settings.delay == 0.01


def test_both_and_one_way_do_not_mix(impaired_adapter):
    with pytest.raises(TypeError, match="both ways"):
        impaired_adapter(loss=0.1, inbound=Impairment())


def test_bad_settings_name_the_field(impaired_adapter):
    with pytest.raises(ValueError, match="loss"):
        impaired_adapter(loss=2)


def test_no_thread_is_left():
    assert [t.name for t in threading.enumerate() if t.name.startswith("wintun-impair")] == []
"""


def test_the_impaired_adapter_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_impaired=IMPAIRED_TESTS,
        test_docstring=docstring_example("Over a bad network, in one line::"),
    )
    result = pytester.runpytest(*plugin_args())
    result.assert_outcomes(passed=7)
