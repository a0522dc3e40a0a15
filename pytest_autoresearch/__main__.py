"""``python -m pytest_autoresearch``: the same as the ``autoresearch`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
