"""``python build_ffi.py``: regenerate the binding's generated modules from the headers
(``--check`` only reports stale ones, ``--header PATH`` compares a ``wintun.h`` with ours).

The header tooling lives in :mod:`ffigen` (:mod:`ffigen.header` reads a header,
:mod:`ffigen.build` writes the modules); this file is only its command.
"""

from __future__ import annotations

import sys

from ffigen.build import main

if __name__ == "__main__":
    sys.exit(main())
