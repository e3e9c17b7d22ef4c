"""Captures as Wireshark reads them: ``tshark`` decodes the packets of a capture file, and of a
capture written live into its standard input, with their directions, timestamps, lengths and
comments.

Skipped (with the reason) where tshark is not installed, except in CI (``CI`` set), where
.ci/run installs it and a missing tshark fails the test instead."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

import wintun_cffi
from wintun_cffi import ip
from wintun_cffi.capture import GIVEN_UP_COMMENT, INBOUND, OUTBOUND, Capture

FIELDS = [
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ipv6.src",
    "icmp.type",
    "icmpv6.type",
    "frame.cap_len",
    "frame.len",
    "frame.packet_flags_direction",
    "frame.interface_name",
    "frame.comment",
]

REQUEST = ip.icmp_echo("10.6.7.8", "10.6.7.7", identifier=9, sequence=1, payload=bytes(100))
REPLY = ip.echo_reply_for(REQUEST)
V6_REQUEST = ip.icmp_echo("fd00:6::8", "fd00:6::7", identifier=9, sequence=2, payload=b"v6")


def tshark() -> str:
    found = shutil.which("tshark")
    if found is None:
        if os.environ.get("CI") and sys.platform != "win32":  # CI installs them on Linux
            pytest.fail("tshark is not installed, and CI must run this test (.ci/run installs it)")
        pytest.skip("tshark is not installed (Debian: apt-get install tshark)")
    return found


def decode(program: str, source: str, data: bytes | None = None) -> list[dict[str, str]]:
    """One dict of FIELDS per packet, as tshark decodes them (``source`` "-": ``data`` on
    its standard input)."""
    command = [program, "-r", source, "-T", "fields", "-E", "occurrence=f"]
    for name in FIELDS:
        command += ["-e", name]
    done = subprocess.run(command, input=data, capture_output=True, check=True, timeout=120)
    lines = done.stdout.decode().splitlines()
    return [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in lines]


def test_tshark_decodes_a_capture_file(tmp_path: Path) -> None:
    program = tshark()
    assert REPLY is not None
    path = tmp_path / "cap.pcapng"
    before = time.time_ns()
    with Capture(path, interface_name="Demo", snaplen=96) as cap:
        cap.add_one(OUTBOUND, memoryview(REQUEST))
        cap.add(INBOUND, [memoryview(REPLY), V6_REQUEST])
        cap.add_given_up(REQUEST)
    after = time.time_ns()
    assert cap.written == 4 and cap.error is None
    rows = decode(program, str(path))
    assert [row["frame.number"] for row in rows] == ["1", "2", "3", "4"]
    request, reply, v6, given_up = rows
    # Decoded: an ICMP echo request and its reply (types 8 and 0), ICMPv6 echo request (128).
    assert (request["ip.src"], request["icmp.type"]) == ("10.6.7.8", "8")
    assert (reply["ip.src"], reply["icmp.type"]) == ("10.6.7.7", "0")
    assert (v6["ipv6.src"], v6["icmpv6.type"]) == ("fd00:6::8", "128")
    # Directions from the EPB flags: 1 inbound, 2 outbound.
    directions = [int(row["frame.packet_flags_direction"], 0) for row in rows]
    assert directions == [OUTBOUND, INBOUND, INBOUND, OUTBOUND]
    # Nanosecond timestamps, in order, within the time the test took.
    stamps = [Decimal(row["frame.time_epoch"]) * 10**9 for row in rows]
    assert before <= stamps[0] <= stamps[1] == stamps[2] <= stamps[3] <= after
    assert all(stamp == int(stamp) for stamp in stamps)
    # The snap length: the 128-byte packets are cut to 96.
    assert [(row["frame.cap_len"], row["frame.len"]) for row in rows] == [
        ("96", str(len(REQUEST))),
        ("96", str(len(REPLY))),
        (str(len(V6_REQUEST)), str(len(V6_REQUEST))),
        ("96", str(len(REQUEST))),
    ]
    assert {row["frame.interface_name"] for row in rows} == {"Demo"}
    assert [row["frame.comment"] for row in rows] == ["", "", "", GIVEN_UP_COMMENT]


def test_tshark_reads_a_capture_live_from_a_pipe() -> None:
    program = tshark()
    command = [program, "-r", "-", "-T", "fields", "-e", "ip.src", "-e", "icmp.type"]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        cap = Capture(process.stdin)
        for _ in range(3):
            cap.add_one(OUTBOUND, REQUEST)
            cap.add_one(INBOUND, REPLY or b"")
        cap.close()
        assert not process.stdin.closed, "the caller's stream stays open"
        process.stdin.close()
        output = process.stdout.read().decode()
        assert process.wait(120) == 0
    assert output.splitlines() == ["10.6.7.8\t8", "10.6.7.7\t0"] * 3


def test_tshark_reads_the_example_commands_capture(tmp_path: Path) -> None:
    """``python -m wintun_cffi example --pcap``: every echo request and reply decoded, the
    directions right, the timestamps increasing, the adapter's name on the interface."""
    program = tshark()
    path = tmp_path / "example.pcapng"
    subprocess.run(
        [sys.executable, "-m", "wintun_cffi", "example", "--count", "3", "--pcap", str(path)],
        capture_output=True,
        check=True,
        timeout=120,
    )
    rows = decode(program, str(path))
    requests = [row for row in rows if row["icmp.type"] == "8"]
    replies = [row for row in rows if row["icmp.type"] == "0"]
    assert len(requests) >= 3 and len(replies) >= 3
    assert len(requests) + len(replies) == len(rows)
    assert {row["frame.packet_flags_direction"] for row in requests} == {"0x00000002"}
    assert {row["frame.packet_flags_direction"] for row in replies} == {"0x00000001"}
    assert {row["ip.src"] for row in requests} == {"10.6.7.8"}
    assert {row["frame.interface_name"] for row in rows} == {"Demo"}
    stamps = [Decimal(row["frame.time_epoch"]) for row in rows]
    assert stamps == sorted(stamps)


def test_tshark_sees_the_snap_length_of_a_session_capture(tmp_path: Path) -> None:
    program = tshark()
    path = tmp_path / "snapped.pcapng"
    wintun = wintun_cffi.emulated()
    with wintun.create_adapter("Snap", tunnel_type="Demo") as adapter:
        adapter.host.add_address("10.6.7.7/24")
        with adapter.start_session() as session:
            session.capture(path, snaplen=60)
            session.send(REQUEST)
            session.read(timeout=5)
    rows = decode(program, str(path))
    assert [(row["frame.cap_len"], row["frame.len"]) for row in rows] == [
        ("60", str(len(REQUEST))),
        ("60", str(len(REQUEST))),
    ]
    assert [row["frame.packet_flags_direction"] for row in rows] == ["0x00000002", "0x00000001"]
