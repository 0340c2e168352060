"""The end-to-end tier's hook: a test's outcome is kept on its item, so that a fixture
(the browser page's) can tell at teardown whether the test failed and save a screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.fault_proxy import FaultProxy
from tests.support.servers import MotoServer


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[Any]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    """A fault proxy in front of moto for a whole module (the root conftest's
    ``fault_proxy`` is per test), so one server per module can sit behind it."""
    proxy = FaultProxy(("127.0.0.1", moto.port)).start()
    yield proxy
    proxy.stop()
