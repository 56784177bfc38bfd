"""The README's examples run: every ```python block executes and every ```json block parses;
and the README says what a newcomer needs (install lines, ids, test subsets, terms)."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
OPTIONAL_MODULES = ("stable_baselines3", "torch", "transformers", "trl", "matplotlib")  # extras a block may import
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
JSON_BLOCKS = re.findall(r"```json\n(.*?)```", README, re.S)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"python{i}" for i in range(len(PYTHON_BLOCKS))])
def test_readme__python_example_runs(block):
    for module in OPTIONAL_MODULES:
        if re.search(rf"^\s*(from|import) {module}\b", block, re.M) and importlib.util.find_spec(module) is None:
            pytest.skip(f"this example needs {module} (an optional extra)")
    exec(compile(block, "README.md", "exec"), {"__name__": "readme_example"})


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=[f"json{i}" for i in range(len(JSON_BLOCKS))])
def test_readme__json_example_parses(block):
    assert isinstance(json.loads(block), dict)


def test_readme__has_examples():
    assert len(PYTHON_BLOCKS) >= 2 and JSON_BLOCKS


def _first_block_lines() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme__test_command_is_what_ci_runs():
    main_job, tests = _first_block_lines()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.startswith("python3 -m")]
    install, run = tests.split(" && ")
    assert run == ci[1] == "python3 -m pytest"  # CI runs everything, slow tests included
    assert install.split() == [w for w in ci[0].split() if not w.startswith("--") or w == "-e"]


def test_readme__says_how_to_get_the_cpu_torch_wheel():
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in README
    assert "(what CI runs; CPU torch)" not in README  # plain torch==2.13.0 is the CUDA build on PyPI


def test_readme__expands_dime_and_sre_on_first_use():
    title, body = README.split("\n", 1)
    assert title.startswith("# DIME (Distributed Infrastructure Management Environment)")
    assert "SRE (site reliability engineering)" in title
    prose = re.sub(r"```.*?```", "", body, flags=re.S)  # the first use in the text, code blocks aside
    assert prose.index("DIME (Distributed Infrastructure Management Environment)") == prose.index("DIME")
    assert re.match(r"SRE \(site\s+reliability engineering\)", prose[prose.index("SRE"):])


def test_readme__trace_task_is_said_to_be_synthetic():
    assert re.search(r"`level_5_alibaba_trace` ships no Alibaba data.*?synthetic diurnal trace", README, re.S)


def test_readme__documents_ids_default_task_render_and_sb3():
    import dime_gym

    assert "without `task=` it runs `traffic_spike`" in README and dime_gym.DEFAULT_TASK == "traffic_spike"
    assert "`DIME-<task>-v0`" in README and "`DIME-multitask-v0`" in README and "spec.max_episode_steps" in README
    assert 'render_mode="rgb_array"' in README and "### Stable-Baselines3" in README and "VecNormalize" in README


def test_readme__documents_the_fast_test_subset_and_the_compile_note():
    assert 'python3 -m pytest -m "not slow"' in README
    assert "compiling DIME kernels (first run only)" in README


def test_readme__task_table_is_the_task_table():
    """The README's task table says what ``dime_gym.scenarios.TASKS`` holds, row for row."""
    from dime_gym.scenarios import TASKS

    for task in TASKS:
        assert f"| `{task.id}` | {task.episode_steps} | {task.mechanism} | {task.ideal_response} |" in README, task.id


def test_readme__cluster_picture_is_what_the_env_draws():
    """The README's picture is ``render_mode="rgb_array"`` of the state its caption names."""
    plt = pytest.importorskip("matplotlib.pyplot")
    import sys

    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from make_pictures import CLUSTER_PICTURE, cluster_picture
    finally:
        sys.path.remove(str(ROOT / "docs"))
    assert f"]({CLUSTER_PICTURE.relative_to(ROOT).as_posix()})" in README
    stored = plt.imread(CLUSTER_PICTURE)[..., :3]
    drawn = cluster_picture()
    assert stored.shape == drawn.shape
    assert (stored * 255).round().astype("uint8").tolist() == drawn.tolist()
