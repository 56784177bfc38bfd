"""The one place that sets Numba's jit flags for every DIME kernel.

``cache=True`` makes a fresh process start in ~0.2 s instead of several seconds of
compilation. Numba's cache keys on the source of the file that defines a kernel, not on
helpers imported from other files, so every kernel that calls another module's helpers is
recompiled together with them by clearing ``__pycache__`` (see README, "Development").
``fastmath`` is off so that results are bit-exact across the single and batched paths.
Set ``DIME_NUMBA_CACHE=0`` to disable the on-disk cache.

With ``NUMBA_DISABLE_JIT=1`` the kernels run as plain Python (for coverage and a debugger
inside the physics). Numba gives kernels records with attribute access (``s.step``); NumPy
gives that only to ``np.recarray`` rows, so the interpreted kernels see structured arrays as
recarray views (same memory), uint64 wrap-around (the RNG's arithmetic mod 2**64) does not
warn, and Python receives Python scalars, as from Numba. ``tests/test_jit_off.py`` checks that
the interpreted run equals the compiled one bit for bit.

Two helpers keep Numba's runtime out of the per-cluster hot path: ``stack_zeros`` (scratch in a
kernel's stack frame instead of a heap array) and ``borrowed`` (an array argument without its
reference count, for loops that call a kernel per cluster). Without them a cluster-step spent
about a fifth of its time in atomic reference counting, contended by every ``prange`` thread.

The first compilation of a DIME kernel in a process prints one note on stderr
(``COMPILE_NOTE``), so a cold start of 10-40 s is not mistaken for a hang; kernels loaded from
the cache compile nothing and print nothing.
"""

from __future__ import annotations

import functools
import os
import sys

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, event
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

CACHE = os.environ.get("DIME_NUMBA_CACHE", "1") != "0"
COMPILE_NOTE = ("dime_gym: compiling DIME kernels (first run only; 10-40 s, then cached)" if CACHE else
                "dime_gym: compiling DIME kernels (DIME_NUMBA_CACHE=0: every run; 10-40 s)")


class _FirstCompileNote(event.Listener):
    """Prints ``COMPILE_NOTE`` on stderr when the first DIME kernel of the process compiles
    (Numba's ``numba:compile`` event fires only on a cache miss)."""

    def __init__(self):
        self.shown = False

    def on_start(self, ev) -> None:
        if self.shown:
            return
        module = getattr(getattr(ev.data.get("dispatcher"), "py_func", None), "__module__", None) or ""
        if module.startswith("dime_gym."):
            self.shown = True
            print(COMPILE_NOTE, file=sys.stderr, flush=True)

    def on_end(self, ev) -> None:
        pass


FIRST_COMPILE_NOTE = _FirstCompileNote()
event.register("numba:compile", FIRST_COMPILE_NOTE)

JIT_FLAGS = {"cache": CACHE, "fastmath": False, "error_model": "numpy", "nogil": True}


JIT_DISABLED = bool(numba.config.DISABLE_JIT)


def _with_record_access(arg):
    """A structured array as an ``np.recarray`` view (its rows then allow ``s.field``, as in
    Numba); anything else unchanged."""
    if type(arg) is np.ndarray and arg.dtype.names is not None:
        return arg.view(np.recarray)
    return arg


def _boxed(value):
    """What Numba hands Python for a kernel's result: NumPy scalars as Python scalars."""
    if isinstance(value, tuple):
        return tuple(_boxed(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


_interpreted_depth = [0]  # kernels calling kernels keep NumPy scalars; only Python's caller gets boxes


def _interpreted(fn):
    """``fn`` as plain Python that behaves as the compiled kernel (see the module docstring)."""

    @functools.wraps(fn)
    def run(*args):
        _interpreted_depth[0] += 1
        try:
            with np.errstate(over="ignore"):
                result = fn(*map(_with_record_access, args))
        finally:
            _interpreted_depth[0] -= 1
        return _boxed(result) if _interpreted_depth[0] == 0 else result

    run.py_func = fn
    return run


def kernel(fn):
    """Compile ``fn`` with DIME's jit flags (``numba.njit``)."""
    if JIT_DISABLED:
        return _interpreted(fn)
    return numba.njit(**JIT_FLAGS)(fn)


def inlined_kernel(fn):
    """Compile ``fn`` to be inlined into every kernel that calls it (Numba IR inlining): no
    call, no passing of array structs, no reference counting of the arrays it is passed. Used
    for the phases of a cluster-step and the helpers they call, where a call with array
    arguments cost more than many of the bodies. Results are the same bits.

    Never inline into the body of a ``prange`` loop: Numba's parfor transformations of an
    inlined cluster-step changed its results (``core.batch._advance_parallel`` calls a kernel
    per chunk instead)."""
    if JIT_DISABLED:
        return _interpreted(fn)
    return numba.njit(inline="always", **JIT_FLAGS)(fn)


def parallel_kernel(fn):
    """Compile ``fn`` as a ``prange``-parallel kernel with DIME's jit flags."""
    if JIT_DISABLED:
        return _interpreted(fn)
    return numba.njit(parallel=True, **JIT_FLAGS)(fn)


_FLOAT64_BYTES = 8


@intrinsic
def _stack_zeros_intrinsic(typingctx, rows_ty, cols_ty):
    """A zeroed (rows, cols) float64 C array in the calling kernel's stack frame (sizes must be
    compile-time constants). It owns no heap memory (null meminfo), so taking views of it and
    passing it to other kernels costs no allocation and no atomic reference counting."""
    if not isinstance(rows_ty, types.IntegerLiteral) or not isinstance(cols_ty, types.IntegerLiteral):
        return None
    rows, cols = rows_ty.literal_value, cols_ty.literal_value
    array_type = types.Array(types.float64, 2, "C")

    def codegen(context, builder, signature, args):
        def intp(value):
            return context.get_constant(types.intp, value)

        # alloca_once places the buffer in the function's entry block: one slot per frame,
        # not one per loop iteration
        buffer = cgutils.alloca_once(builder, context.get_data_type(types.float64), size=rows * cols)
        cgutils.memset(builder, buffer, intp(rows * cols * _FLOAT64_BYTES), 0)
        array = make_array(array_type)(context, builder)
        populate_array(array, data=buffer, shape=[intp(rows), intp(cols)],
                       strides=[intp(cols * _FLOAT64_BYTES), intp(_FLOAT64_BYTES)], itemsize=intp(_FLOAT64_BYTES),
                       meminfo=None)
        return array._getvalue()

    return array_type(rows_ty, cols_ty), codegen


def _stack_zeros_interpreted(rows, cols):
    return np.zeros((rows, cols))


# ``stack_zeros(rows, cols)``: per-step scratch for a kernel, zeroed; valid only inside the
# kernel that calls it (never return it or store it). Plain ``np.zeros`` when interpreted.
stack_zeros = _stack_zeros_interpreted if JIT_DISABLED else _stack_zeros_intrinsic


@intrinsic
def _borrowed_intrinsic(typingctx, array_ty):
    """``array`` without its reference to the memory owner (null meminfo): same data, shape
    and strides, but passing it to kernels or taking views of it costs no atomic reference
    counts. Valid only while the caller keeps ``array`` alive (for a kernel's argument: the
    whole call)."""
    if not isinstance(array_ty, types.Array):
        return None

    def codegen(context, builder, signature, args):
        array = make_array(array_ty)(context, builder, value=args[0])
        array.meminfo = cgutils.get_null_value(array.meminfo.type)
        return array._getvalue()

    return array_ty(array_ty), codegen


def _borrowed_interpreted(array):
    return array


def _records_view(data, dtype):
    return data.view(dtype)


def _records_view_interpreted(data, dtype):
    return data.view(dtype).view(np.recarray)  # attribute access to rows, as compiled


# ``records_view(data, dtype)``: a C-contiguous uint8 array seen as ``dtype`` records (same
# memory). Kernels called from Python take structured arrays as bytes when the call is hot:
# Numba types a uint8 array argument ~0.15 µs faster than a structured one.
records_view = _records_view_interpreted if JIT_DISABLED else numba.njit(inline="always", **JIT_FLAGS)(_records_view)


# ``borrowed(array)``: a kernel's array argument to hand to per-cluster kernels in a loop. Numba
# otherwise increments and decrements the array's shared reference count (an atomic
# instruction, contended by every thread of a ``prange`` loop) around each call that cannot be
# proven not to raise. The array itself when interpreted.
borrowed = _borrowed_interpreted if JIT_DISABLED else _borrowed_intrinsic


CACHE_LINE_BYTES = 64


@intrinsic
def _prefetch_intrinsic(typingctx, array_ty, index_ty, byte_offset_ty):
    """Hint the CPU to fetch the cache line holding byte ``byte_offset`` of ``array[index]`` (a
    1-d array), ready for writing (as a cluster's state is). A hint only: it never faults and
    changes no value."""
    if not isinstance(array_ty, types.Array) or array_ty.ndim != 1:
        return None

    def codegen(context, builder, signature, args):
        array = make_array(array_ty)(context, builder, value=args[0])
        itemsize = context.get_abi_sizeof(context.get_data_type(array_ty.dtype))
        byte_ptr = builder.bitcast(array.data, ir.IntType(8).as_pointer())
        offset = builder.add(builder.mul(args[1], context.get_constant(types.intp, itemsize)), args[2])
        address = builder.gep(byte_ptr, [offset])
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.VoidType(), [ir.IntType(8).as_pointer(), ir.IntType(32), ir.IntType(32), ir.IntType(32)]),
            "llvm.prefetch.p0i8")
        i32 = ir.IntType(32)
        builder.call(fn, [address, i32(1), i32(3), i32(1)])  # write, keep in all cache levels, data
        return context.get_dummy_value()

    return types.none(array_ty, types.intp, types.intp), codegen


def _prefetch_interpreted(array, index, byte_offset):
    return None


# ``prefetch(array, index, byte_offset)``: start loading a line of a record the loop will touch
# soon (the next cluster's state and params), so the step does not wait on it. No-op when
# interpreted.
prefetch = _prefetch_interpreted if JIT_DISABLED else _prefetch_intrinsic
