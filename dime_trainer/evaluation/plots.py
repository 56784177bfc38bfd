"""Plots (matplotlib, an optional extra: ``pip install -e '.[plot]'``), drawn off-screen (Agg).

* :func:`bars_figure`: mean score per task with 95 % intervals, several runs side by side.
* :func:`timeline_figure`: one episode step by step: pictures of the cluster at four steps
  (``dime_gym.render``, as ``render_mode="rgb_array"`` draws it), node CPU and memory (down
  nodes marked per node), p99 against the SLO with good / offered traffic and the throttle, the
  reward and running score, and every action taken.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dime_gym import DB, N_NODES, OOM_THRESHOLD, SLO_P99_MS
from dime_gym.actions import (
    ACTION_KINDS,
    NO_OP,
    QUERY_LOGS,
    REROUTE,
    RESTART,
    THROTTLE,
    UNPARSABLE,
    UNPARSABLE_NAME,
    rate_from_level,
)
from dime_trainer.evaluation.summary import tasks_in


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("plots need matplotlib: pip install -e '.[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bars_figure(summaries: Sequence[dict], title: str = "DIME: mean score per task (95 % CI)"):
    """Grouped bars: one group per task (and the mean over tasks), one bar per run."""
    plt = _pyplot()
    names = [s["run"].get("name", f"run{i}") for i, s in enumerate(summaries)]
    tasks = tasks_in(summaries)
    labels = [*tasks, "mean over tasks"]
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(summaries))
    fig, ax = plt.subplots(figsize=(min(18.0, 6.0 + 0.25 * len(labels) * max(1, len(summaries))), 5.0))
    for i, (name, s) in enumerate(zip(names, summaries, strict=True)):
        means = [s["tasks"][t]["score_mean"] if t in s["tasks"] else None for t in tasks]
        errs = [s["tasks"][t]["score_ci95"] if t in s["tasks"] else None for t in tasks]
        means.append(s["overall"]["mean_task_score"])
        errs.append(s["overall"]["mean_task_score_ci95"])
        means, errs = _nan_for_missing(means), _nan_for_missing(errs)  # no bar / no error bar
        index = s["overall"].get("dime_index")
        label = f"{name} (DIME index {index:.1f})" if index is not None else name
        ax.bar(x - 0.4 + width * (i + 0.5), means, width, yerr=errs, capsize=2, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("episode score")
    ax.set_title(title, pad=28)
    ax.axvline(len(tasks) - 0.5, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(4, len(summaries)), frameon=False)
    fig.tight_layout()
    return fig


def _nan_for_missing(values: Sequence[float | None]) -> np.ndarray:
    """Floats with NaN where a value is missing (None: absent, or NaN written to JSON as null)."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


_DOWN_MARKERS = ("s", "o", "^", "v", "D", "P", "X", "*")  # one per node, so down nodes are told apart without colour


def timeline_figure(episode: dict, run_name: str | None = None):
    """One episode's timeline from its ``trace`` (runs made with --no-steps have none);
    ``run_name`` (the policy's run name) goes into the title."""
    plt = _pyplot()
    tr = episode.get("trace")
    if not tr:
        raise ValueError("this episode has no per-step trace (the run used --no-steps)")
    steps = np.arange(1, len(tr["reward"]) + 1)
    cpu, mem = np.array(tr["cpu"]), np.array(tr["mem"])
    fig = plt.figure(figsize=(11, 15))
    grid = fig.add_gridspec(6, N_FRAMES, height_ratios=[2.4, 3, 3, 3, 2, 2])
    axes = [fig.add_subplot(grid[1, :])]
    axes += [fig.add_subplot(grid[row, :], sharex=axes[0]) for row in range(2, 6)]
    _frames_row(fig, grid, tr, len(steps))
    colors = plt.get_cmap("tab10")
    for i in range(N_NODES):
        style = {"lw": 2.2, "color": "black"} if i == DB else {"lw": 1.0, "color": colors(i)}
        axes[0].plot(steps, cpu[:, i], label="node-0 (DB)" if i == DB else f"node-{i}", **style)
        axes[1].plot(steps, mem[:, i], **style)
    lane = {i: -0.06 - 0.055 * i for i in range(N_NODES)}  # one lane per node under the CPU curves
    for i in range(N_NODES):
        down = [t for t, nodes in zip(steps, tr["down_nodes"], strict=True) if i in nodes]
        if down:
            axes[0].plot(down, [lane[i]] * len(down), ls="none", marker=_DOWN_MARKERS[i], ms=4,
                         color="black" if i == DB else colors(i))
        axes[0].annotate(f"n{i}", (0, lane[i]), xycoords=("axes fraction", "data"), xytext=(-3, 0),
                         textcoords="offset points", ha="right", va="center", fontsize=6)
    axes[0].set_ylabel("CPU\n(below 0: down nodes)")
    axes[0].set_ylim(lane[N_NODES - 1] - 0.04, 1.05)
    axes[0].set_yticks(np.linspace(0, 1, 6))  # the lanes below 0 carry node labels instead
    axes[0].legend(fontsize=7, ncol=4, loc="upper left")
    axes[1].axhline(OOM_THRESHOLD, color="red", ls="--", lw=0.8, label="OOM line")
    axes[1].set_ylabel("memory")
    axes[1].set_ylim(0, 1.05)
    axes[1].legend(fontsize=7, loc="upper left")
    axes[2].semilogy(steps, np.maximum(tr["p99_ms"], 1.0), color="purple", label="p99 latency")
    axes[2].axhline(SLO_P99_MS, color="red", ls="--", lw=0.8, label="SLO")
    axes[2].set_ylabel("p99 (ms)")
    share = axes[2].twinx()
    share.plot(steps, good_fraction(tr["good_rps"], tr["offered_rps"]), color="green", lw=1, label="good / offered")
    share.plot(steps, tr["throttle"], color="orange", lw=1, ls=":", label="throttle")
    share.set_ylim(0, 1.05)
    share.set_ylabel("fraction")
    lines = axes[2].get_legend_handles_labels()
    more = share.get_legend_handles_labels()
    axes[2].legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    axes[3].plot(steps, tr["reward"], color="tab:blue", lw=1, label="reward (per step)")
    axes[3].axhline(0, color="grey", lw=0.6)
    axes[3].set_ylabel("reward")
    score_ax = axes[3].twinx()
    score_ax.plot(steps, tr["score"], color="black", lw=1.2, ls="--", label="running score")
    score_ax.set_ylim(0, 1.05)
    score_ax.set_ylabel("score")
    lines, more = axes[3].get_legend_handles_labels(), score_ax.get_legend_handles_labels()
    axes[3].legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="lower left")
    _actions_panel(axes[4], steps, tr)
    axes[4].set_xlabel("step")
    who = f"{run_name}: " if run_name else ""
    fig.suptitle(f"{who}{episode['task']} seed {episode['seed']}: score {episode['score']:.3f}"
                 f"{' (success)' if episode.get('success') else ''}")
    fig.tight_layout()
    return fig


N_FRAMES = 4  # cluster pictures along the top of a timeline


def _frames_row(fig, grid, tr: dict, n_steps: int) -> None:
    """Pictures of the cluster after evenly spaced steps (traces written before the picture
    columns existed have no queue or node status: then the row says so)."""
    from dime_gym.render import draw_cluster

    if "node_status" not in tr or "queue" not in tr:
        ax = fig.add_subplot(grid[0, :])
        ax.axis("off")
        ax.text(0.5, 0.5, "(no cluster pictures: this trace predates the queue and node_status columns)",
                ha="center", va="center", fontsize=8)
        return
    for k, t in enumerate(np.linspace(0, n_steps - 1, N_FRAMES).round().astype(int)):
        status = np.asarray(tr["node_status"][t])
        picture = draw_cluster(tr["cpu"][t], tr["mem"][t], tr["queue"][t], status == 1, status == 2, status == 3,
                               tr["throttle"][t], tr["error_budget"][t], tr["p99_ms"][t], SLO_P99_MS, int(t) + 1)
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(picture)
        ax.set_title(f"after step {t + 1}", fontsize=8)
        ax.axis("off")


def good_fraction(good_rps: Sequence[float], offered_rps: Sequence[float]) -> np.ndarray:
    """Good / offered traffic per step, in [0, 1] (requests queued earlier can be served in a
    step with less new traffic, so the raw ratio can pass 1); 1 when nothing was offered."""
    good, offered = np.asarray(good_rps, dtype=np.float64), np.asarray(offered_rps, dtype=np.float64)
    ratio = np.divide(good, offered, out=np.ones_like(good), where=offered > 0)
    return np.clip(ratio, 0.0, 1.0)


_LABELS = {  # short labels of the actions worth naming on the timeline, by action kind
    RESTART: lambda a: f"node-{a[1]}",
    REROUTE: lambda a: f"{a[1]}->{a[2]}",
    THROTTLE: lambda a: f"{rate_from_level(a[3]):.2f}",
    QUERY_LOGS: lambda a: f"node-{a[1]}",
}


def _actions_panel(ax, steps, tr) -> None:
    rows = [*ACTION_KINDS[1:], UNPARSABLE_NAME, "failed"]
    for t, action, status in zip(steps, tr["action"], tr["status"], strict=True):
        if status == "backend_error":
            row, marker, color = rows.index("failed"), "x", "grey"
        elif action[0] == UNPARSABLE:
            row, marker, color = rows.index(UNPARSABLE_NAME), "x", "red"
        elif action[0] == NO_OP:
            continue
        else:
            row, marker, color = rows.index(ACTION_KINDS[action[0]]), "o", "tab:blue" if status == "applied" else "tab:red"
        ax.plot([t], [row], marker=marker, color=color, ms=6, mfc=color if status == "applied" else "none")
        if status in ("applied", "rejected") and action[0] in _LABELS:
            ax.annotate(_LABELS[action[0]](action), (t, row), fontsize=6, xytext=(2, 4), textcoords="offset points",
                        rotation=30)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_ylabel("actions (hollow: rejected)")


def save(fig, path) -> None:
    """Write a figure (format from the file name) and free it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
