"""``dime-eval``: the DIME benchmark for built-in policies, user policies and language models.

Modules: ``runners`` (episodes, lockstep batching for language models), ``episodes`` (per-step
traces, episode metrics, the success rule), ``summary`` (per-task metrics, the DIME index,
comparisons), ``stats`` (intervals, permutation tests), ``results`` (resumable JSON Lines),
``backends`` (Hugging Face, vLLM, OpenAI-compatible endpoints), ``agents`` (what ``--policy``
names), ``report`` (Markdown), ``plots`` (matplotlib, optional), ``commands``/``cli`` (the
command line). Nothing here imports torch, transformers or vllm until a backend that needs them
is built.
"""

from __future__ import annotations

from dime_trainer.evaluation.runners import Job, builtin_scores, make_jobs, run_array_policy, run_text_policy
from dime_trainer.evaluation.summary import compare, summarize

__all__ = ["Job", "builtin_scores", "compare", "make_jobs", "run_array_policy", "run_text_policy", "summarize"]
