"""The trace task's load: a bundled, seeded synthetic diurnal trace, or a user CSV.

CSV format (header required, comma-separated):

* ``step``: integers 0, 1, 2, ... in order, one row per step (at least 60 rows);
* exactly one load column: ``load_multiplier`` (multiple of the base rate, >= 0) or
  ``request_rate_rps`` (absolute offered rate in requests/s, >= 0; divided by the base rate).

Other columns are ignored. Values must be finite. The bundled file
``data/diurnal_trace.csv`` is ``generate_diurnal_trace(TRACE_SEED, TRACE_STEPS)`` written with
six decimals; a test checks that the file and the generator agree.
"""

from __future__ import annotations

import csv
import functools
import math
from importlib import resources
from pathlib import Path

import numpy as np

TRACE_SEED = 2021
TRACE_STEPS = 1440
LOAD_COLUMNS = ("load_multiplier", "request_rate_rps")
MIN_TRACE_STEPS = 60
BUNDLED_TRACE = "diurnal_trace.csv"


def generate_diurnal_trace(seed: int = TRACE_SEED, n_steps: int = TRACE_STEPS) -> np.ndarray:
    """A diurnal load multiplier with two daily peaks, noise and short bursts.

    Returns:
        ``(n_steps,)`` float64 multipliers of the base rate (healthy ~0.6-1.4, bursts to ~3.6).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps)
    day = 2.0 * math.pi * t / 480.0  # one "day" is 480 steps (80 minutes of cluster time)
    diurnal = 1.0 + 0.25 * np.sin(day - 1.2) + 0.12 * np.sin(2.0 * day + 0.4)
    noise = np.exp(rng.normal(0.0, 0.04, n_steps))
    load = diurnal * noise
    start = int(rng.integers(5, 30))
    while start < n_steps:  # one burst every 30-50 steps, 4-7 steps long, peaking at 3.0-3.6x
        length = int(rng.integers(4, 8))
        height = float(rng.uniform(3.0, 3.6))
        for k in range(length):
            if start + k < n_steps:
                shape = math.sin(math.pi * (k + 0.5) / length)
                load[start + k] += (height - load[start + k]) * shape
        start += int(rng.integers(30, 51))
    return np.round(load, 6)


def load_trace_csv(path: str | Path, base_rate_rps: float) -> np.ndarray:
    """Read and validate a trace CSV; return its per-step load multipliers.

    Raises:
        ValueError: naming the file, the row or the column that is wrong and what is valid.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"trace_path {str(path)!r} does not exist or is not a file")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if "step" not in columns:
            raise ValueError(f"{path}: missing column 'step'; a trace needs 'step' and one of {LOAD_COLUMNS}")
        load_cols = [c for c in LOAD_COLUMNS if c in columns]
        if len(load_cols) != 1:
            raise ValueError(f"{path}: needs exactly one of the columns {LOAD_COLUMNS}, found {load_cols or 'none'}")
        col = load_cols[0]
        values = []
        for row_number, row in enumerate(reader):
            try:
                step = int(row["step"])
                value = float(row[col])
            except (TypeError, ValueError):
                raise ValueError(f"{path}: row {row_number + 2} is not numeric: {row}") from None
            if step != row_number:
                raise ValueError(f"{path}: row {row_number + 2} has step {step}, expected {row_number} (steps start at 0, consecutive)")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{path}: row {row_number + 2} has {col}={value}; must be finite and >= 0")
            values.append(value)
    if len(values) < MIN_TRACE_STEPS:
        raise ValueError(f"{path}: {len(values)} rows; a trace needs at least {MIN_TRACE_STEPS}")
    load = np.asarray(values, dtype=np.float64)
    return load / base_rate_rps if col == "request_rate_rps" else load


@functools.lru_cache(maxsize=1)
def bundled_trace() -> np.ndarray:
    """The bundled diurnal trace's load multipliers (parsed once per process)."""
    with resources.as_file(resources.files("dime_gym.scenarios") / "data" / BUNDLED_TRACE) as path:
        load = load_trace_csv(path, base_rate_rps=1.0)
    load.setflags(write=False)
    return load


def write_trace_csv(path: str | Path, load: np.ndarray) -> None:
    """Write load multipliers in the documented CSV format."""
    with Path(path).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "load_multiplier"])
        for step, value in enumerate(load):
            writer.writerow([step, f"{value:.6f}"])
