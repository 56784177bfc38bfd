"""dime-eval's command line: help, run names, failing user policies, progress, the legend and
the timeline plot."""

from __future__ import annotations

import io
import textwrap

import numpy as np
import pytest

from dime_gym.policies import BUILTIN_POLICIES
from dime_trainer.evaluation.cli import main
from dime_trainer.evaluation.report import SCORES_LEGEND
from dime_trainer.evaluation.results import load_episodes
from dime_trainer.evaluation.runners import Progress

SHORT = ("--tasks", "retry_storm", "--seeds", "1", "--max-steps", "3", "--quiet")


# --- help ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["run", "--help"]])
def test_eval_help__shows_the_run_options_and_every_builtin_policy(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--policy", "--tasks", "--seeds", "--max-steps", "--out", "--name", "--resume", "--model"):
        assert option in text
    assert all(name in text for name in BUILTIN_POLICIES)
    assert "compare" in text and "timeline" in text  # the other subcommands are named
    assert "``" not in text


# --- names --------------------------------------------------------------------------------------
def test_eval_name__applies_to_builtin_policies_so_reruns_do_not_collide(tmp_path):
    assert main(["--policy", "noop", *SHORT, "--out", str(tmp_path), "--name", "first"]) == 0
    assert main(["--policy", "noop", *SHORT, "--out", str(tmp_path), "--name", "second"]) == 0
    for name in ("first", "second"):
        header, episodes = load_episodes(tmp_path / f"{name}.jsonl")
        assert header["name"] == name and header["policy"] == "noop" and len(episodes) == 1
    assert not (tmp_path / "noop.jsonl").exists()


# --- failing user policies ----------------------------------------------------------------------
@pytest.fixture
def user_policies(tmp_path, monkeypatch):
    (tmp_path / "badpolicies.py").write_text(textwrap.dedent('''
        def out_of_range(obs, info):
            return [9, 0, 0, 0] if int(obs["step"][0]) == 2 else [0, 0, 0, 0]

        def crashes(obs, info):
            if int(obs["step"][0]) == 1:
                raise KeyError("no such metric")
            return [0, 0, 0, 0]
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(("policy", "message"), [
    ("out_of_range", "task retry_storm seed 0 step 2: invalid action: action field kind=9 is out of range"),
    ("crashes", "task retry_storm seed 0 step 1: the policy raised KeyError: 'no such metric'"),
])
def test_eval_user_policy__a_failure_is_exit_2_naming_task_seed_and_step(user_policies, capsys, policy, message):
    out = user_policies / "out"
    code = main(["--policy", f"badpolicies:{policy}", "--tasks", "retry_storm", "--seeds", "1", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


# --- progress -----------------------------------------------------------------------------------
def test_progress__log_lines_have_an_eta_and_no_carriage_return():
    stream = io.StringIO()  # not a TTY, like a log file
    progress = Progress(3, "noop", stream=stream, log_interval_s=0.0)
    for _ in range(3):
        progress.update(1, 40)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 3 and all("ETA" in line for line in lines)
    assert lines[-1].startswith("[dime-eval] noop: 3/3 episodes (100 %)")


def test_progress__log_lines_are_rate_limited():
    stream = io.StringIO()
    progress = Progress(100, "noop", stream=stream, log_interval_s=3600.0)
    for _ in range(99):
        progress.update(1, 40)
    assert stream.getvalue() == ""
    progress.update(1, 40)  # the last episode always reports
    assert stream.getvalue().count("\n") == 1


def test_progress__a_terminal_gets_a_tqdm_bar():
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = Progress(4, "oracle", stream=stream)
    progress.update(4, 160)
    progress.close()
    assert "4/4" in stream.getvalue() and "oracle" in stream.getvalue()


# --- legend -------------------------------------------------------------------------------------
def test_scores_table__is_followed_by_a_one_line_legend(tmp_path, capsys):
    assert main(["--policy", "noop,oracle", *SHORT, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(SCORES_LEGEND)
    assert "\n" not in SCORES_LEGEND and "±" in SCORES_LEGEND and "DIME index" in SCORES_LEGEND and "success" in SCORES_LEGEND


# --- timeline -----------------------------------------------------------------------------------
def test_timeline__names_the_run_caps_good_traffic_and_has_a_reward_panel(tmp_path):
    pytest.importorskip("matplotlib")
    from dime_trainer.evaluation import plots

    assert main(["--policy", "noop", "--tasks", "black_swan_az_failure", "--seeds", "1", "--quiet", "--out", str(tmp_path),
                 "--name", "my-run"]) == 0
    header, (episode,) = load_episodes(tmp_path / "my-run.jsonl")
    fig = plots.timeline_figure(episode, run_name=header["name"])
    assert fig._suptitle.get_text().startswith("my-run: black_swan_az_failure seed 0")
    assert any(ax.get_ylabel() == "reward" for ax in fig.axes) and any(ax.get_ylabel() == "score" for ax in fig.axes)
    down_markers = {line.get_marker() for line in fig.axes[0].get_lines() if line.get_linestyle() == "None"}
    assert len(down_markers) >= 4  # the az failure takes several nodes down, each with its own marker
    good = [line for ax in fig.axes for line in ax.get_lines() if line.get_label() == "good / offered"]
    assert good and np.nanmax(good[0].get_ydata()) <= 1.0
    plots.save(fig, tmp_path / "t.png")
    assert main(["timeline", str(tmp_path / "my-run.jsonl"), "--out", str(tmp_path / "cli.png")]) == 0
    # the cluster pictures along the top are what render_mode="rgb_array" draws of the live state
    from dime_gym.env import DimeEnv

    frames = [ax for ax in fig.axes if ax.images]
    assert len(frames) == plots.N_FRAMES and frames[0].get_title() == "after step 1"
    env = DimeEnv(task="black_swan_az_failure", render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.zeros(4, dtype=np.int64))
    shown = frames[0].images[0].get_array()
    assert shown.shape == env.render().shape and np.mean(shown != env.render()) < 0.02  # equal up to rounding of the trace
    older = {**episode, "trace": {k: v for k, v in episode["trace"].items() if k not in ("queue", "node_status")}}
    assert not [ax for ax in plots.timeline_figure(older).axes if ax.images]  # older traces: no pictures, no error


@pytest.mark.parametrize(("good", "offered", "expected"), [
    ([50.0], [100.0], [0.5]),
    ([130.0], [100.0], [1.0]),  # a backlog served after a dip: capped
    ([0.0], [0.0], [1.0]),  # nothing offered, nothing lost
])
def test_good_fraction__lies_in_the_unit_interval(good, offered, expected):
    pytest.importorskip("matplotlib")
    from dime_trainer.evaluation.plots import good_fraction

    assert good_fraction(good, offered).tolist() == expected
