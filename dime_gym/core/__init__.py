"""Pure NumPy + Numba core of DIME: state layout, params, dynamics, telemetry, reward.

Nothing here imports gymnasium, text or scenarios: a task is only a params record.
"""
