"""The ranges of DIME's reward callbacks and the metric names they log, shared by the step
rewards (``dime_trainer.rewards``) and the episode rewards (``dime_trainer.episode_rewards``).

They live below both so that ``rewards`` can hand ``rollout: episode`` over to
``episode_rewards`` without the two modules importing each other.
"""

from __future__ import annotations

FORMAT_RANGE = (-3.0, 3.0)
VALIDITY_RANGE = (-2.0, 2.0)
ENV_RANGE = (-5.0, 5.0)
TRIAGE_RANGE = (-0.5, 1.0)

# logged through TRL's log_metric and read by the monitor
UNCLOSED_THINK_METRIC = "dime/unclosed_think_frac"
FLAT_ENV_GROUPS_METRIC = "dime/env_flat_group_frac"  # groups whose completions all got one env reward
