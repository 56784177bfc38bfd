"""The README's examples run: every ```python block executes and every ```json block parses."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
JSON_BLOCKS = re.findall(r"```json\n(.*?)```", README, re.S)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"python{i}" for i in range(len(PYTHON_BLOCKS))])
def test_readme__python_example_runs(block):
    exec(compile(block, "README.md", "exec"), {"__name__": "readme_example"})


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=[f"json{i}" for i in range(len(JSON_BLOCKS))])
def test_readme__json_example_parses(block):
    assert isinstance(json.loads(block), dict)


def test_readme__has_examples():
    assert len(PYTHON_BLOCKS) >= 2 and JSON_BLOCKS
