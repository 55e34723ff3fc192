"""Union-find root lookup shared by the compiled kernels (numba)."""

from __future__ import annotations

import numba as nb


@nb.njit(cache=True, inline="always")
def find_root(parent, i):  # pragma: no cover - compiled
    """Root of ``i`` in the forest ``parent`` (int array, roots point to themselves),
    compressing the path on the way so later lookups are O(1)."""
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root
