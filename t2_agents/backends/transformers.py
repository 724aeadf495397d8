"""The transformers engine: latent features and batched sampling from one in-process model.

Features are read with forward hooks on the decoder layers (``model.model.layers[l]``), keeping
only the final prompt token, so no full ``[batch, seq, d]`` stack of hidden states is built. The
value is the residual stream after layer ``l`` before the final norm: transformers'
``hidden_states[l + 1]`` for every layer but the last (where transformers applies the final
norm); the vLLM engine reads the same quantity.

Prompts are left padded and given explicit ``position_ids``, so padding does not change a
prompt's features. Sampling is one ``generate`` call with ``num_return_sequences=n`` per chunk of
prompts. A lock serialises calls, so one engine can be shared by concurrent graph runs.

Path confidence (:mod:`t2_agents.confidence`): while ``generate`` runs, a forward hook on the LM
head keeps the ``top_k`` largest log-probabilities of the model's untempered next-token
distribution at every step (``[sequences, top_k]`` per step, not the ``[sequences, vocab]``
logits ``output_logits`` would keep), and each completion gets DeepConf's summary of its own
tokens (``confidence_top_k=None`` turns it off).

Example:
    >>> engine = TransformersEngine()  # doctest: +SKIP
    >>> feats = engine.encode(["What is 2+3?"], layers=[4, 15])  # doctest: +SKIP
    >>> feats.shape  # doctest: +SKIP
    (1, 2, 576)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

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
    DEFAULT_TOP_K,
    DEFAULT_WINDOW,
    check_confidence_settings,
    path_confidence,
    position_confidence,
)
from t2_agents.early_stop import WindowMonitor, check_floor
from t2_agents.errors import CancelledCallError, ConfigError, ModelError, PromptError

__all__ = ["TransformersConfig", "TransformersEngine"]


@dataclass(frozen=True, kw_only=True)
class TransformersConfig:
    """Settings of the transformers engine."""

    model: str | None = None
    """Model folder or hub id; None for the embedded SmolLM2-135M-Instruct."""
    cache_dir: str | None = None
    """Cache root for the default model (else ``T2_AGENTS_CACHE`` or the user cache)."""
    device: str = "auto"
    """'auto' (CUDA when available, else CPU), 'cpu' or 'cuda[:i]'."""
    dtype: str = "auto"
    """'auto' (float32 on CPU, bfloat16 on CUDA: measured, see README), 'float32', 'bfloat16'."""
    max_n: int = 256
    """Largest number of paths one ``sample`` call may ask for per prompt."""
    max_batch_sequences: int = 256
    """Largest number of sequences in one ``generate`` call; more prompts are chunked."""
    encode_batch_size: int = 16
    """Prompts per forward pass in ``encode``."""
    system_prompt: str | None = None
    """System message for the chat template; None keeps the model's default."""
    trust_remote_code: bool = False
    """Let transformers run code shipped with the model. Off unless you trust the model's source."""
    confidence_top_k: int | None = DEFAULT_TOP_K
    """Log-probabilities per token averaged into each path's confidence (DeepConf's k);
    None: no confidence (``Completion.confidence`` stays None)."""
    confidence_window: int = DEFAULT_WINDOW
    """Tokens per sliding window of the lowest group confidence."""
    confidence_tail: int = DEFAULT_TAIL
    """Last tokens averaged into the tail confidence."""

    def __post_init__(self) -> None:
        check_confidence_settings(
            self.confidence_top_k, self.confidence_window, self.confidence_tail
        )


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TransformersEngine:
    """An :class:`~t2_agents.backends.base.Engine` over a transformers causal LM.

    Args:
        config: Engine settings; keyword overrides (``model=...``) build one for you.

    Example:
        >>> engine = TransformersEngine(model=None, max_n=64)  # doctest: +SKIP
        >>> paths = engine.sample(["2+2?"], n=4, params=SamplingParams(seed=0))  # doctest: +SKIP
    """

    def __init__(self, config: TransformersConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or TransformersConfig(), **overrides)
        self.spec: ModelSpec = resolve_model(self.config.model, cache_dir=self.config.cache_dir)
        self.device = _pick_device(self.config.device)
        self.dtype = _pick_dtype(self.config.dtype, self.device)
        self.model, self.tokenizer = _load(self.spec, self.device, self.dtype, self.config)
        self._layers = self.model.model.layers
        self._lock = threading.Lock()

    # -- protocol properties -------------------------------------------------------------
    @property
    def identity(self) -> str:
        """The model's stable name (checked against estimator artifacts)."""
        return self.spec.identity

    @property
    def num_layers(self) -> int:
        """Number of decoder layers."""
        return len(self._layers)

    @property
    def hidden_size(self) -> int:
        """Residual stream width."""
        return int(self.model.config.hidden_size)

    @property
    def context_length(self) -> int:
        """Largest prompt + completion length in tokens."""
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    # -- prompts -------------------------------------------------------------------------
    def render(self, prompt: str) -> str:
        """Apply the chat template (with the generation prompt) to one user message."""
        return render_chat(self.tokenizer, prompt, self.config.system_prompt)

    def _tokenize(self, prompts: Sequence[str], reserve: int) -> dict[str, torch.Tensor]:
        texts = [self.render(p) for p in prompts]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        lengths = batch["attention_mask"].sum(dim=1)
        for i, length in enumerate(lengths.tolist()):
            if length + reserve > self.context_length:
                raise PromptError(
                    f"prompt {i} is {length} tokens (+{reserve} to generate), above the model's "
                    f"context of {self.context_length} tokens; shorten the prompt or lower "
                    "max_tokens (nothing is truncated silently)"
                )
        return {k: v.to(self.device) for k, v in batch.items()}

    # -- encode --------------------------------------------------------------------------
    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        """Final-prompt-token hidden states at ``layers``: ``[n_prompts, n_layers, d]`` float32.

        Raises:
            PromptError: Empty list, blank prompt, or a prompt longer than the context.
            ConfigError: A layer index out of range.
        """
        items = check_prompts(prompts)
        wanted = check_layers(layers, self.num_layers)
        size = self.config.encode_batch_size
        chunks = [
            self._encode_chunk(items[i : i + size], wanted) for i in range(0, len(items), size)
        ]
        return np.concatenate(chunks, axis=0)

    def _encode_chunk(self, prompts: list[str], layers: list[int]) -> npt.NDArray[np.float32]:
        batch = self._tokenize(prompts, reserve=0)
        mask = batch["attention_mask"]
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)  # left padding: [B, T]
        captured: dict[int, torch.Tensor] = {}
        with self._lock, self._hooks(layers, captured), torch.inference_mode():
            self.model.model(
                input_ids=batch["input_ids"],
                attention_mask=mask,
                position_ids=positions,
                use_cache=False,
            )
        stacked = torch.stack([captured[layer] for layer in layers], dim=1)  # [B, L, d]
        return stacked.float().cpu().numpy()

    @contextmanager
    def _hooks(self, layers: list[int], out: dict[int, torch.Tensor]) -> Iterator[None]:
        def make(layer: int) -> Any:
            def hook(_module: Any, _args: Any, output: Any) -> None:
                hidden = output[0] if isinstance(output, tuple) else output  # [B, T, d]
                out[layer] = hidden[:, -1, :].detach()

            return hook

        handles = [self._layers[layer].register_forward_hook(make(layer)) for layer in layers]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    # -- sample --------------------------------------------------------------------------
    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """Sample ``n`` completions per prompt with one batched ``generate`` per chunk.

        Raises:
            PromptError: Empty list, blank prompt, or prompt + max_tokens above the context.
            ConfigError: ``n`` outside [1, max_n].
        """
        return self._sample(prompts, n, params, floor=None)

    def sample_stopping_weak(
        self, prompts: Sequence[str], n: int, params: SamplingParams, *, floor: float
    ) -> list[list[Completion]]:
        """:meth:`sample`, stopping each path whose window confidence falls below ``floor``.

        The window is ``confidence_window`` tokens (:mod:`t2_agents.early_stop`); a stopped
        path keeps its tokens so far and ends with ``finish_reason="low_confidence"``. The
        batch's ``generate`` ends once every path has ended or stopped.

        Raises:
            ConfigError: ``confidence_top_k`` is None (no log-probabilities to watch), or
                ``floor`` is not a finite number.
        """
        if self.config.confidence_top_k is None:
            raise ConfigError(
                "stopping weak paths needs token log-probabilities: build the engine with "
                "confidence_top_k set (e.g. 20, the default)"
            )
        check_floor(floor)
        return self._sample(prompts, n, params, floor=floor)

    def _sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams, *, floor: float | None
    ) -> list[list[Completion]]:
        items = check_prompts(prompts)
        n = check_n(n, self.config.max_n)
        per_call = max(1, self.config.max_batch_sequences // n)
        results: list[list[Completion]] = []
        for start in range(0, len(items), per_call):
            chunk = items[start : start + per_call]
            seed = None if params.seed is None else params.seed + start
            results.extend(self._sample_chunk(chunk, n, params, seed, floor))
        return results

    def _sample_chunk(
        self,
        prompts: list[str],
        n: int,
        params: SamplingParams,
        seed: int | None,
        floor: float | None,
    ) -> list[list[Completion]]:
        batch = self._tokenize(prompts, reserve=params.max_tokens)
        prompt_lengths = batch["attention_mask"].sum(dim=1).tolist()
        greedy = params.temperature == 0
        per_prompt = 1 if greedy else n  # greedy paths are identical: decode one, repeat it
        cancel = CANCEL_EVENT.get()
        steps: list[torch.Tensor] = []  # per generated token: [sequences, top_k] log-probs
        weak = (
            None
            if floor is None
            else _WeakPaths(steps, floor, self.config.confidence_window, self._eos_ids)
        )
        criteria = _stopping(cancel, weak)
        extra: dict[str, Any] = {} if criteria is None else {"stopping_criteria": criteria}
        with (
            self._lock,
            torch.random.fork_rng(devices=[]),
            torch.inference_mode(),
            self._top_logprobs(steps),
        ):
            if cancel is not None and cancel.is_set():
                raise CancelledCallError("the caller cancelled this sample call before it started")
            if seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(
                **extra,
                **batch,
                do_sample=not greedy,
                temperature=None if greedy else params.temperature,
                top_p=None if greedy else params.top_p,
                top_k=None,
                max_new_tokens=params.max_tokens,
                num_return_sequences=per_prompt,
                pad_token_id=self._pad_id,
            )
        new = out[:, batch["input_ids"].shape[1] :].cpu()  # [P * per_prompt, T_new]
        top = torch.stack(steps, dim=1).float().numpy() if steps else None  # [seqs, T, k]
        stopped = {} if weak is None else weak.stopped
        return [
            [
                self._completion(
                    new, p * per_prompt + k % per_prompt, prompt_lengths[p], top, stopped
                )
                for k in range(n)
            ]
            for p in range(len(prompts))
        ]

    @contextmanager
    def _top_logprobs(self, out: list[torch.Tensor]) -> Iterator[None]:
        """Keep the top-k log-probabilities of the LM head's last position at every call."""
        top_k = self.config.confidence_top_k
        head = getattr(self.model, "lm_head", None)
        if top_k is None or head is None:
            yield
            return

        def hook(_module: Any, _args: Any, logits: Any) -> None:
            last = logits[:, -1, :].float()
            k = min(top_k, last.shape[-1])
            out.append(torch.log_softmax(last, dim=-1).topk(k, dim=-1).values.cpu())

        handle = head.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    @property
    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    @property
    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        if ids is None:
            ids = self.tokenizer.eos_token_id
        return set(ids) if isinstance(ids, list) else {int(ids)}

    def _completion(
        self,
        new: torch.Tensor,
        row: int,
        prompt_tokens: int,
        top: npt.NDArray[np.float32] | None,
        stopped: dict[int, int],
    ) -> Completion:
        ids = new[row].tolist()
        finish: FinishReason
        if row in stopped:  # stopped for low confidence after its first stopped[row] tokens
            used, finish = ids[: stopped[row]], "low_confidence"
        else:
            eos = self._eos_ids
            stop = next((i for i, t in enumerate(ids) if t in eos), None)
            finish = "stop" if stop is not None else "length"
            used = ids[: stop + 1] if stop is not None else ids
        text = self.tokenizer.decode(used, skip_special_tokens=True)
        confidence = None
        if top is not None and top.shape[1] >= len(used):  # one hook call per generated token
            confidence = path_confidence(
                top[row, : len(used)],
                top_k=top.shape[2],
                window=self.config.confidence_window,
                tail=self.config.confidence_tail,
            )
        return Completion(
            text=text.strip(),
            prompt_tokens=prompt_tokens,
            completion_tokens=len(used),
            finish_reason=finish,
            confidence=confidence,
        )

    def close(self) -> None:
        """Drop the model so its memory can be freed."""
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __enter__(self) -> TransformersEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _WeakPaths:
    """Per sequence of a batched ``generate``: a :class:`WindowMonitor` on its confidences.

    Called after every generated token with the batch's ids; ``steps`` (the LM-head hook's
    top-k log-probabilities, one ``[sequences, k]`` tensor per token) then holds the
    distribution each sequence's newest token was drawn from. Every token is watched, the
    end-of-sequence token included (as the replay of a finished path does); a sequence that
    ended on its own is left alone after that.
    """

    def __init__(self, steps: list[torch.Tensor], floor: float, window: int, eos: set[int]):
        self.steps = steps
        self.floor, self.window, self.eos = floor, window, eos
        self.monitors: list[WindowMonitor] = []
        self.ended: set[int] = set()
        self.stopped: dict[int, int] = {}  # sequence -> tokens kept

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = input_ids.shape[0]
        if not self.monitors:
            self.monitors = [
                WindowMonitor(floor=self.floor, window=self.window) for _ in range(rows)
            ]
        last = self.steps[-1].numpy()  # [sequences, k]
        newest = input_ids[:, -1].tolist()
        for row in range(rows):
            if row in self.stopped or row in self.ended:
                continue
            if self.monitors[row].push(position_confidence(last[row], top_k=last.shape[1])):
                self.stopped[row] = self.monitors[row].tokens
            elif newest[row] in self.eos:
                self.ended.add(row)
        flags = [row in self.stopped for row in range(rows)]
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)


def _stopping(event: threading.Event | None, weak: _WeakPaths | None) -> Any:
    """Stopping criteria: the caller's cancel ``event`` (all sequences at the next token) and
    the weak-path monitors (one sequence at a time); None when there is neither."""
    if event is None and weak is None:
        return None
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):  # type: ignore[misc]
        def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
            flags = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            if weak is not None:
                flags |= weak(input_ids)
            if event is not None and event.is_set():
                flags[:] = True
            return flags

    return StoppingCriteriaList([_Stop()])


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device {device!r} is not valid; use 'auto', 'cpu' or 'cuda'") from exc


def _pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        # Measured (bench/engine_speed.py): on CPUs with native bf16 (avx512_bf16 / AMX)
        # bfloat16 samples ~1.6x faster than float32; elsewhere float32 is the safe choice.
        if device.type == "cuda" or _cpu_has_bf16():
            return torch.bfloat16
        return torch.float32
    if dtype not in _DTYPES:
        raise ConfigError(
            f"dtype {dtype!r} is not supported; use one of auto, {', '.join(_DTYPES)}"
        )
    return _DTYPES[dtype]


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _load(
    spec: ModelSpec, device: torch.device, dtype: torch.dtype, config: TransformersConfig
) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM

    model_config = load_config(spec, trust_remote_code=config.trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            spec.path, dtype=dtype, trust_remote_code=config.trust_remote_code
        )
    except ValueError as exc:
        raise ModelError(
            f"{spec.path!r} ({type(model_config).__name__}) is not a causal language model: "
            f"{exc}; pass a decoder-only chat model such as SmolLM2-135M-Instruct"
        ) from exc
    except OSError as exc:
        raise ModelError(
            f"cannot load the weights of {spec.path!r}: {exc}; the folder needs model.safetensors "
            "(or pytorch_model.bin) next to config.json"
        ) from exc
    if not hasattr(getattr(model, "model", None), "layers"):
        raise ModelError(
            f"{spec.path!r} has no decoder layers at model.model.layers, so features cannot be "
            "read; use a decoder-only transformer (llama, qwen, mistral, ...)"
        )
    tokenizer = load_tokenizer(spec, trust_remote_code=config.trust_remote_code)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)  # type: ignore[arg-type]
    model.eval()  # type: ignore[no-untyped-call]
    return model, tokenizer
