"""The ``nhipl`` command line. It only wires commands to library calls.

Each command group lives in its own module and registers itself on :data:`main`.
Bad input of any kind prints ``file:line:col: message`` on stderr and exits 2.
"""

from __future__ import annotations

from ._base import main

# Importing a command module registers its commands on `main`.
from . import core  # noqa: E402,F401
from . import lint_fmt  # noqa: E402,F401
from . import sim  # noqa: E402,F401
from . import import_cmd  # noqa: E402,F401
from . import test_cmd  # noqa: E402,F401
from . import sweep_cmd  # noqa: E402,F401
from . import runtime_cmd  # noqa: E402,F401
from . import serve_cmd  # noqa: E402,F401
from . import schema_cmd  # noqa: E402,F401
from . import lsp_cmd  # noqa: E402,F401
from . import analyze_cmd  # noqa: E402,F401

__all__ = ["main"]
