"""dime-eval's language-model backends: a tiny Qwen3 through Hugging Face on CPU, and an
OpenAI-compatible endpoint played by a stub server on 127.0.0.1 that answers well, badly,
with errors and not at all."""

from __future__ import annotations

import http.server
import importlib.util
import json
import threading
import time

import pytest

from dime_gym.text.prompts import parse_state
from dime_trainer.evaluation.cli import main
from dime_trainer.evaluation.results import load_episodes

GOOD = '<reasoning>Rule 10: healthy.</reasoning>\n<action>{"command": "no_op"}</action>'


# --- Hugging Face -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("transformers")
    import torch

    torch.set_num_threads(1)
    from dime_trainer.tiny_model import save_tiny_qwen3

    return save_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.mark.slow  # builds and runs a tiny Qwen3
def test_hf_backend__runs_end_to_end_on_cpu(tiny_model, tmp_path):
    argv = ["--policy", "hf", "--model", str(tiny_model), "--tasks", "retry_storm,zombie_node", "--seeds", "1",
            "--max-new-tokens", "6", "--device", "cpu", "--out", str(tmp_path), "--name", "tiny", "--quiet"]
    assert main(argv) == 0
    header, episodes = load_episodes(tmp_path / "tiny.jsonl")
    assert header["protocol"]["sampling"] == {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0,
                                              "max_new_tokens": 6, "enable_thinking": False}
    assert header["protocol"]["batch_size"] == 64 and header["protocol"]["sampling_seed"] == 0
    assert header["backend"]["backend"] == "hf" and header["backend"]["dtype"] == "float32"
    assert header["system_prompt"].startswith("You are an autonomous SRE agent")
    assert [(e["task"], e["steps"]) for e in episodes] == [("retry_storm", 40), ("zombie_node", 40)]
    trace = episodes[0]["trace"]
    assert len(trace["answer"]) == 40 and all(isinstance(a, str) for a in trace["answer"])
    assert all(1 <= n <= 6 for n in trace["completion_tokens"])
    # answers cut off at 6 tokens hold no command: unparsable answers are invalid actions, never a crash
    assert episodes[0]["unparsable_rate"] > 0.5 and episodes[0]["actions"]["unparsable"] == trace["status"].count("unparsable")
    summary = json.loads((tmp_path / "tiny.summary.json").read_text())
    assert summary["tasks"]["zombie_node"]["completion_tokens_mean"] <= 6


@pytest.mark.slow  # builds and runs a tiny Qwen3
def test_hf_backend__loads_a_lora_adapter_directory(tiny_model, tmp_path):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    adapter = tmp_path / "adapter"
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    lora.save_pretrained(adapter)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model)
    argv = ["--policy", "hf", "--model", str(adapter), "--tasks", "retry_storm", "--seeds", "1", "--max-steps", "3",
            "--max-new-tokens", "4", "--temperature", "0", "--out", str(tmp_path / "out"), "--name", "lora", "--quiet"]
    assert main(argv) == 0
    header, episodes = load_episodes(tmp_path / "out" / "lora.jsonl")
    assert header["protocol"]["adapter"] == str(adapter) and header["protocol"]["model"] == str(tiny_model)
    assert episodes[0]["steps"] == 3


@pytest.mark.slow  # builds and runs a tiny Qwen3
def test_hf_backend__batched_greedy_answers_equal_one_prompt_at_a_time(tiny_model):
    from dime_gym.env import DimeEnv
    from dime_gym.text import SYSTEM_PROMPT
    from dime_gym.text.answers import parse_answer
    from dime_gym.text.env import TextEnv
    from dime_trainer.evaluation.backends import HFBackend, SamplingSettings

    prompts = []
    # prompts of three lengths; the tiny model's format is imprinted on a few oracle states only,
    # so these are states where it answers well-formed (many no_op-driven late states it does not)
    for task, seed, steps in (("retry_storm", 0, 0), ("node_failure", 0, 12), ("node_failure", 3, 30)):
        env = TextEnv(DimeEnv(), system_prompt=SYSTEM_PROMPT)
        _, info = env.reset(seed=seed, options={"task": task})
        for _ in range(steps):
            _, _, _, _, info = env.step(GOOD)
        prompts.append(info["messages"])
    prompts.append([{"role": "system", "content": "You are an SRE."}, prompts[1][1]])  # a far shorter prompt: padding
    backend = HFBackend(str(tiny_model), None, SamplingSettings(temperature=0, max_new_tokens=40), device="cpu")
    batched = backend.generate(prompts, [0, 1, 2, 3])
    alone = [backend.generate([p], [s])[0] for p, s in zip(prompts, [0, 1, 2, 3], strict=True)]
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [g.completion_tokens for g in batched] == [g.completion_tokens for g in alone]
    assert all(g.finish_reason == "stop" and parse_answer(g.text).ok for g in batched)  # the imprinted format


@pytest.mark.slow  # builds and runs a tiny Qwen3
def test_hf_backend__a_tokenizer_without_chat_template_fails_before_the_weights_load(tiny_model, tmp_path, capsys):
    model = tmp_path / "no-template"
    model.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):  # no weights, no chat_template.jinja
        (model / name).write_bytes((tiny_model / name).read_bytes())
    assert main(["--policy", "hf", "--model", str(model), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "has no chat template" in capsys.readouterr().err  # not "cannot load model": no weights were needed


def test_resolve_model__expands_the_home_directory(tmp_path, monkeypatch):
    from dime_trainer.evaluation.backends import resolve_model

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "base").mkdir()
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "~/base", "r": 8}))
    home = str(tmp_path)
    assert resolve_model("~/adapter", None) == (f"{home}/base", f"{home}/adapter", f"{home}/base")
    assert resolve_model("~/base", "~/adapter") == (f"{home}/base", f"{home}/adapter", f"{home}/base")
    assert resolve_model("Qwen/Qwen3-8B", None) == ("Qwen/Qwen3-8B", None, "Qwen/Qwen3-8B")  # a hub id is left alone


@pytest.mark.parametrize(("rank", "max_lora_rank"), [(1, 8), (8, 8), (12, 16), (64, 64), (300, 320), (512, 512)])
def test_vllm_lora_rank__rounds_up_to_a_rank_vllm_supports(rank, max_lora_rank):
    from dime_trainer.evaluation.backends import vllm_lora_rank

    assert vllm_lora_rank(rank) == max_lora_rank


def test_vllm_lora_rank__too_large_a_rank_is_a_config_error():
    from dime_trainer.evaluation.backends import BackendConfigError, vllm_lora_rank

    with pytest.raises(BackendConfigError, match="exceeds"):
        vllm_lora_rank(1024)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_vllm_backend__without_vllm_is_a_clear_usage_error(tmp_path, capsys):
    assert main(["--policy", "vllm", "--model", str(tmp_path), "--out", str(tmp_path), "--quiet"]) == 2
    assert "pip install -e '.[vllm]'" in capsys.readouterr().err


# --- OpenAI-compatible endpoint -----------------------------------------------------------------
class StubEndpoint(http.server.ThreadingHTTPServer):
    """An OpenAI-compatible chat server. In mode "mixed" its answer depends on the step in the
    prompt: step % 5 == 0 a clean answer, 1 prose without a command, 2 an HTTP 500 on the first
    attempt (then a clean answer), 3 no answer within the client's timeout, 4 thinking + a bare
    command. Other modes answer every request the same way (see ``StubHandler.do_POST``)."""

    daemon_threads = True

    def __init__(self, mode: str = "mixed"):
        super().__init__(("127.0.0.1", 0), StubHandler)
        self.mode = mode
        self.redirect_to = ""  # where the redirect modes send the client
        self.requests: list[dict] = []
        self.headers_seen: list[dict] = []
        self.attempts: dict[tuple, int] = {}
        self.attempt_times: dict[tuple, list[float]] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class StubHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status: int, body, headers: dict | None = None, declared_length: int | None = None) -> None:
        """Send ``body`` (JSON-encoded unless bytes); a ``declared_length`` longer than the body
        makes a truncated reply."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(declared_length or len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        with self.server.lock:
            self.server.headers_seen.append(dict(self.headers))
        if self.path.endswith("/models"):
            if self.server.mode == "redirect_models":  # to another origin (HTTP 307 keeps the headers)
                return self.reply(307, {}, headers={"Location": f"{self.server.redirect_to}/models"})
            if self.server.mode == "deep_models":
                return self.reply(200, b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
            if self.server.mode == "models_bad_id":
                return self.reply(200, {"data": [{"id": {"name": "stub-model"}}]})
            if self.server.mode == "bad_key":
                return self.reply(401, {"error": "invalid key"})
            if self.server.mode == "html_models":
                return self.reply(200, b"<!doctype html><html><body>chat UI</body></html>")
            return self.reply(200, {"data": [{"id": "stub-model"}]})
        return self.reply(404, {})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        step = parse_state(body["messages"][1]["content"])["step"]
        key = (body["seed"],)
        with self.server.lock:
            self.server.requests.append(body)
            self.server.headers_seen.append(dict(self.headers))
            attempt = self.server.attempts[key] = self.server.attempts.get(key, 0) + 1
            self.server.attempt_times.setdefault(key, []).append(time.monotonic())
        mode = self.server.mode
        if mode == "redirect_post":  # urllib would re-send the request (as a GET) with every header
            return self.reply(302, {}, headers={"Location": f"{self.server.redirect_to}/chat/completions"})
        if mode == "deep_json":
            return self.reply(200, b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        if mode == "trickle":  # a valid reply, one byte every 0.05 s: each read is quick, the whole takes ~10 s
            data = json.dumps({"choices": [{"message": {"content": GOOD}, "finish_reason": "stop"}]}).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return None
        if mode == "down":
            return self.reply(503, {"error": "overloaded"})
        if mode == "reject":
            return self.reply(400, {"error": "unknown field chat_template_kwargs"})
        if mode == "truncated":  # the connection closes before the declared length: IncompleteRead
            return self.reply(200, b'{"choices": [{"mess', declared_length=500)
        if mode == "bad_status":  # not HTTP at all: BadStatusLine
            self.wfile.write(b"HELLO THERE\r\n\r\n")
            return None
        if mode == "invalid_json":
            return self.reply(200, b"<html>502 Bad Gateway</html>")
        if mode == "null_message":
            return self.reply(200, {"choices": [{"message": None, "finish_reason": "stop"}]})
        if mode == "bad_usage":  # a good answer with nonsense in the optional fields
            return self.reply(200, {"choices": [{"message": {"content": GOOD, "reasoning_content": 3}, "finish_reason": 7}],
                                    "usage": "lots"})
        if mode == "rate_limited" and attempt == 1:
            return self.reply(429, {"error": "slow down"}, headers={"Retry-After": "1"})
        if mode == "rate_limited":
            return self.reply(200, {"choices": [{"message": {"content": GOOD}, "finish_reason": "stop"}]})
        kind = step % 5
        if kind == 2 and attempt == 1:
            return self.reply(500, {"error": "transient"})
        if kind == 3:
            time.sleep(0.6)  # longer than the client's timeout
            return self.reply(200, {"choices": [{"message": {"content": GOOD}, "finish_reason": "stop"}]})
        message = {"content": GOOD}
        if kind == 1:
            message = {"content": "The cluster looks fine, I would keep watching it."}
        elif kind == 4:
            message = {"reasoning_content": "p99 is fine.", "content": "kubectl throttle ingress --rate=0.9"}
        return self.reply(200, {"choices": [{"message": message, "finish_reason": "stop"}], "usage": {"completion_tokens": 7}})


@pytest.fixture
def endpoint(request):
    server = StubEndpoint(getattr(request, "param", "mixed"))
    yield server
    server.shutdown()
    server.server_close()


def openai_argv(server, out, *extra):
    return ["--policy", "openai", "--base-url", server.url, "--tasks", "retry_storm", "--seed-list", "0,1",
            "--max-steps", "10", "--timeout", "0.25", "--retries", "1", "--backoff", "0.01", "--out", str(out),
            "--name", "stub", "--quiet", *extra]


def test_openai_backend__retries_records_failures_and_keeps_going(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DIME_TEST_KEY", "secret-123")
    assert main(openai_argv(endpoint, tmp_path, "--api-key-env", "DIME_TEST_KEY", "--temperature", "0.3")) == 0
    header, episodes = load_episodes(tmp_path / "stub.jsonl")
    assert header["protocol"]["model"] == "stub-model"  # the only model the endpoint lists
    assert "secret-123" not in (tmp_path / "stub.jsonl").read_text()
    assert all(h.get("Authorization") == "Bearer secret-123" for h in endpoint.headers_seen)
    sent = endpoint.requests[0]
    assert (sent["temperature"], sent["max_tokens"], sent["chat_template_kwargs"]) == (0.3, 1024, {"enable_thinking": False})
    for ep in episodes:
        trace = ep["trace"]
        assert ep["steps"] == 10
        assert [s % 5 for s in range(10) if trace["status"][s] == "backend_error"] == [3, 3]
        assert all("timeout" in trace["backend_error"][s] for s in (3, 8))
        assert trace["status"][1] == "unparsable" and trace["parse_error"][1] == "no_command"
        assert trace["status"][2] == "applied" and trace["answer"][2] == GOOD  # served on the retry
        assert trace["answer"][4].startswith("<think>p99 is fine.</think>") and trace["command"][4] == "kubectl throttle ingress --rate=0.90"
        assert ep["actions"]["backend_error"] == 2 and ep["backend_error_rate"] == 0.2
    summary = json.loads((tmp_path / "stub.summary.json").read_text())
    assert summary["tasks"]["retry_storm"]["backend_error_rate"] == 0.2
    assert "failed steps" in (tmp_path / "stub.md").read_text()


@pytest.mark.parametrize("endpoint", ["down"], indirect=True)
def test_openai_backend__a_dead_endpoint_stops_the_run_resumably(endpoint, tmp_path, capsys):
    assert main(openai_argv(endpoint, tmp_path, "--abort-after-failed-steps", "3")) == 1
    assert "--resume" in capsys.readouterr().err
    header, episodes = load_episodes(tmp_path / "stub.jsonl")
    assert header is not None and episodes == []
    assert len(endpoint.requests) == 3 * 2 * 2  # 3 steps x 2 episodes x (1 try + 1 retry)


@pytest.mark.parametrize(("endpoint", "message"), [("reject", "rejected every request"), ("bad_key", "API key")],
                         indirect=["endpoint"])
def test_openai_backend__a_refusing_endpoint_fails_fast(endpoint, tmp_path, capsys, message):
    assert main(openai_argv(endpoint, tmp_path)) == 2
    assert message in capsys.readouterr().err


def test_openai_backend__unknown_model_fails_fast(endpoint, tmp_path, capsys):
    assert main(openai_argv(endpoint, tmp_path, "--model", "gpt-nonexistent")) == 2
    assert "does not serve model 'gpt-nonexistent'" in capsys.readouterr().err


@pytest.mark.parametrize(("endpoint", "error"), [
    ("truncated", "broken HTTP reply: IncompleteRead"),
    ("bad_status", "broken HTTP reply: BadStatusLine"),
    ("invalid_json", "malformed reply: Expecting value"),
    ("null_message", "malformed reply: choices[0].message is NoneType"),
], indirect=["endpoint"])
def test_openai_backend__broken_replies_are_failed_steps_not_a_crash(endpoint, tmp_path, error):
    assert main(openai_argv(endpoint, tmp_path, "--max-steps", "3")) == 0
    _, episodes = load_episodes(tmp_path / "stub.jsonl")
    assert len(episodes) == 2
    for ep in episodes:
        assert ep["trace"]["status"] == ["backend_error"] * 3 and ep["backend_error_rate"] == 1.0
        assert all(e.startswith(error) and e.endswith("(after 2 attempt(s))") for e in ep["trace"]["backend_error"])
    assert len(endpoint.requests) == 2 * 3 * 2  # every request was retried once


@pytest.mark.parametrize("endpoint", ["bad_usage"], indirect=True)
def test_openai_backend__ignores_nonsense_in_optional_fields(endpoint, tmp_path):
    assert main(openai_argv(endpoint, tmp_path, "--max-steps", "2")) == 0
    _, episodes = load_episodes(tmp_path / "stub.jsonl")
    for ep in episodes:
        trace = ep["trace"]
        assert trace["status"] == ["applied"] * 2 and trace["answer"] == [GOOD] * 2
        assert trace["completion_tokens"] == [None] * 2 and trace["finish_reason"] == [None] * 2


@pytest.mark.parametrize("endpoint", ["rate_limited"], indirect=True)
def test_openai_backend__honours_retry_after_on_http_429(endpoint, tmp_path):
    assert main(openai_argv(endpoint, tmp_path, "--max-steps", "1")) == 0  # --backoff 0.01 alone would retry at once
    _, episodes = load_episodes(tmp_path / "stub.jsonl")
    assert all(ep["trace"]["status"] == ["applied"] for ep in episodes)
    gaps = [times[1] - times[0] for times in endpoint.attempt_times.values()]
    assert len(gaps) == 2 and all(0.9 <= gap < 5 for gap in gaps)


def test_retry_delay__jittered_backoff_and_bounded_retry_after(monkeypatch):
    from dime_trainer.evaluation import backends

    delays = [backends.retry_delay(3, 1.0) for _ in range(200)]
    assert 2.0 <= min(delays) < max(delays) <= 6.0 and len(set(delays)) > 100  # 4 s +- 50 %, spread out
    monkeypatch.setattr(backends.random, "uniform", lambda lo, hi: 1.0)
    assert backends.retry_delay(1, 0.5, "3") == 3.0  # the server asks for longer: wait that long
    assert backends.retry_delay(4, 1.0, "3") == 8.0  # the backoff is longer already
    assert backends.retry_delay(1, 0.5, "86400") == backends.MAX_RETRY_AFTER_S
    assert backends.retry_delay(1, 0.5, "soon") == 0.5 and backends.retry_delay(1, 0.5, "nan") == 0.5
    assert backends.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert backends.retry_after_seconds(None) is None


@pytest.mark.parametrize("endpoint", ["html_models"], indirect=True)
def test_openai_backend__a_models_page_that_is_not_json_is_named_as_such(endpoint, tmp_path, capsys):
    assert main(openai_argv(endpoint, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "answered, but not with JSON" in err and "<!doctype html>" in err and "cannot reach" not in err


def test_text_policy__a_failing_backend_is_abandoned_after_the_wall_clock_budget():
    from dime_gym.text import SYSTEM_PROMPT
    from dime_trainer.evaluation.backends import Generation
    from dime_trainer.evaluation.runners import BackendUnavailable, Job, run_text_policy

    class TimingOut:  # every request fails, slowly, like a dead endpoint behind a long timeout
        calls = 0

        def generate(self, prompts, seeds):
            self.calls += 1
            time.sleep(0.05)
            return [Generation(None, "timeout after 120 s") for _ in prompts]

    policy = TimingOut()
    with pytest.raises(BackendUnavailable, match="2 consecutive steps"):
        run_text_policy(policy, [Job("retry_storm", 0)], lambda r: None, system_prompt=SYSTEM_PROMPT, batch_size=1,
                        abort_after_failed_steps=1000, abort_after_failed_seconds=0.08)
    assert policy.calls == 2


class FakeVLLM:
    """Stands in for the ``vllm`` package (CUDA only): records what the backend asks of it."""

    __version__ = "fake"

    def __init__(self):
        self.engines = []
        fake = self

        class SamplingParams:
            def __init__(self, **kwargs):
                self.__dict__.update(kwargs)

        class LLM:
            def __init__(self, **kwargs):
                self.kwargs, self.calls = kwargs, []
                fake.engines.append(self)

            def generate(self, prompts, params, use_tqdm=True, lora_request=None):
                self.calls.append((prompts, params, lora_request))
                out = type("Completion", (), {"text": GOOD, "token_ids": [1, 2, 3], "finish_reason": "stop"})
                return [type("RequestOutput", (), {"outputs": [out]}) for _ in prompts]

        class LoRARequest:
            def __init__(self, name, int_id, path):
                self.name, self.int_id, self.path = name, int_id, path

        self.SamplingParams, self.LLM, self.LoRARequest = SamplingParams, LLM, LoRARequest


@pytest.fixture
def fake_vllm(monkeypatch):
    """``FakeVLLM`` installed as the ``vllm`` package."""
    import sys
    import types

    fake = FakeVLLM()
    lora_module = types.ModuleType("vllm.lora.request")
    lora_module.LoRARequest = fake.LoRARequest
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora_module)
    return fake


def test_vllm_backend__one_generate_call_per_step_with_per_request_seeds(tiny_model, tmp_path, fake_vllm):
    from transformers import AutoTokenizer

    from dime_trainer.evaluation.runners import Job, request_seed

    fake = fake_vllm
    argv = ["--policy", "vllm", "--model", str(tiny_model), "--tasks", "retry_storm,hot_shard_skew", "--seeds", "2",
            "--max-steps", "4", "--top-k", "0", "--sampling-seed", "7", "--out", str(tmp_path), "--name", "v", "--quiet"]
    assert main(argv) == 0
    engine = fake.engines[0]
    assert engine.kwargs["model"] == str(tiny_model) and "enable_lora" not in engine.kwargs
    assert len(engine.calls) == 4 and all(len(prompts) == 4 for prompts, _, _ in engine.calls)  # 4 episodes, lockstep
    prompts, params, lora = engine.calls[1]
    assert lora is None and params[0].top_k == -1 and params[0].max_tokens == 1024
    assert [p.seed for p in params] == [request_seed(7, Job("retry_storm", 0), 1), request_seed(7, Job("retry_storm", 1), 1),
                                        request_seed(7, Job("hot_shard_skew", 0), 1), request_seed(7, Job("hot_shard_skew", 1), 1)]
    text = AutoTokenizer.from_pretrained(tiny_model).decode(prompts[0]["prompt_token_ids"])
    assert text.startswith("<|im_start|>system\nYou are an autonomous SRE agent") and text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    header, episodes = load_episodes(tmp_path / "v.jsonl")
    assert len(episodes) == 4 and all(e["trace"]["status"] == ["applied"] * 4 for e in episodes)
    assert header["backend"]["dtype"] == "auto" and header["protocol"]["sampling_seed"] == 7
    assert "batch_size" not in header["protocol"]  # per-request seeds: batching does not change answers


def test_vllm_backend__serves_an_adapter_with_a_supported_max_lora_rank(tiny_model, tmp_path, fake_vllm):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_model), "r": 24}))
    argv = ["--policy", "vllm", "--model", str(adapter), "--tasks", "retry_storm", "--seeds", "1", "--max-steps", "1",
            "--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 0
    engine = fake_vllm.engines[0]
    assert engine.kwargs["enable_lora"] and engine.kwargs["max_lora_rank"] == 32
    assert engine.calls[0][2].path == str(adapter)


# --- hostile endpoints --------------------------------------------------------------------------
@pytest.fixture
def other_origin():
    """A second server (another port: another origin) that records whatever reaches it."""
    server = StubEndpoint("mixed")
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("endpoint", "argv_extra"), [
    ("redirect_models", ()),  # GET /models -> 307 elsewhere
    ("redirect_post", ("--model", "stub-model")),  # POST /chat/completions -> 302 elsewhere
], indirect=["endpoint"])
def test_openai_backend__never_follows_a_redirect_to_another_origin(endpoint, other_origin, tmp_path, capsys, monkeypatch,
                                                                    argv_extra):
    monkeypatch.setenv("DIME_TEST_KEY", "secret-123")
    endpoint.redirect_to = other_origin.url
    assert main(openai_argv(endpoint, tmp_path, "--api-key-env", "DIME_TEST_KEY", *argv_extra)) == 2
    assert "redirect to another origin" in capsys.readouterr().err
    assert other_origin.headers_seen == [] and other_origin.requests == []  # the key never left the origin


@pytest.mark.parametrize("endpoint", ["trickle"], indirect=True)
def test_openai_backend__a_trickling_reply_is_cut_off_at_the_request_deadline(endpoint, tmp_path):
    start = time.monotonic()
    assert main(openai_argv(endpoint, tmp_path, "--max-steps", "1", "--retries", "0", "--timeout", "0.4")) == 0
    assert time.monotonic() - start < 3  # every read is quick, but the whole reply would take ~10 s
    _, episodes = load_episodes(tmp_path / "stub.jsonl")
    for ep in episodes:
        assert ep["trace"]["status"] == ["backend_error"]
        assert "deadline" in ep["trace"]["backend_error"][0]


@pytest.mark.parametrize("endpoint", ["deep_json"], indirect=True)
def test_openai_backend__deeply_nested_json_is_a_malformed_reply(endpoint, tmp_path):
    assert main(openai_argv(endpoint, tmp_path, "--max-steps", "1", "--retries", "0")) == 0
    _, episodes = load_episodes(tmp_path / "stub.jsonl")
    assert all(ep["trace"]["backend_error"][0].startswith("malformed reply: ") for ep in episodes)


@pytest.mark.parametrize(("endpoint", "message"), [
    ("deep_models", "nested too deeply"),
    ("models_bad_id", "--model is required"),  # ids that are not strings are not model names
], indirect=["endpoint"])
def test_openai_backend__a_hostile_models_listing_is_a_usage_error(endpoint, tmp_path, capsys, message):
    assert main(openai_argv(endpoint, tmp_path)) == 2
    assert message in capsys.readouterr().err
