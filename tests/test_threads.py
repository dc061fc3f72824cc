"""asr.threads: the thread count from /proc/stat samples given here (no timing), its limits, the OpenMP
wait policy."""

from __future__ import annotations

import pytest

from asr import threads

# /proc/stat as Linux writes it (two CPUs); each later sample adds ticks to it.
STAT = """cpu  2255 34 2290 22625563 6290 127 456 0 0 0
cpu0 1132 34 1441 11311718 3675 127 438 0 0 0
cpu1 1123 0 849 11313845 2615 0 18 0 0 0
intr 114930548 113199788 3 0 5 263 0 4
ctxt 1990473
btime 1062191376
processes 2915
procs_running 1
procs_blocked 0
softirq 183433 0 21755 12 39 1137 231 21459 2
"""
FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def later(**per_cpu: dict[str, int]) -> str:
    """STAT with ticks added to some CPUs' fields, e.g. ``later(cpu0={"user": 30})``."""
    lines = []
    for line in STAT.splitlines():
        name, *values = line.split()
        if name in per_cpu:
            ticks = [int(v) for v in values]
            for field, added in per_cpu[name].items():
                ticks[FIELDS.index(field)] += added
            line = " ".join([name, *map(str, ticks)])
        lines.append(line)
    return "\n".join(lines) + "\n"


class Samples:
    """Stands in for the /proc/stat path: each read returns the next sample."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    def read_text(self) -> str:
        return self.texts.pop(0)


@pytest.fixture
def two_cpus(monkeypatch):
    """A 2-CPU, 2-core machine without a CPU quota or OMP_NUM_THREADS; returns a setter for the samples."""
    monkeypatch.setattr(threads, "allowed_cpus", lambda: {0, 1})
    monkeypatch.setattr(threads, "physical_cores", lambda cpus: len(cpus))
    monkeypatch.setattr(threads, "cpu_quota", lambda: None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return lambda *texts: monkeypatch.setattr(threads, "PROC_STAT", Samples(*texts))


def test_parse_proc_stat_reads_each_cpu_not_the_total_line():
    times = threads.parse_proc_stat(STAT)
    assert sorted(times) == [0, 1]
    assert times[0] == (11311718 + 3675, 1132 + 34 + 1441 + 11311718 + 3675 + 127 + 438)


def test_idle_cpus_between_two_samples():
    before = threads.parse_proc_stat(STAT)
    one_busy = threads.parse_proc_stat(later(cpu0={"user": 30}, cpu1={"idle": 30}))
    assert threads.idle_cpus(before, one_busy, {0, 1}) == pytest.approx(1.0)
    # iowait is idle; steal (time the hypervisor gave to another guest) is not
    waiting = threads.parse_proc_stat(later(cpu0={"iowait": 10, "idle": 20}, cpu1={"steal": 15, "idle": 15}))
    assert threads.idle_cpus(before, waiting, {0, 1}) == pytest.approx(1.5)
    assert threads.idle_cpus(before, one_busy, {1}) == pytest.approx(1.0)  # only the CPUs we may use count
    assert threads.idle_cpus(before, before, {0, 1}) == 2.0  # no ticks accounted: nothing ran
    assert threads.idle_cpus(before, {1: one_busy[1]}, {0, 1}) == pytest.approx(1.0)  # CPU 0 went offline


@pytest.mark.parametrize(
    ("idle", "cpus", "cores", "ceiling", "expected"),
    [
        (2.0, 2, 2, 2, 2),  # idle machine: every core
        (1.75, 2, 2, 2, 2),  # a little background work does not cost a thread
        (1.6, 2, 2, 2, 1),  # another process holds close to half a core
        (1.0, 2, 2, 2, 1),  # one core of two busy
        (0.0, 2, 2, 2, 1),  # never fewer than one
        (16.0, 16, 16, 4, 4),  # the ceiling (quota, OMP_NUM_THREADS)
        (8.0, 8, 4, 4, 4),  # hyperthreads: one thread per core
        (7.0, 8, 4, 4, 3),  # one busy hyperthread takes its share of the cores
    ],
)
def test_threads_for(idle, cpus, cores, ceiling, expected):
    assert threads.threads_for(idle, cpus, cores, ceiling) == expected


def test_choose_threads_from_the_samples(two_cpus):
    two_cpus(STAT, later(cpu0={"idle": 29, "system": 1}, cpu1={"idle": 30}))
    assert threads.choose_threads(0, seconds=0) == 2
    two_cpus(STAT, later(cpu0={"user": 30}, cpu1={"idle": 29, "user": 1}))
    assert threads.choose_threads(0, seconds=0) == 1


def test_a_requested_count_is_kept_without_sampling(two_cpus):
    two_cpus()  # a read would fail: nothing to pop
    assert threads.choose_threads(3, seconds=0) == 3


def test_limits_below_two_threads_skip_sampling(two_cpus, monkeypatch):
    two_cpus()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.choose_threads(0, seconds=0) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "cpu_quota", lambda: 1.5)  # a cgroup allows one and a half CPUs
    assert threads.choose_threads(0, seconds=0) == 1


def test_without_proc_stat_the_load_average_decides(two_cpus, monkeypatch):
    class Missing:
        def read_text(self) -> str:
            raise FileNotFoundError("/proc/stat")

    monkeypatch.setattr(threads, "PROC_STAT", Missing())
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.0, 0.5, 0.2))
    assert threads.choose_threads(0, seconds=0) == 1
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.1, 0.5, 0.2))
    assert threads.choose_threads(0, seconds=0) == 2


@pytest.mark.parametrize(
    ("text", "cpus"), [("max 100000\n", None), ("200000 100000\n", 2.0), ("150000 100000", 1.5)]
)
def test_parse_cpu_max(text, cpus):
    assert threads.parse_cpu_max(text) == cpus


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("4", 4), ("4,2", 4), ("0", None), ("", None), ("two", None)]
)
def test_env_threads(value, expected):
    assert threads.env_threads({} if value is None else {"OMP_NUM_THREADS": value}) == expected


def test_passive_openmp_only_before_torch_and_never_over_the_users_choice():
    environ: dict[str, str] = {}
    assert threads.passive_openmp(environ, modules=())
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    for users in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "10000"}):
        environ = dict(users)
        assert not threads.passive_openmp(environ, modules=())
        assert environ == users
    environ = {}
    assert not threads.passive_openmp(environ, modules={"torch"})  # the runtime has read its settings
    assert environ == {}


def pid_stat(pid: int, ppid: int, utime: int, stime: int = 0, cutime: int = 0, comm: str = "python") -> str:
    """``/proc/<pid>/stat`` as Linux writes it (fields 5-13 and those after 17 as a real process had them)."""
    times = f"{utime} {stime} {cutime} 0"
    return f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 1200 0 0 0 {times} 20 0 3 0 8\n"


def test_parse_pid_stat_takes_the_name_parent_and_all_four_times_past_an_odd_name():
    assert threads.parse_pid_stat(pid_stat(7, 3, utime=50, stime=7, cutime=11)) == ("python", 3, 68)
    assert threads.parse_pid_stat(pid_stat(7, 3, utime=50, comm="a) (1 2")) == ("a) (1 2", 3, 50)


def test_tree_ticks_counts_a_process_and_its_loader_workers_only(tmp_path):
    tree = {
        100: (1, 40, "python"),
        101: (100, 30, threads.LOADER_NAME),
        102: (101, 20, threads.LOADER_NAME),
        103: (100, 500, "python"),  # another DDP rank, launched by this one
        104: (103, 7, threads.LOADER_NAME),  # that rank's worker
        200: (1, 1000, "python"),
    }
    for pid, (ppid, utime, name) in tree.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(pid_stat(pid, ppid, utime, stime=1, comm=name))
    (tmp_path / "self").mkdir()  # not a pid
    (tmp_path / "300").mkdir()  # ended between the listing and the read: no stat file
    assert threads.tree_ticks(100, tmp_path) == 40 + 30 + 20 + 3
    assert threads.tree_ticks(103, tmp_path) == 500 + 7 + 2
    assert threads.tree_ticks(999, tmp_path) == 0


def test_busy_elsewhere_is_the_busy_time_less_our_own():
    before = threads.parse_proc_stat(STAT)
    both_busy = threads.parse_proc_stat(later(cpu0={"user": 100}, cpu1={"user": 100}))
    assert threads.busy_elsewhere(before, both_busy, 200, {0, 1}) == pytest.approx(0.0)  # all of it ours
    assert threads.busy_elsewhere(before, both_busy, 100, {0, 1}) == pytest.approx(1.0)  # a core not ours
    half = threads.parse_proc_stat(later(cpu0={"user": 100}, cpu1={"user": 40, "idle": 60}))
    assert threads.busy_elsewhere(before, half, 100, {0, 1}) == pytest.approx(0.4)
    assert threads.busy_elsewhere(before, half, 300, {0, 1}) == 0.0  # our ticks spilt over other CPUs
    assert threads.busy_elsewhere(before, before, 0, {0, 1}) == 0.0  # no time passed


class Clock:
    """Stands in for time.monotonic: returns ``now``, which the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_retuner_follows_other_processes_load_once_per_interval(two_cpus, monkeypatch):
    clock, own = Clock(), iter([0, 100, 200, 400, 500])
    monkeypatch.setattr(threads.time, "monotonic", clock)
    monkeypatch.setattr(threads, "tree_ticks", lambda pid: next(own))
    busy = later(cpu0={"user": 100}, cpu1={"user": 100})  # both CPUs busy for 100 ticks
    two_cpus(
        STAT,
        busy,  # we used 100 of the 200 busy ticks: another process held a core
        later(cpu0={"user": 200}, cpu1={"user": 100, "idle": 100}),  # the 100 busy ticks ours: it ended
        later(cpu0={"user": 300}, cpu1={"user": 200, "idle": 100}),  # we took the 200 ticks there were
        later(cpu0={"user": 400}, cpu1={"user": 200, "idle": 200}),  # 100 ticks, ours, on one CPU
    )
    retuner = threads.ThreadRetuner(2, interval=5.0)
    clock.now += 4.0
    assert retuner.poll() is None  # within the interval: no sample taken
    clock.now += 1.0
    assert retuner.poll() == 1
    assert (retuner.elsewhere, retuner.window) == (pytest.approx(1.0), 5.0)
    clock.now += 5.0
    assert retuner.poll() == 2
    clock.now += 5.0
    assert retuner.poll() is None  # still 2: no change to make
    clock.now += 5.0
    assert retuner.poll() is None  # one CPU idle, but nobody else took it
    assert retuner.elsewhere == 0.0


def test_the_retuner_keeps_the_count_without_proc(two_cpus, monkeypatch):
    class Missing:
        def read_text(self) -> str:
            raise FileNotFoundError("/proc/stat")

    monkeypatch.setattr(threads, "PROC_STAT", Missing())
    monkeypatch.setattr(threads.time, "monotonic", clock := Clock())
    retuner = threads.ThreadRetuner(2, interval=5.0)
    clock.now += 60.0
    assert retuner.poll() is None


def test_training_sets_and_logs_the_count_the_retuner_chooses(monkeypatch, tmp_path, caplog):
    """asr.train.FollowFreeCores applies ThreadRetuner's choices between steps, for trainer.threads=0 only."""
    from types import SimpleNamespace

    import torch

    from asr.config import load_config
    from asr.train import FollowFreeCores, build_trainer

    before = torch.get_num_threads()
    target = 3 if before != 3 else 2
    choices = [None, target]
    stub = SimpleNamespace(poll=lambda: choices.pop(0), elsewhere=1.04, window=5.2)
    monkeypatch.setattr("asr.train.ThreadRetuner", lambda threads: stub if threads == before else None)
    follow = FollowFreeCores()
    try:
        follow.on_train_start(None, None)
        with caplog.at_level("INFO", logger="asr.train"):
            follow.on_train_batch_end(SimpleNamespace(global_step=6), None, None, None, 0)
            assert torch.get_num_threads() == before
            follow.on_train_batch_end(SimpleNamespace(global_step=7), None, None, None, 1)
            assert torch.get_num_threads() == target
    finally:
        torch.set_num_threads(before)
    message = f"{target} intra-op thread(s) from step 7: other processes took 1.0 CPUs over the last 5 s"
    assert message in caplog.text
    for requested, followers in ((0, 1), (2, 0)):
        cfg = load_config(None, [f"exp_dir={tmp_path}", f"trainer.threads={requested}"])
        assert sum(isinstance(c, FollowFreeCores) for c in build_trainer(cfg).callbacks) == followers
