"""What the analysis scripts in results/ share: bad input is one line on stderr and exit status 2, as for
the es-mpi commands, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from es_mpi.runs.schema import ConfigError


def run_script(main: Callable[[], None]) -> None:
    """Run a script's `main`; a ConfigError (a missing run directory, an unreadable file, a bad flag value)
    ends it with `<script>: error: <message>` and status 2."""
    try:
        main()
    except ConfigError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
