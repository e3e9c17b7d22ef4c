"""The commands of ``python -m wintun_cffi``: the parser (:mod:`~wintun_cffi.commands.cli`),
the example program, library information, the benchmarks and the installer of the official
``wintun.dll``. Tools over the library: nothing in the library imports them."""
