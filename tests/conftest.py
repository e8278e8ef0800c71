"""Test-session settings shared by every test module."""

import os
import shutil
import tempfile

_made = []


def pytest_configure(config):
    # One on-disk spec cache per test session (fusioncim_plugin/spec_cache.py): tests and
    # the CLI processes they start share it, and neither reads nor fills the user's.
    if "FUSIONCIM_CACHE_DIR" not in os.environ:
        d = tempfile.mkdtemp(prefix="fusioncim-test-cache-")
        os.environ["FUSIONCIM_CACHE_DIR"] = d
        _made.append(d)


def pytest_unconfigure(config):
    for d in _made:
        shutil.rmtree(d, ignore_errors=True)
        os.environ.pop("FUSIONCIM_CACHE_DIR", None)
