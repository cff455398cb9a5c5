"""Parts of output files written by several processes, copied into place as soon as each one's place is known.

Contract: ``Placer(fds, starts, count)`` places ``count`` parts, in order, into
the open files ``fds`` (every part has one piece per file): part 0 begins at
``starts``, and each next part where the one before it ends. For each part say
once what it is: ``in_place(k, sizes)`` (its writer wrote it into the outputs
itself), ``follow(k, paths)`` (it is being written into the files ``paths``:
they are copied as they grow, once the part's place is known), and
``done(k, paths, sizes)`` (its files are complete; after ``follow`` too).
``close()`` returns once every part is placed, raising what went wrong;
``abandon()`` stops placing. ``where(k)`` is where part k begins, once the parts
before it are done. With ``sync=True`` the files are written back to disk
(``fdatasync``) once every part is placed, still in the background: the
caller's own fsync at commit then has little left to wait for.

Why a thread: the copies are kernel work (``copy_file_range``, which releases
the GIL), so they go on while this process writes its own part; and a part
that is still being written is copied as it grows, so that when its writer
ends little is left to copy. The bytes that reach the outputs are exactly the
parts' bytes, in order, whatever the timing.
"""
from __future__ import annotations

import os
import threading

from netan.sinks.atomic import copy_into

__all__ = ["Placer"]

#: How often a part that is still being written is looked at again (seconds).
_POLL_S = 0.05


class Placer:
    def __init__(self, fds: tuple[int, ...], starts: tuple[int, ...], count: int, sync: bool = False) -> None:
        self.fds, self.starts, self.count, self.sync = fds, starts, count, sync
        self._cond = threading.Condition()
        self._paths: list[tuple[str, ...] | None] = [None] * count
        self._sizes: list[tuple[int, ...] | None] = [None] * count
        self._in_place = [False] * count
        self._error: BaseException | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="netan-placer", daemon=True)
        self._thread.start()

    def in_place(self, k: int, sizes: tuple[int, ...]) -> None:
        self._tell(k, None, sizes, True)

    def follow(self, k: int, paths: tuple[str, ...]) -> None:
        self._tell(k, paths, None, False)

    def done(self, k: int, paths: tuple[str, ...], sizes: tuple[int, ...]) -> None:
        self._tell(k, paths, sizes, False)

    def _tell(self, k: int, paths: tuple[str, ...] | None, sizes: tuple[int, ...] | None, in_place: bool) -> None:
        with self._cond:
            self._paths[k] = paths if paths is not None else self._paths[k]
            self._sizes[k] = sizes
            self._in_place[k] = in_place
            self._cond.notify_all()

    def where(self, k: int) -> tuple[int, ...]:
        """Where part ``k`` begins in each file (the parts before it must be done)."""
        base = list(self.starts)
        for j in range(k):
            sizes = self._sizes[j]
            if sizes is None:
                raise ValueError(f"part {j} is not done")
            base = [b + s for b, s in zip(base, sizes)]
        return tuple(base)

    def close(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        try:
            base = tuple(self.starts)
            for k in range(self.count):
                sizes = self._place(k, base)
                if sizes is None:
                    return  # abandoned
                base = tuple(b + s for b, s in zip(base, sizes))
            if self.sync:
                for fd in self.fds:
                    getattr(os, "fdatasync", os.fsync)(fd)  # macOS has no fdatasync
        except BaseException as e:  # noqa: BLE001 -- raised by close()
            self._error = e

    def _place(self, k: int, base: tuple[int, ...]) -> tuple[int, ...] | None:
        """Part ``k`` copied into place from ``base``, following its files while they grow; its sizes."""
        copied = [0] * len(self.fds)
        while True:
            with self._cond:
                while not self._stop and self._sizes[k] is None and self._paths[k] is None:
                    self._cond.wait()
                if self._stop:
                    return None
                paths, sizes, in_place = self._paths[k], self._sizes[k], self._in_place[k]
            if in_place:
                return sizes
            assert paths is not None
            for i, (fd, path) in enumerate(zip(self.fds, paths)):
                # a part still being written: only what its writer has flushed (its file may not exist yet)
                have = sizes[i] if sizes is not None else _flushed(path)
                if have > copied[i]:
                    copied[i] += copy_into(fd, base[i] + copied[i], path, copied[i], have)
            if sizes is not None:
                return sizes
            with self._cond:
                if not self._stop and self._sizes[k] is None:
                    self._cond.wait(_POLL_S)


def _flushed(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0
