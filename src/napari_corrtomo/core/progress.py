"""Progress reporting and cooperative cancellation for long core calls.

Core functions take ``progress: ProgressCallback | None``. They call it as
``progress(done, total)`` between blocks or iterations. A caller cancels the
work by raising :class:`Cancelled` from inside the callback (the widgets do
this when the user presses *Cancel*); the core never swallows it, so partial
results are discarded and inputs are left untouched.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]


class Cancelled(Exception):
    """Raised from a progress callback to stop a running core call."""


def report(progress: ProgressCallback | None, done: int, total: int) -> None:
    """Call ``progress(done, total)`` if a callback was given."""
    if progress is not None:
        progress(int(done), int(total))


def scaled(progress: ProgressCallback | None, start: int, stop: int, total: int):
    """A callback mapping a sub-task's own (done, total) onto [start, stop) of ``total``.

    Lets a pipeline hand one overall progress bar to several consecutive calls.
    """
    if progress is None:
        return None

    def _sub(done: int, sub_total: int) -> None:
        frac = done / sub_total if sub_total else 1.0
        progress(int(start + frac * (stop - start)), total)

    return _sub
