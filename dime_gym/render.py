"""Pictures of a cluster: ``render_mode="rgb_array"`` (``render_rgb``, an ``(H, W, 3) uint8``
array) and ``render_mode="ansi"`` (``render_ansi``, one text line per node).

Drawn with NumPy only (no plotting library): one panel per node with CPU, memory and queue
bars, the panel's colour giving the node's status, and three cluster gauges underneath
(throttle, SLO error budget, p99 against the SLO). Video recorders
(``gymnasium.wrappers.RecordVideo``), Stable-Baselines3's ``make_vec_env`` (which asks for
``rgb_array``) and notebooks can all show it.

Picture (``RGB_SHAPE`` = 240 x 416 pixels):

* node panels, ``0`` (the database, blue frame) to ``7``: bars ``C`` CPU utilisation, ``M``
  memory (a red tick at the OOM line) and ``Q`` queue fill; background green = serving, amber =
  restarting, red = failed, purple = zombie (serving errors);
* gauges: ``T`` throttle (admitted fraction; the red rest is shed), ``B`` error budget left,
  ``P`` p99 latency on a log scale up to 4x the SLO (the tick), green within the SLO, red past it;
* a row of squares at the top counts the steps taken, one per 4 steps.
"""

from __future__ import annotations

import numpy as np

from dime_gym.core.params import OOM_THRESHOLD
from dime_gym.core.state import DB, ERROR_BUDGET_MAX, EVENT_NAMES, N_NODES, QUEUE_CAPACITY

RGB_SHAPE = (240, 416, 3)

_BACKGROUND = (24, 26, 32)
_STATUS_COLOURS = {"up": (34, 92, 52), "restarting": (150, 110, 20), "failed": (140, 30, 30), "zombie": (100, 40, 120)}
_BAR_COLOURS = ((80, 160, 255), (255, 170, 60), (200, 200, 200))  # CPU, memory, queue
_DB_FRAME = (70, 130, 255)
_GOOD, _BAD, _TRACK, _TEXT = (60, 200, 90), (230, 60, 50), (60, 62, 70), (235, 235, 235)

# A 3x5 pixel font for the few characters the picture writes.
_GLYPHS = {
    "0": ("111", "101", "101", "101", "111"), "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"), "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"), "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"), "7": ("111", "001", "010", "010", "010"),
    "B": ("110", "101", "110", "101", "110"), "C": ("111", "100", "100", "100", "111"),
    "M": ("101", "111", "111", "101", "101"), "P": ("111", "101", "111", "100", "100"),
    "Q": ("111", "101", "101", "111", "001"), "T": ("111", "010", "010", "010", "010"),
}


def _fill(img: np.ndarray, top: int, left: int, height: int, width: int, colour) -> None:
    if height > 0 and width > 0:
        img[max(top, 0):top + height, max(left, 0):left + width] = colour


def _text(img: np.ndarray, top: int, left: int, text: str, scale: int = 2) -> None:
    for k, ch in enumerate(text):
        glyph = np.array([[c == "1" for c in row] for row in _GLYPHS[ch]])
        block = np.kron(glyph, np.ones((scale, scale), dtype=bool))
        x = left + k * 4 * scale
        region = img[top:top + block.shape[0], x:x + block.shape[1]]
        region[block[:region.shape[0], :region.shape[1]]] = _TEXT


def _vertical_bar(img, top, left, height, width, fraction, colour) -> None:
    _fill(img, top, left, height, width, _TRACK)
    filled = int(round(height * min(max(fraction, 0.0), 1.0)))
    _fill(img, top + height - filled, left, filled, width, colour)


def _gauge(img, top, left, width, height, fraction, colour, rest=_TRACK) -> None:
    _fill(img, top, left, height, width, rest)
    _fill(img, top, left, height, int(round(width * min(max(fraction, 0.0), 1.0))), colour)


def draw_cluster(cpu, mem, queue, failed, restarting, zombie, throttle_rate: float, error_budget: float,
                 p99_ms: float, slo_p99_ms: float, step: int = 0) -> np.ndarray:
    """Draw one cluster state.

    Args:
        cpu, mem: ``(N_NODES,)`` utilisation and memory fractions in [0, 1].
        queue: ``(N_NODES,)`` queued requests (drawn as a fraction of the queue capacity).
        failed, restarting, zombie: ``(N_NODES,)`` truthy per node.
        throttle_rate: admitted fraction of offered ingress, [0, 1].
        error_budget: SLO error budget left, [0, 100].
        p99_ms, slo_p99_ms: p99 latency and its objective, ms.
        step: steps taken (a square per 4 steps along the top).

    Returns:
        A fresh ``RGB_SHAPE`` uint8 array.
    """
    img = np.empty(RGB_SHAPE, dtype=np.uint8)
    img[:] = _BACKGROUND
    height, width = RGB_SHAPE[:2]
    for k in range(min(int(step) // 4, 32)):  # progress squares
        _fill(img, 4, 8 + 12 * k, 6, 8, _TRACK)
    panel_w, gap, top, panel_h = 48, 3, 16, 140
    for i in range(N_NODES):
        left = 4 + i * (panel_w + gap)
        status = ("failed" if failed[i] else "restarting" if restarting[i] else "zombie" if zombie[i] else "up")
        if i == DB:
            _fill(img, top - 2, left - 2, panel_h + 4, panel_w + 4, _DB_FRAME)
        _fill(img, top, left, panel_h, panel_w, _STATUS_COLOURS[status])
        bar_top, bar_h = top + 6, panel_h - 30
        for j, (value, colour) in enumerate(zip((cpu[i], mem[i], float(queue[i]) / QUEUE_CAPACITY), _BAR_COLOURS)):
            bar_left = left + 5 + j * 14
            _vertical_bar(img, bar_top, bar_left, bar_h, 10, float(value), colour)
            _text(img, bar_top + bar_h + 3, bar_left - 1, "CMQ"[j], scale=2)
        oom_y = bar_top + bar_h - int(round(bar_h * OOM_THRESHOLD))
        _fill(img, oom_y, left + 17, 2, 14, _BAD)
        _text(img, top + panel_h + 4, left + panel_w // 2 - 3, str(i), scale=2)
    gauges_top, gauge_h, gauge_left = top + panel_h + 22, 12, 28
    gauge_w = width - gauge_left - 8
    slo_p99_ms = max(slo_p99_ms, 1.0)  # an empty (never reset) state has no SLO
    p99_fraction = np.log1p(max(p99_ms, 0.0)) / np.log1p(4.0 * slo_p99_ms)
    slo_fraction = np.log1p(slo_p99_ms) / np.log1p(4.0 * slo_p99_ms)
    for k, (label, fraction, colour, rest) in enumerate((
            ("T", throttle_rate, _GOOD, _BAD),
            ("B", error_budget / ERROR_BUDGET_MAX, _GOOD, _TRACK),
            ("P", p99_fraction, _GOOD if p99_ms <= slo_p99_ms else _BAD, _TRACK))):
        y = gauges_top + k * (gauge_h + 4)
        _text(img, y + 1, 8, label, scale=2)
        _gauge(img, y, gauge_left, gauge_w, gauge_h, float(fraction), colour, rest)
    p_y = gauges_top + 2 * (gauge_h + 4)
    _fill(img, p_y - 2, gauge_left + int(round(gauge_w * slo_fraction)) - 1, gauge_h + 4, 2, _TEXT)
    return img


def render_rgb(state, params) -> np.ndarray:
    """The picture of one ``STATE_DTYPE`` record under its ``PARAMS_DTYPE`` record (the truth,
    not the agent's possibly dropped telemetry)."""
    return draw_cluster(state["cpu"], state["mem"], state["queue"], state["failed"], state["restart_left"] > 0,
                        state["zombie"], float(state["throttle_rate"]), float(state["error_budget"]),
                        float(state["latency_p99_ms"]), float(params["slo_p99_ms"]), int(state["step"]))


def render_ansi(s, task: str) -> str:
    """A text picture of the cluster: one row per node, then the cluster line."""
    rows = [f"DIME {task} step {int(s['step'])}  p99 {s['latency_p99_ms']:.0f} ms  offered {s['offered_rps']:.0f} rps  "
            f"throttle {s['throttle_rate']:.2f}  budget {s['error_budget']:.0f}  credits {s['cloud_credits']:.0f}"]
    for i in range(N_NODES):
        status = "FAILED" if s["failed"][i] else ("restart" if s["restart_left"][i] else "up")
        bar = "#" * int(round(10 * s["cpu"][i]))
        role = "db" if i == DB else "w "
        rows.append(f" node-{i} {role} {status:8s} cpu {s['cpu'][i]:.2f} |{bar:<10s}| mem {s['mem'][i]:.2f} "
                    f"queue {s['queue'][i]:5.0f} {EVENT_NAMES[int(s['last_event'][i])]}")
    return "\n".join(rows) + "\n"
