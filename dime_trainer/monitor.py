"""A ``TrainerCallback`` that watches GRPO for the failures that sank the seed model and says,
loudly and with the likely cause, when one sets in:

* advantages collapse: ``frac_reward_zero_std`` stays near 1 (every completion of a prompt gets
  the same reward, so nothing is learned);
* truncation: completions hit ``max_completion_length`` inside an unclosed ``<think>``;
* the env reward stops varying within prompt groups (``dime/env_flat_group_frac``).

Alerts go to the ``dime_trainer`` logger at WARNING level and are kept in ``monitor.alerts``.
"""

from __future__ import annotations

import logging
from collections import deque

from transformers import TrainerCallback

from dime_trainer.rewards import FLAT_ENV_GROUPS_METRIC, UNCLOSED_THINK_METRIC

LOGGER = logging.getLogger("dime_trainer")


class TrainingHealthMonitor(TrainerCallback):
    """Warn when GRPO stops learning. ``window`` logged steps are averaged before judging."""

    def __init__(self, window: int = 5, zero_std_limit: float = 0.9, clipped_limit: float = 0.5,
                 flat_env_limit: float = 0.9):
        self.window = window
        self.zero_std_limit = zero_std_limit
        self.clipped_limit = clipped_limit
        self.flat_env_limit = flat_env_limit
        self.history: dict[str, deque] = {}
        self.alerts: list[tuple[int, str, str]] = []  # (step, check, message)
        self._raised: set[str] = set()

    def _mean(self, key: str) -> float | None:
        values = self.history.get(key)
        if not values or len(values) < self.window:
            return None
        return sum(values) / len(values)

    def _alert(self, step: int, check: str, message: str) -> None:
        if check in self._raised:  # once per run; it is logged again only after it recovers
            return
        self._raised.add(check)
        self.alerts.append((step, check, message))
        LOGGER.warning("\n%s\nDIME TRAINING HEALTH [%s] at step %d: %s\n%s", "!" * 80, check, step, message, "!" * 80)

    def _clear(self, check: str) -> None:
        self._raised.discard(check)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        for key, value in logs.items():
            if isinstance(value, (int, float)):
                self.history.setdefault(key, deque(maxlen=self.window)).append(float(value))
        step = int(getattr(state, "global_step", 0))

        zero_std = self._mean("frac_reward_zero_std")
        if zero_std is not None and zero_std >= self.zero_std_limit:
            self._alert(step, "advantages_collapsed",
                        f"frac_reward_zero_std averaged {zero_std:.2f} over {self.window} logs: the completions of a prompt "
                        "all get the same total reward, so GRPO's advantages are zero and nothing is learned. Likely "
                        "causes: every completion is unparsable (look at rewards/reward_format), the states give no "
                        "reward signal (build the dataset with a higher min_reward_gap), or sampling is too cold (raise "
                        "temperature / num_generations).")
        elif zero_std is not None:
            self._clear("advantages_collapsed")

        clipped = self._mean("completions/clipped_ratio")
        unclosed = self._mean(UNCLOSED_THINK_METRIC)
        if clipped is not None and clipped >= self.clipped_limit:
            where = (f"; {unclosed:.0%} of completions end inside an unclosed <think>" if unclosed else "")
            self._alert(step, "truncated_completions",
                        f"{clipped:.0%} of completions hit max_completion_length{where}. The model never reaches its "
                        "<action>. Raise max_completion_length, or turn thinking off "
                        "(chat_template_kwargs: {enable_thinking: false}).")
        elif clipped is not None:
            self._clear("truncated_completions")

        flat = self._mean(FLAT_ENV_GROUPS_METRIC)
        if flat is not None and flat >= self.flat_env_limit:
            self._alert(step, "env_reward_flat",
                        f"{flat:.0%} of prompt groups got one env reward for all their completions (averaged over "
                        f"{self.window} logs): the env reward no longer tells the completions of a prompt apart "
                        "(they all choose the same action, or are all unparsable), so it gives no learning signal.")
        elif flat is not None:
            self._clear("env_reward_flat")
