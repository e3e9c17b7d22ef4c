"""Argument checks that every layer applies before anything reaches Wintun.

A bad argument raises :class:`TypeError` or :class:`ValueError` naming the problem, and
nothing changes. The backends (native and emulated) and the high-level API all use these.
"""

from __future__ import annotations

import uuid
from typing import Literal

from .constants import (
    MAX_ADAPTER_NAME,
    MAX_IP_PACKET_SIZE,
    MAX_POOL,
    MAX_RING_CAPACITY,
    MIN_MTU,
    MIN_RING_CAPACITY,
    is_valid_capacity,
)


def check_text(value: object, what: str, limit: int) -> str:
    """``value`` if it is a non-empty ``str`` without NUL of at most ``limit - 1`` characters.

    ``limit`` counts the terminating NUL, as Wintun's buffers do. Length is counted in UTF-16
    code units, since that is what Windows stores.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters: {value!r}")
    units = utf16_units(value)
    if units > limit - 1:
        raise ValueError(f"{what} is {units} UTF-16 code units long; at most {limit - 1} fit")
    return value


def utf16_units(text: str) -> int:
    """Length of ``text`` as Windows stores it (UTF-16 code units)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def name_key(name: str) -> str:
    """``name`` as Windows compares adapter names: case-insensitively, one character to one
    character (its upcase table), so "Straße" and "STRASSE" stay different, unlike
    :meth:`str.upper` or :meth:`str.casefold`."""
    return "".join(ch.upper() if len(ch.upper()) == 1 else ch for ch in name)


def check_adapter_name(name: object) -> str:
    """An adapter name: 1 to 127 characters, no NUL."""
    return check_text(name, "adapter name", MAX_ADAPTER_NAME)


def check_tunnel_type(tunnel_type: object) -> str:
    """A tunnel type (0.14): 1 to 127 characters, no NUL."""
    return check_text(tunnel_type, "tunnel type", MAX_ADAPTER_NAME)


def check_pool(pool: object) -> str:
    """A pool name (pool era): 1 to 255 characters, no NUL."""
    return check_text(pool, "pool name", MAX_POOL)


def check_guid(guid: object) -> uuid.UUID | None:
    """``None`` or a :class:`uuid.UUID`."""
    if guid is not None and not isinstance(guid, uuid.UUID):
        raise TypeError(f"guid must be a uuid.UUID or None, not {type(guid).__name__}")
    return guid


def check_packet_size(size: object) -> int:
    """A packet size: an ``int`` in ``0..0xFFFF`` (the real DLL does not check it)."""
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"packet size must be an int, not {type(size).__name__}")
    if not 0 <= size <= MAX_IP_PACKET_SIZE:
        raise ValueError(f"packet size {size} is outside 0..{MAX_IP_PACKET_SIZE:#x}")
    return size


def check_timeout(timeout: object) -> float | None:
    """A timeout in seconds: ``None`` (forever) or a real number, not negative and not NaN
    (``inf`` is forever too)."""
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise TypeError(
            f"timeout must be a number of seconds or None, not {type(timeout).__name__}"
        )
    if timeout != timeout:  # NaN compares unequal to itself
        raise ValueError("timeout must be a number of seconds, not NaN")
    if timeout < 0:
        raise ValueError(f"timeout must not be negative, not {timeout}")
    return float(timeout)


def check_max_packets(max_packets: object) -> int:
    """A most-packets count: a positive ``int`` (any size: no ring holds more packets than
    fit in it, so a larger count takes what there is)."""
    if not isinstance(max_packets, int) or isinstance(max_packets, bool) or max_packets < 1:
        raise ValueError(f"max_packets must be a positive int, not {max_packets!r}")
    return max_packets


def check_capacity(capacity: object) -> int:
    """A ring capacity: a power of two in ``0x20000..0x4000000``."""
    if not isinstance(capacity, int) or isinstance(capacity, bool):
        raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
    if not is_valid_capacity(capacity):
        raise ValueError(
            f"capacity {capacity:#x} must be a power of two from {MIN_RING_CAPACITY:#x} "
            f"to {MAX_RING_CAPACITY:#x}"
        )
    return capacity


def check_adapter_kind(api: str, tunnel_type: object, pool: object) -> None:
    """Creating an adapter: 0.14 takes a tunnel type and no pool, the pool era the reverse.

    The wrong one, or neither, is a :class:`TypeError` (that generation's signature).
    """
    if api == "0.14":
        if pool is not None:
            raise TypeError("Wintun 0.14 has no pools: pass tunnel_type, not pool")
        if tunnel_type is None:
            raise TypeError("Wintun 0.14 needs a tunnel_type to create an adapter")
        check_tunnel_type(tunnel_type)
    else:
        if tunnel_type is not None:
            raise TypeError(f"the {api!r} API has pools: pass pool, not tunnel_type")
        if pool is None:
            raise TypeError(f"the {api!r} API needs a pool")
        check_pool(pool)


def check_open_pool(api: str, pool: object) -> None:
    """Opening an adapter: 0.14 takes no pool, the pool era needs one."""
    if api == "0.14":
        if pool is not None:
            raise TypeError("Wintun 0.14 has no pools: open adapters by name only")
    else:
        if pool is None:
            raise TypeError(f"the {api!r} API needs a pool")
        check_pool(pool)


def check_mtu(mtu: int, family: Literal[4, 6] | None) -> tuple[Literal[4, 6], ...]:
    """The IP versions ``mtu`` is to be set for (``family``, or both for ``None``), once it is
    an ``int`` from :data:`~wintun_cffi.constants.MIN_MTU` to 65535 for each of them."""
    if family not in (4, 6, None):
        raise ValueError(f"family must be 4, 6 or None (both), not {family!r}")
    if not isinstance(mtu, int) or isinstance(mtu, bool):
        raise TypeError(f"mtu must be an int, not {type(mtu).__name__}")
    families: tuple[Literal[4, 6], ...] = (4, 6) if family is None else (family,)
    for each in families:
        if not MIN_MTU[each] <= mtu <= MAX_IP_PACKET_SIZE:
            raise ValueError(
                f"an IPv{each} MTU must be {MIN_MTU[each]} to {MAX_IP_PACKET_SIZE}, not {mtu}"
            )
    return families
