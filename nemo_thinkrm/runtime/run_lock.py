"""One job per run directory: a lock file naming its holder (host, pid, Slurm job), kept alive by a heartbeat.

Two jobs on one run directory corrupt it quietly: a second ``thinkrm sft`` started while the
first still ran resumed from the first one's checkpoint, both appended to ``metrics.jsonl``
(steps 21-30 twice) and both wrote ``step_00000030``. Users double-submit, and Slurm can start
a requeued job while the old incarnation still runs on a node it lost contact with.

* The lock is ``<run_dir>/.thinkrm.lock``, created with ``os.link`` from a private file: atomic
  on local disks and on NFS (an ``O_EXCL`` create is not, on old NFS clients), so of two jobs
  racing on a shared file system exactly one wins.
* The holder rewrites nothing while it runs; a daemon thread touches the file every
  ``HEARTBEAT_S`` seconds.
* A lock is stale when its holder is gone: on this host, its pid is dead (or reused by a process
  that started later); on another host, its heartbeat is older than ``THINKRM_LOCK_STALE_S``
  (default 300 s). A stale lock is taken over, with a log line naming the old holder.
* Otherwise the job refuses in one line naming the holder — after waiting up to
  ``THINKRM_LOCK_WAIT_S`` (default 0) for it to let go. A requeued Slurm job whose lock is held
  by an earlier incarnation of the same job waits at least until that lock would go stale: the old
  incarnation is being killed, or it is alive and must not be joined.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from nemo_thinkrm.config.errors import ConfigError

logger = logging.getLogger(__name__)

LOCK_NAME = ".thinkrm.lock"
HEARTBEAT_S = 30.0


def stale_after_s() -> float:
    return float(os.environ.get("THINKRM_LOCK_STALE_S", 300))


def wait_s() -> float:
    return float(os.environ.get("THINKRM_LOCK_WAIT_S", 0))


def _start_ticks(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """Who holds a run directory."""

    host: str
    pid: int
    started: Optional[int]
    """Process start time (clock ticks since boot): tells a live holder from a reused pid."""
    stage: str
    since: str
    slurm_job_id: Optional[str] = None
    slurm_restart_count: int = 0

    @classmethod
    def me(cls, stage: str) -> "Holder":
        return cls(host=socket.gethostname(), pid=os.getpid(), started=_start_ticks(os.getpid()), stage=stage,
                   since=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   slurm_job_id=os.environ.get("SLURM_JOB_ID"),
                   slurm_restart_count=int(os.environ.get("SLURM_RESTART_COUNT", 0) or 0))

    def describe(self) -> str:
        job = f", Slurm job {self.slurm_job_id}" + (f" (restart {self.slurm_restart_count})"
                                                     if self.slurm_restart_count else "") if self.slurm_job_id else ""
        return f"'thinkrm {self.stage}' (pid {self.pid} on {self.host}{job}, since {self.since})"

    def same_process(self, other: "Holder") -> bool:
        return (self.host, self.pid, self.started) == (other.host, other.pid, other.started)

    def earlier_incarnation_of(self, other: "Holder") -> bool:
        """Whether this holder is a previous run of ``other``'s requeued Slurm job."""
        return (self.slurm_job_id is not None and self.slurm_job_id == other.slurm_job_id
                and self.slurm_restart_count < other.slurm_restart_count)


def _read(path: Path) -> Optional[tuple[Holder, float]]:
    """(holder, heartbeat mtime) of a lock file, None if it vanished; a torn file reads as a dead holder."""
    try:
        text, mtime = path.read_text(), path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        return Holder(**json.loads(text)), mtime
    except (ValueError, TypeError):
        return Holder(host="?", pid=-1, started=None, stage="?", since="?"), mtime


def stale_reason(holder: Holder, heartbeat: float, now: Optional[float] = None) -> Optional[str]:
    """Why ``holder`` no longer holds the lock, or None when it may still be running."""
    if holder.pid < 0:
        return "the lock file is unreadable"
    if holder.host == socket.gethostname():
        if not _alive(holder.pid):
            return f"pid {holder.pid} is not running"
        if holder.started is not None and _start_ticks(holder.pid) not in (None, holder.started):
            return f"pid {holder.pid} is now another process"
        return None
    age = (time.time() if now is None else now) - heartbeat
    if age > stale_after_s():
        return f"its heartbeat is {age:.0f} s old (> THINKRM_LOCK_STALE_S={stale_after_s():g})"
    return None


class RunLock:
    """``with RunLock(run_dir, stage):`` — hold ``run_dir`` for this process (re-entrant within it)."""

    _held: dict[Path, int] = {}

    def __init__(self, run_dir: str | os.PathLike, stage: str) -> None:
        self.dir = Path(run_dir).resolve()
        self.path = self.dir / LOCK_NAME
        self.me = Holder.me(stage)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        if RunLock._held.get(self.path):
            RunLock._held[self.path] += 1
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        deadline = time.time() + wait_s()
        waited = False
        while True:
            if self._try_create():
                break
            found = _read(self.path)
            if found is None:
                continue  # released between our attempt and the read
            holder, heartbeat = found
            if holder.same_process(self.me):
                break
            why = stale_reason(holder, heartbeat)
            if why is not None:
                self._take_over(holder, why)
                continue
            if holder.earlier_incarnation_of(self.me) and not waited:  # once: long enough for it to go stale
                deadline = max(deadline, heartbeat + stale_after_s() + 2 * HEARTBEAT_S)
            if time.time() >= deadline:
                raise ConfigError(f"{self.dir} is in use by {holder.describe()}: one job per run directory; wait "
                                  f"for it to end, stop it, or choose another run_dir (a holder that died is taken "
                                  f"over: on this host at once, elsewhere after THINKRM_LOCK_STALE_S)")
            if not waited:
                logger.warning("waiting up to %.0f s for %s to let go of %s", deadline - time.time(),
                               holder.describe(), self.dir)
                waited = True
            time.sleep(min(2.0, max(deadline - time.time(), 0.05)))
        RunLock._held[self.path] = 1
        self._thread = threading.Thread(target=self._heartbeat, name="run-lock-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        count = RunLock._held.get(self.path, 0)
        if count > 1:
            RunLock._held[self.path] = count - 1
            return
        RunLock._held.pop(self.path, None)
        self._stop.set()
        found = _read(self.path)
        if found is not None and found[0].same_process(self.me):
            self.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ internals
    def _try_create(self) -> bool:
        tmp = self.dir / f"{LOCK_NAME}.{self.me.host}.{self.me.pid}"
        tmp.write_text(json.dumps(asdict(self.me)))
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def _take_over(self, holder: Holder, why: str) -> None:
        """Move the stale lock aside, then retry the create. Of several jobs taking over at once, the
        first rename moves the stale lock; a later one may move the winner's fresh lock instead, sees
        that, and links it back."""
        aside = self.dir / f"{LOCK_NAME}.stale.{self.me.host}.{self.me.pid}"
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        found = _read(aside)
        try:
            if found is not None and not found[0].same_process(holder):
                try:
                    os.link(aside, self.path)  # not the stale lock: give it back to its holder
                except FileExistsError:
                    logger.error("lost track of %s's lock of %s while taking it over", found[0].describe(), self.dir)
                return
        finally:
            aside.unlink(missing_ok=True)
        logger.warning("taking over %s from %s: %s", self.dir, holder.describe(), why)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                found = _read(self.path)
                if found is None or not found[0].same_process(self.me):
                    logger.error("the lock of %s was taken by %s while this job runs", self.dir,
                                 found[0].describe() if found else "nobody (removed)")
                    return
                os.utime(self.path)
            except OSError as exc:
                logger.warning("could not refresh the lock of %s: %s", self.dir, exc)
