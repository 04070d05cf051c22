"""The measured execution plan (issue 26): the thread planner on a fake clock, the wait policy of a command line,
and what a run reports (plan, time split)."""

from __future__ import annotations

import pytest
import torch

from rexnet._env import _measured_plan_command
from rexnet.train import TrainConfig
from rexnet.train.loaders import eval_batch_size
from rexnet.train.plan import ThreadPlanner, planner_for, thread_candidates

from .helpers import tiny_cfg


class FakeMachine:
    """A clock whose step time depends on the thread count, as a quiet or a busy machine's would."""

    def __init__(self, seconds_per_step: dict[int, float]) -> None:
        self.cost, self.now, self.threads, self.switches = dict(seconds_per_step), 0.0, 0, []

    def set_threads(self, n: int) -> None:
        self.threads = n
        self.switches.append(n)

    def clock(self) -> float:
        return self.now

    def run(self, planner: ThreadPlanner, steps: int, images: int = 100) -> None:
        for _ in range(steps):
            self.now += self.cost[self.threads]
            planner.step_done(images)


def planner(machine: FakeMachine, **kw) -> ThreadPlanner:
    # a machine of our own: the one-thread steps get a whole core (CPU time = wall time)
    return ThreadPlanner([1, 2], set_threads=machine.set_threads, clock=machine.clock, cpu_clock=machine.clock, **kw)


def test_thread_candidates():
    assert thread_candidates(1) == [1]
    assert thread_candidates(2) == [1, 2]
    assert thread_candidates(6) == [1, 2, 4, 6]
    assert thread_candidates(8) == [1, 2, 4, 8]


@pytest.mark.parametrize("fast", [1, 2])
def test_calibration_keeps_the_fastest_and_reports_its_speed(fast):
    m = FakeMachine({1: 0.3, 2: 0.2} if fast == 2 else {1: 0.3, 2: 0.9})
    p = planner(m)
    p.start_epoch()
    m.run(p, 12)
    assert p.threads == m.threads == fast
    cal = p.summary()["calibrations"][0]
    assert cal["reason"] == "start" and cal["threads"] == fast
    assert cal["img_s"][str(fast)] == pytest.approx(100 / m.cost[fast], abs=0.06)
    assert p.summary()["summary"].startswith(f"auto: {fast} thread(s)")


def test_a_much_slower_candidate_is_dropped_after_its_warm_up_step():
    m = FakeMachine({1: 0.3, 2: 1.5})  # a busy machine: two threads 5x slower
    p = planner(m)
    p.start_epoch()
    m.run(p, 6)
    assert p.threads == 1
    # 1 untimed step, 1 warm-up + 3 timed at 1 thread, then one warm-up step at 2 threads settles it
    assert m.switches == [1, 2, 1]
    assert p.summary()["calibrations"][0]["img_s"]["2"] == pytest.approx(100 / 1.5, abs=0.06)


def test_drift_re_times_and_falls_back_to_one_thread():
    m = FakeMachine({1: 0.3, 2: 0.2})
    p = planner(m)
    p.start_epoch()
    m.run(p, 20)
    assert p.threads == 2
    m.cost = {1: 0.33, 2: 0.9}  # a competing process starts
    m.run(p, 20)
    assert p.threads == 1
    reasons = [c["reason"] for c in p.summary()["calibrations"]]
    assert reasons == ["start", "drift"]


def test_on_one_thread_only_a_speed_up_re_times():
    m = FakeMachine({1: 0.3, 2: 0.9})  # busy: one thread wins
    p = planner(m, recheck_seconds=1e9)
    p.start_epoch()
    m.run(p, 20)
    assert p.threads == 1
    m.cost = {1: 0.45, 2: 1.5}  # more contention: timing two threads again could only lose
    m.run(p, 20)
    assert [c["reason"] for c in p.summary()["calibrations"]] == ["start"]
    m.cost = {1: 0.3, 2: 0.2}  # the competitors left: one thread speeds up, and two are timed again
    m.run(p, 20)
    assert [c["reason"] for c in p.summary()["calibrations"]] == ["start", "drift"] and p.threads == 2


def test_timer_re_times_when_nothing_drifts():
    m = FakeMachine({1: 0.3, 2: 0.9})
    p = planner(m, recheck_seconds=10.0)
    p.start_epoch()
    m.run(p, 20)
    assert p.threads == 1
    m.cost = {1: 0.3, 2: 0.2}  # the competitor left: the one-thread step time does not change
    m.run(p, 60)
    assert p.threads == 2
    assert [c["reason"] for c in p.summary()["calibrations"]][:2] == ["start", "timer"]


def test_first_step_of_an_epoch_is_not_timed():
    m = FakeMachine({1: 0.3, 2: 0.2})
    p = planner(m)
    p.start_epoch()
    m.now += 100.0  # evaluation between epochs
    p.start_epoch()
    m.run(p, 12)
    assert max(p.summary()["calibrations"][0]["img_s"].values()) == pytest.approx(500.0)


def test_disabled_planner_never_switches():
    m = FakeMachine({1: 0.3, 2: 0.2})
    m.threads = 1
    p = planner(m, enabled=False)
    m.run(p, 30)
    assert m.switches == [] and p.summary()["mode"] == "fixed" and p.summary()["calibrations"] == []


@pytest.mark.parametrize(
    "kw, cores, device, world, enabled",
    [
        ({}, 2, "cpu", 1, True),
        ({"plan": "fixed"}, 2, "cpu", 1, False),
        ({"threads": 2}, 2, "cpu", 1, False),  # an explicit flag wins
        ({}, 1, "cpu", 1, False),
        ({}, 2, "cpu", 2, False),  # DDP
        ({}, 2, "meta", 1, False),  # not a CPU
    ],
)
def test_planner_for(kw, cores, device, world, enabled):
    old = torch.get_num_threads()
    try:
        p = planner_for(TrainConfig().replace(**kw), torch.device(device), world, cores)
        assert p.enabled is enabled
    finally:
        torch.set_num_threads(old)


def test_plan_field_is_checked():
    assert TrainConfig().plan == "auto"
    with pytest.raises(Exception, match="plan"):
        TrainConfig().replace(plan="sometimes")


@pytest.mark.parametrize(
    "argv, spin",
    [
        (["/usr/bin/rexnet", "train", "--data", "x"], True),
        (["-m", "train"], True),
        (["rexnet", "-v", "finetune"], True),
        (["rexnet", "train", "--plan", "fixed"], False),
        (["rexnet", "train", "--plan=fixed"], False),
        (["rexnet", "eval", "-c", "run"], False),
        (["rexnet", "deploy", "bench"], False),
        (["/usr/bin/python3", "script.py", "train"], False),
        ([], False),
    ],
)
def test_which_command_lines_spin(argv, spin):
    assert _measured_plan_command(argv) is spin


def test_wait_policy_under_torchrun_stays_passive(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not _measured_plan_command(["rexnet", "train"])


def test_eval_batch_size():
    assert eval_batch_size(128, 32) == 512
    assert eval_batch_size(16, 32) == 64
    assert eval_batch_size(512, 224) == 512  # never below the training micro-batch
    assert eval_batch_size(32, 224) == 83  # 2^22 pixels


def test_summary_reports_plan_and_time_split(tmp_path):
    from rexnet.train import fit
    from rexnet.train.run import build_datasets

    cfg = tiny_cfg(threads=None, epochs=1, out=str(tmp_path / "run"))
    bundle = build_datasets(cfg.data, cfg.image_size, train_limit=cfg.train_limit, val_limit=cfg.val_limit)
    torch.manual_seed(0)
    from rexnet import create_model

    res = fit(create_model(cfg.model, num_classes=10), bundle.train, bundle.val, cfg, out_dir=None)
    assert res["plan"]["mode"] in ("auto", "fixed")
    split = res["time_split"]
    assert set(split) == {"step", "data", "eval", "other"} and all(v >= 0 for v in split.values())
    assert 0 < res["step_share"] <= 1
    assert res["step_share"] == pytest.approx(split["step"] / res["total_seconds"], abs=0.01)
    assert split["eval"] > 0


def test_a_contended_core_skips_more_threads():
    m = FakeMachine({1: 0.3, 2: 0.2})
    cpu = iter(range(10**6))
    p = ThreadPlanner(
        [1, 2], set_threads=m.set_threads, clock=m.clock, cpu_clock=lambda: 0.1 * next(cpu)
    )  # every step gets 0.1 CPU seconds of its 0.3 s: another process holds the core
    p.start_epoch()
    m.run(p, 8)
    assert 2 not in m.switches[1:] and p.threads == 1
    cal = p.summary()["calibrations"][0]
    assert cal["cpu_share"] == pytest.approx(1 / 3, abs=0.01) and list(cal["img_s"]) == ["1"]
