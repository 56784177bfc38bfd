"""Whole-episode GRPO rollouts: TRL's ``rollout_func`` playing several model turns per completion.

``dime-train --rollout episode`` passes an :class:`EpisodeRollout` to ``GRPOTrainer(rollout_func=...)``.
TRL calls it once per generation batch with the prompts only (each repeated ``num_generations``
times in a row). For every prompt row it:

1. finds the row's **snapshot**. ``rollout_func`` never sees the other dataset columns, so the
   rollout is built from the same prompt dataset (:meth:`EpisodeRollout.from_dataset`) and maps
   each prompt's user message (unique per row: ``build_prompt_dataset`` dedupes on it) to the
   row's ``snapshot``;
2. restores the G rows of a group from that one snapshot into one ``DimeVectorEnv`` (one restore
   call per group): the same state and the same random streams (**common random numbers**), so
   the rollouts of a group differ only through the model's answers;
3. plays up to ``turns`` model turns, all rows together: one batched generation call per turn
   (:mod:`dime_trainer.turn_generation`), one batched env step. Turn 1's prompt is the dataset's
   (system prompt + user message, chat template and ``chat_template_kwargs`` as ``dime-eval``
   renders it); each later turn appends the env's next user message, rendered as ``TextEnv``
   renders it (same JSON, same ``last_command`` report, :func:`dime_gym.text.env.answer_report`),
   as a new user turn of the chat. Those tokens are the environment's: ``env_mask`` 0, never in
   the loss. A row stops taking turns when its episode ends or when the next turn would not fit
   in ``max_completion_length`` (model and environment tokens together);
4. lets a continuation policy finish the episode (``"oracle"`` by default, ``"noop"``, or
   ``"none"`` to stop after the model's turns), so the reward sees the outcome of the model's
   moves, not only their first step;
5. returns TRL's keys (``prompt_ids``, ``completion_ids``, ``logprobs``, ``env_mask``) and, per
   row, the episode record the episode rewards read (:mod:`dime_trainer.episode_rewards`):
   ``episode_turn_format`` / ``episode_turn_validity`` (per model turn), ``episode_rewards``
   (every env reward from the start state on, model turns first), ``episode_model_turns`` and
   ``episode_score`` (the grader's score where play stopped).

**What differs from dime-eval:** dime-eval shows the model one state at a time (system prompt +
the current user message, whose ``last_command`` carries the feedback). A TRL completion is one
token sequence, so here turn t also sees turns 1..t-1 as chat history. Turn 1 is identical to
dime-eval's; every user message is identical to what dime-eval would show in that state.

An answer cut off at the per-turn budget (or stopped by another stop token than the
template's end-of-turn EOS) is closed with that EOS as an environment token, so the chat stays
well-formed; a cut-off answer is scored ``FORMAT_CUT_OFF`` for format, and, with
``mask_truncated_completions``, its tokens are masked out of the loss (DAPO's rule, per turn:
the completion as a whole always ends in EOS, so TRL's own check never fires).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

LOGGER = logging.getLogger("dime_trainer")
EPISODE_CONTINUATIONS = ("oracle", "noop", "none")
_MODEL, _CONTINUATION, _DONE = 0, 1, 2  # a row's phase


@dataclasses.dataclass(frozen=True)
class EpisodeSettings:
    """How an episode rollout is played.

    Attributes:
        turns: model turns per rollout at most (K).
        turn_max_tokens: new tokens per answer at most (an answer cut off there scores -3 for
            format).
        continuation: who acts after the model's turns: ``"oracle"`` (the triage oracle, a
            competent finish, so the score reflects the model's moves), ``"noop"`` (nobody: the
            model's last throttle stays in force) or ``"none"`` (play stops after the turns).
        continuation_steps: continuation steps at most (``None``: to the episode's end, so
            ``episode_score`` is the full episode's dime-eval score).
    """

    turns: int = 4
    turn_max_tokens: int = 256
    continuation: str = "oracle"
    continuation_steps: int | None = None

    def validated(self, max_completion_length: int | None = None) -> EpisodeSettings:
        """``self`` after checking every field (``ValueError`` naming the valid values)."""
        if int(self.turns) < 1:
            raise ValueError(f"episode_turns must be >= 1, got {self.turns}")
        if int(self.turn_max_tokens) < 1:
            raise ValueError(f"episode_turn_max_tokens must be >= 1, got {self.turn_max_tokens}")
        if self.continuation not in EPISODE_CONTINUATIONS:
            raise ValueError(f"episode_continuation must be one of {', '.join(EPISODE_CONTINUATIONS)}, got {self.continuation!r}")
        if self.continuation_steps is not None and int(self.continuation_steps) < 0:
            raise ValueError(f"episode_continuation_steps must be >= 0 or None (to the episode's end), got {self.continuation_steps}")
        if max_completion_length is not None and int(self.turn_max_tokens) >= int(max_completion_length):
            raise ValueError(f"episode_turn_max_tokens ({self.turn_max_tokens}) and a closing EOS must fit in "
                             f"max_completion_length ({max_completion_length}), the budget of a whole episode's model "
                             "and environment tokens")
        return self


class ChatTurns:
    """Token ids of an episode's chat: the first prompt exactly as ``dime-eval`` and TRL render it
    (chat template, ``add_generation_prompt``, ``chat_template_kwargs``), and each later user turn
    as the template renders it after an assistant turn. The later turn's ids are cut from the
    template's own rendering (``[user, user]`` with a generation prompt, after ``[user]`` up to
    its end-of-turn EOS), TRL's own way of cutting tool results, so nothing template-specific is
    written here."""

    _PROBE = ({"role": "user", "content": "x"},)

    def __init__(self, tokenizer, chat_template_kwargs: Mapping | None = None):
        self.tokenizer = tokenizer
        self.kwargs = dict(chat_template_kwargs or {})
        self.eos_token_id = tokenizer.eos_token_id
        prefix = self._ids(list(self._PROBE), add_generation_prompt=False)
        ends = [i for i, t in enumerate(prefix) if t == self.eos_token_id]
        if not ends:
            raise ValueError("the chat template does not end a user turn with the EOS token; episode rollouts need a "
                             "ChatML-style template (Qwen3's) whose turns end with EOS")
        self._prefix = prefix[: ends[-1] + 1]

    def _ids(self, messages, add_generation_prompt: bool) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                                  **self.kwargs)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def first_prompt(self, messages) -> list[int]:
        """The first turn's prompt ids (system prompt + first user message)."""
        return self._ids(messages, add_generation_prompt=True)

    def user_turn(self, user_message: str) -> list[int]:
        """The ids that follow an assistant answer's EOS: the end of that turn, ``user_message``
        as a user turn, and the generation prompt of the next answer."""
        full = self._ids([*self._PROBE, {"role": "user", "content": user_message}], add_generation_prompt=True)
        if full[: len(self._prefix)] != self._prefix:
            raise ValueError("the chat template renders a user turn differently after another turn; "
                             "episode rollouts need a template whose earlier turns keep their tokens")
        return full[len(self._prefix):]


def prompt_key(prompt) -> str:
    """The lookup key of a dataset prompt: its last message's content (the user message)."""
    if isinstance(prompt, str):
        return prompt
    return prompt[-1]["content"]


class EpisodeRollout:
    """TRL ``rollout_func`` that plays whole episodes from the prompt rows' snapshots (see the
    module docstring). Build it from the training dataset with :meth:`from_dataset`; call it
    as TRL does, ``rollout(prompts, trainer)``, or without a trainer through :meth:`play`."""

    def __init__(self, snapshots_by_prompt: Mapping[str, bytes], settings: EpisodeSettings = EpisodeSettings()):
        if not snapshots_by_prompt:
            raise ValueError("no prompt rows: build the rollout from the training dataset (EpisodeRollout.from_dataset)")
        self.snapshots_by_prompt = dict(snapshots_by_prompt)
        self.settings = settings.validated()
        self._turns: ChatTurns | None = None
        self.__name__ = "dime_episode_rollout"

    @classmethod
    def from_dataset(cls, dataset, settings: EpisodeSettings = EpisodeSettings()) -> EpisodeRollout:
        """Map every row's prompt to its ``snapshot`` (columns of ``build_prompt_dataset``). Rows
        whose user messages repeat (a dataset built with ``dedupe=False``) keep the first row's
        snapshot: the model cannot tell them apart, and either is a state that prompt shows."""
        missing = [c for c in ("prompt", "snapshot") if c not in dataset.column_names]
        if missing:
            raise ValueError(f"episode rollouts need the dataset columns 'prompt' and 'snapshot' (build_prompt_dataset); "
                             f"missing: {', '.join(missing)}")
        table: dict[str, bytes] = {}
        repeated = 0
        for batch in dataset.select_columns(["prompt", "snapshot"]).iter(batch_size=1024):
            for prompt, snapshot in zip(batch["prompt"], batch["snapshot"], strict=True):
                key = prompt_key(prompt)
                if key in table:
                    repeated += table[key] != snapshot
                    continue
                table[key] = bytes(snapshot)
        if repeated:
            LOGGER.warning("%d dataset rows repeat an earlier row's prompt with another snapshot; episode rollouts start "
                           "from the first one (build the dataset with dedupe=True to avoid this)", repeated)
        return cls(table, settings)

    def snapshot_for(self, prompt) -> bytes:
        """The snapshot a prompt row was rendered from (``KeyError`` naming the fix)."""
        try:
            return self.snapshots_by_prompt[prompt_key(prompt)]
        except KeyError:
            raise KeyError("a prompt the trainer sent is not in the rollout's dataset; build the EpisodeRollout from the "
                           "same dataset as GRPOTrainer's train_dataset") from None

    def __call__(self, prompts: Sequence, trainer) -> dict:
        from dime_trainer.turn_generation import turn_generator

        if self._turns is None or self._turns.tokenizer is not trainer.processing_class:
            self._turns = ChatTurns(trainer.processing_class, trainer.chat_template_kwargs)
        return self.play(prompts, turn_generator(trainer), self._turns, trainer.args.max_completion_length,
                         mask_cut_off_turns=bool(trainer.args.mask_truncated_completions),
                         log_metric=getattr(trainer, "_log_metric", None))

    def play(self, prompts: Sequence, generator, turns: ChatTurns, max_completion_length: int,
             mask_cut_off_turns: bool = True, log_metric: Callable[[str, float], None] | None = None) -> dict:
        """Play one rollout per prompt row (see the module docstring) and return TRL's dict.

        Args:
            prompts: the rows' chat prompts, as TRL passes them.
            generator: ``generate(contexts, max_new_tokens) -> [(ids, logprobs | None)]`` with a
                ``stop_token_ids`` set (:mod:`dime_trainer.turn_generation`). It is called
                exactly ``turns`` times, also when no row is left to answer (with one dummy
                context), so backends with collective calls (vLLM server mode, tensor
                parallelism) stay in step across processes.
            turns: the chat's tokenization (:class:`ChatTurns`).
            max_completion_length: budget of one row's completion, model and env tokens.
            mask_cut_off_turns: leave the tokens of an answer cut off at the per-turn budget
                out of the loss.
            log_metric: TRL's ``log_metric(name, value)`` for the ``dime/episode/*`` metrics.
        """
        from dime_gym.text.answers import parse_answer
        from dime_gym.text.env import answer_action
        from dime_trainer.rewards import FORMAT_CUT_OFF, format_score, validity_score

        settings = self.settings.validated(max_completion_length)
        play = _Play(self, prompts, turns)
        generation_s = env_s = 0.0
        cut_off = answered = 0
        for turn in range(settings.turns):
            t0 = time.perf_counter()
            asking = play.open_turn(turn, settings, max_completion_length)
            t1 = time.perf_counter()
            contexts = [play.prompt_ids[i] + play.completion_ids[i] for i in asking]
            outputs = generator.generate(contexts or [[turns.eos_token_id]], settings.turn_max_tokens)
            t2 = time.perf_counter()
            actions = np.zeros((play.n, 4), dtype=np.int64)
            answers = {}
            for i, (ids, logprobs) in zip(asking, outputs[: len(asking)], strict=True):
                finished = bool(ids) and ids[-1] in generator.stop_token_ids
                text = turns.tokenizer.decode(ids, skip_special_tokens=True)
                parsed = parse_answer(text)
                play.turn_format[i].append(format_score(parsed) if finished else FORMAT_CUT_OFF)
                play.turn_validity[i].append(validity_score(parsed))
                play.append(i, ids, 0 if (mask_cut_off_turns and not finished) else 1, logprobs)
                if not ids or ids[-1] != turns.eos_token_id:  # cut off, or stopped by pad: close the turn
                    play.append(i, [turns.eos_token_id], 0)  # for the chat; this EOS is not the model's token
                actions[i] = answer_action(parsed)
                answers[i] = (text, parsed)
                cut_off += not finished
                answered += 1
            play.step(actions, answers)
            generation_s += t2 - t1
            env_s += (t1 - t0) + (time.perf_counter() - t2)
        t0 = time.perf_counter()
        play.finish_model_turns()
        while play.continuing():
            play.step(np.zeros((play.n, 4), dtype=np.int64), {})
        continuation_s = time.perf_counter() - t0
        if log_metric is not None:
            for name, value in {
                "dime/episode/model_turns": float(np.mean([len(f) for f in play.turn_format])),
                "dime/episode/steps": float(np.mean([len(r) for r in play.rewards])),
                "dime/episode/score": float(np.mean(play.score)),
                "dime/episode/cut_off_turn_frac": cut_off / max(answered, 1),
                "dime/episode/generation_s_per_turn": generation_s / settings.turns,
                "dime/episode/env_s_per_turn": env_s / settings.turns,
                "dime/episode/continuation_s": continuation_s,
            }.items():
                log_metric(name, value)
        return play.output()


class _Play:
    """The mutable state of one batch of episode rollouts (rows in TRL's order)."""

    def __init__(self, rollout: EpisodeRollout, prompts: Sequence, turns: ChatTurns):
        from dime_gym.scenarios import get_task
        from dime_gym.vector import DimeVectorEnv

        self.settings = rollout.settings
        self.turns = turns
        self.n = n = len(prompts)
        # NEXT_STEP autoreset: a row whose episode ended is reset on its next step, and never read again
        self.env = DimeVectorEnv(num_envs=n)
        groups: dict[bytes, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(rollout.snapshot_for(prompt), []).append(i)
        for k, (snapshot, rows) in enumerate(groups.items()):  # one restore per group: same state, same random streams
            self.obs, _ = self.env.restore(snapshot, None if k == 0 else rows)  # (the first fills every sub-env)
        self.task_hints = [get_task(task).task_hint for task in self.env.tasks]
        self.prompt_ids = [turns.first_prompt(p) for p in prompts]
        self.completion_ids: list[list[int]] = [[] for _ in range(n)]
        self.env_mask: list[list[int]] = [[] for _ in range(n)]
        self.logprobs: list[list[float]] = [[] for _ in range(n)]
        self.turn_format: list[list[float]] = [[] for _ in range(n)]
        self.turn_validity: list[list[float]] = [[] for _ in range(n)]
        self.rewards: list[list[float]] = [[] for _ in range(n)]
        self.score = np.zeros(n)
        self.user_messages: list[str | None] = [None] * n
        self.phase = np.full(n, _MODEL, dtype=np.int64)
        self.continuation_steps = np.zeros(n, dtype=np.int64)

    def append(self, i: int, ids: Sequence[int], mask: int, logprobs: Sequence[float] | None = None) -> None:
        if logprobs is not None and len(logprobs) != len(ids):
            raise ValueError(f"the generator returned {len(logprobs)} log-probs for {len(ids)} tokens")
        self.completion_ids[i] += ids
        self.env_mask[i] += [mask] * len(ids)
        self.logprobs[i] += list(logprobs) if logprobs is not None else [0.0] * len(ids)

    def _stop_model_turns(self, i: int) -> None:
        none = self.settings.continuation == "none" or self.settings.continuation_steps == 0
        self.phase[i] = _DONE if none else _CONTINUATION

    def open_turn(self, turn: int, settings: EpisodeSettings, max_completion_length: int) -> list[int]:
        """The rows that answer this turn; from turn 2 on, each first gets the env's user message
        (mask 0), unless it would not fit with a full answer and a closing EOS: then the
        continuation takes over."""
        asking = []
        for i in np.flatnonzero(self.phase == _MODEL).tolist():
            if turn > 0:
                suffix = self.turns.user_turn(self.user_messages[i])
                if len(self.completion_ids[i]) + len(suffix) + settings.turn_max_tokens + 1 > max_completion_length:
                    self._stop_model_turns(i)
                    continue
                self.append(i, suffix, 0)
            asking.append(i)
        return asking

    def finish_model_turns(self) -> None:
        for i in np.flatnonzero(self.phase == _MODEL).tolist():
            self._stop_model_turns(i)

    def continuing(self) -> bool:
        return bool((self.phase == _CONTINUATION).any())

    def step(self, actions: np.ndarray, answers: Mapping[int, tuple]) -> None:
        """One batched env step: ``actions`` for the rows that answered (``answers``), the
        continuation's for rows past their turns, nothing that is read for finished rows."""
        from dime_gym.actions import QUERY_LOGS, describe_errors
        from dime_gym.counterfactual import continuation_actions
        from dime_gym.logs import log_excerpt
        from dime_gym.text.env import answer_report
        from dime_gym.text.prompts import render_user_message

        continuing = np.flatnonzero(self.phase == _CONTINUATION)
        if continuing.size:
            rows_obs = {key: value[continuing] for key, value in self.obs.items()}
            actions[continuing] = continuation_actions(self.settings.continuation, rows_obs, continuing.size)
        stepped = np.flatnonzero(self.phase != _DONE)
        self.obs, rewards, _, truncated, infos = self.env.step(actions)
        states = self.env.state_records if any(actions[i][0] == QUERY_LOGS for i in answers) else None
        for i in stepped.tolist():
            self.rewards[i].append(float(rewards[i]))
            self.score[i] = float(infos["score"][i])
        for i, (text, parsed) in answers.items():
            errors = describe_errors(int(infos["action_errors"][i]), actions[i]) if infos["action_errors"][i] else []
            info = {"task_hint": self.task_hints[i], "action_errors": errors}
            if actions[i][0] == QUERY_LOGS:
                info["logs"] = log_excerpt(states, i, int(actions[i][1]))
            row_obs = {key: value[i] for key, value in self.obs.items()}
            self.user_messages[i] = render_user_message(row_obs, info, answer_report(text, parsed, errors))
        self.continuation_steps[continuing] += 1
        limit = self.settings.continuation_steps
        ended = truncated.copy()
        if limit is not None:
            ended[continuing] |= self.continuation_steps[continuing] >= limit
        self.phase[stepped[ended[stepped]]] = _DONE

    def output(self) -> dict:
        return {
            "prompt_ids": self.prompt_ids,
            "completion_ids": self.completion_ids,
            "logprobs": self.logprobs,
            "env_mask": self.env_mask,
            "episode_turn_format": self.turn_format,
            "episode_turn_validity": self.turn_validity,
            "episode_rewards": self.rewards,
            "episode_model_turns": [len(f) for f in self.turn_format],
            "episode_score": self.score.tolist(),
        }
