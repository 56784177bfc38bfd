"""Reading model answers: the clean format, every tolerance (named in ``rescues``), every error
class, the seed's Quick Start answer, and robustness to arbitrary text."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dime_gym.core.actions import THROTTLE
from dime_gym.text.answers import ANSWER_ERROR_KINDS, MAX_ANSWER_CHARS, RESCUES, ParsedAnswer, parse_answer
from dime_gym.commands import ERROR_KINDS, CommandParseError, canonical_actions, format_action

RESTART_3 = (1, 3, 0, 0)
CLEAN = '<reasoning>Node 3 is out of memory.</reasoning>\n<action>{"command": "kubectl delete pod node-3"}</action>'

# The seed model card's Quick Start "expected output", verbatim.
SEED_EXPECTED_OUTPUT = """<think>
P99 latency is 312ms with request rate 1840 rps and no failed nodes.
Rule 5 (retry storm): p99 > 100ms and rr > 150 \u2192 throttle at 0.4.
</think>
<reasoning>Rule 5 applies: p99 latency 312ms exceeds threshold with high request rate 1840 rps \u2014 throttle ingress to shed load.</reasoning>
<action>{"command": "kubectl throttle ingress --rate=0.4"}</action>"""

# (case, answer, expected action, expected rescues)
ACCEPTED = [
    ("clean", CLEAN, RESTART_3, ()),
    ("clean_with_think", "<think>mem 0.95 on node 3</think>\n" + CLEAN, RESTART_3, ()),
    ("closing_think_only", "mem is high.\n</think>\n" + CLEAN, RESTART_3, ()),
    ("no_reasoning", '<action>{"command": "kubectl delete pod node-3"}</action>', RESTART_3, ("missing_reasoning",)),
    ("empty_reasoning", '<reasoning> </reasoning><action>{"command": "kubectl delete pod node-3"}</action>', RESTART_3,
     ("missing_reasoning",)),
    ("unclosed_reasoning", '<reasoning>oom <action>{"command": "kubectl delete pod node-3"}</action>', RESTART_3,
     ("missing_reasoning",)),
    ("code_fence", '<reasoning>r</reasoning><action>```json\n{"command": "kubectl delete pod node-3"}\n```</action>', RESTART_3,
     ("code_fence",)),
    ("single_quotes", "<reasoning>r</reasoning><action>{'command': 'kubectl delete pod node-3'}</action>", RESTART_3,
     ("single_quotes",)),
    ("alternate_key", '<reasoning>r</reasoning><action>{"cmd": "kubectl delete pod node-3"}</action>', RESTART_3,
     ("alternate_key",)),
    ("bare_in_tag", "<reasoning>r</reasoning><action>kubectl delete pod node-3</action>", RESTART_3, ("bare_command",)),
    ("trailing_prose", CLEAN + "\nThis frees the memory.", RESTART_3, ("extra_text",)),
    ("leading_prose", "Let me look.\n" + CLEAN, RESTART_3, ("extra_text",)),
    ("prose_in_action", '<reasoning>r</reasoning><action>Run {"command": "kubectl delete pod node-3"} now</action>', RESTART_3,
     ("extra_text",)),
    ("unclosed_action", '<reasoning>r</reasoning><action>{"command": "kubectl delete pod node-3"}', RESTART_3, ("unclosed_action",)),
    ("json_without_tag", '<reasoning>r</reasoning>{"command": "kubectl delete pod node-3"}', RESTART_3, ("missing_action_tag",)),
    ("bare_line", "kubectl delete pod node-3", RESTART_3, ("missing_reasoning", "missing_action_tag", "bare_command")),
    ("bare_line_in_prose", "Memory is high.\n$ kubectl delete pod node-3\nDone.", RESTART_3,
     ("missing_reasoning", "missing_action_tag", "bare_command", "extra_text")),
    ("inline_code_span", "I will run `kubectl delete pod node-3`.", RESTART_3,
     ("missing_reasoning", "missing_action_tag", "bare_command", "extra_text")),
    ("inside_sentence", "I will observe and kubectl delete pod node-3", RESTART_3,
     ("missing_reasoning", "missing_action_tag", "bare_command", "extra_text")),
    ("fenced_bare", "```bash\nkubectl delete pod node-3\n```", RESTART_3,
     ("missing_reasoning", "missing_action_tag", "code_fence", "bare_command")),
    ("repeated_same_command", "kubectl delete pod node-3\nkubectl delete pod node-3", RESTART_3,
     ("missing_reasoning", "missing_action_tag", "bare_command", "extra_text")),
    ("prose_line_starting_with_kubectl", "kubectl delete pod node-3\nKubectl will then recreate the pod.", RESTART_3,
     ("missing_reasoning", "missing_action_tag", "bare_command", "extra_text")),
    ("inline_code_in_tag", "<reasoning>r</reasoning><action>`kubectl delete pod node-3`</action>", RESTART_3, ("bare_command",)),
    ("shell_prompt_in_tag", "<reasoning>r</reasoning><action>$ kubectl delete pod node-3</action>", RESTART_3, ("bare_command",)),
    ("reasoning_quotes_the_format",
     '<reasoning>Format: <action>{"command": "no_op"}</action>; node 3 is OOM.</reasoning>'
     '<action>{"command": "kubectl delete pod node-3"}</action>', RESTART_3, ()),
    ("no_op_word", "<reasoning>healthy</reasoning><action>no_op</action>", (0, 0, 0, 0), ("bare_command",)),
    ("seed_quick_start", SEED_EXPECTED_OUTPUT, (THROTTLE, 0, 0, 8), ()),
]

# (case, answer, error kind)
REJECTED = [
    ("empty", "", "no_command"),
    ("prose_only", "The cluster looks fine, I would observe it.", "no_command"),
    ("unclosed_think", "<think>p99 is high, so I should throttle. kubectl throttle ingress --rate=0.4", "unclosed_think"),
    ("two_action_tags", '<action>{"command": "no_op"}</action><action>{"command": "kubectl delete pod node-3"}</action>',
     "multiple_commands"),
    ("two_lines_disagree", "kubectl get pods\nkubectl delete pod node-3", "multiple_commands"),
    ("many_lines", "\n".join(["no_op"] * 9), "multiple_commands"),
    ("broken_json", '<action>{"command": "kubectl delete pod node-3"</action>', "bad_json"),
    ("json_list", "<action>{[1, 2]}</action>", "bad_json"),
    ("json_not_object", '<action>{"command": "no_op"} {"x": 1}</action>', "bad_json"),
    ("json_no_command_key", '<action>{"node": 3}</action>', "no_command"),
    ("json_command_not_string", '<action>{"command": 3}</action>', "no_command"),
    ("too_long", "x" * (MAX_ANSWER_CHARS + 1), "too_long"),
    ("absurdly_nested_json", '<action>{"command": "no_op", "meta": ' + "[" * 5000 + "}</action>", "bad_json"),
    ("bad_node", '<action>{"command": "kubectl delete pod node-9"}</action>', "node_out_of_range"),
    ("bad_rate", '<action>{"command": "kubectl throttle ingress --rate=1.7"}</action>', "rate_out_of_range"),
    ("unknown_verb", '<action>{"command": "kubectl drain node-3"}</action>', "unknown_verb"),
]


@pytest.mark.parametrize("case, answer, action, rescues", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_parse_answer__accepted(case, answer, action, rescues):
    parsed = parse_answer(answer)
    assert parsed.error is None, parsed.error
    assert parsed.action == action
    assert parsed.command == format_action(action)
    assert parsed.rescues == rescues
    assert parsed.clean == (not rescues)


@pytest.mark.parametrize("case, answer, kind", REJECTED, ids=[c[0] for c in REJECTED])
def test_parse_answer__rejected_with_a_named_error(case, answer, kind):
    parsed = parse_answer(answer)
    assert parsed.action is None and parsed.command is None and not parsed.ok and not parsed.clean
    assert isinstance(parsed.error, CommandParseError)
    assert parsed.error.kind == kind
    assert len(str(parsed.error)) > 20  # says what is wrong


def test_tables_cover_every_rescue_and_answer_error():
    assert {r for case in ACCEPTED for r in case[3]} == set(RESCUES)
    assert {case[2] for case in REJECTED} >= set(ANSWER_ERROR_KINDS) - {"not_text"}


def test_parse_answer__not_a_string_is_an_error_not_an_exception():
    assert parse_answer(None).error.kind == "not_text"  # type: ignore[arg-type]


def test_parse_answer__seed_answer_keeps_thinking_and_reasoning():
    parsed = parse_answer(SEED_EXPECTED_OUTPUT)
    assert parsed.thinking.startswith("P99 latency is 312ms")
    assert parsed.reasoning.startswith("Rule 5 applies")
    assert parsed.raw_command == "kubectl throttle ingress --rate=0.4"


def test_parse_answer__prose_word_never_turns_a_command_into_a_no_op():
    # the original parsed this as no_op because of the word "observe"
    for answer in ("I will observe and then\nkubectl delete pod node-1", "<action>{\"command\": \"kubectl delete pod node-1\"}</action> observe"):
        assert parse_answer(answer).action == (1, 1, 0, 0)


ALL_ACTIONS = canonical_actions()


@pytest.mark.parametrize("action", ALL_ACTIONS, ids=str)
def test_parse_answer__clean_answer_round_trips_every_action(action):
    answer = f'<reasoning>because</reasoning>\n<action>{{"command": "{format_action(action)}"}}</action>'
    parsed = parse_answer(answer)
    assert parsed.action == action and parsed.clean


@given(st.text(max_size=400))
def test_parse_answer__arbitrary_text_never_raises(text):
    parsed = parse_answer(text)
    assert isinstance(parsed, ParsedAnswer)
    assert (parsed.action is None) == (parsed.error is not None)
    assert set(parsed.rescues) <= set(RESCUES)
    if parsed.error is not None:
        assert parsed.error.kind in set(ANSWER_ERROR_KINDS) | set(ERROR_KINDS)


SCAFFOLD = st.sampled_from(["<think>", "</think>", "<reasoning>", "</reasoning>", "<action>", "</action>", "```", "{", "}",
                            '"command": ', "'", "\n", "kubectl delete pod node-3", "no_op", "kubectl logs 2", " "])


@given(st.lists(st.one_of(SCAFFOLD, st.text(max_size=5)), max_size=30).map("".join))
def test_parse_answer__scaffold_fragments_never_raise(text):
    parsed = parse_answer(text)
    assert (parsed.action is None) == (parsed.error is not None)


@pytest.mark.parametrize(
    "answer",
    [
        "<think>" * 28_000,
        "</think>" * 25_000,
        "<reasoning>" * 18_000,
        "<action>{" * 22_000,
        "{" * 190_000 + "}",
        "kubectl delete pod node-3\n" * 7_000,
        "a kubectl x\n" * 16_000,
        "`kubectl " * 22_000,
        "```" * 60_000,
        "'" * 190_000,
        '<action>{"a": ' + "[" * 150_000 + "}</action>",
    ],
    ids=lambda a: repr(a[:12]),
)
def test_parse_answer__adversarial_answers_take_linear_time(answer):
    assert len(answer) <= MAX_ANSWER_CHARS
    start = time.perf_counter()
    parse_answer(answer)
    assert time.perf_counter() - start < 1.0  # quadratic work on 200k characters would take minutes


def test_parsed_answer__pickles_with_its_error():
    import pickle

    for answer in (CLEAN, "no command here", "<action>{bad json}</action>"):
        parsed = parse_answer(answer)
        assert pickle.loads(pickle.dumps(parsed)) == parsed
