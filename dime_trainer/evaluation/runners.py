"""Run episodes: array policies one episode at a time, text policies (language models) in lockstep.

Every episode is ``DimeEnv.reset(seed=seed, options={"task": task})`` played to the task's
length (or ``max_steps``); each finished episode is handed to ``on_episode`` at once, so a
results file grows as the run goes. Text policies see exactly what ``TextEnv`` shows a model
in training (system prompt + one user message per step, ``last_command`` feedback) and all
live episodes advance together: one ``generate`` call per step for the whole batch, with a
finished episode's slot refilled from the queue at once.
"""

from __future__ import annotations

import collections
import dataclasses
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from dime_trainer.evaluation.episodes import Trace, episode_record

NOOP_ANSWER = '<action>{"command": "no_op"}</action>'


@dataclasses.dataclass(frozen=True)
class Job:
    """One episode to run."""

    task: str
    seed: int


def make_jobs(tasks: Sequence[str], seeds: Sequence[int], skip: Iterable[tuple[str, int]] = ()) -> list[Job]:
    """Task-major (task, seed) jobs, leaving out the pairs in ``skip`` (already finished)."""
    done = set(skip)
    return [Job(t, int(s)) for t in tasks for s in seeds if (t, int(s)) not in done]


class PolicyError(RuntimeError):
    """A user's array policy raised or returned an action outside the action space; the message
    names the task, seed and step. The run stops (finished episodes are kept; exit code 2)."""


class BackendUnavailable(RuntimeError):
    """Every request failed for many consecutive steps or seconds: the run stops (finished
    episodes are kept)."""


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Episode progress on stderr with rate and ETA: a ``tqdm`` bar on a terminal; in a log
    (not a TTY) a plain line every ``log_interval_s`` seconds and at the end, never ``\\r``."""

    def __init__(self, total: int, label: str, enabled: bool = True, stream=None, log_interval_s: float = 30.0):
        self.total, self.label, self.enabled = total, label, enabled and total > 0
        self.stream = sys.stderr if stream is None else stream
        self.log_interval_s = log_interval_s
        self.done = 0
        self.steps = 0
        self.start = self.last = time.perf_counter()
        self._bar = None
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm is a base dependency; a stripped install falls back to log lines
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=f"[dime-eval] {label}", unit="ep", file=self.stream, mininterval=0.5,
                                 dynamic_ncols=True)

    def update(self, episodes: int = 0, steps: int = 0) -> None:
        self.done += episodes
        self.steps += steps
        if not self.enabled:
            return
        if self._bar is not None:
            if episodes:
                self._bar.update(episodes)
            return
        now = time.perf_counter()
        if episodes and (now - self.last >= self.log_interval_s or self.done == self.total):
            self.last = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        """``[dime-eval] noop: 120/1400 episodes (9 %), 2.1 ep/s, 640 steps/s, elapsed 0:57, ETA 10:10``."""
        elapsed = max((time.perf_counter() if now is None else now) - self.start, 1e-9)
        rate = self.done / elapsed
        eta = _clock((self.total - self.done) / rate) if rate > 0 else "?"
        return (f"[dime-eval] {self.label}: {self.done}/{self.total} episodes ({100 * self.done / max(self.total, 1):.0f} %), "
                f"{rate:.1f} ep/s, {self.steps / elapsed:.0f} steps/s, elapsed {_clock(elapsed)}, ETA {eta}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _episode_steps(env) -> int:
    return int(env.unwrapped.episode.params["episode_steps"])


def _current_state(env):
    """The env's live state record, read-only and not copied (``DimeEnv.state_view``)."""
    return env.unwrapped.state_view


def run_array_policy(policy, jobs: Sequence[Job], on_episode: Callable[[dict], None], *, max_steps: int | None = None,
                     record_steps: bool = True, with_oracle: bool = False, progress: Progress | None = None) -> None:
    """Play ``jobs`` with ``policy(obs, info) -> action`` (``reset(seed, episode)`` is called
    before each episode if the policy has it); ``info`` carries the oracle only if
    ``with_oracle``."""
    from dime_gym.env import DimeEnv

    env = DimeEnv(with_oracle=with_oracle)
    reset = getattr(policy, "reset", None)
    for job in jobs:
        start = time.perf_counter()
        obs, info = env.reset(seed=job.seed, options={"task": job.task})
        if reset is not None:
            _call_policy(reset, job, 0, "reset", job.seed, env.episode)
        limit = _episode_steps(env) if max_steps is None else min(max_steps, _episode_steps(env))
        trace = Trace(limit)
        for step in range(limit):
            action = _call_policy(policy, job, step, "the policy", obs, info)
            try:
                obs, _, _, _, info = env.step(action)  # validates the action before anything changes
            except ValueError as exc:
                raise PolicyError(f"task {job.task} seed {job.seed} step {step}: invalid action: {exc}") from None
            action = np.asarray(action, dtype=np.int64)
            errors = info["action_errors"]
            trace.record(action, _current_state(env), info["score"], errors, "rejected" if errors else "applied")
        on_episode(episode_record(job.task, job.seed, trace, _current_state(env), info["score"],
                                  time.perf_counter() - start, record_steps))
        if progress is not None:
            progress.update(1, limit)


def _call_policy(fn, job: Job, step: int, what: str, *args):
    """``fn(*args)``; an exception from user code becomes a ``PolicyError`` naming where it happened."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - user code
        from dime_trainer.evaluation.backends import describe_user_error

        raise PolicyError(f"task {job.task} seed {job.seed} step {step}: {what} raised {describe_user_error(exc)}") from None


def request_seed(sampling_seed: int, job: Job, step: int) -> int:
    """The sampling seed of one request: fixed by (run seed, task, episode seed, step), so a
    backend that seeds per request (vLLM, most servers) answers independently of batching."""
    return zlib.crc32(f"{sampling_seed}:{job.task}:{job.seed}:{step}".encode())


@dataclasses.dataclass
class _Live:
    job: Job
    env: object
    messages: list
    trace: Trace
    limit: int
    start: float


def run_text_policy(backend, jobs: Sequence[Job], on_episode: Callable[[dict], None], *, system_prompt: str,
                    batch_size: int, max_steps: int | None = None, sampling_seed: int = 0, record_steps: bool = True,
                    abort_after_failed_steps: int = 20, abort_after_failed_seconds: float = 600.0,
                    progress: Progress | None = None) -> None:
    """Play ``jobs`` with a text policy: ``backend.generate(prompts, seeds)`` takes one chat
    message list per live episode and returns one ``Generation`` (or ``str``) per prompt.

    An answer that cannot be parsed is an invalid action and the episode goes on; a request
    the backend could not serve (``Generation.error``) is recorded as a ``backend_error`` step
    in which nothing is done. ``BackendUnavailable`` is raised once every request has failed
    for ``abort_after_failed_steps`` consecutive steps, or for ``abort_after_failed_seconds``
    of wall-clock time (a dead endpoint that times out takes minutes per step).
    """
    from dime_gym.actions import UNPARSABLE_NAME
    from dime_gym.env import DimeEnv
    from dime_gym.text import TextEnv
    from dime_trainer.evaluation.backends import as_generation

    pending = collections.deque(jobs)
    live: list[_Live] = []
    idle_envs: list = []
    failed_streak, failing_since = 0, 0.0  # consecutive all-failed steps, and when the first began
    while pending or live:
        while pending and len(live) < batch_size:
            job = pending.popleft()
            env = idle_envs.pop() if idle_envs else TextEnv(DimeEnv(with_oracle=False), system_prompt=system_prompt)
            _, info = env.reset(seed=job.seed, options={"task": job.task})
            limit = _episode_steps(env) if max_steps is None else min(max_steps, _episode_steps(env))
            live.append(_Live(job, env, info["messages"], Trace(limit, text=True), limit, time.perf_counter()))
        step_start = time.perf_counter()
        outputs = backend.generate([x.messages for x in live], [request_seed(sampling_seed, x.job, x.trace.n) for x in live])
        if len(outputs) != len(live):
            raise RuntimeError(f"the policy returned {len(outputs)} answers for {len(live)} prompts")
        generations = [as_generation(o) for o in outputs]
        if all(g.error for g in generations):
            failing_since = failing_since if failed_streak else step_start
            failed_streak += 1
            failing_s = time.perf_counter() - failing_since
            if failed_streak >= abort_after_failed_steps or failing_s >= abort_after_failed_seconds:
                raise BackendUnavailable(f"every request failed for {failed_streak} consecutive steps ({failing_s:.0f} s); "
                                         f"last error: {generations[-1].error}")
        else:
            failed_streak = 0
        still = []
        for x, gen in zip(live, generations, strict=True):
            _, _, _, _, info = x.env.step(NOOP_ANSWER if gen.error else gen.text)
            parsed = info["answer"]
            if gen.error:
                status = "backend_error"
            elif not parsed.ok:
                status = UNPARSABLE_NAME
            else:
                status = "rejected" if info["action_errors"] else "applied"
            x.trace.record(info["action"], _current_state(x.env), info["score"], info["action_errors"], status)
            x.trace.record_text(gen.text, None if gen.error else (parsed.error.kind if parsed.error else None),
                                () if gen.error else (*parsed.rescues, *parsed.notes), gen.completion_tokens,
                                gen.finish_reason, gen.error)
            x.messages = info["messages"]
            if x.trace.n >= x.limit:
                on_episode(episode_record(x.job.task, x.job.seed, x.trace, _current_state(x.env), info["score"],
                                          time.perf_counter() - x.start, record_steps))
                idle_envs.append(x.env)
                if progress is not None:
                    progress.update(1, 0)
            else:
                still.append(x)
        if progress is not None:
            progress.update(0, len(live))
        live = still


def builtin_scores(policies: Sequence[str], tasks: Sequence[str], seeds: Sequence[int]) -> dict[str, dict[str, list[float]]]:
    """Final scores of built-in policies: ``{policy: {task: [score per seed]}}`` (no files)."""
    from dime_gym.policies import make_policy

    out: dict[str, dict[str, list[float]]] = {}
    for name in policies:
        scores: dict[str, list[float]] = {t: [] for t in tasks}
        run_array_policy(make_policy(name), make_jobs(tasks, seeds), lambda r: scores[r["task"]].append(r["score"]),
                         record_steps=False)
        out[name] = scores
    return out
