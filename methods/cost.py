"""Measuring what an allocation costs: wall seconds and peak memory, on CPU or GPU."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class AllocationCost:
    """Seconds, peak extra bytes over the start, and passes spent by one ``allocate`` call."""

    seconds: float
    peak_bytes: int
    forward_passes: int
    backward_passes: int
    memory_source: str


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process (Linux >= 4.0), if allowed."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class _RssSampler(threading.Thread):
    """Fallback where the peak cannot be reset: poll the resident set every millisecond."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kib = _status_kib("VmRSS") or 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.001):
            self.peak_kib = max(self.peak_kib, _status_kib("VmRSS") or 0)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak_kib


class CostMeter:
    """Context manager measuring wall time and peak memory of the block it wraps.

    On CUDA the peak is ``torch.cuda.max_memory_allocated`` above the start; on the CPU it is
    the process's peak resident set (``VmHWM``, reset on entry) above the resident set at entry.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._sampler: _RssSampler | None = None

    def __enter__(self) -> CostMeter:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start_bytes = torch.cuda.memory_allocated(self.device)
            self.source = "cuda.max_memory_allocated"
        else:
            self._start_bytes = (_status_kib("VmRSS") or 0) * 1024
            if _reset_peak_rss() and _status_kib("VmHWM") is not None:
                self.source = "VmHWM"
            else:
                self.source = "rss-sampling"
                self._sampler = _RssSampler()
                self._sampler.start()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._sampler is not None:
            peak = self._sampler.stop() * 1024
        else:
            peak = (_status_kib("VmHWM") or 0) * 1024
        self.peak_bytes = max(0, peak - self._start_bytes)

    def result(self, forward: int = 0, backward: int = 0) -> AllocationCost:
        return AllocationCost(self.seconds, self.peak_bytes, forward, backward, self.source)
