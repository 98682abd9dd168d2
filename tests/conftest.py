"""pytest hooks for every Python test (tests/integration, tests/e2e).

A test that needs root says so with @pytest.mark.root("why") (or a module's
pytestmark). Without root it fails with that reason: a suite that skips
silently looks green while testing nothing, and CI runs as root.
"""
import os

import pytest


def pytest_runtest_setup(item):
    mark = item.get_closest_marker("root")
    if mark is not None and os.geteuid() != 0:
        why = mark.args[0] if mark.args else "it needs root"
        pytest.fail("needs root: %s. Run the suite as root (CI does: .ci/run)." % why,
                    pytrace=False)
