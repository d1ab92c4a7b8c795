"""First-fit-decreasing bin packing over byte sizes, with stable tie-breaks so a plan never flaps."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class Item:
    """Something to place: a key (unique, the tie-break) and its size in bytes (> 0)."""

    key: str
    size: int


@dataclasses.dataclass
class Bin:
    """One pod's worth of items, in the order they were placed (largest first)."""

    items: list[Item] = dataclasses.field(default_factory=list)

    @property
    def used(self) -> int:
        return sum(item.size for item in self.items)


def first_fit_decreasing(items: Iterable[Item], budget: int) -> list[Bin]:
    """Items by decreasing size (then key) into the first bin with room, else a new bin.

    An item larger than ``budget`` gets a bin of its own, which nothing joins. The result depends only on
    the set of items, not on their order: sizes tie-break on the key.
    """
    bins: list[Bin] = []
    for item in sorted(items, key=lambda i: (-i.size, i.key)):
        target = next((b for b in bins if b.used + item.size <= budget), None)
        if target is None:
            target = Bin()
            bins.append(target)
        target.items.append(item)
    return bins
