"""The header tooling (not installed with the package): :mod:`ffigen.header` reads a
``wintun.h`` into a model, :mod:`ffigen.build` turns the model into the cffi modules under
``wintun_cffi/platform`` and checks them for drift. Run it as ``python build_ffi.py``."""
