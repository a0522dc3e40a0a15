"""pytest-autoresearch: judge an experiment against the best result recorded on the branch.

Importing this package stays light (no torch, numpy or matplotlib): the language-model kit
lives in :mod:`pytest_autoresearch.lm` and is imported only where it is used.
"""

from __future__ import annotations

__version__ = "0.1.0"
