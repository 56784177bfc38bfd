"""The trace task's load: a bundled, seeded synthetic diurnal trace, or a user CSV.

CSV format (header required, comma-separated):

* ``step``: integers 0, 1, 2, ... in order, one row per step (at least 60 rows);
* exactly one load column: ``load_multiplier`` (multiple of the base rate, >= 0) or
  ``request_rate_rps`` (absolute offered rate in requests/s, >= 0; divided by the base rate).

Other columns are ignored. Values must be finite. The file is UTF-8 text (a byte-order mark is
allowed); any problem is a ``ValueError`` naming the file and the row. A file is parsed once
per path and modification (time and size): every reset of every env that replays it shares one
read-only array. The bundled file
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
        ``(n_steps,)`` float64 multipliers of the base rate (healthy ~0.6-1.4, bursts to ~3.8).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps)
    day = 2.0 * math.pi * t / 480.0  # one "day" is 480 steps (80 minutes of cluster time)
    diurnal = 1.0 + 0.25 * np.sin(day - 1.2) + 0.12 * np.sin(2.0 * day + 0.4)
    noise = np.exp(rng.normal(0.0, 0.04, n_steps))
    load = diurnal * noise
    start = int(rng.integers(5, 30))
    while start < n_steps:  # one burst every 22-37 steps, 5-8 steps long, peaking at 3.2-3.8x
        length = int(rng.integers(5, 9))
        height = float(rng.uniform(3.2, 3.8))
        for k in range(length):
            if start + k < n_steps:
                shape = math.sin(math.pi * (k + 0.5) / length)
                load[start + k] += (height - load[start + k]) * shape
        start += int(rng.integers(22, 38))
    return np.round(load, 6)


def load_trace_csv(path: str | Path, base_rate_rps: float) -> np.ndarray:
    """Read and validate a trace CSV; return its per-step load multipliers (read-only, cached
    per path, modification time, size and base rate).

    Raises:
        ValueError: naming the file, the row or the column that is wrong and what is valid.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        stat = None
    if stat is None or not path.is_file():
        raise ValueError(f"trace_path {str(path)!r} does not exist or is not a file")
    return _cached_trace(str(path.resolve()), stat.st_mtime_ns, stat.st_size, float(base_rate_rps), str(path))


@functools.lru_cache(maxsize=8)
def _cached_trace(resolved: str, mtime_ns: int, size: int, base_rate_rps: float, shown: str) -> np.ndarray:
    """The parsed trace of one version of a file (the key holds its modification time and size)."""
    values, column = _parse_trace_csv(Path(resolved), shown)
    if column == "request_rate_rps":
        values = values / base_rate_rps
    values.setflags(write=False)
    return values


def _parse_trace_csv(path: Path, shown: str) -> tuple[np.ndarray, str]:
    """``(values of the load column, its name)`` of a trace CSV; ``shown`` names it in errors."""
    row_number = 0  # the last row read (the header is row 1)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # utf-8-sig: a leading BOM is not part of 'step'
            reader = csv.reader(fh)
            columns = [c.strip() for c in next(reader, [])]
            row_number = 1
            if "step" not in columns:
                raise ValueError(f"{shown}: missing column 'step'; a trace needs 'step' and one of {LOAD_COLUMNS}")
            load_cols = [c for c in LOAD_COLUMNS if c in columns]
            if len(load_cols) != 1:
                raise ValueError(f"{shown}: needs exactly one of the columns {LOAD_COLUMNS}, found {load_cols or 'none'}")
            col = load_cols[0]
            step_at, value_at = columns.index("step"), columns.index(col)
            values = []
            for row_number, row in enumerate(reader, start=2):
                try:
                    step, value = int(row[step_at]), float(row[value_at])
                except (IndexError, ValueError):
                    raise ValueError(f"{shown}: row {row_number} is not numeric: {_short(','.join(row))}") from None
                if step != row_number - 2:
                    raise ValueError(f"{shown}: row {row_number} has step {step}, expected {row_number - 2} "
                                     "(steps start at 0, consecutive)")
                if not math.isfinite(value) or value < 0:
                    raise ValueError(f"{shown}: row {row_number} has {col}={value}; must be finite and >= 0")
                values.append(value)
    except UnicodeDecodeError:
        raise ValueError(f"{shown}: not UTF-8 text (undecodable bytes after row {row_number}); save the trace as "
                         "UTF-8 CSV") from None
    except csv.Error as exc:  # a field over csv's size limit, a NUL byte, ...
        raise ValueError(f"{shown}: row {row_number + 1} is not valid CSV ({exc})") from None
    if len(values) < MIN_TRACE_STEPS:
        raise ValueError(f"{shown}: {len(values)} rows; a trace needs at least {MIN_TRACE_STEPS}")
    return np.asarray(values, dtype=np.float64), col


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


@functools.lru_cache(maxsize=1)
def bundled_trace() -> np.ndarray:
    """The bundled diurnal trace's load multipliers (parsed once per process)."""
    with resources.as_file(resources.files("dime_gym.scenarios") / "data" / BUNDLED_TRACE) as path:
        return load_trace_csv(path, base_rate_rps=1.0)


def write_trace_csv(path: str | Path, load: np.ndarray) -> None:
    """Write load multipliers in the documented CSV format."""
    with Path(path).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "load_multiplier"])
        for step, value in enumerate(load):
            writer.writerow([step, f"{value:.6f}"])
