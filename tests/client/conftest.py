"""Client tests run against a real Quorum server on loopback, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.quorum_server import QuorumServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuorumServer]:
    """One server per test module, on a store of its own."""
    quorum = QuorumServer(tmp_path_factory.mktemp("quorum-server"))
    quorum.prepare()
    quorum.start()
    try:
        yield quorum
    finally:
        quorum.stop()
