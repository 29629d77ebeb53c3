"""Peak resident memory of the current process during a block of work.

RSS is process-wide, so the harness runs every backend in its own fresh subprocess and
measures inside it: the numbers then belong to that backend alone. Two sources are
combined because each misses something: a psutil polling thread sees RSS over time
(and so the increase over the baseline taken just before the block), while the kernel's
high-water mark (``ru_maxrss``) also catches spikes shorter than the polling interval.
"""

from __future__ import annotations

import resource
import sys
import threading
from types import TracebackType

import psutil

MB = 1024 * 1024


def current_rss() -> int:
    """Resident set size of this process in bytes."""
    return psutil.Process().memory_info().rss


def max_rss() -> int:
    """Kernel high-water mark of this process's RSS in bytes (lifetime peak)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


class PeakRSS:
    """``with PeakRSS() as mem: work()`` then ``mem.peak`` / ``mem.increase`` in bytes."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = psutil.Process()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.baseline = self._process.memory_info().rss
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
        self.peak = max(self.peak, self._process.memory_info().rss, max_rss())

    @property
    def increase(self) -> int:
        """Peak minus the RSS at entry: what the block itself added."""
        return max(0, self.peak - self.baseline)
