"""Peak resident memory (and CPU time) of the current process tree during a block of work.

RSS is process-wide, so the harness runs every backend in its own fresh subprocess and
measures inside it: the numbers then belong to that backend alone. Two sources are
combined because each misses something: a psutil polling thread sees RSS over time
of the process and its live children (and so the increase over the baseline taken just
before the block), while the kernel's high-water mark (``ru_maxrss``, this process only)
also catches spikes shorter than the polling interval.
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from types import TracebackType

import psutil

MB = 1024 * 1024


def tree_rss(process: psutil.Process | None = None) -> int:
    """RSS of this process plus its live child processes, in bytes.

    SDV's CTGAN ``DataTransformer.transform`` fans out to joblib (loky) worker processes
    on large frames; their memory is part of what a fit costs, so it is counted. Pages
    shared between parent and children are counted once per process (an upper bound).
    """
    process = process or psutil.Process()
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:  # the child ended between listing and reading it
            continue
    return total


def cpu_seconds(process: psutil.Process | None = None) -> float:
    """User + system CPU seconds of this process, its reaped and its live children."""
    process = process or psutil.Process()
    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:
            continue
        total += child_times.user + child_times.system
    return total


def max_rss() -> int:
    """Kernel high-water mark of this process's RSS in bytes (lifetime peak)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


class PeakRSS:
    """``with PeakRSS() as mem: work()`` then ``mem.peak`` / ``mem.increase`` in bytes."""

    def __init__(self, interval: float = 0.01, children_interval: float = 0.5) -> None:
        self.interval = interval
        self.children_interval = children_interval
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = psutil.Process()

    def _poll(self) -> None:
        # Listing children scans /proc (~1 ms), so the list is refreshed only every
        # ``children_interval``; reading the RSS of known processes is cheap (~10 us).
        children: list[psutil.Process] = []
        next_scan = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_scan:
                children = self._process.children(recursive=True)
                next_scan = now + self.children_interval
            total = self._process.memory_info().rss
            for child in children:
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.baseline = tree_rss(self._process)
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._poll, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        # In a fresh process the lifetime high-water mark is this block's peak unless
        # loading data before it used more, which the baseline comparison absorbs.
        self.peak = max(self.peak, tree_rss(self._process), max_rss())

    @property
    def increase(self) -> int:
        """Peak minus the RSS at entry: what the block itself added."""
        return max(0, self.peak - self.baseline)
