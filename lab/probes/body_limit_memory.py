"""Peak memory of a gateway that is sent 1 GB without a length, on each endpoint.

Starts ``python -m services.gateway`` (embedded defaults in a temporary data dir), streams a
chunked body of up to ``--gigabytes`` to each endpoint until the gateway answers, and prints
the status, the bytes sent and the gateway's peak resident memory (``VmHWM``) after each.

    .venv/bin/python -m lab.probes.body_limit_memory
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ENDPOINTS = [
    ("/recommend", "application/json", b'{"image_url": "'),
    (
        "/recommend",
        "multipart/form-data; boundary=b",
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n',
    ),
    ("/feedback", "application/json", b'{"kind": "'),
    ("/products/1", "application/octet-stream", b""),
    ("/status", "text/plain", b""),
]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stream(port: int, path: str, content_type: str, first: bytes, total: int) -> tuple[int, int]:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    filler = b"x" * (1 << 20)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode())
        chunk = first
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except OSError:
                break
            sent += len(chunk)
            chunk = filler
        else:
            sock.sendall(b"0\r\n\r\n")
        answer = sock.recv(4096)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    total = int(args.gigabytes * (1 << 30))
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "LOOKALIKE_DATA_DIR": data_dir,
            "LOOKALIKE_PORT": str(args.port),
            "LOOKALIKE_LOG_LEVEL": "WARNING",
        }
        lookalike = str(Path(sys.executable).with_name("lookalike"))
        subprocess.run([lookalike, "migrate"], env=env, check=True, capture_output=True)  # noqa: S603
        gateway = subprocess.Popen([sys.executable, "-m", "services.gateway"], env=env)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{args.port}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            time.sleep(20)  # the models load in the background: let the baseline settle
            print(f"baseline peak RSS {peak_rss_mb(gateway.pid):.0f} MB")
            for path, content_type, first in ENDPOINTS:
                status, sent = stream(args.port, path, content_type, first, total)
                print(
                    f"POST {path:<12} {content_type.split(';')[0]:<24} -> {status}  after "
                    f"{sent / 1e6:7.1f} MB sent  peak RSS {peak_rss_mb(gateway.pid):.0f} MB"
                )
        finally:
            gateway.terminate()
            gateway.wait(30)


if __name__ == "__main__":
    main()
