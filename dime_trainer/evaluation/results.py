"""Result files: one JSON Lines file per run, a header line then one line per finished episode.

Each episode is appended and flushed as soon as it ends, so an interrupted run loses at most
the episodes in flight. ``--resume`` reads the file back, drops a torn last line (a write cut
off by the interruption), checks that the run's protocol (policy, sampling settings, system
prompt, step limit, simulator version) is unchanged, and skips every (task, seed) already
there: an episode is never run or written twice.

Reading checks every line: each must be a JSON object, a header's ``protocol`` an object, and
an episode must hold the fields a summary reads (``EPISODE_FIELDS``) with the right types; a
line that does not is a ``ResultsError`` naming the file, the line and the field.
"""

from __future__ import annotations

import json
import os
import pathlib

RESULTS_FORMAT = "dime-eval/1"


class ResultsError(ValueError):
    """The results file cannot be used as asked (exists without --resume, different protocol, corrupt)."""


EPISODE_FIELDS = {"task": "a string", "seed": "an integer", "score": "a number", "success": "a boolean",
                  "actions": "an object"}  # what every episode line must hold (summaries read them)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_FIELD_TESTS = {"a string": lambda v: isinstance(v, str), "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
                "a number": _is_number, "a boolean": lambda v: isinstance(v, bool), "an object": lambda v: isinstance(v, dict)}


def record_problem(record) -> str | None:
    """Why ``record`` (one parsed line) cannot be used, or ``None``."""
    from dime_trainer.evaluation.summary import MEAN_KEYS

    if not isinstance(record, dict):
        return f"is a JSON {type(record).__name__}, not a JSON object"
    kind = record.get("type")
    if kind == "run":
        if not isinstance(record.get("protocol", {}), dict):
            return "is a run header whose 'protocol' must be an object"
    elif kind == "episode":
        for name, expected in EPISODE_FIELDS.items():
            if name not in record:
                return f"is an episode missing {name!r} (needs {', '.join(EPISODE_FIELDS)})"
            if not _FIELD_TESTS[expected](record[name]):
                return f"is an episode whose {name!r} must be {expected}, got {type(record[name]).__name__}"
        if not all(_is_number(v) for v in record["actions"].values()):
            return "is an episode whose 'actions' counts must be numbers"
        for name in (*MEAN_KEYS, "completion_tokens_mean", "truncated_answers"):
            if record.get(name) is not None and not _is_number(record[name]):
                return f"is an episode whose {name!r} must be a number, got {type(record[name]).__name__}"
    return None


def read_results(path: str | os.PathLike) -> tuple[dict | None, list[dict], int, bool]:
    """``(header, episodes, bytes of complete lines, torn)`` of a results file; ``torn`` when
    the last line is incomplete (it is not returned). A corrupt line elsewhere raises."""
    data = pathlib.Path(path).read_bytes()
    header, episodes, good = None, [], 0
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if not line.strip():
            good += len(line) + (0 if last else 1)
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            if last or all(not rest.strip() for rest in lines[i + 1:]):
                return header, episodes, good, True
            raise ResultsError(f"{path}: line {i + 1} is not JSON; the file is corrupt") from None
        if last:  # complete JSON but no newline: the write was cut off before it
            return header, episodes, good, True
        problem = record_problem(record)
        if problem:
            raise ResultsError(f"{path}: line {i + 1} {problem}; the file is corrupt")
        if record.get("type") == "run":
            if header is None:
                header = record
        elif record.get("type") == "episode":
            episodes.append(record)
        good += len(line) + 1
    return header, episodes, good, False


def read_header(path: str | os.PathLike) -> dict | None:
    """The header of a results file (its first line), without reading the rest; None if the
    first line is not a complete header."""
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):
                    return None
                if isinstance(record, dict) and record.get("type") == "run":
                    problem = record_problem(record)
                    if problem:
                        raise ResultsError(f"{path}: line 1 {problem}; the file is corrupt")
                    return record
                return None
    return None


def check_results_path(path: str | os.PathLike, header: dict, resume: bool = False, overwrite: bool = False) -> bool:
    """Raise ``ResultsError`` if ``path`` cannot be opened as asked (it exists without
    ``resume``/``overwrite``, or ``resume`` with a changed protocol); writes nothing. Returns
    whether it exists. Check every file of a run first, so none is created when one is refused."""
    path = pathlib.Path(path)
    exists = path.exists() and path.stat().st_size > 0
    if exists and not (resume or overwrite):
        raise ResultsError(f"{path} already exists: pass --resume to continue it or --overwrite to start again")
    if exists and resume:
        old_header = read_header(path)
        if old_header is not None:
            check_protocol(old_header, header, path)
    return exists


def load_episodes(path: str | os.PathLike) -> tuple[dict | None, list[dict]]:
    """Header and episodes of a results file (a torn last line is ignored)."""
    header, episodes, _, _ = read_results(path)
    return header, episodes


class ResultsFile:
    """Appends episode records to ``path`` and knows which (task, seed) pairs are finished.

    Args:
        path: The ``.jsonl`` file.
        header: The run header (``type: run``); its ``protocol`` must match on resume.
        resume: Continue an existing file.
        overwrite: Start the file again.
    """

    def __init__(self, path: str | os.PathLike, header: dict, resume: bool = False, overwrite: bool = False):
        self.path = pathlib.Path(path)
        self.header = header
        self.episodes: list[dict] = []  # without their traces (summaries only need the metrics)
        exists = check_results_path(self.path, header, resume, overwrite)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if exists and resume:
            old_header, episodes, good, torn = read_results(self.path)
            if old_header is not None:
                self.header = old_header
            if torn:
                with open(self.path, "r+b") as fh:
                    fh.truncate(good)
            self.fh = open(self.path, "a", encoding="utf-8")
            if old_header is None:
                self._write(header)
            self.episodes = [_light(e) for e in episodes]
        else:
            self.fh = open(self.path, "w", encoding="utf-8")
            self._write(header)
        self.done = {(e["task"], int(e["seed"])) for e in self.episodes}

    def _write(self, record: dict) -> None:
        self.fh.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")
        self.fh.flush()

    def write(self, record: dict) -> None:
        """Append one finished episode (refusing a duplicate)."""
        key = (record["task"], int(record["seed"]))
        if key in self.done:
            raise ResultsError(f"episode {key} is already in {self.path}")
        self._write(record)
        self.done.add(key)
        self.episodes.append(_light(record))

    def close(self) -> None:
        self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _light(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "trace"}


def check_protocol(old: dict, new: dict, path) -> None:
    """Raise ``ResultsError`` naming every protocol setting that differs."""
    a, b = old.get("protocol", {}), new.get("protocol", {})
    diffs = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if diffs:
        raise ResultsError(f"cannot resume {path}: the run's protocol changed ({'; '.join(diffs)}); "
                           "use another --out/--name or --overwrite")
