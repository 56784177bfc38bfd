"""Pure NumPy + Numba core of DIME: state layout, params, dynamics, telemetry, reward, the
observation and score kernels, and the fused single/batched step calls (``batch``).

Nothing here imports gymnasium, text or scenarios: a task is only a params record.
"""
