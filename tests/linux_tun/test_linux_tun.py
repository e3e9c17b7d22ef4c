"""The emulator's driver bridged to a Linux TUN interface.

Everything that creates an interface runs in a scenario (:mod:`tests.linux_tun.scenarios`)
inside a network namespace made for it; the rest is pure validation.
"""

from __future__ import annotations

import shutil
import sys

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip(
        "TUN interfaces and network namespaces are Linux only (emulator.linux_tun "
        "drives /dev/net/tun with fcntl/ioctl)",
        allow_module_level=True,
    )

from emulator import Emulator, Host, linux_tun  # noqa: E402 - after the skip above
from emulator.host import check_mtu  # noqa: E402
from emulator.linux_tun import (  # noqa: E402
    LinuxTunHost,
    check_interface_name,
    interface_name_for,
)
from emulator.netns import unavailable_reason  # noqa: E402

from .netns import run_scenario  # noqa: E402


def assert_scenario(name: str, prefix: tuple[str, ...] = ()) -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    result = run_scenario(name, prefix)
    assert result.returncode == 0, f"scenario {name} failed:\n{result.stdout}{result.stderr}"


# -- in a network namespace -------------------------------------------------------------------


def test_create_and_close_removes_the_interface() -> None:
    assert_scenario("create_and_close")


def test_emulator_shutdown_deletes_every_interface() -> None:
    assert_scenario("emulator_shutdown")


def test_addresses_and_mtu_reach_the_kernel() -> None:
    assert_scenario("addresses_and_mtu")


def test_kernel_answers_icmp_echo() -> None:
    assert_scenario("icmp_echo")


def test_the_kernel_sends_nothing_unasked() -> None:
    assert_scenario("no_unsolicited_packets")


def test_routes_send_the_kernels_traffic_into_the_tunnel() -> None:
    assert_scenario("routes")


def test_routes_the_kernel_refuses_are_value_errors_that_change_nothing() -> None:
    assert_scenario("bad_routes")


def test_udp_both_ways_with_a_kernel_socket() -> None:
    assert_scenario("udp_both_ways")


def test_replay_into_and_record_from_a_linux_tun_session() -> None:
    assert_scenario("replay_and_record")


def test_session_end_brings_the_link_down() -> None:
    assert_scenario("session_lifecycle")


def test_terminate_and_delete_remove_the_interface() -> None:
    assert_scenario("terminate_and_delete")


def test_close_from_threads_outside_the_adapters_namespace() -> None:
    assert_scenario("close_from_any_thread")


def test_without_root_the_error_says_so() -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to drop root for this test")
    assert_scenario(
        "without_privileges",
        prefix=(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"),
    )


# -- pure validation (nothing is created) -------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a" * 16, "é" * 8, "a/b", "a b", "a\tb", "a:b", "tun%d", "x\u3000y"],
)
def test_names_linux_refuses_map_to_names_it_takes(name: str) -> None:
    with pytest.raises(ValueError, match="cannot name a Linux interface"):
        check_interface_name(name)
    mapped = interface_name_for(name)
    assert mapped != name and check_interface_name(mapped) == mapped.encode()
    assert interface_name_for(name) == mapped  # always the same
    assert interface_name_for(name + "x") != mapped  # another adapter, another interface


@pytest.mark.parametrize("name", ["Demo", "a" * 15, "wg-0.tun_x", "é" * 7])
def test_names_linux_takes_are_kept_as_they_are(name: str) -> None:
    assert check_interface_name(name) == name.encode()
    assert interface_name_for(name) == name


def test_adapter_names_linux_refuses_become_interfaces() -> None:
    assert_scenario("mapped_names")


def test_missing_tun_device_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linux_tun, "TUN_DEVICE", "/nonexistent/net/tun")
    with pytest.raises(FileNotFoundError, match="is missing"):
        LinuxTunHost("Demo")


def test_emulator_host_kind_is_checked() -> None:
    with pytest.raises(ValueError, match="host must be one of"):
        Emulator(host="kernel")  # type: ignore[arg-type]
    assert "memory" in repr(Emulator())


def test_memory_host_keeps_an_mtu_record() -> None:
    host = Host("Demo")
    assert host.mtu == {4: 0xFFFF, 6: 0xFFFF}
    host.set_mtu(1420)
    assert host.mtu == {4: 1420, 6: 1420}
    host.set_mtu(1280, 6)
    host.set_mtu(576, 4)
    assert host.mtu == {4: 576, 6: 1280}
    returned = host.mtu
    returned[4] = 1
    assert host.mtu[4] == 576  # a copy


@pytest.mark.parametrize(
    ("mtu", "family"), [(67, 4), (1279, 6), (1279, None), (0x10000, None), (1500, 5)]
)
def test_invalid_mtu_is_refused(mtu: int, family: object) -> None:
    host = Host("Demo")
    with pytest.raises(ValueError):
        host.set_mtu(mtu, family)  # type: ignore[arg-type]
    assert host.mtu == {4: 0xFFFF, 6: 0xFFFF}


def test_mtu_must_be_an_int() -> None:
    with pytest.raises(TypeError):
        check_mtu(1500.0, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check_mtu(True, 4)
