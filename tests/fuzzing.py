"""Example budgets for property tests: the test's own count normally, the fuzz profile's under `make fuzz`.

A test that says ``@settings(max_examples=400)`` overrides whatever profile is loaded, so `make fuzz` could not
raise it; ``max_examples=examples(400)`` keeps 400 in everyday runs (dev, ci) and becomes the fuzz profile's
count when ``HYPOTHESIS_PROFILE=fuzz``. The profiles themselves are registered in tests/conftest.py.
"""

from __future__ import annotations

import os

from hypothesis import settings

FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"


def examples(n: int) -> int:
    return max(n, settings.get_profile("fuzz").max_examples) if FUZZ else n
