"""Wintun's log, bridged to Python.

Wintun calls one logger per loaded library, which every backend over that library shares
(:meth:`wintun_cffi.native.NativeBackend.set_logger`). Each :class:`~wintun_cffi.api.Wintun`
installs a bridge there that forwards each line to the
user's callable, or by default to the :mod:`logging` logger ``"wintun_cffi.driver"`` with the
level mapped and the driver's timestamp kept as the record's creation time. The bridge also
keeps the lines each thread logs while a call is in progress, so that an exception raised after
a failing call carries them (:attr:`wintun_cffi.errors.WintunError.log`).

Until the application configures :mod:`logging`, nothing is printed: the logger has a
:class:`logging.NullHandler`, as a library's loggers should, so Python's last-resort handler
does not write bare lines on standard error that repeat what the exception already says. The
records still propagate: ``logging.basicConfig(level=logging.INFO)`` (or any handler on the
root logger or on ``"wintun_cffi.driver"``) shows them.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .constants import LOG_ERR, LOG_INFO, LOG_WARN

#: The :mod:`logging` logger that receives Wintun's log by default (silent until the
#: application configures logging).
DRIVER_LOGGER = logging.getLogger("wintun_cffi.driver")
DRIVER_LOGGER.addHandler(logging.NullHandler())

#: ``logger(level, timestamp, message)`` as users write it: ``level`` is ``LOG_INFO``,
#: ``LOG_WARN`` or ``LOG_ERR``; ``timestamp`` a UTC :class:`datetime.datetime`, or ``None``
#: where the API generation passes none (before 0.14).
UserLogger = Callable[[int, "datetime.datetime | None", str], None]

_LEVELS = {LOG_INFO: logging.INFO, LOG_WARN: logging.WARNING, LOG_ERR: logging.ERROR}
_FILETIME_EPOCH = datetime.datetime(1601, 1, 1, tzinfo=datetime.timezone.utc)
_self_log = logging.getLogger(__name__)


def filetime_to_datetime(filetime: int) -> datetime.datetime:
    """A Windows timestamp (100 ns intervals since 1601-01-01 UTC) as a UTC datetime."""
    return _FILETIME_EPOCH + datetime.timedelta(microseconds=filetime // 10)


def log_to_logging(level: int, timestamp: datetime.datetime | None, message: str) -> None:
    """The default logger: a record on ``"wintun_cffi.driver"``, created at ``timestamp``."""
    python_level = _LEVELS.get(level, logging.ERROR)
    if not DRIVER_LOGGER.isEnabledFor(python_level):
        return
    record = DRIVER_LOGGER.makeRecord(
        DRIVER_LOGGER.name, python_level, "wintun", 0, "%s", (message,), None
    )
    if timestamp is not None:
        record.created = timestamp.timestamp()
        record.msecs = (record.created - int(record.created)) * 1000
    DRIVER_LOGGER.handle(record)


class CapturedLines(list[str]):
    """The lines logged during a call (:meth:`LogBridge.capture`); :attr:`errors` holds those
    logged at error level (``LOG_ERR``)."""

    def __init__(self) -> None:
        super().__init__()
        #: The lines logged at error level, in order.
        self.errors: list[str] = []


class LogBridge:
    """The one callable installed into a backend with ``set_logger``."""

    def __init__(self) -> None:
        self.target: UserLogger | None = log_to_logging
        self._captures = threading.local()

    def __call__(
        self, level: int, timestamp: int | None, message: str, *, forward: bool = True
    ) -> None:
        """A line from Wintun: kept for the call in progress on this thread, and given to
        :attr:`target` unless ``forward`` is False (another bridge over the same library
        gave it to the same target already)."""
        lines: CapturedLines | None = getattr(self._captures, "lines", None)
        if lines is not None:
            lines.append(message)
            if level == LOG_ERR:
                lines.errors.append(message)
        target = self.target
        if target is None or not forward:
            return
        when = None if timestamp is None else filetime_to_datetime(timestamp)
        try:
            target(level, when, message)
        except Exception:  # never let the user's logger break a Wintun call
            _self_log.exception("the Wintun logger %r raised", target)
        except BaseException as stop:  # KeyboardInterrupt, SystemExit: once the call returns
            if lines is None or getattr(self._captures, "stop", None) is not None:
                _self_log.error("the Wintun logger %r raised", target, exc_info=stop)
            else:
                self._captures.stop = stop

    @contextmanager
    def capture(self) -> Iterator[CapturedLines]:
        """Collect the lines this thread logs inside the block."""
        outer: CapturedLines | None = getattr(self._captures, "lines", None)
        lines = CapturedLines()
        self._captures.lines = lines
        try:
            yield lines
        finally:
            self._captures.lines = outer
            if outer is not None:
                outer.extend(lines)
                outer.errors.extend(lines.errors)
            stop = getattr(self._captures, "stop", None)
            if stop is not None and outer is None:
                self._captures.stop = None
                raise stop
