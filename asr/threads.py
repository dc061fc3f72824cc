"""CPU threads for training on a machine that other processes share.

PyTorch's CPU kernels run on an OpenMP pool (GNU OpenMP in the PyPI wheels, as
``torch.__config__.parallel_info()`` says) whose threads spin-wait at the end of each parallel region. When
another process holds one of two cores, a two-thread pool waits at every region for the thread that is off its
core while the other spins: training ran at 0.33 of its idle rate where one free core of two would give 0.5
(``benchmarks/train_contention.py``).

- :func:`choose_threads` picks the intra-op thread count from the cores that are idle when training starts
  (``/proc/stat`` sampled over :data:`SAMPLE_SECONDS`, else the load average), within the CPUs this process
  may run on (affinity, a cgroup v2 CPU quota, ``OMP_NUM_THREADS``), one thread per physical core at most.
- :class:`ThreadRetuner` chooses again while training runs, from the CPU time other processes took over the
  last :data:`RETUNE_SECONDS` (``/proc/stat`` less the ticks of this process and its data loader's
  workers), so contention that starts or ends after the start is followed.
- :func:`passive_openmp` makes waiting OpenMP threads sleep instead of spin. The runtime reads its
  environment once, when torch loads it: call it before ``import torch``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Collection, Mapping, MutableMapping
from pathlib import Path

PROC = Path("/proc")
PROC_STAT = PROC / "stat"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
SYS_CPU = Path("/sys/devices/system/cpu")
SAMPLE_SECONDS = (
    0.3  # long enough for 30 clock ticks a CPU at the usual 100 Hz, short beside any training run
)
LOADER_NAME = "pt_data_worker"  # the name torch's DataLoader gives its worker processes
RETUNE_SECONDS = 5.0  # between samples while training: a busy core costs at most this long at the wrong count
# A core counts when this much short of free: 1.7 idle cores of 2 give 2 threads, 1.6 give 1. A thread on a
# core that another process keeps half busy stalls the whole pool at every region: half a core is no thread.
SLACK = 0.3

CpuTimes = dict[int, tuple[int, int]]  # CPU number -> (idle, total) clock ticks since boot


def parse_proc_stat(text: str) -> CpuTimes:
    """Per-CPU (idle, total) ticks from the text of ``/proc/stat``.

    Idle counts ``idle`` and ``iowait``; total the first eight fields (user, nice, system, idle, iowait, irq,
    softirq, steal: time a hypervisor gave to others is not free). Guest time is already inside user time.
    """
    times: CpuTimes = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(v) for v in rest.split()[:8]]
            times[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))
    return times


def idle_cpus(before: CpuTimes, after: CpuTimes, cpus: Collection[int]) -> float:
    """CPUs' worth of idle time among ``cpus`` between two samples: 0 (all busy) to ``len(cpus)``.

    A CPU missing from either sample (taken offline) counts as busy; one that accounted no time as idle.
    """
    idle = 0.0
    for cpu in cpus:
        if cpu in before and cpu in after:
            total = after[cpu][1] - before[cpu][1]
            idle += (after[cpu][0] - before[cpu][0]) / total if total > 0 else 1.0
    return idle


def parse_cpu_max(text: str) -> float | None:
    """CPUs a cgroup v2 ``cpu.max`` allows ("200000 100000" is 2.0), None for no limit ("max 100000")."""
    quota, _, period = text.strip().partition(" ")
    if quota == "max" or not period:
        return None
    return int(quota) / int(period)


def env_threads(environ: Mapping[str, str]) -> int | None:
    """The thread count ``OMP_NUM_THREADS`` sets (its first level); None if unset or not a positive count."""
    first = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None


def threads_for(idle: float, cpus: int, cores: int, ceiling: int) -> int:
    """Threads for ``idle`` idle CPUs of ``cpus`` logical ones on ``cores`` physical ones: the idle share of
    the cores, each counted when :data:`SLACK` short of whole; at least 1, at most ``ceiling``."""
    free_cores = idle * cores / max(cpus, 1)
    return max(1, min(ceiling, math.floor(free_cores + SLACK)))


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on (its affinity; all of them where the platform has none)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def physical_cores(cpus: Collection[int]) -> int:
    """Physical cores under ``cpus`` (a core's hyperthreads count once); ``len(cpus)`` without sysfs."""
    try:
        return len({(SYS_CPU / f"cpu{c}" / "topology" / "thread_siblings_list").read_text() for c in cpus})
    except OSError:
        return len(cpus)


def cpu_quota() -> float | None:
    """The CPUs this process's cgroup v2 allows, None without a limit (or without cgroup v2)."""
    try:
        return parse_cpu_max(CGROUP_CPU_MAX.read_text())
    except (OSError, ValueError):
        return None


def measure_idle(cpus: Collection[int], seconds: float = SAMPLE_SECONDS) -> float:
    """Idle CPUs among ``cpus`` now: ``/proc/stat`` over ``seconds`` (this process sleeps meanwhile), else the
    whole machine's idle CPUs by the one-minute load average, else all of ``cpus``."""
    try:
        before = parse_proc_stat(PROC_STAT.read_text())
        time.sleep(seconds)
        after = parse_proc_stat(PROC_STAT.read_text())
    except OSError:
        try:
            return min(len(cpus), max(0.0, (os.cpu_count() or 1) - os.getloadavg()[0]))
        except (OSError, AttributeError):  # no load average on this platform
            return float(len(cpus))
    return idle_cpus(before, after, cpus)


def thread_ceiling(cores: int) -> int:
    """The most threads worth running: the physical ``cores``, within a cgroup CPU quota and
    ``OMP_NUM_THREADS``; at least 1."""
    ceiling = cores
    quota = cpu_quota()
    if quota is not None:
        ceiling = min(ceiling, max(1, math.floor(quota)))
    return max(1, min(ceiling, env_threads(os.environ) or ceiling))


def choose_threads(requested: int, seconds: float = SAMPLE_SECONDS) -> int:
    """The intra-op thread count for ``torch.set_num_threads``: ``requested`` when above 0, else automatic.

    Automatic is one thread per physical core that is idle now, among the CPUs this process may use (its
    affinity and cgroup CPU quota), at most ``OMP_NUM_THREADS`` when that is set, and at least 1. It sleeps
    ``seconds`` to sample the CPUs, unless a single CPU leaves no choice. :class:`ThreadRetuner` follows the
    load from there.
    """
    if requested > 0:
        return requested
    cpus = allowed_cpus()
    cores = physical_cores(cpus)
    ceiling = thread_ceiling(cores)
    if ceiling == 1:
        return 1
    return threads_for(measure_idle(cpus, seconds), len(cpus), cores, ceiling)


def parse_pid_stat(text: str) -> tuple[str, int, int]:
    """(command name, parent pid, CPU ticks) from the text of ``/proc/<pid>/stat``: the ticks are user and
    system time, its own and that of the children it has waited for. The name may hold spaces and
    parentheses."""
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()  # from field 3, the state
    return name, int(fields[1]), sum(int(v) for v in fields[11:15])  # fields 4 (ppid) and 14-17


def tree_ticks(pid: int, proc: Path = PROC) -> int:
    """CPU ticks used so far by process ``pid`` and its data loader workers (children named
    :data:`LOADER_NAME`, and theirs). Other children, such as the other ranks of a DDP run on this machine,
    count as other processes."""
    stats: dict[int, tuple[str, int, int]] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = parse_pid_stat((entry / "stat").read_text())
            except (OSError, ValueError):  # it ended while we looked
                continue
    workers: dict[int, list[int]] = {}
    for child, (name, parent, _) in stats.items():
        if name == LOADER_NAME:
            workers.setdefault(parent, []).append(child)
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += stats[p][2] if p in stats else 0
        todo.extend(workers.get(p, []))
    return total


def busy_elsewhere(before: CpuTimes, after: CpuTimes, own_ticks: int, cpus: Collection[int]) -> float:
    """CPUs' worth of time that other processes took among ``cpus`` between two ``/proc/stat`` samples,
    given the ``own_ticks`` that this process and its loader workers used meanwhile: 0 up to ``len(cpus)``."""
    shared = [c for c in cpus if c in before and c in after]
    elapsed = sum(after[c][1] - before[c][1] for c in shared) / max(len(shared), 1)  # ticks a CPU
    if elapsed <= 0:
        return 0.0
    busy = len(shared) - idle_cpus(before, after, shared)
    return min(float(len(cpus)), max(0.0, busy - own_ticks / elapsed))


class ThreadRetuner:
    """Chooses the thread count again, at most every ``interval`` seconds, from the cores that other
    processes left free since the last choice.

    Call :meth:`poll` between training steps; it returns a new count to set, or None to keep the current
    one. Without ``/proc`` it never changes the count.
    """

    def __init__(self, threads: int, interval: float = RETUNE_SECONDS) -> None:
        self.threads = threads
        self.interval = interval
        self.cpus = allowed_cpus()
        self.cores = physical_cores(self.cpus)
        self.ceiling = thread_ceiling(self.cores)
        self.elsewhere = 0.0  # CPUs' worth of time other processes took over the last window
        self.window = 0.0  # seconds between the last two samples
        self.last = self.sample()

    def sample(self) -> tuple[float, CpuTimes, int] | None:
        """(monotonic time, ``/proc/stat``, :func:`tree_ticks` of this process), None without ``/proc``."""
        try:
            return time.monotonic(), parse_proc_stat(PROC_STAT.read_text()), tree_ticks(os.getpid())
        except OSError:
            return None

    def poll(self) -> int | None:
        """The thread count to set now, when it differs from the current one; else None."""
        if self.last is None or time.monotonic() - self.last[0] < self.interval:
            return None
        now = self.sample()
        if now is None:
            return None
        self.elsewhere = busy_elsewhere(self.last[1], now[1], now[2] - self.last[2], self.cpus)
        self.window, self.last = now[0] - self.last[0], now
        free = len(self.cpus) - self.elsewhere
        threads = threads_for(free, len(self.cpus), self.cores, self.ceiling)
        if threads == self.threads:
            return None
        self.threads = threads
        return threads


def passive_openmp(
    environ: MutableMapping[str, str] = os.environ, modules: Collection[str] = sys.modules
) -> bool:
    """Make waiting OpenMP threads sleep at once instead of spinning (``OMP_WAIT_POLICY=PASSIVE``).

    Left alone when the user set ``OMP_WAIT_POLICY`` or GNU OpenMP's ``GOMP_SPINCOUNT``. The OpenMP runtime
    reads them once, when it is loaded (``import torch``), so this has effect only before that; returns
    whether it set the variable (False as well when torch is already among ``modules``).
    """
    if "torch" in modules or "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
