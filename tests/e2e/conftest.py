"""The end-to-end tier's hook: a test's outcome is kept on its item, so that a fixture
(the browser page's) can tell at teardown whether the test failed and save a screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[Any]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
