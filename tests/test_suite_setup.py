"""The test suite itself: it collects with only the ``test`` extra installed (training tests
skip), and the language-model tests carry the ``slow`` marker."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
# Makes the training (and other optional) extras unimportable, as on a `pip install -e ".[test]"` machine.
BLOCKER = '''
import importlib.util, sys
BLOCKED = {"torch", "transformers", "trl", "peft", "datasets", "accelerate", "vllm", "matplotlib", "stable_baselines3"}
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: None if name.split(".")[0] in BLOCKED else _find_spec(name, package)
sys.meta_path.insert(0, _Block())
'''


def _collect(*args: str, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *(args or (str(TESTS),))],
                          env=env, capture_output=True, text=True, timeout=300, cwd=TESTS.parent)


def test_suite__collects_without_the_training_extras(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    done = _collect(pythonpath=str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "No module named" not in done.stdout


@pytest.mark.slow  # collecting the model tests imports torch and transformers
def test_suite__model_tests_are_marked_slow():
    files = [str(TESTS / "test_train_e2e.py"), str(TESTS / "test_eval_backends.py")]
    everything = _collect(*files).stdout.splitlines()
    fast = _collect("-m", "not slow", *files).stdout.splitlines()
    slow = set(everything) - set(fast)
    assert any(line.startswith("tests/test_train_e2e.py::") for line in slow)
    assert any("test_hf_backend__runs_end_to_end_on_cpu" in line for line in slow)
    assert not any("test_train_e2e" in line or "tiny_model" in line for line in fast)
