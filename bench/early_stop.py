"""Online early stop of weak paths (DeepConf-online), measured by exact replay of token traces.

Issue 24, item 3/5. A path stopped when its sliding-window confidence falls below a floor is a
*prefix* of the path it would have been: stopping changes nothing before the stop. So one pool
of full paths per question, with every path's per-token confidences ``c_t``, replays any floor
exactly (:func:`t2_agents.early_stop.stop_position`): which paths stop, after how many tokens,
and which answers are left to vote. The replay is checked against the live engines in
``tests/test_early_stop.py`` (the transformers engine stops a path at the position the replay
predicts).

1. ``sample``: the held-out questions of the confidence collections (``heldout_conf``; every
   question the shipped estimator trained on, by text or instance, and every repeat dropped:
   :func:`~t2_agents.calibrate.training_set.distinct_rows`) are resampled on vLLM with
   ``--samples`` paths each, ``logprobs=20``, into ``--traces`` (JSONL, one line per question:
   answers, tokens, finish reasons, ``c_t`` per token; appended per batch, so a stopped run
   resumes where it stopped). The traces are large (~10 KB per question) and stay out of git.
2. ``replay``: for every policy, the same questions, paired:

   * plain vote at fixed N (exact ``A_x(N)`` over the pool) and under T2's N;
   * **warm-up** stop (DeepConf-online): the first ``w`` paths of a random order run to the end,
     the floor is the ``100 - keep`` percentile of their lowest group confidence, the other
     ``N - w`` paths stop below it; the vote counts the warm-up paths and the unstopped ones;
   * **fixed floor** (ours, for T2's small N): the floor is a percentile of the lowest group
     confidences of the *calibration* pools' paths (chosen on the calibration pools, never on
     these), every path stops below it; a question whose paths all stop votes on the stopped
     paths' partial answers (the graph's fallback).

   Per policy: accuracy, mean completion tokens and samples per question, the difference in
   accuracy and the token saving against the plain vote at the same N with paired bootstrap
   intervals, and the plain vote at **equal tokens** (accuracy interpolated between fixed N).
   Monte-Carlo over ``--orders`` random path orders per question.

    .venv-vllm/bin/python bench/early_stop.py sample --traces runs/early_stop/traces.jsonl
    python bench/early_stop.py replay --traces runs/early_stop/traces.jsonl \\
        --out bench/results/early_stop.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

C = "calibration/smollm2-135m-instruct"
HELDOUT = sorted(str(p) for p in Path(C, "heldout_conf").glob("*") if p.is_dir())
SHIPPED = "t2_agents/artifacts/smollm2-135m-instruct"
TOP_K = 20

FloatArray = npt.NDArray[np.float64]


# -- sample ------------------------------------------------------------------------------------
def heldout_questions(folders: Sequence[str], estimator: str) -> list[Any]:
    """The distinct held-out questions (never trained on) of the folders, as Question objects."""
    from t2_agents.calibrate.collect import load_collection, questions_for
    from t2_agents.calibrate.training_set import distinct_rows
    from t2_agents.estimator.estimator import T2Estimator

    collections = [load_collection(f) for f in folders]
    est = T2Estimator.load(estimator)
    rows, dropped = distinct_rows(collections, est.training_keys, est.training_instance_keys)
    print(f"{len(rows)} held-out questions; dropped {dropped}", file=sys.stderr)
    by_collection: dict[int, dict[str, Any]] = {}
    out = []
    for c, i in rows:
        if c not in by_collection:
            by_collection[c] = {q.id: q for q in questions_for(collections[c].config)}
        record = collections[c].records[i]
        question = by_collection[c][record["id"]]
        if question.prompt != record["prompt"]:
            raise SystemExit(f"question {record['id']} no longer matches its record; stop")
        out.append(question)
    return out


def _done(traces: Path) -> set[str]:
    if not traces.exists():
        return set()
    done = set()
    for line in traces.read_text().splitlines():
        try:
            done.add(json.loads(line)["id"])
        except (ValueError, KeyError):
            continue  # a line cut by a crash: resampled
    return done


def sample(args: argparse.Namespace) -> int:
    """Resample the held-out questions on vLLM with per-token confidences (resumable)."""
    import vllm

    from t2_agents.backends.base import render_chat
    from t2_agents.backends.default_model import resolve_model
    from t2_agents.backends.vllm import VLLMConfig, engine_args
    from t2_agents.confidence import token_confidences

    questions = heldout_questions(args.data, args.estimator)
    args.traces.parent.mkdir(parents=True, exist_ok=True)
    done = _done(args.traces)
    todo = [q for q in questions if q.id not in done]
    print(f"{len(done)} done, {len(todo)} to sample", file=sys.stderr)
    config = VLLMConfig()
    kwargs = engine_args(resolve_model(None).path, config, cpu=True)
    kwargs.pop("worker_extension_cls")
    llm = vllm.LLM(**kwargs)
    tokenizer = llm.get_tokenizer()
    started = time.perf_counter()
    with args.traces.open("a") as sink:
        for b in range(0, len(todo), args.batch):
            batch = todo[b : b + args.batch]
            prompts = [
                vllm.inputs.TokensPrompt(
                    prompt_token_ids=tokenizer(
                        render_chat(tokenizer, q.prompt, config.system_prompt),
                        add_special_tokens=False,
                    )["input_ids"]
                )
                for q in batch
            ]
            params = [
                vllm.SamplingParams(
                    n=args.samples,
                    temperature=0.7,
                    top_p=1.0,
                    max_tokens=48,
                    seed=args.seed * 1_000_003 + len(done) + b + i,
                    logprobs=TOP_K,
                )
                for i in range(len(batch))
            ]
            outputs = llm.generate(prompts, params, use_tqdm=False)
            for q, output in zip(batch, outputs, strict=True):
                paths = sorted(output.outputs, key=lambda p: p.index)
                traces = []
                for p in paths:
                    steps = [[float(e.logprob) for e in (s or {}).values()] for s in p.logprobs]
                    c, _ = token_confidences(steps, top_k=TOP_K)
                    traces.append([round(float(x), 3) for x in c])
                line = {
                    "id": q.id,
                    "task": q.task,
                    "key": q.key,
                    "answers": [q.extract(p.text) for p in paths],
                    "correct": [q.is_correct(q.extract(p.text)) for p in paths],
                    "tokens": [len(p.token_ids) for p in paths],
                    "finish": [p.finish_reason for p in paths],
                    "c": traces,
                }
                sink.write(json.dumps(line) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
            n = b + len(batch)
            rate = n * args.samples / (time.perf_counter() - started)
            print(f"{n}/{len(todo)} questions, {rate:.1f} samples/s", file=sys.stderr, flush=True)
    return 0


# -- replay ------------------------------------------------------------------------------------
WINDOW = 16
"""Tokens per window (the engines' default ``confidence_window``)."""
FIXED_N = (4, 8, 16)
WARMUPS = ((2, 90.0), (2, 10.0), (4, 90.0), (4, 10.0))
"""(warm-up paths, keep %): DeepConf-low keeps 90 %, DeepConf-high 10 %."""
FLOOR_KEEPS = (95.0, 90.0, 75.0, 50.0)
"""Fixed floors: the ``100 - keep`` percentile of the validation half's lowest group
confidences (about ``100 - keep`` % of paths stopped)."""


def load_traces(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a traces file, one per question (a repeated id once)."""
    seen: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        seen.setdefault(row["id"], row)
    return list(seen.values())


class Pool:
    """One question's paths: answer ids, grading, tokens and window means, for the replay."""

    def __init__(self, row: dict[str, Any], window: int) -> None:
        answers = row["answers"]
        names = sorted({a for a in answers if a is not None})
        index = {a: i for i, a in enumerate(names)}
        self.answer = np.array([-1 if a is None else index[a] for a in answers])
        good = {a for a, ok in zip(answers, row["correct"], strict=True) if ok}
        self.right = np.array([a in good for a in names] + [False])  # last slot: no answer
        self.tokens = np.asarray(row["tokens"], dtype=np.float64)
        self.size = len(answers)
        self.means: list[FloatArray] = []  # per path: mean of each full window (may be empty)
        lowest = []
        for c in row["c"]:
            c = np.asarray(c, dtype=np.float64)
            width = min(window, max(1, c.size))
            sums = np.convolve(c, np.ones(width), mode="valid") / width if c.size else c
            lowest.append(float(sums.min()) if sums.size else math.inf)
            self.means.append(sums if c.size >= window else np.empty(0))
        self.lowest = np.asarray(lowest)
        self.window = window

    def stops(self, path: int, floor: float) -> float:
        """Tokens path ``path`` keeps under ``floor`` (inf: it is not stopped)."""
        below = np.flatnonzero(self.means[path] < floor)
        return math.inf if below.size == 0 else float(below[0] + self.window)

    def vote(self, voters: npt.NDArray[np.int64]) -> float:
        """Expected credit of the majority of ``voters`` (ties broken uniformly)."""
        ids = self.answer[voters]
        ids = ids[ids >= 0]
        if ids.size == 0:
            return 0.0
        counts = np.bincount(ids, minlength=len(self.right) - 1)
        tied = np.flatnonzero(counts == counts.max())
        return float(self.right[tied].mean())


def _orders(pool: Pool, n: int, orders: int, seed: int) -> list[npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    return [rng.permutation(pool.size)[:n] for _ in range(orders)]


def replay_pool(
    pool: Pool, n: int, policy: tuple[str, float, int], orders: list[npt.NDArray[np.int64]]
) -> tuple[float, float, float, float]:
    """(credit, credit if an all-stopped question voted its full answers, tokens, stopped
    share) of one question at budget ``n``, averaged over ``orders``.

    ``policy``: ``("plain", 0, 0)``, ``("floor", floor, 0)`` or ``("warmup", keep, w)``.
    """
    kind, value, warm = policy
    credit = optimistic = tokens = stopped = 0.0
    for order in orders:
        paths = order[:n]
        if kind == "plain":
            c = pool.vote(paths)
            credit, optimistic, tokens = (
                credit + c,
                optimistic + c,
                tokens + pool.tokens[paths].sum(),
            )
            continue
        if kind == "warmup":
            if n <= warm:
                c = pool.vote(paths)
                credit, optimistic = credit + c, optimistic + c
                tokens += pool.tokens[paths].sum()
                continue
            lowest = pool.lowest[paths[:warm]]
            lowest = lowest[np.isfinite(lowest)]
            floor = float(np.percentile(lowest, 100.0 - value)) if lowest.size else -math.inf
            head, watched = paths[:warm], paths[warm:]
        else:
            floor, head, watched = value, paths[:0], paths
        kept = [pool.stops(int(p), floor) for p in watched]
        alive = np.array([k == math.inf for k in kept], dtype=bool)
        voters = np.concatenate([head, watched[alive]])
        spent = pool.tokens[head].sum() + sum(
            pool.tokens[p] if k == math.inf else min(k, pool.tokens[p])
            for p, k in zip(watched, kept, strict=True)
        )
        tokens += spent
        stopped += float((~alive).sum()) / n
        if voters.size:
            c = pool.vote(voters)
            credit, optimistic = credit + c, optimistic + c
        else:  # every path stopped: the graph votes their partial answers (texts not kept)
            optimistic += pool.vote(paths)
    k = len(orders)
    return credit / k, optimistic / k, tokens / k, stopped / k


def plain_curve(pools: Sequence[Pool], orders: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """``[Q, M]`` credit and tokens of the plain vote at every N (Monte-Carlo orders)."""
    m = min(p.size for p in pools)
    credit, tokens = np.zeros((len(pools), m)), np.zeros((len(pools), m))
    for q, pool in enumerate(pools):
        perms = _orders(pool, pool.size, orders, seed + q)
        for n in range(1, m + 1):
            credit[q, n - 1], _, tokens[q, n - 1], _ = replay_pool(pool, n, ("plain", 0, 0), perms)
    return credit, tokens


def _interpolate(x: float, xs: FloatArray, ys: FloatArray) -> float:
    return float(np.interp(x, xs, ys))


def replay(args: argparse.Namespace) -> int:
    """Replay the policies on the traces (see the module docs); writes ``--out``."""
    started = time.perf_counter()
    rows = load_traces(args.traces)
    rows.sort(key=lambda r: r["id"])
    pools = [Pool(r, args.window) for r in rows]
    rng = np.random.default_rng(args.seed)
    is_val = np.zeros(len(pools), dtype=bool)
    is_val[rng.permutation(len(pools))[: len(pools) // 2]] = True
    budgets = t2_budgets(rows, args.estimator)
    floors = {
        keep: float(np.percentile(np.concatenate(
            [p.lowest[np.isfinite(p.lowest)] for p, v in zip(pools, is_val, strict=True) if v]
        ), 100.0 - keep))
        for keep in FLOOR_KEEPS
    }  # fmt: skip
    policies: dict[str, tuple[str, float, int]] = {"plain": ("plain", 0.0, 0)}
    for keep, floor in floors.items():
        policies[f"floor-keep{keep:g}"] = ("floor", floor, 0)
    for warm, keep in WARMUPS:
        policies[f"warmup{warm}-keep{keep:g}"] = ("warmup", keep, warm)
    credit_curve, token_curve = plain_curve(pools, args.orders, args.seed)
    report: dict[str, Any] = {
        "traces": str(args.traces),
        "questions": len(pools),
        "validation_questions": int(is_val.sum()),
        "test_questions": int((~is_val).sum()),
        "window": args.window,
        "orders": args.orders,
        "floors": {f"keep{k:g}": v for k, v in floors.items()},
        "plain_curve_test": {
            "accuracy": credit_curve[~is_val].mean(axis=0).round(4).tolist(),
            "tokens": token_curve[~is_val].mean(axis=0).round(1).tolist(),
        },
        "budgets": {},
    }
    settings_ = [(str(n), np.full(len(pools), n)) for n in args.n]
    settings_.append(("t2", budgets))
    for label, ns in settings_:
        out: dict[str, Any] = {"mean_n": float(ns.mean())}
        for name, policy in policies.items():
            values = np.zeros((len(pools), 4))
            for q, pool in enumerate(pools):
                perms = _orders(pool, pool.size, args.orders, args.seed + q)
                values[q] = replay_pool(pool, int(ns[q]), policy, perms)
            out[name] = _summarise(values, ns, credit_curve, token_curve, is_val, args)
        out["chosen_on_validation"] = _choose(out, policies)
        report["budgets"][label] = out
        print(f"N={label}: chosen {out['chosen_on_validation']}", file=sys.stderr)
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{len(pools)} questions -> {args.out}", file=sys.stderr)
    return 0


def t2_budgets(rows: Sequence[dict[str, Any]], estimator: str) -> npt.NDArray[np.int64]:
    """T2's N for each traced question: the shipped estimator on its collection's features."""
    from t2_agents.calibrate.collect import load_collection
    from t2_agents.estimator.estimator import T2Estimator

    est = T2Estimator.load(estimator)
    chosen: dict[str, int] = {}
    for folder in HELDOUT:
        collection = load_collection(folder)
        slots = [collection.layers.index(x) for x in est.layers]
        ns = np.asarray(est.predict(collection.features[:, slots, :]))
        chosen.update((r["id"], int(n)) for r, n in zip(collection.records, ns, strict=True))
    return np.clip(np.array([chosen[r["id"]] for r in rows], dtype=np.int64), 1, 32)


def _at(curve: FloatArray, position: float) -> FloatArray:
    """Columns of ``curve`` ([Q, M], column n-1 = budget n) interpolated at budget ``position``."""
    lo = int(np.clip(math.floor(position), 1, curve.shape[1]))
    hi = min(lo + 1, curve.shape[1])
    w = float(np.clip(position - lo, 0.0, 1.0))
    return (1 - w) * curve[:, lo - 1] + w * curve[:, hi - 1]


def _budget_at(mean_curve: FloatArray, value: float) -> float | None:
    """The (fractional) budget where an increasing mean curve reaches ``value``; None beyond."""
    running = np.maximum.accumulate(mean_curve)
    if value > running[-1]:
        return None
    if value <= running[0]:
        return 1.0
    hi = int(np.flatnonzero(running >= value)[0])
    lo = hi - 1
    span = running[hi] - running[lo]
    return lo + 1 + (0.0 if span <= 0 else (value - running[lo]) / span)


def _summarise(
    values: FloatArray,
    ns: npt.NDArray[np.int64],
    credit_curve: FloatArray,
    token_curve: FloatArray,
    is_val: npt.NDArray[np.bool_],
    args: argparse.Namespace,
) -> dict[str, Any]:
    from t2_agents.curves.compare import paired_difference

    out: dict[str, Any] = {}
    for split, mask in (("validation", is_val), ("test", ~is_val)):
        v, n = values[mask], ns[mask]
        credit, tokens = credit_curve[mask], token_curve[mask]
        rows = np.arange(int(mask.sum()))
        same_credit, same_tokens = credit[rows, n - 1], tokens[rows, n - 1]
        accuracy, spent = float(v[:, 0].mean()), float(v[:, 2].mean())
        mean_tokens = tokens.mean(axis=0)
        at_tokens = _budget_at(mean_tokens, spent)  # tokens grow with N
        equal_tokens = None
        if at_tokens is not None:
            d = paired_difference(
                v[:, 0].tolist(), _at(credit, at_tokens).tolist(),
                resamples=args.resamples, seed=args.seed,
            )  # fmt: skip
            equal_tokens = {"plain_n": round(at_tokens, 2), "difference": d["difference"],
                            "ci": d["ci"]}  # fmt: skip
        at_accuracy = _budget_at(credit.mean(axis=0), accuracy)
        saving = None
        if at_accuracy is not None:
            needed = float(np.interp(at_accuracy, np.arange(1, len(mean_tokens) + 1), mean_tokens))
            saving = {"plain_n": round(at_accuracy, 2), "plain_tokens": round(needed, 1),
                      "saving": round(1 - spent / needed, 4)}  # fmt: skip
        same = paired_difference(
            v[:, 0].tolist(), same_credit.tolist(), resamples=args.resamples, seed=args.seed
        )
        out[split] = {
            "accuracy": round(accuracy, 4),
            "accuracy_if_all_stopped_voted": round(float(v[:, 1].mean()), 4),
            "tokens": round(spent, 2),
            "stopped_share": round(float(v[:, 3].mean()), 4),
            "vs_plain_same_n": {"difference": same["difference"], "ci": same["ci"],
                                "token_saving": round(1 - spent / float(same_tokens.mean()), 4)},
            "vs_plain_equal_tokens": equal_tokens,
            "tokens_saved_at_equal_accuracy": saving,
        }  # fmt: skip
    return out


def _choose(out: dict[str, Any], policies: dict[str, Any]) -> str:
    """The policy with the best validation accuracy over the plain vote at equal tokens."""

    def gain(name: str) -> float:
        row = out[name]["validation"]["vs_plain_equal_tokens"]
        return -math.inf if row is None else float(row["difference"])

    return max(policies, key=gain)


def plot(args: argparse.Namespace) -> int:
    """Accuracy vs completion tokens per question on the test half, from ``replay``'s JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(args.results.read_text())
    curve = data["plain_curve_test"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.plot(curve["tokens"], curve["accuracy"], "-", color="0.5", label="plain vote, N = 1..32")
    marks = {"plain": ("o", "black"), "floor": ("s", "tab:blue"), "warmup": ("^", "tab:orange")}
    seen: set[str] = set()
    for budget, block in data["budgets"].items():
        for name, row in block.items():
            if name in ("mean_n", "chosen_on_validation"):
                continue
            kind = "plain" if name == "plain" else name.split("-")[0].rstrip("0123456789")
            if kind == "plain" and budget != "t2":
                continue
            marker, color = marks[kind]
            chosen = block["chosen_on_validation"] == name
            label = None
            if kind not in seen:
                label = {"plain": "T2 alone", "floor": "fixed floor",
                         "warmup": "warm-up (DeepConf-online)"}[kind]  # fmt: skip
                seen.add(kind)
            test = row["test"]
            ax.scatter(test["tokens"], test["accuracy"], marker=marker, color=color,
                       s=70 if chosen or kind == "plain" else 22,
                       edgecolors="black" if chosen else "none", label=label,
                       zorder=4 if kind == "plain" else 3)  # fmt: skip
        for name in (block["chosen_on_validation"],):
            test = block[name]["test"]
            tag = f"N={budget}" if budget != "t2" else "T2"
            ax.annotate(f"{tag}: {name}", (test["tokens"], test["accuracy"]),
                        textcoords="offset points", xytext=(6, -10), fontsize=7)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("completion tokens per question (log)")
    ax.set_ylabel("accuracy (test half)")
    ax.set_title(f"Early stop of weak paths, {data['test_questions']} held-out questions "
                 "(large marks: chosen on validation)", fontsize=9)  # fmt: skip
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"-> {args.out}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample", help="resample held-out questions with per-token confidences")
    s.add_argument("--data", nargs="+", default=HELDOUT)
    s.add_argument("--estimator", default=SHIPPED)
    s.add_argument("--traces", type=Path, required=True)
    s.add_argument("--samples", type=int, default=32)
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--seed", type=int, default=2424)
    r = sub.add_parser("replay", help="replay early-stop policies on the traces")
    r.add_argument("--traces", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--estimator", default=SHIPPED)
    r.add_argument("--n", nargs="+", type=int, default=list(FIXED_N))
    r.add_argument("--window", type=int, default=WINDOW)
    r.add_argument("--orders", type=int, default=100, help="random path orders per question")
    r.add_argument("--resamples", type=int, default=2000)
    r.add_argument("--seed", type=int, default=0)
    g = sub.add_parser("plot", help="accuracy vs tokens from replay's JSON")
    g.add_argument("--results", type=Path, default=Path("bench/results/early_stop.json"))
    g.add_argument("--out", type=Path, default=Path("docs/early_stop.png"))
    args = parser.parse_args(argv)
    if args.command == "sample":
        return sample(args)
    if args.command == "plot":
        return plot(args)
    return replay(args)


if __name__ == "__main__":
    raise SystemExit(main())
