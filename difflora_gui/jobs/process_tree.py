"""The processes a child process started, found again after their parent exits.

A stop must reach every one of them, and a child is finished only when all have exited. Parent
links alone do not find them: Linux hands an orphan to init (its parent pid changes), so on POSIX
the child's session (it is started as a session leader) finds the rest; Windows keeps the dead
parent's pid, so there the parent links still hold, with creation times to rule out reused pids.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import psutil

_WINDOWS = sys.platform == "win32"


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (an exited process its parent has not reaped holds nothing)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class ProcessTree:
    """A child and every process it started, found again after their parent exits.

    Members: the root; every process whose parent is a member, also a member that has exited
    (Windows keeps the dead parent's pid, so a launcher's orphan is still found; the creation
    times rule out a reused pid); on POSIX every process of the root's session (Linux hands
    orphans to init, so the session is what is left to find them by).
    """

    def __init__(self, root_pid: int):
        self.root_pid = root_pid
        self._lock = threading.RLock()
        self._alive: dict[int, psutil.Process] = {}
        self._gone: dict[int, tuple[float, float]] = {}  # pid -> (created, seen gone at)
        try:
            root = psutil.Process(root_pid)
            self._root_created = root.create_time()
            self._alive[root_pid] = root
        except psutil.Error:  # already gone and reaped
            self._root_created = time.time()
            self._gone[root_pid] = (self._root_created, self._root_created)

    def refresh(self) -> None:
        """Forget exited members and add the processes they (or other members) started."""
        with self._lock:
            now = time.time()
            for pid, proc in list(self._alive.items()):
                if not _alive(proc):
                    del self._alive[pid]
                    self._gone[pid] = (proc.create_time(), now)
            by_parent: dict[int, list[psutil.Process]] = {}
            for proc in psutil.process_iter(["ppid", "create_time"]):
                created = proc.info["create_time"]
                if proc.pid in self._alive or created is None or created < self._root_created:
                    continue
                if not _WINDOWS and _session(proc.pid) == self.root_pid:
                    self._add(proc)
                else:
                    by_parent.setdefault(proc.info["ppid"], []).append(proc)
            frontier = list(self._alive) + list(self._gone)
            while frontier:
                parent = frontier.pop()
                for proc in by_parent.pop(parent, []):
                    if self._is_child_of(parent, proc.info["create_time"]) and self._add(proc):
                        frontier.append(proc.pid)

    def _add(self, proc: psutil.Process) -> bool:
        if not _alive(proc):
            return False
        self._alive[proc.pid] = proc
        return True

    def _is_child_of(self, parent: int, created: float) -> bool:
        if parent in self._alive:
            return created >= self._alive[parent].create_time()
        born, gone_at = self._gone[parent]
        return born <= created <= gone_at

    def members(self) -> list[psutil.Process]:
        """The members still running (as of the last :meth:`refresh`, dead ones dropped)."""
        with self._lock:
            return [proc for proc in self._alive.values() if _alive(proc)]

    def send(self, method: str, skip: set[int] | None = None) -> set[int]:
        """Call ``terminate``/``kill``/... on every running member not in ``skip``; their pids."""
        sent = set()
        for proc in self.members():
            if skip is not None and proc.pid in skip:
                continue
            try:
                getattr(proc, method)()
                sent.add(proc.pid)
            except psutil.Error:
                continue
        return sent


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None
