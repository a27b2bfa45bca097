import os
import socket
from pathlib import Path

import pytest

from tests import network_guard

SHARED_DATA = Path(
    os.environ.get(
        "CCMINE_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)
REPO = Path(__file__).resolve().parents[1]
# Every Python process a test starts loads the network guard (tests/guarded_site).
os.environ["PYTHONPATH"] = network_guard.subprocess_pythonpath()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now, for a service a test starts."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA} (expected beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def lid():
    from mining.langid import LanguageIdentifier

    return LanguageIdentifier()


@pytest.fixture(autouse=True)
def _no_hub_downloads(monkeypatch):
    """Tests never reach a model hub, nor any other address off this machine."""
    network_guard.install(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
