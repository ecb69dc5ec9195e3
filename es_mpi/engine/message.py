"""What each rank sends the others after its episodes: one float64 vector, packed and unpacked here.

Only scalars travel: timings, a checksum of the state, a stop signal, one row per episode this rank
finished (episode index, return, length, behaviour vector) and one row per episode that collected
observation statistics (episode index, packed ObsStats).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# rollout_s, checksum, stop, rows, stat rows, idle_s, handovers
HEADER = 7
# floats of an episode row without a behaviour vector: episode index, return, length
ROW = 3


@dataclass(frozen=True)
class RankReport:
    rollout_s: float  # seconds running episodes, waiting for hand-overs included
    checksum: int  # crc32 of the strategy state: replicas must agree
    stop: int  # number of a stop signal this rank got (0: none)
    idle_s: float  # seconds waiting for an episode to be handed over
    handovers: int  # episodes this rank handed to another
    rows: np.ndarray  # (episodes, ROW + behaviour width) float64
    stats: np.ndarray  # (episodes, 1 + packed ObsStats size) float64

    def pack(self) -> np.ndarray:
        head = [self.rollout_s, self.checksum, self.stop, len(self.rows), len(self.stats), self.idle_s,
                self.handovers]
        return np.concatenate([np.asarray(head, np.float64), self.rows.ravel(), self.stats.ravel()])

    @staticmethod
    def unpack(buf: np.ndarray, row_width: int, stat_width: int) -> RankReport:
        rollout_s, checksum, stop, rows, stats, idle_s, handovers = buf[:HEADER].tolist()
        end = HEADER + int(rows) * row_width
        return RankReport(rollout_s, int(checksum), int(stop), idle_s, int(handovers),
                          buf[HEADER:end].reshape(-1, row_width), buf[end:].reshape(-1, stat_width))
