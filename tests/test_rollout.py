"""Episode rollouts (``dime_trainer.rollout``) without a trainer: a scripted generator answers, the
real env and the tiny Qwen3 tokenizer do the rest. Checked: a group starts from one state with one
random stream, the env's turns are exactly what TextEnv / dime-eval would show and are masked out,
budgets and cut-off answers, the continuation, and the vLLM backend against a fake."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("trl", reason="needs the training extras: pip install -e '.[train]'")

from dime_gym.env import DimeEnv  # noqa: E402
from dime_gym.text import render_messages  # noqa: E402
from dime_gym.text.env import TextEnv  # noqa: E402
from dime_trainer.rewards import FORMAT_CUT_OFF, build_rewards  # noqa: E402
from dime_trainer.rollout import ChatTurns, EpisodeRollout, EpisodeSettings  # noqa: E402
from dime_trainer.turn_generation import VLLMTurnGenerator, turn_generator  # noqa: E402

NOOP = '<reasoning>Rule 10 applies.</reasoning>\n<action>{"command": "no_op"}</action>'
LOGS = '<reasoning>Rule 6 applies.</reasoning>\n<action>{"command": "kubectl logs node-3"}</action>'
THROTTLE = '<reasoning>Rule 5 applies.</reasoning>\n<action>{"command": "kubectl throttle ingress --rate=0.40"}</action>'
RESTART_DB = '<reasoning>Rule 2 applies.</reasoning>\n<action>{"command": "kubectl delete pod node-0"}</action>'
GARBLED = "I would look at the dashboards first."


@pytest.fixture(scope="module")
def tokenizer():
    from dime_trainer.tiny_model import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def turns(tokenizer):
    return ChatTurns(tokenizer, {"enable_thinking": False})


class Scripted:
    """A generator answering ``script(turn, position)`` (position in the call's contexts),
    each answer ending with EOS unless ``cut`` is set; records every call."""

    def __init__(self, tokenizer, script, cut: bool = False):
        self.tokenizer, self.script, self.cut = tokenizer, script, cut
        self.stop_token_ids = frozenset([tokenizer.eos_token_id])
        self.calls = []

    def generate(self, contexts, max_new_tokens):
        turn = len(self.calls)
        self.calls.append((len(contexts), max_new_tokens))
        out = []
        for position in range(len(contexts)):
            ids = self.tokenizer(self.script(turn, position), add_special_tokens=False)["input_ids"]
            out.append((ids[:max_new_tokens], None) if self.cut else (ids + [self.tokenizer.eos_token_id], None))
        return out


def start_state(task: str, seed: int, steps: int = 3):
    """``(prompt, snapshot)`` of a state ``steps`` oracle steps into an episode."""
    env = DimeEnv()
    obs, info = env.reset(seed=seed, options={"task": task})
    for _ in range(steps):
        obs, _, _, _, info = env.step(info["oracle"]["action"])
    return render_messages(obs, info), env.snapshot()


@pytest.fixture(scope="module")
def starts():
    return [start_state("retry_storm", 10_000), start_state("node_failure", 10_001, steps=5)]


def rollout_of(starts, **settings):
    return EpisodeRollout({p[-1]["content"]: s for p, s in starts}, EpisodeSettings(**settings))


def test_episode_rollout__a_group_shares_its_first_observation_and_random_stream(tokenizer, turns, starts):
    """Rows 0-1 and 4-5 answer alike every turn, the others differently: rows of a group see the
    same first prompt, and equal answers give bit-identical rewards over the whole episode (the
    env is noisy, so only a shared random stream does that), equal to the snapshot's own future."""
    group = 4
    prompts = [starts[0][0]] * group + [starts[1][0]] * group
    answers = (NOOP, NOOP, THROTTLE, RESTART_DB)
    out = rollout_of(starts, turns=3, turn_max_tokens=64).play(
        prompts, Scripted(tokenizer, lambda turn, i: answers[i % group]), turns, 2048)
    for g in range(2):
        rows = range(g * group, (g + 1) * group)
        assert all(out["prompt_ids"][i] == out["prompt_ids"][g * group] for i in rows)
        same, other = out["episode_rewards"][g * group], out["episode_rewards"][g * group + 1]
        assert same == other and out["episode_score"][g * group] == out["episode_score"][g * group + 1]
        assert all(out["episode_rewards"][i] != same for i in (g * group + 2, g * group + 3))  # the answers matter
    assert out["prompt_ids"][0] != out["prompt_ids"][group]
    # the same future as a DimeEnv restored from the snapshot: no_op x3, then the oracle to the end
    env = DimeEnv()
    _, info = env.restore(starts[0][1])
    rewards, truncated, t = [], False, 0
    while not truncated:
        _, reward, _, truncated, info = env.step(np.zeros(4, dtype=np.int64) if t < 3 else info["oracle"]["action"])
        rewards.append(float(reward))
        t += 1
    assert out["episode_rewards"][0] == rewards and out["episode_score"][0] == info["score"]


def test_episode_rollout__env_turns_are_what_text_env_shows_and_are_masked(tokenizer, turns, starts):
    """The completion is answer 1, the env's next user message (TextEnv's own text after that
    answer: last_command, action_errors and logs included), answer 2, ...; the env's tokens have
    env_mask 0, the model's 1. The first prompt is dime-eval's rendering."""
    from dime_trainer.evaluation.backends import render_prompts

    script = (LOGS, GARBLED, RESTART_DB, RESTART_DB)  # logs, unparsable, applied, then rejected (restart in progress)
    prompt, snapshot = starts[0]
    out = rollout_of(starts, turns=4, turn_max_tokens=64).play([prompt], Scripted(tokenizer, lambda t, i: script[t]),
                                                                turns, 4096)
    env = TextEnv(DimeEnv(with_oracle=False))
    env.unwrapped.restore(snapshot)
    expected_ids, expected_mask, messages = [], [], []
    for turn, answer in enumerate(script):
        if turn:
            user = turns.user_turn(messages[-1])
            expected_ids += user
            expected_mask += [0] * len(user)
        ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        expected_ids += ids
        expected_mask += [1] * len(ids)
        text, *_ = env.step(answer)
        messages.append(text)
    assert '"status": "unparsable"' in messages[1] and "logs" in messages[0] and "RestartInProgress" in messages[3]
    assert out["completion_ids"][0] == expected_ids and out["env_mask"][0] == expected_mask
    dime_eval_prompt = render_prompts(tokenizer, [prompt], enable_thinking=False)[0]
    assert out["prompt_ids"][0] == tokenizer(dime_eval_prompt, add_special_tokens=False)["input_ids"]
    assert out["episode_model_turns"] == [4] and out["episode_turn_validity"][0][1] == -2.0  # the garbled answer
    assert len(out["logprobs"][0]) == len(expected_ids)


def test_episode_rollout__cut_off_answers_are_closed_masked_and_score_minus_3(tokenizer, turns, starts):
    out = rollout_of(starts, turns=2, turn_max_tokens=5).play([starts[0][0]], Scripted(tokenizer, lambda t, i: NOOP, cut=True),
                                                               turns, 4096)
    ids, mask = out["completion_ids"][0], out["env_mask"][0]
    assert out["episode_turn_format"][0] == [FORMAT_CUT_OFF, FORMAT_CUT_OFF]
    assert sum(mask) == 0  # mask_truncated_completions: cut-off answers stay out of the loss
    assert ids[5] == tokenizer.eos_token_id and ids[-1] == tokenizer.eos_token_id  # each turn closed by an env EOS
    kept = rollout_of(starts, turns=1, turn_max_tokens=5).play([starts[0][0]], Scripted(tokenizer, lambda t, i: NOOP, cut=True),
                                                                turns, 4096, mask_cut_off_turns=False)
    assert kept["env_mask"][0] == [1] * 5 + [0]


def test_episode_rollout__the_episode_budget_hands_over_to_the_continuation(tokenizer, turns, starts):
    """With room for one answer only, the model plays one turn and the oracle the rest; the
    generator is still called once per turn (with one dummy context), so collective backends
    stay in step across processes."""
    generator = Scripted(tokenizer, lambda t, i: NOOP)
    out = rollout_of(starts, turns=3, turn_max_tokens=64).play([starts[0][0]] * 2, generator, turns, 100)
    assert out["episode_model_turns"] == [1, 1]
    assert len(out["completion_ids"][0]) <= 100 and all(m == 1 for m in out["env_mask"][0])
    assert len(out["episode_rewards"][0]) == 40 - 3  # retry_storm is 40 steps; the start state is step 3
    assert generator.calls == [(2, 64), (1, 64), (1, 64)]


@pytest.mark.parametrize(("continuation", "steps", "expected_steps"), [
    ("none", None, 2),  # play stops after the model's turns
    ("noop", 3, 5),  # two turns, three continuation steps
    ("oracle", None, 40 - 3),  # to the episode's end
])
def test_episode_rollout__continuation(tokenizer, turns, starts, continuation, steps, expected_steps):
    out = rollout_of(starts, turns=2, turn_max_tokens=64, continuation=continuation, continuation_steps=steps).play(
        [starts[0][0]], Scripted(tokenizer, lambda t, i: NOOP), turns, 4096)
    assert len(out["episode_rewards"][0]) == expected_steps


def test_episode_rollout__bad_input_is_named():
    with pytest.raises(ValueError, match="episode_continuation must be one of oracle, noop, none"):
        EpisodeSettings(continuation="random").validated()
    with pytest.raises(ValueError, match="must fit in max_completion_length"):
        EpisodeSettings(turn_max_tokens=300).validated(max_completion_length=256)
    with pytest.raises(ValueError, match="episode_turns must be >= 1"):
        EpisodeSettings(turns=0).validated()
    with pytest.raises(KeyError, match="same dataset as GRPOTrainer"):
        EpisodeRollout({"some other prompt": b""}).snapshot_for([{"role": "user", "content": "unknown"}])
    with pytest.raises(ValueError, match="rollout must be one of step, episode"):
        build_rewards({"rollout": "episodes"})


def test_episode_rollout__from_dataset_maps_each_prompt_to_its_snapshot():
    from dime_trainer.data import build_prompt_dataset

    dataset = build_prompt_dataset(["zombie_node"], seeds=1, max_steps=4, min_reward_gap=None, progress=False)
    rollout = EpisodeRollout.from_dataset(dataset)
    assert [rollout.snapshot_for(row["prompt"]) for row in dataset] == dataset["snapshot"]
    with pytest.raises(ValueError, match="missing: snapshot"):
        EpisodeRollout.from_dataset(dataset.remove_columns(["snapshot"]))


class FakeVLLMGeneration:
    """TRL's VLLMGeneration as the rollout uses it: ``generate(prompts, images, num_generations)``
    returning per-token top-k log-probs, and the ``max_completion_length`` it reads per call."""

    def __init__(self, answer_ids, eos):
        self.answer_ids, self.eos = answer_ids, eos
        self.max_completion_length = 2560
        self.calls = []

    def generate(self, prompts, images, num_generations):
        self.calls.append((len(prompts), images, num_generations, self.max_completion_length))
        assert all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in prompts)
        completion = self.answer_ids + [self.eos, 7, 7]  # anything after the stop token is dropped
        logprobs = [[-0.5 - 0.01 * k, -3.0] for k in range(len(completion))]  # (tokens, top-k)
        return prompts, [completion] * len(prompts), [logprobs] * len(prompts), None


class FakeTrainer:
    def __init__(self, tokenizer, vllm_generation):
        self.processing_class = tokenizer
        self.chat_template_kwargs = {"enable_thinking": False}
        self.eos_token_ids = [tokenizer.eos_token_id]
        self.use_vllm = True
        self.vllm_generation = vllm_generation
        self.args = type("Args", (), {"max_completion_length": 4096, "mask_truncated_completions": True})()
        self.metrics = {}

    def _log_metric(self, name, value):
        self.metrics[name] = value


def test_vllm_backend__turns_go_through_trls_vllm_generation(tokenizer, starts):
    answer = tokenizer(NOOP, add_special_tokens=False)["input_ids"]
    fake = FakeVLLMGeneration(answer, tokenizer.eos_token_id)
    trainer = FakeTrainer(tokenizer, fake)
    assert isinstance(turn_generator(trainer), VLLMTurnGenerator)
    out = rollout_of(starts, turns=2, turn_max_tokens=64)([starts[0][0]] * 2, trainer)
    assert [c[1:] for c in fake.calls] == [(None, 1, 64)] * 2  # token ids, one sample each, the per-turn budget
    assert fake.max_completion_length == 2560  # restored after every call
    mask, logprobs = out["env_mask"][0], out["logprobs"][0]
    model_lps = [lp for lp, m in zip(logprobs, mask, strict=True) if m]
    assert len(model_lps) == 2 * (len(answer) + 1)  # the answer and its EOS, twice; the trailing 7s dropped
    assert model_lps[0] == -0.5 and all(lp == 0.0 for lp, m in zip(logprobs, mask, strict=True) if not m)
    assert trainer.metrics["dime/episode/model_turns"] == 2 and trainer.metrics["dime/episode/generation_s_per_turn"] >= 0
