"""Fails any test that opens a connection to an address outside this machine's loopback.

Tests may talk to services they start themselves (Beam's job service and worker pool) on
loopback; nothing may reach a model hub, GitHub (Beam's Prism download) or anything else.
"""

from __future__ import annotations

import ipaddress
import os
import socket

LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


class NonLocalConnection(AssertionError):
    pass


def is_loopback(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths
        return True
    host = address[0]
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:  # a name: resolving it would already leave the machine
        return False


def _guarded(original):
    def call(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address):
            raise NonLocalConnection(f"a test tried to connect to {address}")
        return original(self, address)

    call.guarded = True
    return call


def install(monkeypatch) -> None:
    """In the test process, for one test."""
    for name in ("connect", "connect_ex"):
        original = getattr(socket.socket, name)
        if not getattr(original, "guarded", False):
            monkeypatch.setattr(socket.socket, name, _guarded(original))


def install_everywhere() -> None:
    """In a process a test started (through sitecustomize), for its whole life."""
    for name in ("connect", "connect_ex"):
        original = getattr(socket.socket, name)
        if not getattr(original, "guarded", False):
            setattr(socket.socket, name, _guarded(original))


def subprocess_pythonpath(*paths) -> str:
    """PYTHONPATH for processes the tests start: the given paths and the guard."""
    from pathlib import Path

    guard = Path(__file__).resolve().parent / "guarded_site"
    repo = Path(__file__).resolve().parents[1]
    return os.pathsep.join([str(guard), str(repo), *map(str, paths)])
