"""``netan.sinks.placer.Placer``: parts copied into place, in order, whatever the timing."""
from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from netan.sinks.placer import Placer


def _outputs(tmp_path: Path, heads: tuple[bytes, bytes]) -> tuple[tuple[int, int], tuple[Path, Path]]:
    paths = (tmp_path / "a.out", tmp_path / "b.out")
    fds = []
    for path, head in zip(paths, heads):
        path.write_bytes(head)
        fds.append(os.open(path, os.O_RDWR))
    return (fds[0], fds[1]), paths


def test_parts_in_place_done_and_followed_end_up_in_order(tmp_path: Path) -> None:
    rng = random.Random(1)
    heads = (b"", b"#header\n")
    fds, outs = _outputs(tmp_path, heads)
    pieces = [[bytes(rng.randrange(256) for _ in range(rng.randrange(1, 50_000))) for _ in range(2)] for _ in range(4)]
    placer = Placer(fds, (len(heads[0]), len(heads[1])), 4)
    # part 0 is written into the outputs by its writer
    for fd, head, data in zip(fds, heads, pieces[0]):
        os.pwrite(fd, data, len(head))
    # part 3 grows while it is followed; parts 1 and 2 arrive complete, out of order
    files = [[tmp_path / f"p{k}.{i}" for i in range(2)] for k in range(4)]
    placer.follow(3, tuple(str(p) for p in files[3]))

    def grow() -> None:
        handles = [open(p, "wb") for p in files[3]]
        for at in range(0, 50_000, 997):
            for h, data in zip(handles, pieces[3]):
                h.write(data[at:at + 997])
                h.flush()
            time.sleep(0.001)
        for h in handles:
            h.close()
        placer.done(3, tuple(str(p) for p in files[3]), tuple(len(d) for d in pieces[3]))

    writer = threading.Thread(target=grow)
    writer.start()
    for k in (2, 1):
        for p, data in zip(files[k], pieces[k]):
            p.write_bytes(data)
        placer.done(k, tuple(str(p) for p in files[k]), tuple(len(d) for d in pieces[k]))
    placer.in_place(0, tuple(len(d) for d in pieces[0]))
    writer.join()
    placer.close()
    for i, (path, head) in enumerate(zip(outs, heads)):
        assert path.read_bytes() == head + b"".join(pieces[k][i] for k in range(4))
    assert placer.where(4) == tuple(len(h) + sum(len(pieces[k][i]) for k in range(4)) for i, h in enumerate(heads))


def test_abandon_stops_and_errors_are_raised_by_close(tmp_path: Path) -> None:
    fds, _ = _outputs(tmp_path, (b"", b""))
    placer = Placer(fds, (0, 0), 2)
    placer.follow(1, (str(tmp_path / "x"), str(tmp_path / "y")))
    placer.abandon()  # part 0 never came: nothing waits for it any more

    broken = Placer(fds, (0, 0), 1)
    broken.done(0, (str(tmp_path / "missing.0"), str(tmp_path / "missing.1")), (10, 10))
    with pytest.raises(FileNotFoundError):
        broken.close()


def test_a_followed_part_may_not_exist_yet(tmp_path: Path) -> None:
    fds, outs = _outputs(tmp_path, (b"", b""))
    placer = Placer(fds, (0, 0), 2)
    later = (str(tmp_path / "later.0"), str(tmp_path / "later.1"))
    placer.follow(1, later)
    placer.in_place(0, (0, 0))  # part 0 is empty and done: part 1's files are looked at before they exist
    time.sleep(0.12)
    for path in later:
        Path(path).write_bytes(b"late\n")
    placer.done(1, later, (5, 5))
    placer.close()
    assert [p.read_bytes() for p in outs] == [b"late\n", b"late\n"]
