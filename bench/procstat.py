"""What Linux's /proc says about processes: peak memory, CPU time, children.

``bench`` uses these to report where the machine's CPU went during a run. Elsewhere
(no /proc) every reading is 0, so the bench still runs and prints zeros.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU a live process has used, all its threads included."""
    try:
        # Fields after the command name, which may itself hold spaces or parentheses.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (idle and iowait not)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, idle, iowait, irq, softirq, steal = (ticks + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / _TICKS


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


@dataclass(frozen=True)
class CpuSplit:
    """CPU seconds used during one timed interval, by whom; ``available`` = wall x cores."""

    available: float
    busy: float
    workers: float
    producer: float
    broker: float
    observer: float  # the process taking the measurement (the bench's own polling)

    @property
    def rest(self) -> float:
        """Everything else that ran: the database server, the OS, other users' jobs."""
        return max(0.0, self.busy - self.workers - self.producer - self.broker - self.observer)

    @property
    def pipeline(self) -> float:
        """The pipeline's own processes: workers, producer, broker (with SQLite, the
        database's work is the workers' and the producer's; a database server's is in
        :attr:`rest`)."""
        return self.workers + self.producer + self.broker

    @property
    def idle(self) -> float:
        return max(0.0, self.available - self.busy)

    def as_dict(self) -> dict[str, float]:
        return {"available": self.available, "workers": self.workers,
                "producer": self.producer, "broker": self.broker, "bench": self.observer,
                "rest": self.rest, "idle": self.idle}

    def describe(self) -> str:
        labels = {"bench": "the bench itself", "rest": "everything else (database server, OS)"}
        spent = {k: v for k, v in self.as_dict().items() if k != "available"}
        return f"CPU seconds of {self.available:.1f} available: " + ", ".join(
            f"{labels.get(name, name)} {value:.2f}" for name, value in spent.items()
        )
