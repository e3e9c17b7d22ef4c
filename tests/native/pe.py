"""Reading and altering PE images (Windows DLLs) for the tests, with the standard library only,
so the same code runs under any Python: section offsets, export names, and the Authenticode
signature (the certificate table and the signer's signature value inside it)."""

from __future__ import annotations

import struct
from typing import NamedTuple

IMAGE_DIRECTORY_ENTRY_EXPORT = 0
IMAGE_DIRECTORY_ENTRY_SECURITY = 4
#: WIN_CERTIFICATE's header: dwLength, wRevision, wCertificateType.
WIN_CERTIFICATE_HEADER = 8


class Section(NamedTuple):
    """A section header: name, where it is in memory and in the file."""

    name: str
    virtual_address: int
    virtual_size: int
    raw_offset: int
    raw_size: int


def _optional_header(image: bytes) -> tuple[int, int]:
    """(offset of the optional header, offset of its data directories)."""
    pe = struct.unpack_from("<I", image, 0x3C)[0]
    optional = pe + 24
    magic = struct.unpack_from("<H", image, optional)[0]
    return optional, optional + (96 if magic == 0x10B else 112)


def directory(image: bytes, index: int) -> tuple[int, int]:
    """(address, size) of data directory ``index`` (a file offset for the security one)."""
    _, directories = _optional_header(image)
    address, size = struct.unpack_from("<II", image, directories + 8 * index)
    return address, size


def sections(image: bytes) -> list[Section]:
    """The section table."""
    pe = struct.unpack_from("<I", image, 0x3C)[0]
    count = struct.unpack_from("<H", image, pe + 6)[0]
    table = pe + 24 + struct.unpack_from("<H", image, pe + 20)[0]
    found = []
    for index in range(count):
        name, size, address, raw_size, raw_offset = struct.unpack_from(
            "<8sIIII", image, table + 40 * index
        )
        found.append(
            Section(name.rstrip(b"\0").decode("ascii"), address, size, raw_offset, raw_size)
        )
    return found


def file_offset(image: bytes, rva: int) -> int:
    """The file offset of relative virtual address ``rva``."""
    for section in sections(image):
        if section.virtual_address <= rva < section.virtual_address + section.raw_size:
            return rva - section.virtual_address + section.raw_offset
    raise ValueError(f"RVA {rva:#x} is in no section")


def export_names(image: bytes) -> set[str]:
    """The names in the export table."""
    rva, size = directory(image, IMAGE_DIRECTORY_ENTRY_EXPORT)
    if not size:
        return set()
    table = file_offset(image, rva)
    count, _, names_rva = struct.unpack_from("<III", image, table + 24)
    names_at = file_offset(image, names_rva)
    names = set()
    for index in range(count):
        start = file_offset(image, struct.unpack_from("<I", image, names_at + 4 * index)[0])
        names.add(image[start : image.index(b"\0", start)].decode("ascii"))
    return names


def strip_signature(data: bytes) -> bytes:
    """``data`` (a PE image) without its Authenticode signature: the security directory
    entry zeroed and the certificate table cut off the end."""
    image = bytearray(data)
    _, directories = _optional_header(data)
    entry = directories + 8 * IMAGE_DIRECTORY_ENTRY_SECURITY
    offset, size = struct.unpack_from("<II", image, entry)
    struct.pack_into("<II", image, entry, 0, 0)
    if size and offset + size >= len(image):
        del image[offset:]
    return bytes(image)


def _der(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of the content, end of the content) of the DER element at ``at``."""
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        octets = length & 0x7F
        length = int.from_bytes(data[at : at + octets], "big")
        at += octets
    return tag, at, at + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, content start, content end) of each element in [start, end)."""
    found = []
    while start < end:
        tag, content, stop = _der(data, start)
        found.append((tag, start, content, stop))
        start = stop
    return found


SEQUENCE, SET, OCTET_STRING, CONTEXT_0 = 0x30, 0x31, 0x04, 0xA0


def signer_signature_span(image: bytes) -> tuple[int, int]:
    """(file offset, length) of the first signer's signature value (its encrypted digest)
    in the PKCS #7 SignedData of the image's first Authenticode certificate."""
    offset, size = directory(image, IMAGE_DIRECTORY_ENTRY_SECURITY)
    if not size:
        raise ValueError("the image carries no signature")
    start = offset + WIN_CERTIFICATE_HEADER
    # ContentInfo: SEQUENCE { contentType OID, [0] EXPLICIT SignedData }
    _, content, stop = _der(image, start)
    explicit = _children(image, content, stop)[1]
    _, signed_start, signed_stop = _der(image, explicit[2])
    # SignedData: version, digestAlgorithms, contentInfo, [0] certificates, [1] crls?,
    # signerInfos SET (the last element).
    signer_infos = _children(image, signed_start, signed_stop)[-1]
    assert signer_infos[0] == SET
    first_signer = _children(image, signer_infos[2], signer_infos[3])[0]
    # SignerInfo: version, sid, digestAlgorithm, [0] authenticatedAttributes,
    # digestEncryptionAlgorithm, encryptedDigest OCTET STRING, [1] unauthenticated...
    fields = _children(image, first_signer[2], first_signer[3])
    value = next(field for field in fields if field[0] == OCTET_STRING)
    return value[2], value[3] - value[2]


def flip_byte(data: bytes, offset: int) -> bytes:
    """``data`` with the byte at ``offset`` inverted."""
    changed = bytearray(data)
    changed[offset] ^= 0xFF
    return bytes(changed)


def embedded_images(image: bytes) -> list[int]:
    """File offsets of the PE images inside the image's resources (Wintun's embedded
    drivers)."""
    rsrc = next(section for section in sections(image) if section.name == ".rsrc")
    found = []
    at = image.find(b"MZ", rsrc.raw_offset, rsrc.raw_offset + rsrc.raw_size)
    while at != -1:
        if at + 0x40 <= len(image):
            header = struct.unpack_from("<I", image, at + 0x3C)[0]
            if image[at + header : at + header + 4] == b"PE\0\0":
                found.append(at)
        at = image.find(b"MZ", at + 2, rsrc.raw_offset + rsrc.raw_size)
    return found
