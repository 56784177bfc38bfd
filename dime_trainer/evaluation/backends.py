"""Language-model backends for ``dime-eval``: a local Hugging Face model or LoRA adapter, vLLM,
and any OpenAI-compatible chat endpoint. Each is a text policy: ``generate(prompts, seeds)``
takes one chat message list per live episode and returns one :class:`Generation` per prompt,
in one call (batched generation for HF and vLLM, concurrent requests for an endpoint).

torch, transformers, peft and vllm are imported only inside the backend that needs them; the
endpoint client uses the standard library only. Construction validates everything it can
(paths, the endpoint, the model name) and raises :class:`BackendConfigError` with a message
that says what to fix; ``dime-eval`` turns it into exit code 2.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import email.utils
import http.client
import importlib
import importlib.util
import json
import math
import os
import pathlib
import random
import socket
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request


class BackendConfigError(ValueError):
    """A backend cannot start (bad path, missing package, unreachable endpoint, ...)."""


@dataclasses.dataclass
class Generation:
    """One answer, or why there is none (``error``: the request failed after its retries)."""

    text: str | None
    error: str | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None  # "stop", "length" (cut off at max_new_tokens), ...


def as_generation(output) -> Generation:
    """Accept a ``Generation`` or a plain ``str`` from a user policy; anything else (or a
    ``Generation`` whose ``text`` is neither ``str`` nor set aside by an ``error``) is a failed request."""
    if isinstance(output, Generation):
        if output.error is None and not isinstance(output.text, str):
            return Generation(text=None, error=f"policy returned a Generation whose text is {type(output.text).__name__}, not str")
        return output
    if isinstance(output, str):
        return Generation(text=output)
    return Generation(text=None, error=f"policy returned {type(output).__name__}, not str")


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
    """How answers are sampled; recorded in every result file. ``temperature`` 0 = greedy.
    Defaults follow the seed model card (T 0.6, top-p 0.95) with thinking off and 1,024 new
    tokens, as in training."""

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    max_new_tokens: int = 1024
    enable_thinking: bool = False

    def validate(self) -> SamplingSettings:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0 or not 0 <= self.min_p < 1:
            raise BackendConfigError(f"invalid sampling settings {self}: need temperature >= 0, 0 < top_p <= 1, "
                                     "top_k >= 0 (0 = off), 0 <= min_p < 1")
        if self.max_new_tokens < 1:
            raise BackendConfigError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")
        return self


def _require(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendConfigError(f"this backend needs {module!r} ({exc}); install it with: pip install -e '.[{extra}]'") from None


def adapter_config(adapter: str) -> dict:
    """The ``adapter_config.json`` of a LoRA adapter directory."""
    path = pathlib.Path(adapter) / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict):
        raise BackendConfigError(f"{path} is not a JSON object")
    return config


def resolve_model(model: str | None, adapter: str | None) -> tuple[str, str | None, str]:
    """``(base model, adapter or None, tokenizer source)``, local paths with ``~`` expanded.
    ``model`` may be a model directory, a hub id or a LoRA adapter directory (its base is read
    from ``adapter_config.json``)."""
    if not model:
        raise BackendConfigError("this backend needs --model (a local directory, a LoRA adapter directory or a hub id)")

    def looks_local(p: str) -> bool:  # a hub id is "org/name"; anything else path-like must exist
        return p.startswith((".", "/", "~")) or p.count("/") > 1 or "\\" in p

    model = os.path.expanduser(model)
    adapter = os.path.expanduser(adapter) if adapter else None
    for p in (model, adapter):
        if p and not os.path.exists(p) and looks_local(p):
            raise BackendConfigError(f"model path {p!r} does not exist")
    if adapter and not (pathlib.Path(adapter) / "adapter_config.json").exists():
        raise BackendConfigError(f"--adapter {adapter!r} is not a LoRA adapter directory (no adapter_config.json)")
    path = pathlib.Path(model)
    if adapter is None and (path / "adapter_config.json").exists() and not (path / "config.json").exists():
        adapter = model
        model = os.path.expanduser(adapter_config(adapter).get("base_model_name_or_path") or "")
        if not model:
            raise BackendConfigError(f"{path}/adapter_config.json names no base_model_name_or_path; pass --model BASE --adapter {path}")
    tokenizer = adapter if adapter and (pathlib.Path(adapter) / "tokenizer_config.json").exists() else model
    return model, adapter, tokenizer


def load_tokenizer(transformers, source: str, **kwargs):
    """The tokenizer of ``source``, checked for a chat template (before any weights are loaded)."""
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as exc:  # noqa: BLE001 - hub, IO and config errors all mean "cannot load"
        raise BackendConfigError(f"cannot load the tokenizer of {source!r}: {exc}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise BackendConfigError(f"the tokenizer of {source!r} has no chat template")
    return tokenizer


def render_prompts(tokenizer, prompts: list[list[dict]], enable_thinking: bool) -> list[str]:
    """Chat-template the prompts exactly as training does (``add_generation_prompt``)."""
    return [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True, enable_thinking=enable_thinking)
            for m in prompts]


class HFBackend:
    """A local ``transformers`` causal LM (optionally with a LoRA adapter, merged for speed);
    the live episodes' prompts are left-padded into one ``generate`` call per step. Sampling is
    seeded per call from the first request's seed (reproducible for the same batch)."""

    kind = "hf"

    def __init__(self, model: str, adapter: str | None, sampling: SamplingSettings, device: str | None = None,
                 dtype: str = "auto"):
        self.sampling = sampling.validate()
        base, self.adapter, tok_source = resolve_model(model, adapter)
        torch = _require("torch", "train")
        transformers = _require("transformers", "train")
        self.torch = torch
        self.tokenizer = load_tokenizer(transformers, tok_source, padding_side="left")
        try:
            torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
            net = transformers.AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype)
        except Exception as exc:  # noqa: BLE001 - hub, IO and config errors all mean "cannot load"
            raise BackendConfigError(f"cannot load model {base!r}: {exc}") from None
        if self.adapter:
            peft = _require("peft", "train")
            try:
                net = peft.PeftModel.from_pretrained(net, self.adapter).merge_and_unload()
            except Exception as exc:  # noqa: BLE001 - a wrong base model or a corrupt adapter
                raise BackendConfigError(f"cannot apply the adapter {self.adapter!r} to {base!r}: {exc}") from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = net.to(self.device).eval()
        self.base = base
        gen_eos = self.model.generation_config.eos_token_id
        eos = set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
        eos.add(self.tokenizer.eos_token_id)
        self.stop_ids = sorted(i for i in eos if i is not None)

    def describe(self) -> dict:
        import transformers

        return {"backend": self.kind, "model": self.base, "adapter": self.adapter, "device": self.device,
                "dtype": str(self.model.dtype).removeprefix("torch."), "torch": self.torch.__version__,
                "transformers": transformers.__version__}

    def generate(self, prompts: list[list[dict]], seeds: list[int]) -> list[Generation]:
        torch = self.torch
        s = self.sampling
        texts = render_prompts(self.tokenizer, prompts, s.enable_thinking)
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        kwargs = dict(max_new_tokens=s.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.stop_ids)
        if s.temperature > 0:
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k or None, min_p=s.min_p or None)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        torch.manual_seed(seeds[0] if seeds else 0)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        results = []
        for row in new:
            n = next((i + 1 for i, tok in enumerate(row) if tok in self.stop_ids), None)
            tokens = row[:n] if n else row
            finish = "stop" if n else "length"
            results.append(Generation(self.tokenizer.decode(tokens, skip_special_tokens=True), None, len(tokens), finish))
        return results


class VLLMBackend:
    """vLLM offline inference (CUDA): the prompts are rendered with the model's chat template and
    sent in one ``LLM.generate`` call per step, each with its own sampling seed (results do not
    depend on batching). A LoRA adapter is served with ``enable_lora``."""

    kind = "vllm"

    def __init__(self, model: str, adapter: str | None, sampling: SamplingSettings, gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None, tensor_parallel_size: int = 1, dtype: str = "auto"):
        self.sampling = sampling.validate()
        self.base, self.adapter, tok_source = resolve_model(model, adapter)
        vllm = _require("vllm", "vllm")
        transformers = _require("transformers", "train")
        self.vllm = vllm
        self.tokenizer = load_tokenizer(transformers, tok_source)
        kwargs = dict(model=self.base, tokenizer=tok_source, gpu_memory_utilization=gpu_memory_utilization,
                      tensor_parallel_size=tensor_parallel_size, dtype=dtype)
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        self.lora_request = None
        if self.adapter:
            kwargs.update(enable_lora=True, max_lora_rank=vllm_lora_rank(adapter_config(self.adapter).get("r", 16)))
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest("dime-adapter", 1, self.adapter)
        try:
            self.llm = vllm.LLM(**kwargs)
        except Exception as exc:  # noqa: BLE001 - vLLM raises many types for a bad model or device
            raise BackendConfigError(f"vLLM could not load {self.base!r}: {exc}") from None
        model_config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        self.dtype = str(getattr(model_config, "dtype", dtype)).removeprefix("torch.")  # what "auto" became

    def describe(self) -> dict:
        return {"backend": self.kind, "model": self.base, "adapter": self.adapter, "dtype": self.dtype,
                "vllm": self.vllm.__version__}

    def generate(self, prompts: list[list[dict]], seeds: list[int]) -> list[Generation]:
        s = self.sampling
        params = [self.vllm.SamplingParams(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k or -1, min_p=s.min_p,
                                           max_tokens=s.max_new_tokens, seed=seed) for seed in seeds]
        texts = render_prompts(self.tokenizer, prompts, s.enable_thinking)
        # token ids, not text: the template already holds any BOS, so nothing is added twice
        ids = [{"prompt_token_ids": self.tokenizer(t, add_special_tokens=False)["input_ids"]} for t in texts]
        outputs = self.llm.generate(ids, params, use_tqdm=False, lora_request=self.lora_request)
        return [Generation(o.outputs[0].text, None, len(o.outputs[0].token_ids), o.outputs[0].finish_reason) for o in outputs]


VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def vllm_lora_rank(rank) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds an adapter of rank ``rank``."""
    try:
        rank = int(rank)
    except (TypeError, ValueError):
        raise BackendConfigError(f"the adapter's rank r={rank!r} is not an integer") from None
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise BackendConfigError(f"LoRA rank {rank} exceeds vLLM's largest max_lora_rank ({VLLM_LORA_RANKS[-1]}); use --policy hf")


RETRYABLE_HTTP = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0  # the longest Retry-After (HTTP 429/503) that is honoured


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def retry_delay(attempt: int, backoff_s: float, retry_after: str | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): ``backoff_s`` doubled per retry with
    +-50 % jitter (so concurrent requests do not retry in lockstep), or the server's
    ``Retry-After`` when that is longer, capped at ``MAX_RETRY_AFTER_S``."""
    delay = backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
    asked = retry_after_seconds(retry_after)
    return delay if asked is None else max(delay, min(asked, MAX_RETRY_AFTER_S))


def parse_chat_completion(reply) -> Generation:
    """The answer in a ``/chat/completions`` reply. ``ValueError`` says what is missing when the
    reply lacks ``choices[0].message`` with string (or null) ``content``; optional fields of
    the wrong type (``usage``, ``finish_reason``, reasoning) are ignored."""
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("no choices[0] object")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ValueError(f"choices[0].message is {type(message).__name__}, not an object")
    content = message.get("content")
    if not isinstance(content, (str, type(None))):
        raise ValueError(f"message content is {type(content).__name__}, not a string")
    thinking = message.get("reasoning_content") or message.get("reasoning")
    text = f"<think>{thinking}</think>\n{content or ''}" if thinking and isinstance(thinking, str) else content or ""
    usage = reply.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    finish = choice.get("finish_reason")
    return Generation(text, None, tokens if type(tokens) is int else None, finish if isinstance(finish, str) else None)


def _error_body(exc: urllib.error.HTTPError) -> str:
    """The start of an HTTP error's body ("" when it cannot be read)."""
    try:
        return exc.read(300).decode("utf-8", "replace").strip() if exc.fp else ""
    except (OSError, http.client.HTTPException, ValueError):
        return ""


MAX_REPLY_BYTES = 16 * 2**20  # a chat completion (or a /models listing) larger than this is refused unread


def loads_reply(body: bytes):
    """The JSON value of an endpoint's reply; ``ValueError`` for anything that is not JSON,
    absurd nesting included (``json`` raises ``RecursionError`` for that)."""
    try:
        return json.loads(body.decode("utf-8", "replace"))
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to be a reply") from None


def _read_reply(response) -> bytes:
    """The body of ``response``, refusing one over ``MAX_REPLY_BYTES`` or shorter than its
    ``Content-Length`` (``IncompleteRead``)."""
    chunks, size = [], 0
    while chunk := response.read(min(2**16, MAX_REPLY_BYTES + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise ValueError(f"the reply is larger than {MAX_REPLY_BYTES} bytes")
    body = b"".join(chunks)
    missing = getattr(response, "length", None)  # what the declared Content-Length still expects
    if missing:
        raise http.client.IncompleteRead(body, missing)
    return body


def _origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a URL, the default port filled in (what "same origin" compares)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: never the same origin
        return scheme, "", -1
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


class CrossOriginRedirect(urllib.error.HTTPError):
    """The endpoint redirected to another origin (scheme, host or port): not followed, so the
    API key in ``Authorization`` never leaves the origin of ``--base-url``."""


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only within the request's origin; refuse any other with ``CrossOriginRedirect``."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if _origin(newurl) != _origin(req.full_url):
            shown = newurl if len(newurl) <= 200 else newurl[:200] + "..."
            raise CrossOriginRedirect(req.full_url, code, f"refused a redirect to another origin ({shown}): the API key is "
                                      "only sent to the --base-url origin; point --base-url at the final address", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Deadline:
    """A wall-clock limit on one HTTP attempt, from connecting to the last byte of the reply.

    Socket timeouts bound each read, not the whole: a server that trickles a byte a second
    would hold a request forever. At the deadline a timer shuts the attempt's sockets down,
    so a blocked read returns at once and the attempt fails; ``expired`` tells why.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _ATTEMPT.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        _ATTEMPT.deadline = None

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def error(self) -> TimeoutError:
        return TimeoutError(f"no complete reply within the {self.seconds:g} s deadline")


_ATTEMPT = threading.local()  # the running attempt's _Deadline (each attempt runs in one thread)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


def _watched(connection_class: type) -> type:
    """``connection_class`` whose sockets are handed to the running attempt's ``_Deadline``."""

    class Watched(connection_class):
        def connect(self):
            super().connect()
            deadline = getattr(_ATTEMPT, "deadline", None)
            if deadline is not None:
                deadline.watch(self.sock)

    Watched.__name__ = Watched.__qualname__ = f"Watched{connection_class.__name__}"
    return Watched


_WATCHED = {cls: _watched(cls) for cls in (http.client.HTTPConnection, http.client.HTTPSConnection)}


def _watched_do_open(self, http_class, req, **kwargs):
    return urllib.request.AbstractHTTPHandler.do_open(self, _WATCHED.get(http_class, http_class), req, **kwargs)


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    do_open = _watched_do_open


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    do_open = _watched_do_open


def build_opener() -> urllib.request.OpenerDirector:
    """``urllib``'s opener for endpoints: same-origin redirects only, sockets under a ``_Deadline``."""
    return urllib.request.build_opener(_SameOriginRedirects, _WatchedHTTPHandler, _WatchedHTTPSHandler)


def _is_client_error(error: str | None) -> bool:
    """An HTTP 4xx that retrying cannot fix (the request itself is wrong), or a refused redirect."""
    if error and error.startswith("refused a redirect"):
        return True
    if not error or not error.startswith("HTTP 4"):
        return False
    return int(error[5:8]) not in RETRYABLE_HTTP


class OpenAIBackend:
    """Any OpenAI-compatible ``/chat/completions`` endpoint (vLLM, SGLang, llama.cpp, hosted
    APIs) through ``urllib``. Requests of one step run concurrently; each has a timeout and up
    to ``retries`` retries (``retry_delay``: exponential backoff with jitter, or ``Retry-After``)
    on timeouts, connection errors, broken or malformed replies and HTTP 408/409/425/429/5xx.
    ``timeout_s`` is a wall-clock deadline per attempt, from connecting to the reply's last
    byte (``_Deadline``), not only per socket read. A request that still fails becomes a
    ``Generation`` with ``error`` set (a failed step), never an exception. The API key is read
    from the environment variable ``api_key_env``, never recorded, and never sent to another
    origin: a redirect off the ``base_url`` origin is refused (``CrossOriginRedirect``)."""

    kind = "openai"

    def __init__(self, base_url: str, model: str | None, sampling: SamplingSettings, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 120.0, retries: int = 3, backoff_s: float = 1.0, concurrency: int = 32,
                 standard_params_only: bool = False, check: bool = True):
        self.sampling = sampling.validate()
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise BackendConfigError(f"--base-url must be an http(s) URL such as http://localhost:8000/v1, got {base_url!r}")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0 or concurrency < 1:
            raise BackendConfigError("need --timeout > 0, --retries >= 0, --backoff >= 0 and --concurrency >= 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.api_key_env = api_key_env
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.standard_params_only = standard_params_only
        self.answered = False  # whether any request has succeeded yet
        self.opener = build_opener()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="dime-eval-http")
        if check:
            self._check()
        if not self.model:
            raise BackendConfigError("--model is required for an endpoint that does not list exactly one model")

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _check(self) -> None:
        """Fail fast: the endpoint answers, accepts the key and (if it lists models) serves the model."""
        request = urllib.request.Request(f"{self.base_url}/models", headers=self._headers())
        timeout = min(self.timeout_s, 10.0)
        with _Deadline(timeout) as deadline:
            try:
                with self.opener.open(request, timeout=timeout) as response:
                    body = _read_reply(response)
            except CrossOriginRedirect as exc:
                raise BackendConfigError(f"{self.base_url}/models: {exc.reason}") from None
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):
                    raise BackendConfigError(f"{self.base_url} rejected the API key (HTTP {exc.code}); set ${self.api_key_env}") from None
                return  # reachable; some servers do not implement /models
            except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError and timeouts are OSErrors
                reason = deadline.error() if deadline.expired else getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
                raise BackendConfigError(f"cannot reach the endpoint {self.base_url}: {reason}") from None
        try:
            listed = loads_reply(body)
        except ValueError as exc:
            start = body[:60].decode("utf-8", "replace").strip()
            raise BackendConfigError(f"{self.base_url}/models answered, but not with JSON ({start!r}: {exc}); --base-url should "
                                     "be the API root, e.g. http://localhost:8000/v1") from None
        data = listed.get("data") if isinstance(listed, dict) else None
        # only string ids name a model; anything else in the listing is ignored
        ids = [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)] if isinstance(data, list) else []
        if not self.model and len(ids) == 1:
            self.model = ids[0]
        elif self.model and ids and self.model not in ids:
            shown = ", ".join(repr(i[:100]) for i in ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
            raise BackendConfigError(f"the endpoint does not serve model {self.model!r}; it lists: {shown}")

    def describe(self) -> dict:
        return {"backend": self.kind, "base_url": self.base_url, "model": self.model,
                "sent_params": "openai-standard" if self.standard_params_only else "openai+vllm"}

    def _body(self, messages: list[dict], seed: int) -> bytes:
        s = self.sampling
        body = {"model": self.model, "messages": messages, "max_tokens": s.max_new_tokens, "temperature": s.temperature,
                "top_p": s.top_p, "seed": seed}
        if self.standard_params_only:  # hosted APIs reject unknown fields; the server's defaults apply
            return json.dumps(body).encode("utf-8")
        body["chat_template_kwargs"] = {"enable_thinking": s.enable_thinking}
        if s.top_k:
            body["top_k"] = s.top_k
        if s.min_p:
            body["min_p"] = s.min_p
        return json.dumps(body).encode("utf-8")

    def _once(self, data: bytes) -> Generation:
        """One attempt within its ``_Deadline``; raises what went wrong (an ``HTTPError`` carries
        its body's start as ``body_text``, read within the deadline)."""
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=data, headers=self._headers(), method="POST")
        with _Deadline(self.timeout_s) as deadline:
            try:
                with self.opener.open(request, timeout=self.timeout_s) as response:
                    body = _read_reply(response)
            except CrossOriginRedirect:
                raise
            except urllib.error.HTTPError as exc:
                exc.body_text = _error_body(exc)
                if deadline.expired:
                    raise deadline.error() from None
                raise
            except (OSError, http.client.HTTPException, ValueError):
                if deadline.expired:
                    raise deadline.error() from None
                raise
            if deadline.expired:  # a short read at the deadline may still look complete
                raise deadline.error()
        return parse_chat_completion(loads_reply(body))

    def _request(self, messages: list[dict], seed: int) -> Generation:
        """One request with its retries; every failure ends as a ``Generation`` with ``error``."""
        data = self._body(messages, seed)
        error, retry_after = "no attempt made", None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(retry_delay(attempt, self.backoff_s, retry_after))
            retry_after = None
            try:
                return self._once(data)
            except CrossOriginRedirect as exc:
                error = str(exc.reason)
                break
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}: {getattr(exc, 'body_text', '')}"
                if exc.code not in RETRYABLE_HTTP:
                    break
                if exc.code in (429, 503) and exc.headers is not None:
                    retry_after = exc.headers.get("Retry-After")
            except TimeoutError as exc:  # socket.timeout is TimeoutError; so is the _Deadline's
                error = f"timeout after {self.timeout_s:g} s ({exc})"
            except OSError as exc:  # URLError, refused or reset connections
                error = f"connection error: {getattr(exc, 'reason', exc)}"
            except http.client.HTTPException as exc:  # IncompleteRead, BadStatusLine, LineTooLong, ...
                error = f"broken HTTP reply: {type(exc).__name__}: {exc}"
            except ValueError as exc:  # not JSON, or not a chat completion
                error = f"malformed reply: {exc}"
        return Generation(None, f"{error} (after {attempt + 1} attempt(s))")

    def generate(self, prompts: list[list[dict]], seeds: list[int]) -> list[Generation]:
        results = list(self.pool.map(self._request, prompts, seeds))
        if any(g.error is None for g in results):
            self.answered = True
        elif not self.answered and all(_is_client_error(g.error) for g in results):
            # the endpoint refuses the request itself (bad model name, unsupported field, redirect): fail fast
            hint = "" if self.standard_params_only or "redirect" in results[0].error else " (a hosted API may need --standard-params-only)"
            raise BackendConfigError(f"the endpoint rejected every request: {results[0].error}{hint}")
        return results

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def load_object(spec: str):
    """The object named by ``module:attribute`` (or ``path/to/file.py:attribute``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise BackendConfigError(f"a user policy is given as module:callable, got {spec!r}")
    path = pathlib.Path(module_name).expanduser()
    if module_name.endswith(".py") and not path.exists():
        raise BackendConfigError(f"policy file {module_name!r} does not exist")
    try:
        if module_name.endswith(".py"):
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - user code may raise anything on import
        raise BackendConfigError(f"cannot import {module_name!r} for policy {spec!r}: {describe_user_error(exc)}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BackendConfigError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def describe_user_error(exc: BaseException) -> str:
    """``Type: message (file:line)`` of an exception from user code, with the user's line that
    raised it (none when it was raised at the call, e.g. a wrong keyword argument)."""
    here = pathlib.Path(__file__).parent
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<") and pathlib.Path(f.filename).parent != here]
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames and not isinstance(exc, ImportError) else ""
    return f"{type(exc).__name__}: {exc}{where}"
