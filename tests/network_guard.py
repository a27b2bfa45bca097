"""Fails any test that opens a connection to an address outside this machine's loopback.

Tests may talk to services they start themselves (Beam's job service and worker pool) on
loopback; nothing may reach a model hub, GitHub (Beam's Prism download) or anything else.
"""

from __future__ import annotations

import ipaddress
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


def install(monkeypatch) -> None:
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded(original):
        def call(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address):
                raise NonLocalConnection(f"a test tried to connect to {address}")
            return original(self, address)

        return call

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
