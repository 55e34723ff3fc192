"""Run one core call in a Python process of its own; the calling thread only waits.

Compiled code that holds the GIL for long stretches (``edt``, ``cc3d``, marching cubes,
parts of ``scipy.ndimage``) pauses every other thread of its process, a viewer's UI
thread included, and cannot be stopped between its own steps. Run in a separate process
it pauses nothing in the caller, and a cancel ends it at once: the process is killed.

The process is started ahead of its call (:class:`IsolatedProcess`), with the modules the
call needs already imported, so a call waits for no interpreter start-up.

Arrays travel out of band (pickle protocol 5): the pickle holds only their shapes and
dtypes, their bytes go from the array's memory to the pipe and from the pipe into the
array the other side makes, the GIL free while the pipe is written and read. Pickled
in band, 35 MB of arrays held the GIL of the viewer's process for 25-45 ms while being
copied into the pickle (up to 0.2 s on a busy machine), pausing its UI thread.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import pickle
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .progress import ProgressCallback

#: seconds between two cancel checks while the process works
POLL_S = 0.05


def _send(conn: Any, *message: Any) -> None:
    """``message`` to the other side of ``conn``: the pickle with the buffers' sizes, then
    each buffer sent from where it lies (the pipe's write waits without the GIL)."""
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    conn.send((head, [v.nbytes for v in views]))
    for view in views:
        conn.send_bytes(view)


def _receive(conn: Any) -> tuple[Any, ...]:
    """A message :func:`_send` sent: its buffers read into fresh (writable) memory."""
    head, sizes = conn.recv()
    buffers = [np.empty(n, np.uint8) for n in sizes]
    for buffer in buffers:
        _read_into(conn, buffer)
    return pickle.loads(head, buffers=buffers)


def _read_into(conn: Any, buffer: np.ndarray) -> None:
    """One ``send_bytes`` message of ``buffer``'s size into ``buffer``.

    Where the OS has ``readv`` (POSIX) the pipe is read straight into ``buffer``, the GIL
    free; ``recv_bytes_into`` gathers the message in a ``BytesIO`` and copies it over
    under the GIL (170 MB of results: UI pauses of 11-85 ms against 8-9 ms). The header
    read here is the ``Connection``'s own: a big-endian int32 size, or -1 and a uint64.
    """
    if not hasattr(os, "readv"):
        conn.recv_bytes_into(buffer)
        return
    fd = conn.fileno()
    (size,) = struct.unpack("!i", _read_exactly(fd, 4))
    if size == -1:
        (size,) = struct.unpack("!Q", _read_exactly(fd, 8))
    if size != buffer.nbytes:
        raise RuntimeError(f"expected {buffer.nbytes} bytes from the worker process, got {size}")
    view, filled = memoryview(buffer), 0
    while filled < size:
        got = os.readv(fd, [view[filled:]])
        if not got:
            raise EOFError("the worker process's pipe closed mid-message")
        filled += got


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        got = os.read(fd, n - len(data))
        if not got:
            raise EOFError("the worker process's pipe closed mid-message")
        data += got
    return data


def _serve(conn: Any, preload: tuple[str, ...]) -> None:
    """The process's body: import ``preload``, run the one call it is sent, send back its
    progress, then its result or its exception."""
    for name in preload:
        importlib.import_module(name)
    try:
        func, args, kwargs = _receive(conn)
    except EOFError:  # closed before any call
        return
    last: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        if not last or last[0] != (done, total):  # repeats are the caller's cancel checks
            last[:] = [(done, total)]
            _send(conn, "progress", int(done), int(total))

    try:
        result = func(*args, progress=progress, **kwargs)
    except Exception as exc:  # noqa: BLE001 - re-raised in the caller
        try:
            _send(conn, "error", exc)
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            _send(conn, "error", RuntimeError(f"{type(exc).__name__}: {exc}"))
    else:
        _send(conn, "result", result)
    conn.close()


@contextmanager
def _main_script_hidden() -> Iterator[None]:
    """While a process is spawned, the caller's main script is not named to it.

    A spawned process runs the parent's ``__main__`` script again (as ``__mp_main__``)
    to find what the call may need from it; a napari script without an
    ``if __name__ == "__main__"`` guard (as napari's examples are written) then opened a
    second viewer in the worker, which died (exit code -6). What the worker runs lives in
    this package, so it needs nothing from the script.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(main, "__spec__", None) is not None:  # -m runs, pytest
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


class IsolatedProcess:
    """A spawned Python process that runs one call (see the module docstring).

    Parameters
    ----------
    preload
        Modules the process imports as soon as it starts (those of the call to come).
    """

    def __init__(self, preload: Sequence[str] = ()) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that runs Qt or threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, tuple(preload)), daemon=True,
                                 name="corrtomo-isolated")
        with _main_script_hidden():
            self._proc.start()
        child.close()
        self._used = False

    def is_alive(self) -> bool:
        """Whether the process still runs (waiting for its call, or working on it)."""
        return self._proc.is_alive()

    def call(self, func: Callable[..., Any], *args: Any,
             progress: ProgressCallback | None = None, **kwargs: Any) -> Any:
        """``func(*args, progress=..., **kwargs)`` in the process; its result.

        ``func``, its arguments and its result travel by pickle (``func`` must be
        importable: a module-level function). ``progress(done, total)`` is called with
        the process's reports and, between them, every :data:`POLL_S` with the last
        numbers (``(0, 1)`` before the first), so raising
        :class:`~.progress.Cancelled` from it stops the call within that time: the
        process is killed. An exception raised by ``func`` is raised here.
        """
        if self._used:
            raise RuntimeError("an IsolatedProcess runs one call; start another")
        self._used = True
        state = (0, 1)
        try:
            try:
                _send(self._conn, func, args, kwargs)
            except BrokenPipeError:  # it ended before reading the call
                pass  # what it said, or its exit code, is read below
            while True:
                if self._conn.poll(POLL_S):
                    try:
                        kind, *payload = _receive(self._conn)
                    except EOFError:
                        self._proc.join(1)
                        raise RuntimeError("the worker process ended without a result (exit "
                                           f"code {self._proc.exitcode})") from None
                    if kind == "result":
                        return payload[0]
                    if kind == "error":
                        raise payload[0]
                    state = (payload[0], payload[1])
                if progress is not None:
                    progress(*state)
        finally:
            self.close()

    def close(self) -> None:
        """End the process (killed if it still works) and free its pipe."""
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join(5)
        self._conn.close()
