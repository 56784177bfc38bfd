"""``LengthCappedFormatReward``: ``reward_format`` with the worst score for a completion cut off
at ``max_completion_length`` (TRL passes ``completion_ids`` to every reward function)."""

from __future__ import annotations

import pickle

import pytest

from dime_trainer.rewards import FORMAT_CUT_OFF, FORMAT_RANGE, LengthCappedFormatReward, hit_length_limit, reward_format

CLEAN = '<reasoning>Node 3 is out of memory.</reasoning>\n<action>{"command": "kubectl delete pod node-3"}</action>'
EOS, PAD = 2, 0

# (case, completion_ids, limit, stop ids, cut off?)
LIMIT_TABLE = [
    ("short", [5, 6, EOS], 4, {EOS, PAD}, False),
    ("at_limit_no_stop", [5, 6, 7, 8], 4, {EOS, PAD}, True),
    ("at_limit_ends_in_eos", [5, 6, 7, EOS], 4, {EOS, PAD}, False),  # finished exactly at the limit
    ("at_limit_length_only", [5, 6, 7, EOS], 4, None, True),
    ("over_limit", [5] * 9, 4, {EOS}, True),
]


@pytest.mark.parametrize("case, ids, limit, stops, expected", LIMIT_TABLE, ids=[c[0] for c in LIMIT_TABLE])
def test_hit_length_limit__table(case, ids, limit, stops, expected):
    assert hit_length_limit(ids, limit, stops) is expected


def test_length_capped_format__cut_off_answer_gets_the_worst_score():
    reward = LengthCappedFormatReward(max_completion_length=4, stop_token_ids=[EOS, PAD])
    rambling = CLEAN + " and then some more words that ran into the limit"
    assert reward_format(completions=[rambling])[0] >= 2.5  # the finding: nearly full credit without the cap
    scores = reward(completions=[CLEAN, rambling, CLEAN], completion_ids=[[5, 6, EOS], [5, 6, 7, 8], [5, 6, 7, EOS]])
    assert scores == [3.0, FORMAT_CUT_OFF, 3.0]
    assert all(FORMAT_RANGE[0] <= s <= FORMAT_RANGE[1] for s in scores)


def test_length_capped_format__same_name_and_plain_format_without_ids():
    reward = LengthCappedFormatReward(max_completion_length=4)
    assert reward.__name__ == "reward_format"  # TRL logs rewards/reward_format/*
    assert reward(completions=[CLEAN, "no"]) == reward_format(completions=[CLEAN, "no"])
    clone = pickle.loads(pickle.dumps(LengthCappedFormatReward(8, [EOS])))
    assert (clone.max_completion_length, clone.stop_token_ids, clone.__name__) == (8, frozenset({EOS}), "reward_format")
    with pytest.raises(ValueError):
        LengthCappedFormatReward(0)
