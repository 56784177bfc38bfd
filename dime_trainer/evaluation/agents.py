"""What ``--policy`` names: a built-in policy, a language-model backend or a user policy.

* Built-ins (``dime_gym.policies``): ``noop``, ``random``, ``threshold``, ``oracle``, ``reference``
  and the degenerate ones. They act on the structured observation.
* ``hf``, ``vllm``, ``openai``: a language model through the text interface (see ``backends``).
* ``module:attribute`` or ``path/file.py:attribute``: a user policy. A class is instantiated
  (with ``--policy-kwargs``). An object with ``generate(prompts, seeds)`` is a text policy
  (one chat message list per live episode in, one answer string each out); any other callable
  is an array policy ``policy(obs, info) -> [kind, node, dest, rate_level]`` (``info`` includes
  the oracle's suggestion), optionally with ``reset(seed, episode)``.
"""

from __future__ import annotations

import dataclasses
import re

from dime_trainer.evaluation.backends import BackendConfigError, SamplingSettings, describe_user_error, load_object

LM_BACKENDS = ("hf", "vllm", "openai")


@dataclasses.dataclass
class Agent:
    """A policy ready to run, with what identifies it in the results."""

    name: str
    spec: str
    kind: str  # "builtin", "array" (user), "text" (LM backend or user text policy)
    policy: object
    protocol: dict  # what must not change on --resume
    describe: dict  # recorded, free to change (versions, devices, ...)

    @property
    def is_text(self) -> bool:
        return self.kind == "text"

    def close(self) -> None:
        close = getattr(self.policy, "close", None)
        if callable(close):
            close()


def sanitize(name: str) -> str:
    """A file-name-safe run name."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", name).strip("-.") or "run"


def sampling_from_args(args) -> SamplingSettings:
    return SamplingSettings(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, min_p=args.min_p,
                            max_new_tokens=args.max_new_tokens, enable_thinking=args.enable_thinking).validate()


def build_agent(spec: str, args) -> Agent:
    """Resolve one ``--policy`` entry (``BackendConfigError``/``ValueError`` on bad arguments)."""
    from dime_gym.policies import BUILTIN_POLICIES, is_builtin_policy, make_policy

    if is_builtin_policy(spec):
        return Agent(sanitize(args.name or spec), spec, "builtin", make_policy(spec), {"policy": spec}, {})
    if spec in LM_BACKENDS:
        return _build_backend(spec, args)
    if ":" in spec:
        return _build_user(spec, args)
    raise ValueError(f"unknown policy {spec!r}; use a built-in ({', '.join(BUILTIN_POLICIES)}, blind_t<percent>_s<scale-ups>), "
                     "a language-model backend "
                     f"({', '.join(LM_BACKENDS)}) or module:callable")


def _build_backend(spec: str, args) -> Agent:
    from dime_trainer.evaluation import backends

    sampling = sampling_from_args(args)
    if spec == "openai":
        if not args.base_url:
            raise BackendConfigError("--policy openai needs --base-url (e.g. http://localhost:8000/v1)")
        backend = backends.OpenAIBackend(args.base_url, args.model, sampling, api_key_env=args.api_key_env,
                                         timeout_s=args.timeout, retries=args.retries, backoff_s=args.backoff,
                                         concurrency=args.concurrency, standard_params_only=args.standard_params_only)
        model, adapter = backend.model, None
    elif spec == "hf":
        backend = backends.HFBackend(args.model, args.adapter, sampling, device=args.device, dtype=args.dtype)
        model, adapter = backend.base, backend.adapter
    else:
        backend = backends.VLLMBackend(args.model, args.adapter, sampling, gpu_memory_utilization=args.gpu_memory_utilization,
                                       max_model_len=args.max_model_len, tensor_parallel_size=args.tensor_parallel_size,
                                       dtype=args.dtype)
        model, adapter = backend.base, backend.adapter
    default_name = f"{spec}-{model.rstrip('/').split('/')[-1]}" + (f"-{adapter.rstrip('/').split('/')[-1]}" if adapter else "")
    protocol = {"policy": spec, "model": model, "adapter": adapter, "sampling": dataclasses.asdict(sampling)}
    if spec == "openai":
        protocol["sent_params"] = backend.describe()["sent_params"]
    elif spec == "hf":  # one sampling seed per batched call: the batch changes the answers
        protocol["batch_size"] = args.batch_size
    return Agent(sanitize(args.name or default_name), spec, "text", backend, protocol, backend.describe())


def _build_user(spec: str, args) -> Agent:
    import json

    obj = load_object(spec)
    try:
        kwargs = json.loads(args.policy_kwargs) if args.policy_kwargs else {}
    except ValueError as exc:
        raise BackendConfigError(f"--policy-kwargs is not JSON: {exc}") from None
    if not isinstance(kwargs, dict):
        raise BackendConfigError(f"--policy-kwargs must be a JSON object like '{{\"k\": 1}}', got {args.policy_kwargs!r}")
    if isinstance(obj, type):
        try:
            obj = obj(**kwargs)
        except Exception as exc:  # noqa: BLE001 - user code: wrong keyword arguments or a failing __init__
            given = f" with --policy-kwargs {json.dumps(kwargs)}" if kwargs else ""
            raise BackendConfigError(f"cannot create {spec}{given}: {describe_user_error(exc)}") from None
    elif kwargs:
        raise BackendConfigError(f"--policy-kwargs only applies to a class; {spec} is not one")
    protocol = {"policy": spec, "policy_kwargs": kwargs}
    name = sanitize(args.name or spec.rsplit(":", 1)[1])
    if callable(getattr(obj, "generate", None)):
        return Agent(name, spec, "text", obj, protocol, {"backend": "user"})
    if callable(obj):
        return Agent(name, spec, "array", obj, protocol, {"backend": "user"})
    raise BackendConfigError(f"{spec} is neither callable(obs, info) nor an object with generate(prompts, seeds)")
