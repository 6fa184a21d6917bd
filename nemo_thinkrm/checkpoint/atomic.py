"""Never a half-written output: write under a temporary name, rename at the end.

Works for one process (tools) and for all ranks of a job (dist checkpoints): every
rank writes into the same temporary directory, then rank 0 renames it after a
barrier. A crash leaves only a ``.tmp-*`` directory, which readers ignore and the
next writer removes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from nemo_thinkrm.runtime.distributed import barrier, global_rank

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; on success it becomes ``final``.

    With ``overwrite=False`` an existing ``final`` is an error (no silent loss).
    """
    final = Path(final)
    tmp = final.parent / f"{TMP_PREFIX}{final.name}"
    if global_rank() == 0:
        if final.exists() and not overwrite:
            raise FileExistsError(f"{final} already exists; remove it or choose another output path")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    barrier()
    yield tmp
    barrier()
    if global_rank() == 0:
        if final.exists():
            old = final.parent / f"{TMP_PREFIX}old-{final.name}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    barrier()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace a small file atomically (the ``latest`` pointer, JSON state)."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
