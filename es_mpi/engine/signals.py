"""Stop requests: SIGTERM, SIGUSR1 (Slurm's warning before the time limit) and SIGINT set a flag that
the ranks agree on at the next generation boundary; a second SIGINT aborts at once."""

from __future__ import annotations

import signal


class StopFlag:
    """`signum` is the first stop signal received, 0 until then."""

    def __init__(self) -> None:
        self.signum = 0

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signum:
            raise KeyboardInterrupt
        self.signum = self.signum or signum

    def install(self) -> StopFlag:
        for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self
