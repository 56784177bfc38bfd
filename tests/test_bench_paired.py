"""``benchmarks/bench_paired.py``, the before/after timing of speed changes: the revision it
exports is a separate package that imports and steps beside this checkout's ``dime_gym``."""

from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_paired import BASE_PACKAGE, export_revision, time_in_one_process  # noqa: E402


def test_bench_paired__exported_revision_runs_beside_the_checkout(tmp_path, monkeypatch):
    export_revision("HEAD", tmp_path)
    sources = list((tmp_path / BASE_PACKAGE).rglob("*.py"))
    assert sources and not any("dime_gym." in p.read_text().replace(f"{BASE_PACKAGE}.", "") for p in sources)
    monkeypatch.syspath_prepend(str(tmp_path))
    ratio = time_in_one_process("dime_gym", BASE_PACKAGE, rounds=1, calls=2, num_envs=8)
    assert ratio > 0.0
    base = sys.modules[BASE_PACKAGE]
    assert pathlib.Path(base.__file__).is_relative_to(tmp_path)
    env = sys.modules[f"{BASE_PACKAGE}.vector"].DimeVectorEnv(num_envs=4, task="retry_storm")
    env.reset(seed=3)
    obs, reward, *_ = env.step(np.zeros((4, 4), dtype=np.int64))
    assert np.isfinite(reward).all() and (obs["p99_latency"] > 0.0).all()
