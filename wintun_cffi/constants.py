"""Wintun's numeric facts: limits, ring layout and the Win32 error codes it reports.

Everything here is shared by the binding and the emulator; nothing else defines these numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, NamedTuple

#: Largest payload of one packet, in bytes.
MAX_IP_PACKET_SIZE: Final = 0xFFFF
#: Smallest ring capacity a session accepts (128 KiB).
MIN_RING_CAPACITY: Final = 0x20000
#: Largest ring capacity a session accepts (64 MiB).
MAX_RING_CAPACITY: Final = 0x4000000
#: Ring capacity used when the caller does not choose one (4 MiB, as Wintun's example).
DEFAULT_RING_CAPACITY: Final = 0x400000
#: Pool name length including the terminating NUL (pool-era API only).
MAX_POOL: Final = 256
#: Adapter name and tunnel type length including the terminating NUL.
MAX_ADAPTER_NAME: Final = 128

#: Every packet record starts on a boundary of this many bytes.
PACKET_ALIGNMENT: Final = 4
#: Bytes of the little-endian ``u32`` Size that precedes every payload.
PACKET_HEADER_SIZE: Final = 4
#: Largest record: header plus the largest payload, aligned (0x10004).
MAX_RECORD_SIZE: Final = (PACKET_HEADER_SIZE + MAX_IP_PACKET_SIZE + 3) & ~3
#: Bytes before a ring's data: ``u32 Head``, ``u32 Tail``, ``i32 Alertable``.
RING_HEADER_SIZE: Final = 12
#: Bytes after ``capacity`` that let a record starting just below it run on without wrapping.
RING_TRAILER_SIZE: Final = MAX_RECORD_SIZE - PACKET_HEADER_SIZE
#: High bit of a record's Size while the client still owns the record.
PACKET_RELEASE_FLAG: Final = 0x80000000
#: A record's Size word without the release flag: ``size_word & PACKET_SIZE_MASK``.
PACKET_SIZE_MASK: Final = ~PACKET_RELEASE_FLAG & 0xFFFFFFFF
#: Written into a ring's Head or Tail by the driver when it stops using the ring.
RING_DEAD_MARKER: Final = 0xFFFFFFFF

#: The smallest MTU of an adapter's IP interface, per IP version: 576 for IPv4, the least
#: Windows' IP stack takes (RFC 791 lets a link go down to 68, but 576 is the datagram every
#: IPv4 host must accept), and 1280 for IPv6 (RFC 8200's link minimum). Both
#: :func:`wintun_cffi.netconfig.set_mtu` and the emulator's host hold to it.
MIN_MTU: Final[Mapping[Literal[4, 6], int]] = MappingProxyType({4: 576, 6: 1280})

#: ``IF_TYPE_PROP_VIRTUAL``: the interface type in every Wintun adapter's LUID.
IF_TYPE_PROP_VIRTUAL: Final = 53

#: Logger levels, as Wintun numbers them.
LOG_INFO: Final = 0
LOG_WARN: Final = 1
LOG_ERR: Final = 2

#: The API generations. ``"0.14"``: Wintun 0.14 and later (no pools). ``"pool"``: Wintun 0.9 to
#: 0.13 (adapters belong to pools). ``"seed"``: the 2020-11 snapshot, the pool API under its
#: first names (``WintunGetAdapter``, ``WintunReceiveRelease``, ``WintunOpenAdapterDeviceObject``).
ApiGeneration = Literal["0.14", "pool", "seed"]


class Generation(NamedTuple):
    """One API generation: the files it is built from and the names that differ between them.

    What its header declares (exported functions, callback types) is generated from that header
    into ``wintun_cffi/platform/_exports.py``.
    """

    #: The generation's name.
    name: ApiGeneration
    #: Our header in ``wintun_cffi/platform/include``, which ``build_ffi.py`` reads.
    header: str
    #: The out-of-line cffi module ``build_ffi.py`` generates from it.
    module: str
    #: The export that opens an existing adapter.
    open_function: str
    #: The export that gives a received packet back.
    release_function: str


#: Every generation, newest first (the loader tries them in this order).
GENERATIONS: Final[tuple[Generation, ...]] = (
    Generation(
        "0.14",
        "wintun-0.14.h",
        "wintun_cffi.platform._ffi_0_14",
        open_function="WintunOpenAdapter",
        release_function="WintunReleaseReceivePacket",
    ),
    Generation(
        "pool",
        "wintun-pool.h",
        "wintun_cffi.platform._ffi_pool",
        open_function="WintunOpenAdapter",
        release_function="WintunReleaseReceivePacket",
    ),
    Generation(
        "seed",
        "wintun-seed.h",
        "wintun_cffi.platform._ffi_seed",
        open_function="WintunGetAdapter",
        release_function="WintunReceiveRelease",
    ),
)
API_GENERATIONS: Final[tuple[ApiGeneration, ...]] = tuple(g.name for g in GENERATIONS)

# Win32 error codes that Wintun reports.
ERROR_SUCCESS: Final = 0
ERROR_FILE_NOT_FOUND: Final = 2
ERROR_ACCESS_DENIED: Final = 5
ERROR_INVALID_HANDLE: Final = 6
ERROR_NOT_ENOUGH_MEMORY: Final = 8
ERROR_INVALID_DATA: Final = 13
ERROR_HANDLE_EOF: Final = 38
ERROR_NOT_SUPPORTED: Final = 50
ERROR_DUP_NAME: Final = 52
ERROR_INVALID_PARAMETER: Final = 87
ERROR_BUFFER_OVERFLOW: Final = 111
ERROR_ALREADY_EXISTS: Final = 183
ERROR_NO_MORE_ITEMS: Final = 259
ERROR_NOT_FOUND: Final = 1168
ERROR_ALREADY_INITIALIZED: Final = 1247
ERROR_OBJECT_ALREADY_EXISTS: Final = 5010


def align(size: int) -> int:
    """Round ``size`` up to the record alignment (4 bytes, :doc:`/protocol`)."""
    return (size + 3) & ~3


def record_size(payload_size: int) -> int:
    """Bytes a packet of ``payload_size`` occupies in a ring, header included."""
    return (payload_size + PACKET_HEADER_SIZE + 3) & ~3


def ring_size(capacity: int) -> int:
    """Bytes of one ring (header, data, trailer) for a session of ``capacity``."""
    return RING_HEADER_SIZE + capacity + RING_TRAILER_SIZE


def is_valid_capacity(capacity: int) -> bool:
    """True if ``capacity`` is a power of two within the accepted range."""
    return MIN_RING_CAPACITY <= capacity <= MAX_RING_CAPACITY and capacity & (capacity - 1) == 0


#: SetupAPI's "driver package in use by devices", reported when the driver cannot be removed
#: because adapters still use it.
ERROR_INF_IN_USE_BY_DEVICES: Final = 0xE000023D
