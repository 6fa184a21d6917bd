"""Issue 27 A4: one job per run directory (``runtime/run_lock.py``), the rules by hand."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time
from dataclasses import asdict, replace

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.runtime.run_lock import LOCK_NAME, Holder, RunLock, _start_ticks


def _write(run_dir, holder: Holder, age_s: float = 0.0):
    path = run_dir / LOCK_NAME
    path.write_text(json.dumps(asdict(holder)))
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_acquire_names_this_job_and_release_removes_it(tmp_path):
    with RunLock(tmp_path, "sft"):
        held = json.loads((tmp_path / LOCK_NAME).read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname() and held["stage"] == "sft"
        with RunLock(tmp_path, "sft"):  # re-entrant within one process
            pass
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_live_holder_on_this_host_is_refused_by_name(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        holder = replace(Holder.me("grpo"), pid=sleeper.pid, started=_start_ticks(sleeper.pid))
        _write(tmp_path, holder)
        with pytest.raises(ConfigError) as err:
            RunLock(tmp_path, "sft").acquire()
        msg = str(err.value)
        assert "\n" not in msg and f"is in use by 'thinkrm grpo' (pid {sleeper.pid} on {socket.gethostname()}" in msg
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == sleeper.pid  # untouched
    finally:
        sleeper.kill()


def test_a_dead_or_reused_pid_is_taken_over_with_a_log_line(tmp_path, caplog):
    dead = subprocess.Popen(["true"])
    dead.wait()
    _write(tmp_path, replace(Holder.me("sft"), pid=dead.pid, started=1))
    with caplog.at_level(logging.WARNING, logger="nemo_thinkrm.runtime.run_lock"):
        with RunLock(tmp_path, "sft"):
            assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"taking over {tmp_path.resolve()} from 'thinkrm sft' (pid {dead.pid}" in caplog.text
    assert "is not running" in caplog.text
    # a live pid that started at another time is a reused pid: its lock is stale too
    _write(tmp_path, replace(Holder.me("sft"), pid=os.getppid(), started=(_start_ticks(os.getppid()) or 0) + 1))
    with caplog.at_level(logging.WARNING, logger="nemo_thinkrm.runtime.run_lock"):
        with RunLock(tmp_path, "sft"):
            pass
    assert "is now another process" in caplog.text


def test_another_hosts_lock_lives_while_its_heartbeat_is_fresh(tmp_path, monkeypatch, caplog):
    other = replace(Holder.me("sft"), host="node-7", pid=4242, started=99)
    _write(tmp_path, other, age_s=10)
    with pytest.raises(ConfigError, match="pid 4242 on node-7"):
        RunLock(tmp_path, "sft").acquire()
    monkeypatch.setenv("THINKRM_LOCK_STALE_S", "60")
    _write(tmp_path, other, age_s=120)
    with caplog.at_level(logging.WARNING, logger="nemo_thinkrm.runtime.run_lock"):
        with RunLock(tmp_path, "sft"):
            pass
    assert "heartbeat is 120 s old" in caplog.text


@pytest.mark.parametrize("old_dies", [True, False])
def test_a_requeued_slurm_job_waits_for_its_earlier_incarnation(tmp_path, monkeypatch, caplog, old_dies):
    """The holder is restart 0 of our own Slurm job on a node we lost contact with. The new incarnation
    waits until that lock would go stale: if the old one stopped beating it is taken over, if it still
    beats (alive: must not be joined) the new one refuses, naming it."""
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    monkeypatch.setenv("THINKRM_LOCK_STALE_S", "1")
    monkeypatch.setattr("nemo_thinkrm.runtime.run_lock.HEARTBEAT_S", 0.25)
    old = replace(Holder.me("sft"), host="node-3", pid=11, slurm_job_id="77", slurm_restart_count=0)
    assert old.earlier_incarnation_of(Holder.me("sft"))
    path = _write(tmp_path, old)
    stop = threading.Event()

    def beat():
        while not stop.wait(0.1):
            os.utime(path)

    threading.Thread(target=beat, daemon=True).start()
    t0 = time.time()
    try:
        if old_dies:
            threading.Timer(0.5, stop.set).start()
            with caplog.at_level(logging.WARNING, logger="nemo_thinkrm.runtime.run_lock"):
                with RunLock(tmp_path, "sft"):
                    pass
            assert "taking over" in caplog.text and time.time() - t0 >= 1.4
        else:
            with pytest.raises(ConfigError, match=r"pid 11 on node-3, Slurm job 77, since"):
                RunLock(tmp_path, "sft").acquire()
            assert 1.4 <= time.time() - t0 < 5
    finally:
        stop.set()
