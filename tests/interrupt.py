"""Children that a test interrupts as Ctrl-C at a terminal does (SIGINT).

A shell without job control starts a command put in the background (``cmd &``: a CI
runner's script, ``nohup``) with SIGINT ignored, and every process below inherits that:
Python then installs no ``KeyboardInterrupt`` handler, and the test's SIGINT does nothing
(the crawl ran on to its end, and the test failed). A child that a test interrupts starts
with SIGINT at its default, as one started from a terminal does.
"""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` of a child that a test sends SIGINT: its default disposition back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
