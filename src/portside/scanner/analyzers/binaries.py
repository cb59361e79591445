"""What the binary analyzers (Go build info, cargo-auditable) share: which files may be
compiled programs, judged from path and mode alone, and a bounds-checked reader for the ELF
headers they need (https://refspecs.linuxfoundation.org/elf/gabi4+/ch4.intro.html).

Every offset and size read from a file is checked against the file's length before use, so a
truncated or hostile ELF yields ``None`` or an empty list, never an exception.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["SHT_NOBITS", "Elf", "has_executable_magic", "may_be_program"]

_ELF_MAGIC = b"\x7fELF"
_MACHO_MAGICS = (
    b"\xfe\xed\xfa\xce",
    b"\xce\xfa\xed\xfe",
    b"\xfe\xed\xfa\xcf",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # universal (fat) binary
)
_PE_MAGIC = b"MZ"
# Directories that hold data, headers and scripts, never programs worth opening.
_NOT_PROGRAM_DIRS = ("usr/share/", "usr/include/", "etc/", "proc/", "sys/", "dev/", "var/lib/")
# Executable-bit files that are scripts or C libraries; reading them would only cost time.
_NOT_PROGRAM_SUFFIXES = (
    ".sh", ".bash", ".py", ".pl", ".pm", ".rb", ".js", ".mjs", ".cjs", ".php", ".txt", ".json",
    ".md", ".html", ".conf", ".a", ".o", ".h", ".la", ".so", ".jar", ".class",
)  # fmt: skip
_MIN_PROGRAM_BYTES = 1024
PT_LOAD = 1
PF_X, PF_W = 1, 2
SHT_NOBITS = 8


def may_be_program(path: str, size: int, mode: int, max_bytes: int) -> bool:
    """An executable regular file of plausible size outside data directories; ``.so``
    libraries count only when versioned names hide the suffix, which is rare for Go and Rust
    outputs and cheap to accept."""
    if not mode & 0o111 or not _MIN_PROGRAM_BYTES <= size <= max_bytes:
        return False
    if path.startswith(_NOT_PROGRAM_DIRS):
        return False
    return not path.rsplit("/", 1)[-1].lower().endswith(_NOT_PROGRAM_SUFFIXES)


def has_executable_magic(data: bytes) -> bool:
    return data.startswith((_ELF_MAGIC, *_MACHO_MAGICS, _PE_MAGIC))


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    addr: int
    offset: int
    size: int


@dataclass(frozen=True)
class Segment:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int


class Elf:
    """The section and program headers of one ELF file held in memory."""

    def __init__(
        self, data: bytes, endian: str, is64: bool, sections: list[Section], segments: list[Segment]
    ) -> None:
        self.data = data
        self.endian = endian
        self.is64 = is64
        self.sections = sections
        self.segments = segments

    @classmethod
    def parse(cls, data: bytes) -> Elf | None:
        if len(data) < 52 or not data.startswith(_ELF_MAGIC) or data[4] not in (1, 2):
            return None
        if data[5] not in (1, 2):
            return None
        is64 = data[4] == 2
        endian = "<" if data[5] == 1 else ">"
        if is64:
            if len(data) < 64:
                return None
            phoff, shoff = struct.unpack_from(endian + "QQ", data, 32)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(
                endian + "HHHHH", data, 54
            )
        else:
            phoff, shoff = struct.unpack_from(endian + "II", data, 28)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(
                endian + "HHHHH", data, 42
            )
        segments = _segments(data, endian, is64, phoff, phentsize, phnum)
        sections = _sections(data, endian, is64, shoff, shentsize, shnum, shstrndx)
        return cls(data, endian, is64, sections, segments)

    def section_data(self, name: str) -> bytes | None:
        for section in self.sections:
            if section.name == name and section.type != SHT_NOBITS:
                return self.data[section.offset : section.offset + section.size]
        return None

    def read_virtual(self, addr: int, size: int) -> bytes | None:
        """``size`` bytes at virtual address ``addr``, when one loaded segment's file
        content holds all of them."""
        for segment in self.segments:
            if segment.type != PT_LOAD:
                continue
            start = addr - segment.vaddr
            if start >= 0 and start + size <= segment.filesz:
                return self.data[segment.offset + start : segment.offset + start + size]
        return None


def _fits(data: bytes, offset: int, size: int) -> bool:
    return offset >= 0 and size >= 0 and offset + size <= len(data)


def _segments(
    data: bytes, endian: str, is64: bool, phoff: int, phentsize: int, phnum: int
) -> list[Segment]:
    layout = endian + ("IIQQQQ" if is64 else "IIIII")
    expected = 56 if is64 else 32
    if phentsize != expected or not _fits(data, phoff, phentsize * phnum):
        return []
    segments = []
    for index in range(phnum):
        at = phoff + index * phentsize
        if is64:
            ptype, flags, offset, vaddr, _paddr, filesz = struct.unpack_from(layout, data, at)
        else:
            ptype, offset, vaddr, _paddr, filesz = struct.unpack_from(layout, data, at)
            flags = struct.unpack_from(endian + "I", data, at + 24)[0]
        if _fits(data, offset, filesz):
            segments.append(Segment(ptype, flags, offset, vaddr, filesz))
    return segments


def _sections(
    data: bytes, endian: str, is64: bool, shoff: int, shentsize: int, shnum: int, shstrndx: int
) -> list[Section]:
    layout = endian + ("IIQQQQ" if is64 else "IIIIII")
    expected = 64 if is64 else 40
    if shentsize != expected or not _fits(data, shoff, shentsize * shnum) or shstrndx >= shnum:
        return []
    raw = [struct.unpack_from(layout, data, shoff + i * shentsize) for i in range(shnum)]
    _name, _type, _flags, _addr, names_offset, names_size = raw[shstrndx]
    if not _fits(data, names_offset, names_size):
        return []
    names = data[names_offset : names_offset + names_size]
    sections = []
    for name_at, stype, _flags, addr, offset, size in raw:
        if stype != SHT_NOBITS and not _fits(data, offset, size):
            continue
        end = names.find(b"\0", name_at)
        if name_at >= len(names) or end < 0:
            continue
        name = names[name_at:end].decode("ascii", errors="replace")
        sections.append(Section(name, stype, addr, offset, size))
    return sections
