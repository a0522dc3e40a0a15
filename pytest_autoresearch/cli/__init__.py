"""The ``autoresearch`` command: start a session branch, and read the ledger the plugin writes.

``commands`` parses and runs each command, ``stats`` adds the runs up, ``views`` turns the
sums into text and ``plot`` into a chart (matplotlib, imported only when drawing).
"""

from __future__ import annotations

from .commands import main

__all__ = ["main"]
