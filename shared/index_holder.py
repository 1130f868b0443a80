"""Who holds the embedded vector index: one process may open it (a file lock says so), and that
process leaves a record beside it (``holder.json``: its role, pid, host and, for one that serves
a gateway, the URL to ask it), so that a command or service turned away can say by whom, and
``lookalike reindex`` can ask the holder to do the work.

A process turned away that cannot do without the index (a worker) leaves its own record
(``turned-away.json``), read by the holder's ``/readyz``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "GATEWAY",
    "RUN",
    "WORKER",
    "Holder",
    "clear",
    "reachable_url",
    "read",
    "record_turned_away",
    "turned_away",
    "write",
]

RUN = "lookalike run"
WORKER = "worker"
GATEWAY = "gateway"

HOLDER_FILE = "holder.json"
TURNED_AWAY_FILE = "turned-away.json"


def _command_role() -> str:
    """``lookalike <command>`` for the CLI, else the program's name."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program == "lookalike" and len(sys.argv) > 1:
        return f"lookalike {sys.argv[1]}"
    return program


@dataclass(frozen=True)
class Holder:
    role: str
    pid: int
    host: str
    url: str | None = None
    since: float = field(default_factory=time.time)

    @classmethod
    def this_process(cls, role: str | None = None, url: str | None = None) -> Holder:
        return cls(role or _command_role(), os.getpid(), socket.gethostname(), url)

    def describe(self) -> str:
        """``lookalike run (pid 123 on box, http://127.0.0.1:8000)``."""
        where = f"pid {self.pid} on {self.host}"
        return f"{self.role} ({where}, {self.url})" if self.url else f"{self.role} ({where})"

    def alive(self) -> bool:
        """False when the process is known to be gone (only checkable on this host)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _parse(text: str) -> Holder | None:
    try:
        data = json.loads(text)
        return Holder(
            role=str(data["role"]),
            pid=int(data["pid"]),
            host=str(data["host"]),
            url=data.get("url"),
            since=float(data.get("since", 0.0)),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _write_json(path: Path, holder: Holder) -> None:
    """Atomically, so a reader never sees half a record."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(asdict(holder)))
    partial.replace(path)


def write(root: Path, holder: Holder) -> None:
    _write_json(root / HOLDER_FILE, holder)


def clear(root: Path, holder: Holder) -> None:
    """Remove the record if it is still ``holder``'s."""
    path = root / HOLDER_FILE
    try:
        if _parse(path.read_text()) == holder:
            path.unlink()
    except OSError:
        pass


def read(root: Path) -> Holder | None:
    """The holder of the index at ``root``, or None when no live process claims it."""
    try:
        holder = _parse((root / HOLDER_FILE).read_text())
    except OSError:
        return None
    return holder if holder is not None and holder.alive() else None


def record_turned_away(root: Path, holder: Holder) -> None:
    """``holder`` wanted the index and gave up (it exits)."""
    with contextlib.suppress(OSError):  # a read-only data dir: the holder cannot tell
        _write_json(root / TURNED_AWAY_FILE, holder)


def turned_away(root: Path, since: float) -> Holder | None:
    """The last process that gave up on the index after ``since``."""
    try:
        holder = _parse((root / TURNED_AWAY_FILE).read_text())
    except OSError:
        return None
    return holder if holder is not None and holder.since >= since else None


def reachable_url(host: str, port: int) -> str:
    """The URL a process on this machine reaches a server listening on ``host`` with."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}"
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return f"http://[{address}]:{port}" if address.version == 6 else f"http://{address}:{port}"
