"""Fixtures shared by the test modules."""

import signal

import pytest

#: Put at the top of a child interpreter's script that is sent SIGINT: a process started
#: with SIGINT ignored (a background job of a non-interactive shell) passes that on to its
#: children, and Python then installs no KeyboardInterrupt handler.
CHILD_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler (raises KeyboardInterrupt), restored afterwards: the Ctrl-C
    tests then also run where the test process was started with SIGINT ignored."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
