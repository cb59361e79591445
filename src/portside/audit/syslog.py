"""Forwarding audit entries to syslog (``audit.syslog_address``), one JSON line per entry.

The address is ``host:port`` for UDP (``[::1]:514`` for IPv6) or the path of a local socket such
as ``/dev/log``; a host name is resolved once, at start. Sending uses the standard library's
:class:`logging.handlers.SysLogHandler`, with ``portside-audit`` as the tag and ``LOG_AUTH`` as
the facility, so a syslog daemon can route audit lines apart from the rest. A syslog that is
down loses lines (syslog over UDP promises no more); the database keeps the entry either way.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import socket

import structlog

from portside.audit.log import AuditEntry, iso8601

__all__ = ["SyslogForwarder", "entry_line", "parse_syslog_address"]

log = structlog.get_logger("portside.audit")

TAG = "portside-audit"


def parse_syslog_address(value: str) -> str | tuple[str, int]:
    """A socket path (starts with ``/``), or ``(host, port)`` for UDP. Raises ValueError."""
    value = value.strip()
    if value.startswith("/"):
        return value
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"syslog address {value[:100]!r}: expected host:port (UDP) or a socket path"
        )
    return host, int(port)


def entry_line(entry: AuditEntry) -> str:
    return json.dumps(
        {
            "op_time": iso8601(entry.op_time),
            "username": entry.username,
            "operation": entry.operation,
            "resource_type": entry.resource_type,
            "resource": entry.resource,
            "result": entry.result,
            "client_ip": entry.client_ip,
            "project_id": entry.project_id,
            "project": entry.project,
            "detail": entry.detail,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


class _Handler(logging.handlers.SysLogHandler):
    def handleError(self, record: logging.LogRecord) -> None:
        # The default prints a traceback to stderr for every lost line; one warning will do.
        log.warning("could not send an audit entry to syslog", address=str(self.address))


def _resolved(target: str | tuple[str, int]) -> str | tuple[str, int]:
    """A host name resolved once, at start: the handler would otherwise look it up again for
    every line it sends. Raises OSError when it cannot be resolved."""
    if isinstance(target, str):
        return target
    host, port = target
    found = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    return str(found[0][4][0]), port


class SyslogForwarder:
    def __init__(self, address: str) -> None:
        target = _resolved(parse_syslog_address(address))
        socktype = None if isinstance(target, str) else socket.SOCK_DGRAM
        self._handler = _Handler(target, logging.handlers.SysLogHandler.LOG_AUTH, socktype)
        self._handler.ident = TAG + ": "
        # A datagram is one entry already; on a stream socket the NUL separates entries.
        self._handler.append_nul = isinstance(target, str)

    def send(self, entries: list[AuditEntry]) -> None:
        """Send each entry as one line. Blocking (socket I/O): run it in a worker thread."""
        for entry in entries:
            record = logging.LogRecord(
                TAG, logging.INFO, __file__, 0, entry_line(entry), None, None
            )
            self._handler.handle(record)

    def close(self) -> None:
        self._handler.close()
