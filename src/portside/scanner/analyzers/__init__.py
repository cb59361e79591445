"""Package analyzers: each one recognises some files in an image and lists the packages in them.

:func:`default_analyzers` is the set every scan uses. Analyzers hold no state between files,
so one set serves every layer and every scan.
"""

from __future__ import annotations

import functools

from portside.scanner.analyzers.apk import ApkAnalyzer
from portside.scanner.analyzers.dpkg import DpkgAnalyzer
from portside.scanner.analyzers.golang import GoBinaryAnalyzer
from portside.scanner.analyzers.java import JavaArchiveAnalyzer
from portside.scanner.analyzers.npm import NpmAnalyzer
from portside.scanner.analyzers.python import PythonAnalyzer
from portside.scanner.analyzers.rpm import RpmAnalyzer
from portside.scanner.analyzers.ruby import RubyAnalyzer
from portside.scanner.analyzers.rust import RustAnalyzer
from portside.scanner.model import Analyzer

__all__ = ["default_analyzers"]


@functools.cache
def default_analyzers() -> tuple[Analyzer, ...]:
    return (
        DpkgAnalyzer(),
        ApkAnalyzer(),
        RpmAnalyzer(),
        PythonAnalyzer(),
        NpmAnalyzer(),
        GoBinaryAnalyzer(),
        JavaArchiveAnalyzer(),
        RubyAnalyzer(),
        RustAnalyzer(),
    )
