"""Go's sort.SliceStable and sort.Slice, step for step.

Several of Caddy's comparators are not strict weak orders (one answers "less"
for equal elements), so only Go's exact algorithm gives Caddy's exact output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
Less = Callable[[Any, Any], bool]


def _insertion(data: list, less: Less, a: int, b: int) -> None:
    for i in range(a + 1, b):
        j = i
        while j > a and less(data[j], data[j - 1]):
            data[j], data[j - 1] = data[j - 1], data[j]
            j -= 1


def _swap_range(data: list, a: int, b: int, n: int) -> None:
    for i in range(n):
        data[a + i], data[b + i] = data[b + i], data[a + i]


def _rotate(data: list, a: int, m: int, b: int) -> None:
    i, j = m - a, b - m
    while i != j:
        if i > j:
            _swap_range(data, m - i, m, j)
            i -= j
        else:
            _swap_range(data, m - i, m + j - i, i)
            j -= i
    _swap_range(data, m - i, m, i)


def _sym_merge(data: list, less: Less, a: int, m: int, b: int) -> None:
    if m - a == 1:
        i, j = m, b
        while i < j:
            h = (i + j) >> 1
            if less(data[h], data[a]):
                i = h + 1
            else:
                j = h
        for k in range(a, i - 1):
            data[k], data[k + 1] = data[k + 1], data[k]
        return
    if b - m == 1:
        i, j = a, m
        while i < j:
            h = (i + j) >> 1
            if not less(data[m], data[h]):
                i = h + 1
            else:
                j = h
        for k in range(m, i, -1):
            data[k], data[k - 1] = data[k - 1], data[k]
        return
    mid = (a + b) >> 1
    n = mid + m
    if m > mid:
        start, r = n - b, mid
    else:
        start, r = a, m
    p = n - 1
    while start < r:
        c = (start + r) >> 1
        if not less(data[p - c], data[c]):
            start = c + 1
        else:
            r = c
    end = n - start
    if start < m < end:
        _rotate(data, start, m, end)
    if a < start < mid:
        _sym_merge(data, less, a, start, mid)
    if mid < end < b:
        _sym_merge(data, less, mid, end, b)


def stable_sort(data: list[T], less: Callable[[T, T], bool]) -> None:
    """In-place sort.SliceStable(data, less) with `less` over elements."""
    n = len(data)
    block = 20
    a, b = 0, block
    while b <= n:
        _insertion(data, less, a, b)
        a, b = b, b + block
    _insertion(data, less, a, n)
    while block < n:
        a, b = 0, 2 * block
        while b <= n:
            _sym_merge(data, less, a, a + block, b)
            a, b = b, b + 2 * block
        m = a + block
        if m < n:
            _sym_merge(data, less, a, m, n)
        block *= 2


def unstable_sort(data: list[T], less: Callable[[T, T], bool]) -> None:
    """sort.Slice(data, less); Go's pdqsort is an insertion sort up to 12 elements."""
    if len(data) <= 12:
        _insertion(data, less, 0, len(data))
    else:
        stable_sort(data, less)
