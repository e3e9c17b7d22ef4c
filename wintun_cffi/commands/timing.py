"""What the benchmark commands measure with: :class:`Row`, one measurement's samples.

Shared by :mod:`~wintun_cffi.commands.bench` and :mod:`~wintun_cffi.commands.ip_bench`, so that
neither imports the other for it (``bench`` runs ``ip_bench``'s rows; ``ip_bench`` needs only
the row type).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Row:
    """One measurement: nanoseconds per packet of each run."""

    name: str
    size: int
    samples: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "best_ns": round(self.best, 1),
            "median_ns": round(self.median, 1),
            "runs": len(self.samples),
            "packets_per_second_best": round(1e9 / self.best) if self.best else None,
        }
