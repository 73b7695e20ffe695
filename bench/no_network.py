"""A guard that refuses, and records, every connection leaving this machine.

The benchmark must run offline: Ultralytics downloads weights and fonts and
sends usage events unless told otherwise. Settings alone cannot prove that
none of it happens; with this guard any attempt fails at once (instead of
hanging on a timeout) and is listed in results.json.
"""

from __future__ import annotations

import ipaddress
import os
import socket

ATTEMPTS: list[str] = []
# Update checks and telemetry of libraries binsight itself uses, off by their documented switches:
# albumentations asks PyPI for its latest version when imported, MLflow sends usage telemetry.
QUIET_ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}


class NetworkAccessError(OSError):
    pass


def _is_local(host) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def forbid_network() -> None:
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def refuse(what: str):
        ATTEMPTS.append(what)
        raise NetworkAccessError(f"network access refused by the benchmark's offline guard: {what}")

    def guarded_connect(self, address):
        if self.family == socket.AF_UNIX or _is_local(address[0]):
            return connect(self, address)
        refuse(f"connect {address!r}")

    def guarded_connect_ex(self, address):
        if self.family == socket.AF_UNIX or _is_local(address[0]):
            return connect_ex(self, address)
        refuse(f"connect {address!r}")

    def guarded_getaddrinfo(host, *args, **kwargs):
        if _is_local(host):
            return getaddrinfo(host, *args, **kwargs)
        refuse(f"resolve {host!r}")

    socket.socket.connect = guarded_connect
    socket.socket.connect_ex = guarded_connect_ex
    socket.getaddrinfo = guarded_getaddrinfo


def quiet_update_checks() -> None:
    """Set QUIET_ENV; it must run before albumentations or MLflow is imported."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
