"""Repeated measurements: samples, medians, and COW-vs-plain results."""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from benchmarks.setup import Block, BlockAllocator

#: One timed repetition: does its own untimed setup/teardown, returns seconds per unit of work.
Trial = Callable[[Block], Awaitable[float]]

Verdict = Literal["PASS", "MISS", "info"]


@dataclass(frozen=True)
class Timing:
    """Seconds per unit of work, one sample per repetition."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)


@dataclass(frozen=True)
class Result:
    """One case: the same work timed on the plain table and on the COW view (or only on the
    COW side, for calls a plain table has no counterpart of: ``plain`` is None)."""

    name: str
    plain: Timing | None
    cow: Timing
    #: highest acceptable COW/plain ratio of the medians; None for informational rows
    target: float | None
    unit: str = "statement"

    @property
    def ratio(self) -> float | None:
        return None if self.plain is None else self.cow.median / self.plain.median

    @property
    def verdict(self) -> Verdict:
        if self.target is None or self.ratio is None:
            return "info"
        return "PASS" if self.ratio <= self.target else "MISS"


async def compare(
    name: str,
    plain: Trial,
    cow: Trial,
    *,
    repeat: int,
    target: float | None,
    blocks: BlockAllocator,
    warmup: int = 1,
    unit: str = "statement",
) -> Result:
    """Time ``plain`` and ``cow`` ``repeat`` times each (after ``warmup`` untimed rounds).

    Both trials of a round get the same fresh key block, and the order alternates between
    rounds so that drift (caches warming, autovacuum) does not favour either side.
    """
    plain_samples: list[float] = []
    cow_samples: list[float] = []
    for round_ in range(warmup + repeat):
        block = blocks.next()
        if round_ % 2 == 0:
            plain_time = await plain(block)
            cow_time = await cow(block)
        else:
            cow_time = await cow(block)
            plain_time = await plain(block)
        if round_ >= warmup:
            plain_samples.append(plain_time)
            cow_samples.append(cow_time)
    return Result(name, Timing(tuple(plain_samples)), Timing(tuple(cow_samples)), target, unit)
