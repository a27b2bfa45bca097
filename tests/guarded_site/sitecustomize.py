"""Loaded by every Python process the tests start (its folder is on their PYTHONPATH): no
connection may leave this machine's loopback."""

from tests.network_guard import install_everywhere

install_everywhere()
