"""Hand-made binaries for the language analyzer tests: a minimal ELF file (one loadable
segment over the whole file, named sections) and the Go build-info blobs the Go linker writes,
in both the inline (Go 1.18+) and the pointer (Go 1.13-1.17) layout."""

from __future__ import annotations

import struct

BASE = 0x400000
_HEADER, _PROGRAM_HEADER, _SECTION_HEADER = 64, 56, 64
# The first section's data always starts here (header and one program header, 16-aligned),
# so a test can compute virtual addresses inside it before building the file.
FIRST_SECTION_OFFSET = 128
GO_MAGIC = b"\xff Go buildinf:"
MODINFO_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
MODINFO_END = bytes.fromhex("f932433186182072008242104116d8f2")


def make_elf(sections: list[tuple[str, bytes]], big_endian: bool = False) -> bytes:
    """An ELF64 executable holding ``sections`` in order, each at a 16-aligned offset and
    mapped at ``BASE + offset`` by one loadable segment that starts at the first section (so
    file offsets and offsets into the segment differ, as in a real data segment)."""
    e = ">" if big_endian else "<"
    body = bytearray(FIRST_SECTION_OFFSET)
    placed = []
    names = bytearray(b"\0")
    for name, content in [*sections, (".shstrtab", b"")]:
        while len(body) % 16:
            body.append(0)
        name_at = len(names)
        names += name.encode() + b"\0"
        if name == ".shstrtab":
            content = bytes(names)
        placed.append((name_at, len(body), content))
        body += content
    while len(body) % 8:
        body.append(0)
    section_headers = len(body)
    body += bytes(_SECTION_HEADER)  # the null section
    for name_at, offset, content in placed:
        body += struct.pack(e + "IIQQQQIIQQ", name_at, 1, 2, BASE + offset, offset, len(content),
                            0, 0, 1, 0)  # fmt: skip
    ident = b"\x7fELF" + bytes([2, 2 if big_endian else 1, 1]) + bytes(9)
    header = ident + struct.pack(
        e + "HHIQQQIHHHHHH", 2, 62, 1, BASE, _HEADER, section_headers, 0,
        _HEADER, _PROGRAM_HEADER, 1, _SECTION_HEADER, len(placed) + 1, len(placed),
    )  # fmt: skip
    start, size = FIRST_SECTION_OFFSET, len(body) - FIRST_SECTION_OFFSET
    program = struct.pack(e + "IIQQQQQQ", 1, 6, start, BASE + start, BASE + start, size, size, 16)
    body[: _HEADER + _PROGRAM_HEADER] = header + program
    return bytes(body)


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def modinfo(lines: list[str]) -> bytes:
    return MODINFO_START + "".join(line + "\n" for line in lines).encode() + MODINFO_END


def go_inline_buildinfo(version: str, info: bytes) -> bytes:
    """The Go 1.18+ layout: header with flags 2, then two varint-prefixed strings."""
    header = GO_MAGIC + bytes([8, 2]) + bytes(16)
    raw = version.encode()
    return header + _uvarint(len(raw)) + raw + _uvarint(len(info)) + info


def go_pointer_buildinfo(version: str, info: bytes, big_endian: bool = False) -> bytes:
    """The Go 1.13-1.17 layout, as the content of the first ELF section: the header's two
    pointers lead to Go string headers (data pointer, length) right after it, which lead to
    the strings after those."""
    e = ">" if big_endian else "<"
    start = BASE + FIRST_SECTION_OFFSET
    version_header, info_header = start + 32, start + 48
    version_data, info_data = start + 64, start + 64 + len(version)
    header = GO_MAGIC + bytes([8, 1 if big_endian else 0])
    header += struct.pack(e + "QQ", version_header, info_header)
    strings = struct.pack(e + "QQQQ", version_data, len(version), info_data, len(info))
    return header + strings + version.encode() + info
