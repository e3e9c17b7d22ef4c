"""``python -m wintun_cffi <command>``: the commands live in :mod:`wintun_cffi.commands` (the
parser in :mod:`wintun_cffi.commands.cli`); this entry only runs them."""

from __future__ import annotations

import sys

from .commands.cli import main

if __name__ == "__main__":
    sys.exit(main())
