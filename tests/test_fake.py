"""Fault injection (t2_agents.backends.fake.FaultyEngine) and how the graph survives the faults.

Covered elsewhere, not repeated here (tests/test_graph.py): every branch raising ``EngineError``
gives an error state (``test_all_branches_failed_is_an_error_state``), one failed branch is
recorded while the others vote (``test_failed_branch_is_recorded_and_others_vote``), scripted
transient errors on one seed are retried (``test_transient_errors_are_retried``,
``test_transient_errors_after_last_attempt_are_recorded``), and completions without an answer
are not errors (``test_no_extractable_answer_is_not_an_error``).
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest
from langgraph.types import RetryPolicy

from t2_agents.answers import get_extractor
from t2_agents.backends.base import SamplingParams
from t2_agents.backends.fake import FAULT_KINDS, FakeEngine, FaultKind, FaultyEngine
from t2_agents.errors import ConfigError, EngineError, TransientEngineError
from t2_agents.graph import CostLedger, ThinkingContext, build_parallel_thinking_graph
from t2_agents.voting import vote

Q = "What is 6 * 7?"
N = 12
FAULT_SEED = 25
"""With rate 0.3 this seed plans one fault of each kind among the branch seeds 0..11."""
TASK = "products"
"""A numeric task: its extractor reads no answer from an empty or a garbage completion."""
EXCEPTIONS: tuple[FaultKind, ...] = ("error", "timeout")
CONTENT: tuple[FaultKind, ...] = ("empty", "garbage")
FAST = RetryPolicy(
    initial_interval=0.05, backoff_factor=2.0, max_interval=0.08, max_attempts=3, jitter=False,
    retry_on=TransientEngineError,
)  # fmt: skip
"""Bounded backoff: waits 0.05 s, then 0.08 s (0.1 capped), and at most 3 attempts in all."""
MODES = ["send", "batched"]


def _graph(engine: Any, fanout: str, retry: RetryPolicy | None, **settings: Any) -> Any:
    context = ThinkingContext(n_max=N, seed=0, task=TASK, **settings)
    return build_parallel_thinking_graph(
        engine=engine,
        fanout=fanout,
        retry=retry,
        context=context,  # type: ignore[arg-type]
    )


def _plan(engine: FaultyEngine) -> dict[int, FaultKind | None]:
    return {seed: engine.fault_for(seed) for seed in range(N)}


def _by_index(state: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(state["branches"], key=lambda branch: branch["index"])


def _reference(fanout: str, *, per_path_seeds: bool) -> dict[str, Any]:
    """The same run without faults (batched mode: per-seed calls when the engine has no
    ``per_path_seeds``, as in the faulty runs that use ``exact_seeds``)."""
    engine = FakeEngine(per_path_seeds=per_path_seeds)
    return dict(_graph(engine, fanout, None, exact_seeds=True).invoke({"question": Q}))


# ------------------------------------------------------------------------------ the wrapper
def test_faults_are_seeded_and_hit_the_requested_fraction() -> None:
    engine = FaultyEngine(FakeEngine(), rate=0.3, seed=1)
    plan = [engine.fault_for(key) for key in range(4000)]
    assert plan == [FaultyEngine(FakeEngine(), rate=0.3, seed=1).fault_for(k) for k in range(4000)]
    assert plan != [FaultyEngine(FakeEngine(), rate=0.3, seed=2).fault_for(k) for k in range(4000)]
    counts = Counter(plan)
    assert sum(counts[kind] for kind in FAULT_KINDS) / len(plan) == pytest.approx(0.3, abs=0.03)
    assert all(counts[kind] / len(plan) == pytest.approx(0.075, abs=0.02) for kind in FAULT_KINDS)
    only = FaultyEngine(FakeEngine(), rate=1.0, kinds=("garbage",))
    assert {only.fault_for(key) for key in range(50)} == {"garbage"}
    assert {FaultyEngine(FakeEngine(), rate=0.0).fault_for(key) for key in range(50)} == {None}


def test_wrapper_counts_what_it_injects() -> None:
    inner = FakeEngine()
    engine = FaultyEngine(inner, rate=1.0, kinds=CONTENT, seed=3)
    paths = engine.sample([Q], 6, SamplingParams(seed=0))[0]
    plan = [engine.fault_for(key) for key in range(6)]
    assert [p.text == "" for p in paths] == [kind == "empty" for kind in plan]
    junk = [p.text for p, kind in zip(paths, plan, strict=True) if kind == "garbage"]
    assert junk and all(text.startswith("\x00\ufffd}{]]") for text in junk)
    assert not any(ch.isalnum() for text in junk for ch in text)  # no letter, no digit
    assert all(get_extractor(TASK)(p.text) is None for p in paths)
    assert engine.injected == Counter(kind for kind in plan if kind is not None)
    assert engine.log == [(key, kind) for key, kind in enumerate(plan) if kind is not None]
    assert [call[:2] for call in engine.calls] == [(0, 6)] and len(inner.sample_calls) == 1
    assert engine.sample([Q], 6, SamplingParams(seed=0))[0] == paths  # the same faults again
    unseeded = engine.sample([Q], 2, SamplingParams(seed=None))[0]
    assert all(get_extractor(TASK)(p.text) is None for p in unseeded)
    assert (engine.identity, engine.num_layers, engine.hidden_size) == ("fake-engine", 4, 8)
    assert engine.per_path_seeds and engine.render(Q) == inner.render(Q)
    assert (engine.encode([Q], [1]) == inner.encode([Q], [1])).all()


def test_wrapper_raises_and_heals_timeouts() -> None:
    inner = FakeEngine()
    engine = FaultyEngine(inner, rate=1.0, kinds=("timeout",), timeouts=2)
    params = SamplingParams(seed=5)
    for _ in range(2):
        with pytest.raises(TransientEngineError, match=r"timed out after 0\.01 s.*path seed 5"):
            engine.sample([Q], 1, params)
    assert engine.sample([Q], 1, params) == inner.sample([Q], 1, params)  # healed
    assert engine.injected == Counter({"timeout": 2})
    raw = FaultyEngine(FakeEngine(), rate=1.0, kinds=("timeout",), transient=False)
    with pytest.raises(TimeoutError) as info:
        raw.sample([Q], 1, params)
    assert not isinstance(info.value, EngineError)
    broken = FaultyEngine(FakeEngine(), rate=1.0, kinds=("error",))
    for _ in range(2):  # an error fault is permanent
        with pytest.raises(EngineError, match="path seed 5"):
            broken.sample([Q], 1, params)
    with pytest.raises(ConfigError, match="above the configured maximum"):
        FaultyEngine(FakeEngine(max_n=2), rate=1.0).sample([Q], 3, params)  # validated first


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"rate": 1.5}, "rate"),
        ({"rate": 0.5, "kinds": ()}, "kinds"),
        ({"rate": 0.5, "kinds": ("error", "flood")}, "kinds"),
        ({"rate": 0.5, "timeouts": -1}, "timeouts"),
    ],
)
def test_wrapper_rejects_bad_settings(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        FaultyEngine(FakeEngine(), **kwargs)


# ------------------------------------------------------------------- (a) a fraction faulty
@pytest.mark.parametrize("fanout", MODES)
def test_step_votes_over_the_survivors(fanout: str) -> None:
    """About 30% faulty branches: errors and timeouts fail their branch (no retry here), empty
    and garbage completions are answers of None; the survivors vote."""
    engine = FaultyEngine(FakeEngine(per_path_seeds=False), rate=0.3, seed=FAULT_SEED)
    plan = _plan(engine)
    assert set(plan.values()) == {None, *FAULT_KINDS}  # the seed plans every kind
    ledger = CostLedger()
    # Batched mode samples each seed in its own call (exact_seeds), so a fault hits one branch.
    graph = _graph(engine, fanout, None, exact_seeds=True, ledger=ledger)
    state = dict(graph.invoke({"question": Q}))
    reference = _reference(fanout, per_path_seeds=False)

    branches = _by_index(state)
    assert [b["index"] for b in branches] == list(range(N))
    assert [b["seed"] for b in branches] == list(range(N))
    for branch, kind in zip(branches, plan.values(), strict=True):
        seed = branch["seed"]
        if kind == "error":
            assert branch["error"] == f"EngineError: injected engine failure (path seed {seed})"
        elif kind == "timeout":
            assert branch["error"] == (
                f"TransientEngineError: timed out after 0.01 s (injected, path seed {seed})"
            )
        else:
            assert branch["error"] is None and branch["attempts"] == 1
        if kind in EXCEPTIONS:
            assert branch["text"] is None and branch["finish_reason"] == "error"
        if kind == "empty":
            assert branch["text"] == "" and branch["completion_tokens"] == 0

    faulty = {seed for seed, kind in plan.items() if kind is not None}
    assert state["answers"] == [
        None if seed in faulty else answer for seed, answer in enumerate(reference["answers"])
    ]
    exceptions = engine.injected["error"] + engine.injected["timeout"]
    content = engine.injected["empty"] + engine.injected["garbage"]
    assert exceptions == sum(kind in EXCEPTIONS for kind in plan.values())
    assert content == sum(kind in CONTENT for kind in plan.values())
    assert state["cost"]["failed"] == exceptions == ledger.steps[0].failed
    assert state["cost"]["samples"] == N and len(engine.calls) == N
    survivors = [i for i, b in enumerate(branches) if b["error"] is None]
    assert state["verdict"] == vote([state["answers"][i] for i in survivors], seed=0).to_dict()
    assert state["verdict"]["valid"] == N - exceptions - content
    assert state["verdict"]["invalid"] == content  # empty and garbage do not vote
    clean = Counter(reference["answers"][s] for s in range(N) if s not in faulty)
    assert state["verdict"]["distribution"] == {a: float(c) for a, c in clean.items()}
    assert state["error"] is None and state["answer"] == state["verdict"]["answer"] is not None
    ok_tokens = sum(b["completion_tokens"] for b in branches if b["error"] is None)
    assert state["cost"]["completion_tokens"] == ok_tokens


def test_one_batched_call_fails_together() -> None:
    """Plain batched mode (one ``sample(n=N)`` call): an injected error fails all N branches;
    content faults alone spoil only their own paths."""
    engine = FaultyEngine(FakeEngine(), rate=0.3, seed=FAULT_SEED)
    state = _graph(engine, "batched", None).invoke({"question": Q})
    assert len(engine.calls) == 1 and engine.injected == Counter({"error": 1})
    assert {b["error"] for b in state["branches"]} == {
        "EngineError: injected engine failure (path seed 7)"
    }
    assert state["error"].startswith(f"all {N} branches failed") and state["answer"] is None
    assert state["cost"]["failed"] == N

    spoilt = FaultyEngine(FakeEngine(), rate=0.3, kinds=CONTENT, seed=FAULT_SEED)
    state = _graph(spoilt, "batched", None).invoke({"question": Q})
    spoilt_seeds = {s for s in range(N) if spoilt.fault_for(s) is not None}
    reference = _reference("batched", per_path_seeds=True)["answers"]
    assert spoilt_seeds and state["answers"] == [
        None if s in spoilt_seeds else answer for s, answer in enumerate(reference)
    ]
    invalid = sum(a is None for a in state["answers"])
    assert state["cost"]["failed"] == 0 and state["verdict"]["invalid"] == invalid
    assert state["error"] is None and state["answer"] is not None


# ----------------------------------------------------------------- (b) retries with backoff
@pytest.mark.parametrize("fanout", MODES)
def test_transient_faults_are_retried_with_bounded_backoff(fanout: str) -> None:
    """Timeouts that heal after one call are retried once; ones that never heal cost exactly
    ``max_attempts`` calls; the waits between attempts follow the RetryPolicy."""
    healing = FaultyEngine(FakeEngine(), rate=0.3, kinds=("timeout",), seed=FAULT_SEED)
    timed_out = {s for s in range(N) if healing.fault_for(s) == "timeout"}
    assert 0 < len(timed_out) < N
    state = _graph(healing, fanout, FAST).invoke({"question": Q})
    assert state["error"] is None and state["cost"]["failed"] == 0
    assert (
        state["answers"] == _reference(fanout, per_path_seeds=True)["answers"]
    )  # every branch recovered
    attempts = {b["seed"]: b["attempts"] for b in state["branches"]}
    if fanout == "send":  # one task per branch: only the timed-out branches run again
        assert attempts == {s: 2 if s in timed_out else 1 for s in range(N)}
        assert Counter(call[0] for call in healing.calls) == {
            s: 2 if s in timed_out else 1 for s in range(N)
        }
        assert healing.injected["timeout"] == len(timed_out)
    else:  # one call for all branches: the whole call runs again, once
        assert attempts == dict.fromkeys(range(N), 2)
        assert [call[:2] for call in healing.calls] == [(0, N), (0, N)]
        assert healing.injected["timeout"] == 1

    stuck = FaultyEngine(FakeEngine(), rate=0.3, kinds=("timeout",), seed=FAULT_SEED, timeouts=99)
    state = _graph(stuck, fanout, FAST).invoke({"question": Q})
    failed = {b["seed"] for b in state["branches"] if b["error"] is not None}
    assert all("TransientEngineError: timed out" in b["error"] for b in _failed(state))
    assert all(b["attempts"] == FAST.max_attempts for b in _failed(state))
    calls = Counter(call[0] for call in stuck.calls)
    if fanout == "send":
        assert failed == timed_out and state["answer"] is not None
        assert calls == {s: 3 if s in timed_out else 1 for s in range(N)}
        assert len(stuck.calls) == N + 2 * len(timed_out)  # bounded: 3 attempts at most
    else:
        assert failed == set(range(N)) and state["answer"] is None and state["error"]
        assert calls == {0: 3}
    for seed in {call[0] for call in stuck.calls if calls[call[0]] == 3}:
        started = [call[2] for call in stuck.calls if call[0] == seed]
        waits = [later - earlier for earlier, later in itertools.pairwise(started)]
        assert waits[0] >= 0.05 and waits[1] >= 0.08  # 0.01 s timeout + backoff each


def _failed(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in state["branches"] if b["error"] is not None]


def test_builtin_timeout_error_is_not_retried() -> None:
    """A raw ``TimeoutError`` is not a TransientEngineError: the branch fails at once (engines
    must translate their timeouts, as ChatModelEngine does)."""
    engine = FaultyEngine(
        FakeEngine(), rate=0.3, kinds=("timeout",), seed=FAULT_SEED, transient=False
    )
    state = _graph(engine, "send", FAST).invoke({"question": Q})
    timed_out = {s for s in range(N) if engine.fault_for(s) == "timeout"}
    assert {b["seed"] for b in _failed(state)} == timed_out
    assert all(b["error"].startswith("TimeoutError: timed out") for b in _failed(state))
    assert all(b["attempts"] == 1 for b in state["branches"])
    assert len(engine.calls) == N and state["cost"]["failed"] == len(timed_out)


# -------------------------------------------------------------------- (c) everything fails
@pytest.mark.parametrize("fanout", MODES)
def test_all_faulty_is_an_error_state_never_an_answer(fanout: str) -> None:
    """Every branch raises (errors, and timeouts that outlast the retries): the state has
    ``error`` and no answer; every path empty or garbage: no error, and still no answer."""
    ledger = CostLedger()
    engine = FaultyEngine(FakeEngine(), rate=1.0, kinds=EXCEPTIONS, seed=FAULT_SEED, timeouts=99)
    graph = _graph(engine, fanout, FAST, ledger=ledger)
    events = list(graph.stream({"question": Q}, stream_mode=["custom", "values"]))
    state = [data for mode, data in events if mode == "values"][-1]
    verdict = [data for mode, data in events if mode == "custom" and data["event"] == "verdict"]
    assert state["error"].startswith(f"all {N} branches failed; first error: ")
    assert state["answer"] is None and state["verdict"] is None
    assert state["answers"] == [None] * N
    assert verdict[0]["answer"] is None and verdict[0]["error"] == state["error"]
    assert state["cost"]["failed"] == N and state["cost"]["answer"] is None
    assert state["cost"]["share"] == 0.0 and ledger.steps[0].answer is None
    plan = _plan(engine)
    if fanout == "send":  # errors are not retried, timeouts are, max_attempts times
        assert Counter(call[0] for call in engine.calls) == {
            s: 1 if kind == "error" else 3 for s, kind in plan.items()
        }
    else:  # the batched call has an error path, so it fails at once
        assert "error" in plan.values() and len(engine.calls) == 1

    blank = FaultyEngine(FakeEngine(), rate=1.0, kinds=CONTENT, seed=FAULT_SEED)
    state = _graph(blank, fanout, FAST).invoke({"question": Q})
    assert state["error"] is None and state["cost"]["failed"] == 0
    assert state["answer"] is None and state["answers"] == [None] * N
    assert state["verdict"]["valid"] == 0 and state["verdict"]["invalid"] == N
    assert sum(blank.injected.values()) == N
