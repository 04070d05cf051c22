"""Many workers, one PostgreSQL study: exactly N finished trials, none duplicated or lost, kills retried.

The server comes from ``$REXNET_TEST_POSTGRES_URL`` or is started by ``.ci/postgres.sh``
(installs Debian's ``postgresql`` if needed); the tests skip, saying why, only when that fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from rexnet.search.study import database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pg_url() -> str:
    url = os.environ.get("REXNET_TEST_POSTGRES_URL")
    if not url:
        try:
            proc = subprocess.run(
                ["bash", str(ROOT / ".ci" / "postgres.sh")], capture_output=True, text=True, timeout=900
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"PostgreSQL could not be started by .ci/postgres.sh: {e}")
        if proc.returncode != 0 or not proc.stdout.strip():
            pytest.skip(f"PostgreSQL could not be started by .ci/postgres.sh: {proc.stderr.strip()[-500:]}")
        url = proc.stdout.strip().splitlines()[-1]
    url = database_url(url)
    try:
        import sqlalchemy

        with sqlalchemy.create_engine(url).connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"PostgreSQL at {url} is not reachable: {e}")
    return url


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")


def _check_slots(study: optuna.Study, n: int) -> list[optuna.trial.FrozenTrial]:
    trials = study.get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == n, [(t.number, t.state.name) for t in trials]
    assert sorted(t.user_attrs["slot"] for t in done) == list(range(n))  # none duplicated, none lost
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return trials


def test_two_cli_workers_share_one_study(pg_url: str, tmp_path: Path) -> None:
    name, n = f"two-{uuid.uuid4().hex[:8]}", 8
    args = [
        "--storage",
        pg_url,
        "--study",
        name,
        "--trials",
        str(n),
        "--epochs",
        "1",
        "--seeds",
        "2",  # trials of a second or more: the workers' start-up skew (seconds) must not let one do all 8
        "--budget-macs",
        "2M",
        "--image-size",
        "16",
        "--max-samples",
        "512",
        "--heartbeat",
        "1",
        "--train-options",
        '{"batch_size": 32}',
    ]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rexnet",
                "search",
                "run",
                "--out",
                str(tmp_path / f"w{i}"),
                "--seed",
                str(i),
                *args,
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trials = _check_slots(optuna.load_study(study_name=name, storage=pg_url), n)
    assert not [t for t in trials if t.state == TrialState.FAIL]
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, f"one worker did all trials: {outs}"


WORKER = textwrap.dedent("""
    import sys, time
    from rexnet import search

    def slow(plan, data, *, epochs, seed, on_epoch_end):
        for e in range(epochs):
            time.sleep(0.6)
            on_epoch_end(e + 1, 50.0 + plan.out_channels[-1] / 100)
        return 50.0 + plan.out_channels[-1] / 100

    search.run(sys.argv[1], storage=sys.argv[2], study=sys.argv[3], trials=int(sys.argv[4]), epochs=2, seeds=1,
               data=None, trainer=slow, heartbeat_interval=1, grace_period=3, write_report=False)
""")


def test_killed_worker_trial_is_retried(pg_url: str, tmp_path: Path) -> None:
    name, n = f"kill-{uuid.uuid4().hex[:8]}", 6
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    start = lambda i: subprocess.Popen(  # noqa: E731
        [sys.executable, str(script), str(tmp_path / f"w{i}"), pg_url, name, str(n)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    victim = start(0)
    deadline, study, killed = time.monotonic() + 120, None, None
    while time.monotonic() < deadline and killed is None:  # wait until the victim is mid-trial
        time.sleep(0.2)
        try:
            study = study or optuna.load_study(study_name=name, storage=pg_url)
        except KeyError:
            continue
        for t in study.get_trials(states=(TrialState.RUNNING,)):
            if t.user_attrs.get("worker", "").endswith(f":{victim.pid}") and t.intermediate_values:
                killed = t
    assert killed is not None, victim.communicate(timeout=5)[0] if victim.poll() is not None else "no trial seen"
    survivor = start(1)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    out = survivor.communicate(timeout=180)[0]
    assert survivor.returncode == 0, out

    trials = _check_slots(optuna.load_study(study_name=name, storage=pg_url), n)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [killed.number]  # the killed trial, marked dead
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == killed.params and retry[0].user_attrs["slot"] == killed.user_attrs["slot"]
    assert retry[0].user_attrs["worker"].endswith(f":{survivor.pid}")
