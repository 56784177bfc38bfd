"""Exact, versioned snapshots of one cluster: bytes that restore an episode bit for bit.

A snapshot holds everything the kernels read: the task's params record and the state record,
whose RNG streams make the continuation exact. Layout (little-endian):

==========  ==========  =====================================================================
bytes       field       meaning
==========  ==========  =====================================================================
8           magic       ``b"DIMESNAP"``
2           version     ``SNAPSHOT_FORMAT_VERSION``
8           layout      first 8 bytes of a SHA-256 over the field names, offsets and dtypes
                        of ``PARAMS_DTYPE`` and ``STATE_DTYPE`` (``LAYOUT_HASH``)
2, 4        lengths     of the task id and of the facts
variable    task id     ASCII
variable    facts       the scenario's facts (fault step, faulty node, ...) as JSON
P           params      one ``PARAMS_DTYPE`` record
S           state       one ``STATE_DTYPE`` record, RNG streams included
4           crc32       of everything before it
==========  ==========  =====================================================================

About 2.8 kB. Snapshots are plain ``bytes``: pickle, store or send them as they are. Decoding
rejects anything that is not exactly a snapshot of this format and layout with a
``ValueError`` that names the problem; nothing is loaded silently. A snapshot is input from
outside (a saved dataset row, a file): a valid CRC proves no integrity, so every params and
state field is range-checked too (``validate_params``, ``validate_state``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import zlib

import numpy as np

from dime_gym.core.params import record_from_bytes, validate_params
from dime_gym.core.state import PARAMS_DTYPE, STATE_DTYPE, set_record_rows, zeroed_records
from dime_gym.core.state_checks import validate_state
from dime_gym.scenarios import get_task

SNAPSHOT_MAGIC = b"DIMESNAP"
SNAPSHOT_FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sH8sHI")  # magic, version, layout hash, task id length, facts length
_CRC = struct.Struct("<I")


def _layout_hash() -> bytes:
    """8 bytes identifying the record layouts: any change of a field's name, offset, type or
    shape (or of the record sizes) changes it."""
    parts = []
    for dtype in (PARAMS_DTYPE, STATE_DTYPE):
        parts.append(f"itemsize={dtype.itemsize}")
        for name in dtype.names:
            field_dtype, offset = dtype.fields[name][:2]
            parts.append(f"{name}@{offset}:{field_dtype.base.str}{field_dtype.shape}")
    return hashlib.sha256(";".join(parts).encode()).digest()[:8]


LAYOUT_HASH = _layout_hash()


@dataclasses.dataclass(frozen=True)
class SnapshotContents:
    """A decoded snapshot: the task id, fresh 0-d ``PARAMS_DTYPE`` / ``STATE_DTYPE`` records
    and the scenario's facts."""

    task: str
    params: np.ndarray
    state: np.ndarray
    facts: dict


def encode_snapshot(task: str, params, state, facts: dict | None = None) -> bytes:
    """Snapshot bytes of one cluster.

    Args:
        task: the task id (checked against the task table).
        params, state: a ``PARAMS_DTYPE`` and a ``STATE_DTYPE`` record (0-d array or element).
        facts: the episode's facts (JSON-serialisable), kept so a restored env can still run
            the task's reference solution.
    """
    get_task(task)
    task_bytes = task.encode("ascii")
    facts_bytes = json.dumps(facts or {}, sort_keys=True, separators=(",", ":")).encode()
    params_bytes = _record_bytes(params, PARAMS_DTYPE, "params")
    state_bytes = _record_bytes(state, STATE_DTYPE, "state")
    body = b"".join((
        _HEADER.pack(SNAPSHOT_MAGIC, SNAPSHOT_FORMAT_VERSION, LAYOUT_HASH, len(task_bytes), len(facts_bytes)),
        task_bytes, facts_bytes, params_bytes, state_bytes,
    ))
    return body + _CRC.pack(zlib.crc32(body))


def _record_bytes(record, dtype: np.dtype, what: str) -> bytes:
    if getattr(record, "dtype", None) != dtype or np.size(record) != 1:
        raise ValueError(f"{what} must be one {what.upper()}_DTYPE record, got {getattr(record, 'dtype', type(record))!r}")
    return record.tobytes()


def decode_snapshot(snapshot) -> SnapshotContents:
    """Check and unpack snapshot bytes.

    Raises:
        TypeError: ``snapshot`` is not bytes-like.
        ValueError: it is truncated, not a DIME snapshot, of another format version or record
            layout, corrupted (CRC32 mismatch), or holds an unknown task, facts that are not a
            JSON object, or params or state values outside their ranges (NaN, infinities,
            negative counts, unknown event codes, a step outside the episode).
    """
    if not isinstance(snapshot, (bytes, bytearray, memoryview)):
        raise TypeError(f"a snapshot is bytes (from snapshot()), got {type(snapshot).__name__}")
    data = bytes(snapshot)
    if len(data) < _HEADER.size + _CRC.size:
        raise ValueError(f"snapshot truncated: {len(data)} bytes, shorter than the {_HEADER.size + _CRC.size}-byte header")
    magic, version, layout, task_length, facts_length = _HEADER.unpack_from(data)
    if magic != SNAPSHOT_MAGIC:
        raise ValueError(f"not a DIME snapshot: starts with {magic!r}, expected {SNAPSHOT_MAGIC!r}")
    if version != SNAPSHOT_FORMAT_VERSION:
        raise ValueError(f"snapshot format version {version} is not supported; this DIME reads version {SNAPSHOT_FORMAT_VERSION}")
    if layout != LAYOUT_HASH:
        raise ValueError(f"snapshot record layout {layout.hex()} differs from this DIME's {LAYOUT_HASH.hex()}: "
                         "it was made by a DIME build with different state fields")
    expected = _HEADER.size + task_length + facts_length + PARAMS_DTYPE.itemsize + STATE_DTYPE.itemsize + _CRC.size
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"snapshot {problem}: {len(data)} bytes, expected {expected}")
    (stored_crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    computed_crc = zlib.crc32(memoryview(data)[: len(data) - _CRC.size])
    if stored_crc != computed_crc:
        raise ValueError(f"snapshot corrupted: CRC32 {computed_crc:#010x} does not match the stored {stored_crc:#010x}")
    offset = _HEADER.size
    task = data[offset : offset + task_length].decode("ascii", errors="replace")
    offset += task_length
    try:
        facts = json.loads(data[offset : offset + facts_length])
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        problem = "nested too deeply" if isinstance(exc, RecursionError) else f"not JSON ({exc})"
        raise ValueError(f"snapshot holds an invalid episode: facts are {problem}") from None
    if not isinstance(facts, dict):
        raise ValueError(f"snapshot holds an invalid episode: facts must be a JSON object, got {type(facts).__name__}")
    offset += facts_length
    params = record_from_bytes(data[offset : offset + PARAMS_DTYPE.itemsize], PARAMS_DTYPE)
    offset += PARAMS_DTYPE.itemsize
    state = record_from_bytes(data[offset : offset + STATE_DTYPE.itemsize], STATE_DTYPE)
    try:
        get_task(task)
        validate_params(params)
    except ValueError as exc:
        raise ValueError(f"snapshot holds an invalid episode: {exc}") from None
    if not 0 <= int(state["step"]) <= int(params["episode_steps"]):
        raise ValueError(f"snapshot holds an invalid episode: step {int(state['step'])} outside [0, {int(params['episode_steps'])}]")
    try:
        validate_state(state, params)
    except ValueError as exc:
        raise ValueError(f"snapshot holds an invalid episode: {exc}") from None
    return SnapshotContents(task=task, params=params, state=state, facts=facts)


def restore_batch(snapshot, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` copies of one snapshot's cluster, in one call: ``(params, states)`` record arrays
    of shape (n,), ready for the batched kernels (e.g. to try n different actions from one
    state; every copy carries the same RNG streams)."""
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    contents = decode_snapshot(snapshot)
    return repeat_record(contents.params, n), repeat_record(contents.state, n)


def repeat_record(record: np.ndarray, n: int) -> np.ndarray:
    """An (n,) array of copies of one structured record, copied as bytes (fast for any n)."""
    out = zeroed_records(int(n), record.dtype)
    set_record_rows(out, slice(None), np.asarray(record))
    return out


__all__ = [
    "LAYOUT_HASH",
    "SNAPSHOT_FORMAT_VERSION",
    "SNAPSHOT_MAGIC",
    "SnapshotContents",
    "decode_snapshot",
    "encode_snapshot",
    "repeat_record",
    "restore_batch",
]
