"""Package metadata: an SPDX license string (the TOML-table form is deprecated), authors, URLs,
classifiers, ``py.typed`` markers and a copyright line."""

from __future__ import annotations

import pathlib

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]


def test_packaging__license_is_an_spdx_expression_with_its_file():
    assert PROJECT["license"] == "Apache-2.0"  # a string, not the deprecated {text = ...} table
    assert PROJECT["license-files"] == ["LICENSE"]
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])  # forbidden next to an SPDX expression
    requires = PYPROJECT["build-system"]["requires"]
    assert any(r.startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77 for r in requires)


def test_packaging__authors_urls_and_classifiers():
    assert PROJECT["authors"] and all(a.get("name") for a in PROJECT["authors"])
    assert PROJECT["urls"] and all(url.startswith("https://") for url in PROJECT["urls"].values())
    assert {"Typing :: Typed", "Programming Language :: Python :: 3"} <= set(PROJECT["classifiers"])


@pytest.mark.parametrize("package", ["dime_gym", "dime_trainer"])
def test_packaging__py_typed_is_shipped(package):
    assert (ROOT / package / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"][package]


def test_packaging__license_file_has_a_copyright_line():
    first = (ROOT / "LICENSE").read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("Copyright 20") and "[" not in first


def test_packaging__extras_and_markers():
    extras = PROJECT["optional-dependencies"]
    assert any(r.startswith("stable-baselines3") for r in extras["sb3"])
    assert any(r.startswith("tqdm") for r in PROJECT["dependencies"])  # dime-eval's progress bar, base install
    assert any(m.startswith("slow:") for m in PYPROJECT["tool"]["pytest"]["ini_options"]["markers"])
