"""``python -m emulator``: a short demonstration of the emulated Wintun.

Creates an adapter, starts a session, sends ICMP echo requests to the adapter's own address
(the emulated system answers them) and receives the replies, printing what happened.
"""

from __future__ import annotations

import sys

from wintun_cffi import ip

from . import Emulator


def main() -> int:
    wintun = Emulator("0.14")
    adapter, _ = wintun.create_adapter("Demo", tunnel_type="Example")
    host = wintun.host(adapter)
    host.add_address("10.6.7.7/24")
    session = wintun.start_session(adapter, 0x400000)
    print(
        f"created adapter 'Demo' (LUID {wintun.get_adapter_luid(adapter):#018x}), "
        f"driver {wintun.get_running_driver_version():#x}, session of 4 MiB"
    )
    try:
        for sequence in range(1, 4):
            request = ip.icmp_echo("10.6.7.8", "10.6.7.7", identifier=1, sequence=sequence)
            view, token = wintun.allocate_send_packet(session, len(request))
            view[:] = request
            wintun.send_packet(session, token)
            print(f"sent     {ip.describe(request)} (seq {sequence})")
            if not wintun.wait_read_event(session, 2.0):
                print("no reply within 2 s")
                return 1
            view, token = wintun.receive_packet(session)
            print(f"received {ip.describe(view)} ({len(view)} bytes)")
            wintun.release_receive_packet(session, token)
        print(f"adapter statistics: {host.statistics.as_dict()}")
    finally:
        wintun.end_session(session)
        wintun.close_adapter(adapter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
