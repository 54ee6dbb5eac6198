"""Log-spaced integer grids: checkpoint steps and prequential chunk boundaries."""

from __future__ import annotations

import math

from ..errors import ConfigError


def log_spaced(first: int, last: int, count: int) -> list[int]:
    """`count` strictly increasing ints from `first` to `last`, evenly spaced in log scale.

    Rounded values that collide are bumped up, then pulled back below `last`, so the grid
    stays strictly increasing and ends exactly at `last`.
    """
    if not 1 <= first <= last:
        raise ConfigError(f"a log-spaced grid needs 1 <= first <= last, got {first}, {last}")
    if count < 1 or last - first + 1 < count:
        raise ConfigError(f"cannot place {count} distinct steps in [{first}, {last}]")
    if count == 1:
        return [last]
    ratio = last / first
    grid = [math.floor(first * ratio ** (i / (count - 1)) + 0.5) for i in range(count)]
    grid[0], grid[-1] = first, last
    for i in range(1, count):
        grid[i] = max(grid[i], grid[i - 1] + 1)
    grid[-1] = last
    for i in range(count - 2, -1, -1):
        grid[i] = min(grid[i], grid[i + 1] - 1)
    return grid


def checkpoint_steps(steps: int, count: int) -> list[int]:
    """Step 0 and `count − 1` log-spaced steps in `[1, steps]` (every step if they don't fit)."""
    if count <= 0:
        return []
    if count == 1:
        return [0]
    if count - 1 >= steps:
        return list(range(steps + 1))
    return [0, *log_spaced(1, steps, count - 1)]
