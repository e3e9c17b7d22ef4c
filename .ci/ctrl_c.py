"""Press Ctrl+C as a terminal does: run a command in a pseudo-terminal (its console, under
Wine), type Ctrl+C once it prints an echo reply, and require a clean end.

    python3 .ci/ctrl_c.py COMMAND [ARGUMENT...]

Exits 0 if the command printed "Cancelling" and "Session ended, closing the adapter", no
traceback, and exited 0; otherwise 1 with what it printed. (The same check as
tests/test_cli.py's Ctrl+C test, which a Windows test process cannot make: it has no console.)
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import sys
import termios
import time

REPLY = b"Received IPv4 ICMP echo reply"
LIMIT = 120.0  # seconds: a hang fails the step


def main(command: list[str]) -> int:
    pid, terminal = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    # A wide terminal: no line of the example wraps.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))
    output, pressed = b"", False
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        if not select.select([terminal], [], [], 1)[0]:
            continue
        try:
            data = os.read(terminal, 4096)
        except OSError:  # the command ended and closed the terminal
            break
        if not data:
            break
        output += data
        if not pressed and REPLY in output:
            time.sleep(0.2)
            os.write(terminal, b"\x03")  # Ctrl+C
            pressed = True
    else:
        os.kill(pid, 9)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode("utf-8", "replace"))
    ok = (
        pressed
        and code == 0
        and "Cancelling" in text
        and "Session ended, closing the adapter" in text
        and "Traceback" not in text
        and "KeyboardInterrupt" not in text
    )
    print(text)
    print(
        f"Ctrl+C {'pressed' if pressed else 'never pressed'}; exit status {code}: "
        f"{'ended cleanly' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
