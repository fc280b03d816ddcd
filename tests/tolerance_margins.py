"""A pytest plugin that measures how close each tolerance comparison came to failing.

    PYTHONPATH=tests python -m pytest -p tolerance_margins tests/test_vgg16.py ...

It wraps ``numpy.testing.assert_allclose`` and, for every test, records the smallest
margin: allowed / actual over the compared elements, where allowed is ``atol + rtol *
|desired|`` (a margin of 2 means the worst element used half its tolerance; 1 is the edge).
At the end it prints the tests whose margin is under ``$HW3_MARGIN_SHOW`` (default 1e9,
i.e. all) with their margins, the smallest first, and writes them to
``$HW3_MARGIN_FILE`` (one ``margin<TAB>test`` line each, appended) when that is set.
Exact comparisons (rtol = atol = 0) are left out: they have no margin to measure.
"""
import os

import numpy as np
import pytest

_margins = {}
_current = [None]


def _margin(actual, desired, rtol, atol):
    a = np.asarray(actual, np.float64)
    d = np.broadcast_to(np.asarray(desired, np.float64), a.shape)
    err = np.abs(a - d)
    allowed = atol + rtol * np.abs(d)
    bad = err > 0
    if not bad.any() or not (np.isfinite(err[bad]).all()):
        return np.inf
    return float((allowed[bad] / err[bad]).min())


def pytest_configure(config):
    original = np.testing.assert_allclose

    def measured(actual, desired, rtol=1e-7, atol=0, *args, **kwargs):
        original(actual, desired, rtol, atol, *args, **kwargs)
        if _current[0] is not None and (rtol or atol):
            try:
                m = _margin(actual, desired, rtol, atol)
            except (TypeError, ValueError):
                return
            _margins[_current[0]] = min(_margins.get(_current[0], np.inf), m)

    np.testing.assert_allclose = measured


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _current[0] = item.nodeid
    yield
    _current[0] = None


def pytest_unconfigure(config):
    if not _margins:
        return
    show = float(os.environ.get("HW3_MARGIN_SHOW", "1e9"))
    rows = sorted((m, t) for t, m in _margins.items() if m < show)
    path = os.environ.get("HW3_MARGIN_FILE")
    if path:
        with open(path, "a") as f:
            f.writelines("{:.3g}\t{}\n".format(m, t) for m, t in rows)
    else:
        for m, t in rows:
            print("margin {:8.3g}  {}".format(m, t))
