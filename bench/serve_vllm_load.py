"""Load on vLLM: ``t2 serve --engine vllm`` next to a plain ``vllm serve``, same paths per question.

    .venv-vllm/bin/python bench/serve_vllm_load.py --out bench/results/serve_vllm_load.json

Smoke run: ``--levels 1,2 --requests 4 --rounds 1 --poisson-rates 0.5 --poisson-seconds 8``.

The servers run one after the other, never together (2 cores): ``t2 serve --engine vllm`` (the
vLLM venv's ``t2``, ``--max-concurrency 256``), then the plain server of
``serve_command(VLLMConfig())`` (the library's model, context, KV cache and CPU settings), both
with ``VLLM_CPU_OMP_THREADS_BIND=0-1 VLLM_CPU_NUM_OF_RESERVED_CPU=0`` on a free loopback port;
ready when ``/v1/models`` answers (start-up timed); stopped by SIGTERM to the main process, then
its group, and checked for left-over children (EngineCore).

Each request asks its own "What is a + b? Give only the final answer." (3-5 digit operands, no
number shared between questions), temperature 0.7, ``max_tokens`` 48, seed ``1000 + question``,
``/v1/chat/completions``. Variants, the same paths per question on both servers:

- ``fixed8``: t2 serve with ``t2.n = 8``; plain vLLM with ``n = 8``, the client votes the choices
  with the library's extractor and majority vote.
- ``t2``: t2 serve with ``t2.policy = "t2"`` (``t2.n_max`` = ``--t2-n-max``); the plain server
  replays T2's chosen N for the same question, level and round.

Closed loop at ``--levels`` clients (each sends its next request when its previous one returns;
``max(2 * clients, --requests)`` requests per round, ``--rounds`` rounds, RSS after each), then
open loops of Poisson arrivals at ``--poisson-rates`` per second for ``--poisson-seconds``,
rising until a rate saturates the server: a 429, an error, a p95 above ``--p95-bound`` s, or
requests served below ``--min-served`` of the offered rate. Per level: requests/s, completion
tokens/s (``usage``), p50/p95/p99 latency, 429s, other errors, accuracy, the server tree's RSS
(peak, and after each round), and a cross-talk check of every reply: ``usage.prompt_tokens`` is
its own question's (chat template, tokenizer), it has the paths it asked for, t2's
``distribution`` is the vote of its own paths, and no path or answer holds a number of a request
in flight at the same time that is not also its own. The JSON is rewritten after every level
(``--resume`` skips the levels already in ``--out``); ``ratios`` holds t2 serve / plain vLLM
per level.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from t2_agents.answers import get_extractor
from t2_agents.voting import vote

SERVERS = ("t2", "vllm")
VARIANTS = ("fixed8", "t2")
SERVER_ENV = {"VLLM_CPU_OMP_THREADS_BIND": "0-1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
_NUMBER = re.compile(r"\d+")
Bodies = list[tuple[int, dict[str, Any]]]


# ------------------------------------------------------------------------------ pure helpers
@dataclass(frozen=True)
class Question:
    """``What is a + b?`` with operands (and sum) that no other question uses."""

    index: int
    a: int
    b: int

    @property
    def text(self) -> str:
        """The question as asked."""
        return f"What is {self.a} + {self.b}? Give only the final answer."

    @property
    def numbers(self) -> frozenset[int]:
        """Its operands and its sum."""
        return frozenset({self.a, self.b, self.a + self.b})


def make_questions(count: int, *, seed: int = 0) -> list[Question]:
    """``count`` questions with 3-5 digit operands; no number is shared between two of them."""
    rng, used, out = random.Random(seed), set[int](), list[Question]()
    while len(out) < count:
        da, db = 3 + len(out) % 3, 3 + (len(out) // 3) % 3
        a, b = rng.randrange(10 ** (da - 1), 10**da), rng.randrange(10 ** (db - 1), 10**db)
        if len({a, b, a + b}) == 3 and not {a, b, a + b} & used:
            used |= {a, b, a + b}
            out.append(Question(len(out), a, b))
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0..1), linear between order statistics; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def poisson_schedule(rate: float, count: int, *, seed: int = 0) -> list[float]:
    """Arrival times (s from the start) of ``count`` requests of a Poisson process of ``rate``/s."""
    if rate <= 0:
        raise ValueError(f"rate={rate} must be > 0")
    rng, clock, out = random.Random(seed), 0.0, list[float]()
    for _ in range(count):
        clock += rng.expovariate(rate)
        out.append(clock)
    return out


def vote_texts(texts: Sequence[str], *, seed: int = 0) -> tuple[str | None, dict[str, float]]:
    """The client's vote over plain vLLM's choices: the library's extractor and majority vote."""
    extract = get_extractor(None)
    verdict = vote([extract(text) for text in texts], seed=seed)
    return verdict.answer, dict(verdict.distribution)


@dataclass
class Reply:
    """One request's outcome (``texts`` and ``path_answers`` stay out of the JSON)."""

    index: int
    seed: int
    n_asked: int | None
    start: float
    end: float = 0.0
    status: int = 0
    error: str | None = None
    n: int | None = None
    answer: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int = 0
    distribution: dict[str, float] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    path_answers: list[str | None] | None = None
    node_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def latency(self) -> float:
        """Seconds from sending to the whole reply."""
        return self.end - self.start

    def row(self) -> list[Any]:
        """JSON row: index, status, n, latency, prompt tokens, completion tokens, answer."""
        return [self.index, self.status, self.n, round(self.latency, 4), self.prompt_tokens,
                self.completion_tokens, self.answer]  # fmt: skip


def parse_reply(reply: Reply, body: dict[str, Any], server: str) -> None:
    """Fill ``reply`` from a 200 body of t2 serve (its ``t2`` field) or plain vLLM (choices)."""
    usage = body.get("usage") or {}
    reply.prompt_tokens = usage.get("prompt_tokens")
    reply.completion_tokens = int(usage.get("completion_tokens") or 0)
    if server == "t2":
        t2 = body["t2"]
        paths = t2.get("paths") or []
        reply.n, reply.answer, reply.distribution = t2["n"], t2["answer"], t2["distribution"]
        reply.texts = [p["text"] for p in paths] or [body["choices"][0]["message"]["content"]]
        reply.path_answers = [p["answer"] for p in paths]
        seconds = (t2.get("cost") or {}).get("seconds") or {}
        reply.node_seconds = {k: float(v) for k, v in seconds.items() if v is not None}
    else:
        reply.texts = [c["message"]["content"] or "" for c in body["choices"]]
        reply.n = len(reply.texts)
        reply.answer, reply.distribution = vote_texts(reply.texts, seed=reply.seed)


def overlapping(replies: Sequence[Reply]) -> list[set[int]]:
    """For each reply, the positions of the other replies whose time spans overlap its own."""
    return [
        {j for j, o in enumerate(replies) if j != i and o.start < r.end and r.start < o.end}
        for i, r in enumerate(replies)
    ]


def check_crosstalk(
    replies: Sequence[Reply], questions: Sequence[Question], tokens: dict[int, int]
) -> dict[str, Any]:
    """Each 200 reply must be its own request's (see the module docs): failures by kind."""
    bad: dict[str, list[int]] = {"prompt_tokens": [], "paths": [], "vote": [], "foreign": []}
    for r, others in zip(replies, overlapping(replies), strict=True):
        if r.status != 200:
            continue
        if tokens and r.prompt_tokens != tokens.get(r.index):
            bad["prompt_tokens"].append(r.index)
        if r.n != len(r.texts) or r.n_asked not in (None, r.n):
            bad["paths"].append(r.index)
        if r.path_answers is not None:
            counts = Counter(a for a in r.path_answers if a is not None)
            if {k: float(v) for k, v in counts.items()} != r.distribution:
                bad["vote"].append(r.index)
        own = questions[r.index].numbers
        foreign = set[int]().union(*(questions[replies[j].index].numbers for j in others)) - own
        seen = {int(m) for text in r.texts for m in _NUMBER.findall(text)}
        if r.answer is not None and r.answer.isdigit():
            seen.add(int(r.answer))
        if seen & foreign:
            bad["foreign"].append(r.index)
    checked = sum(r.status == 200 for r in replies)
    return {"checked": checked, "failures": sum(map(len, bad.values())), **bad}


def merge_crosstalk(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The cross-talk reports of several rounds added up."""
    out: dict[str, Any] = {}
    for report in reports:
        for kind, value in report.items():
            out[kind] = out.get(kind, [] if isinstance(value, list) else 0) + value
    return out


def summarize(
    replies: Sequence[Reply], wall: float, questions: Sequence[Question]
) -> dict[str, Any]:
    """Throughput, latency percentiles, 429s, other errors and accuracy of one run."""
    ok = [r for r in replies if r.status == 200]
    latencies = [r.latency for r in ok]
    errors = Counter(str(r.status or r.error) for r in replies if r.status not in (200, 429))
    right = sum(r.answer == str(questions[r.index].a + questions[r.index].b) for r in ok)
    return {
        "requests": len(replies),
        "ok": len(ok),
        "wall_s": wall,
        "requests_per_s": len(ok) / wall if wall > 0 else 0.0,
        "completion_tokens_per_s": sum(r.completion_tokens for r in ok) / wall if wall > 0 else 0.0,
        "paths": sum(r.n or 0 for r in ok),
        "p50_s": percentile(latencies, 0.5),
        "p95_s": percentile(latencies, 0.95),
        "p99_s": percentile(latencies, 0.99),
        "status_429": sum(r.status == 429 for r in replies),
        "errors": dict(errors),
        "accuracy": right / len(ok) if ok else None,
    }


def level_key(server: str, mode: str, variant: str, level: float) -> str:
    """The key of one level in the results' ``levels``: ``server:mode:variant:level``."""
    return f"{server}:{mode}:{variant}:{level:g}"


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(levels: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """t2 serve / plain vLLM for every (mode, variant, level) measured on both servers."""
    out = []
    for key, t2 in levels.items():
        server, _, rest = key.partition(":")
        plain = levels.get("vllm:" + rest)
        if server != "t2" or plain is None:
            continue
        a, b = t2["total"], plain["total"]
        out.append(
            {
                "mode": t2["mode"],
                "variant": t2["variant"],
                "level": t2["level"],
                "requests_per_s": _div(a["requests_per_s"], b["requests_per_s"]),
                "completion_tokens_per_s": _div(
                    a["completion_tokens_per_s"], b["completion_tokens_per_s"]
                ),
                "p50": _div(a["p50_s"], b["p50_s"]),
                "p95": _div(a["p95_s"], b["p95_s"]),
                "paths_equal": a["paths"] == b["paths"],
            }
        )
    return out


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(result: dict[str, Any]) -> str:
    """One line per level, ``t2 serve/plain vLLM`` in each cell, and their throughput ratio."""
    levels = result["levels"]
    ratio_of = {(r["mode"], r["variant"], r["level"]): r for r in result.get("ratios", [])}
    head = ["mode", "variant", "level", "req/s", "ratio", "tok/s", "p50 s", "p95 s", "429",
            "errors", "xtalk", "RSS peak MB"]  # fmt: skip
    cells: dict[str, Callable[[dict[str, Any]], str]] = {
        "req/s": lambda x: _fmt(x["total"]["requests_per_s"]),
        "tok/s": lambda x: _fmt(x["total"]["completion_tokens_per_s"], 0),
        "p50 s": lambda x: _fmt(x["total"]["p50_s"], 1),
        "p95 s": lambda x: _fmt(x["total"]["p95_s"], 1),
        "429": lambda x: str(x["total"]["status_429"]),
        "errors": lambda x: str(sum(x["total"]["errors"].values())),
        "xtalk": lambda x: str(x["crosstalk"]["failures"]),
        "RSS peak MB": lambda x: _fmt(x["rss_peak_mb"], 0),
    }
    rows = [head]
    rests = {k.partition(":")[2] for k in levels}
    for rest in sorted(rests, key=lambda k: (k.rsplit(":", 1)[0], float(k.rsplit(":", 1)[1]))):
        pair = [levels.get(f"{server}:{rest}") for server in SERVERS]
        mode, variant, level = rest.split(":")
        ratio = ratio_of.get((mode, variant, float(level)), {}).get("requests_per_s")
        row = [mode, variant, level]
        for name in head[3:]:
            if name == "ratio":
                row.append(_fmt(ratio))
            else:
                row.append("/".join("-" if x is None else cells[name](x) for x in pair))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(
        ["cells: t2 serve/plain vLLM; ratio: t2 serve / plain vLLM requests/s", *lines]
    )


# ------------------------------------------------------------------------------ memory
def _children(pid: int) -> list[int]:
    """Descendants of ``pid`` (psutil when installed, else a scan of /proc)."""
    try:
        import psutil
    except ImportError:
        parents: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
        out, todo = [], [pid]
        while todo:
            kids = parents.get(todo.pop(), [])
            out += kids
            todo += kids
        return out
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """Samples a server's process-tree RSS (MB, summed: shared pages count more than once)
    every ``interval`` s in a thread; ``peak`` since the last reset, ``seen`` every child."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval, self.peak, self.seen = pid, interval, 0.0, set[int]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def sample(self) -> float:
        """One sample now (it also raises ``peak``)."""
        kids = _children(self.pid)
        self.seen.update(kids)
        value = _rss_mb(self.pid) + sum(_rss_mb(k) for k in kids)
        self.peak = max(self.peak, value)
        return value

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def close(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=5)


# ------------------------------------------------------------------------------ servers
def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(server: str, port: int, args: argparse.Namespace) -> list[str]:
    """``t2 serve --engine vllm ...`` or the library's plain ``vllm serve`` command line."""
    if server == "t2":
        command = [args.t2_bin, "serve", "--engine", "vllm", "--port", str(port),
                   "--max-n", str(max(16, args.t2_n_max)), "--n-max", str(args.t2_n_max),
                   "--max-concurrency", str(args.t2_max_concurrency),
                   "--request-timeout", str(args.timeout)]  # fmt: skip
    else:
        from t2_agents.backends.vllm import VLLMConfig, serve_command

        command = serve_command(VLLMConfig(), port=port, python=args.vllm_python)
    return command + (["--api-key", args.api_key] if args.api_key else [])


def start_server(
    command: list[str], log: Path, headers: dict[str, str], timeout: float
) -> tuple[subprocess.Popen[bytes], str, float]:
    """Start a server in its own process group; wait until ``/v1/models`` answers 200."""
    url = f"http://127.0.0.1:{command[command.index('--port') + 1]}"
    env = {**os.environ, **SERVER_ENV}
    with log.open("ab") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{command[:3]} exited with {process.returncode}; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/v1/models", headers=headers, timeout=2).status_code == 200:
                return process, url, time.monotonic() - started
        time.sleep(1)
    stop_server(process, set(_children(process.pid)))
    raise RuntimeError(f"{command[:3]} was not ready within {timeout} s; see {log}")


def _alive(pid: int) -> tuple[int, str] | None:
    """``(process group, name)`` of a live (not zombie) process, None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()
    return None if rest[0] in "ZX" else (int(rest[2]), name)


def stop_server(
    process: subprocess.Popen[bytes], seen: set[int], *, linger: float = 15.0
) -> dict[str, Any]:
    """SIGTERM the main process (then its group, then SIGKILL); give its children ``linger`` s
    to exit, then SIGKILL those left in its process group and report them (and any seen child
    still running outside the group, which is left alone)."""
    clock, steps = time.monotonic(), []
    plan = [(signal.SIGTERM, False, 60), (signal.SIGTERM, True, 15), (signal.SIGKILL, True, 10)]
    for sig, group, wait in plan:
        if process.poll() is not None:
            break
        steps.append(f"{sig.name} {'group' if group else 'main'}")
        with contextlib.suppress(subprocess.TimeoutExpired, ProcessLookupError):
            (os.killpg if group else os.kill)(process.pid, sig)
            process.wait(timeout=wait)
    deadline = time.monotonic() + linger
    while True:
        left = {p: info for p in seen if (info := _alive(p)) is not None}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for pid, (pgid, _) in left.items():
        if pgid == process.pid:  # the group this script started: nothing else is in it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return {
        "seconds": time.monotonic() - clock,
        "signals": steps,
        "returncode": process.returncode,
        "children_seen": len(seen),
        "left_over": {str(pid): name for pid, (_, name) in left.items()},
    }


# ------------------------------------------------------------------------------ load
def payload(
    server: str, model: str, q: Question, n: int | None, args: argparse.Namespace
) -> dict[str, Any]:
    """The request body; ``n`` is the fixed N (None: t2 serve's T2 policy chooses)."""
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": q.text}],
                            "max_tokens": args.max_tokens, "temperature": args.temperature,
                            "seed": 1000 + q.index}  # fmt: skip
    if server == "vllm":
        body["n"] = n
    elif n is None:
        body["t2"] = {"policy": "t2", "n_max": args.t2_n_max, "paths": True}
    else:
        body["t2"] = {"n": n, "paths": True}
    return body


async def send(client: httpx.AsyncClient, server: str, body: dict[str, Any], index: int) -> Reply:
    """POST one chat completion and parse it into a :class:`Reply`."""
    asked = body.get("n") if server == "vllm" else body["t2"].get("n")
    reply = Reply(index=index, seed=body["seed"], n_asked=asked, start=time.perf_counter())
    try:
        response = await client.post("/v1/chat/completions", json=body)
        reply.status = response.status_code
        if reply.status == 200:
            parse_reply(reply, response.json(), server)
        else:
            reply.error = response.text[:200]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        reply.status, reply.error = 0, f"{type(exc).__name__}: {exc}"[:200]
    reply.end = time.perf_counter()
    return reply


async def closed_loop(
    client: httpx.AsyncClient, server: str, bodies: Bodies, clients: int
) -> tuple[list[Reply], float]:
    """``clients`` workers, each sending its next request when its previous one returned."""
    replies: list[Reply] = []
    work = iter(bodies)

    async def worker() -> None:
        for index, body in work:  # one shared iterator: each body goes to one worker
            replies.append(await send(client, server, body, index))

    clock = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(clients, len(bodies)))))
    return replies, time.perf_counter() - clock


async def open_loop(
    client: httpx.AsyncClient, server: str, bodies: Bodies, arrivals: list[float]
) -> tuple[list[Reply], float]:
    """Send each request at its arrival time, whatever is still in flight."""
    clock = time.perf_counter()

    async def at(when: float, index: int, body: dict[str, Any]) -> Reply:
        await asyncio.sleep(max(0.0, clock + when - time.perf_counter()))
        return await send(client, server, body, index)

    runs = (at(t, i, b) for t, (i, b) in zip(arrivals, bodies, strict=True))
    replies = await asyncio.gather(*runs)
    return list(replies), time.perf_counter() - clock


def replayed_n(levels: dict[str, Any], rest: str, round_index: int, index: int) -> int:
    """The N t2 serve's T2 policy chose for question ``index`` at this level (``rest``: its key
    without the server) and round; else its most common choice anywhere; else the overall one."""
    same = levels.get("t2:" + rest)
    if same is not None and round_index < len(same["rows"]):
        for row in same["rows"][round_index]:
            if row[0] == index and row[2]:
                return int(row[2])
    t2 = [e for k, e in levels.items() if k.startswith("t2:") and e["variant"] == "t2"]
    rows = [row for entry in t2 for rnd in entry["rows"] for row in rnd if row[2]]
    common = Counter(r[2] for r in rows if r[0] == index) or Counter(r[2] for r in rows)
    if not common:
        raise RuntimeError("no T2 choice to replay: run t2 serve's t2 variant first")
    return int(common.most_common(1)[0][0])


@dataclass
class Bench:
    """What every level of a run shares."""

    args: argparse.Namespace
    questions: list[Question]
    tokens: dict[int, int]
    result: dict[str, Any]
    save: Callable[[], None]


def run_level(bench: Bench, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop,
              server: str, model: str, plan: tuple[str, str, float], sampler: RssSampler,
              ) -> dict[str, Any]:  # fmt: skip
    """All rounds of one level on one server: its entry for the results' ``levels``."""
    (mode, variant, level), args, questions = plan, bench.args, bench.questions
    rest = level_key(server, *plan).partition(":")[2]
    count = max(2 * int(level), args.requests)
    if mode == "open":
        count = max(1, round(level * args.poisson_seconds))
    entry: dict[str, Any] = {"server": server, "mode": mode, "variant": variant, "level": level,
                             "requests_per_round": count, "rounds": [], "rows": []}  # fmt: skip
    reports, everything = [], list[Reply]()
    sampler.peak = sampler.sample()
    for r in range(args.rounds if mode == "closed" else 1):
        bodies = []
        for q in questions[:count]:
            n: int | None = 8 if variant == "fixed8" else None
            if variant == "t2" and server == "vllm":
                n = replayed_n(bench.result["levels"], rest, r, q.index)
            bodies.append((q.index, payload(server, model, q, n, args)))
        if mode == "closed":
            run = closed_loop(client, server, bodies, int(level))
        else:
            arrivals = poisson_schedule(level, count, seed=args.seed + r)
            entry["offered_per_s"] = count / arrivals[-1]
            run = open_loop(client, server, bodies, arrivals)
        replies, wall = loop.run_until_complete(run)
        replies.sort(key=lambda x: x.index)
        reports.append(check_crosstalk(replies, questions, bench.tokens))
        everything += replies
        stats = summarize(replies, wall, questions)
        stats.update(rss_after_mb=sampler.sample(), crosstalk_failures=reports[-1]["failures"])
        entry["rounds"].append(stats)
        entry["rows"].append([x.row() for x in replies])
    entry["total"] = summarize(everything, sum(x["wall_s"] for x in entry["rounds"]), questions)
    entry["crosstalk"] = merge_crosstalk(reports)
    entry["rss_peak_mb"] = sampler.peak
    entry["n_chosen"] = dict(Counter(str(x.n) for x in everything if x.status == 200))
    nodes = sorted({node for x in everything for node in x.node_seconds})
    entry["node_seconds_p50"] = {  # t2 serve's own account of each graph node (t2.cost)
        node: percentile([x.node_seconds[node] for x in everything if node in x.node_seconds], 0.5)
        for node in nodes
    }
    if mode == "open":
        entry["saturated"] = saturation(entry["total"], entry["offered_per_s"], args)
    return entry


def saturation(total: dict[str, Any], offered: float, args: argparse.Namespace) -> str | None:
    """Why an open-loop rate saturated the server (429s, errors, p95 above the bound, or it
    served under ``--min-served`` of the offered rate); None when it kept up."""
    if total["status_429"] or total["errors"]:
        return f"{total['status_429']} 429s, errors {total['errors']}"
    if total["p95_s"] is None or total["p95_s"] > args.p95_bound:
        return f"p95 {_fmt(total['p95_s'])} s above {args.p95_bound:g} s"
    if total["requests_per_s"] < args.min_served * offered:
        return f"served {total['requests_per_s']:.2f}/s of {offered:.2f}/s offered"
    return None


def run_server(bench: Bench, server: str) -> None:
    """Start one server, run each level not yet in the results (writing them), stop it."""
    args, levels = bench.args, bench.result["levels"]
    plan = [("closed", v, float(c)) for v in args.variants for c in args.levels]
    plan += [("open", v, float(rate)) for v in args.variants for rate in args.poisson_rates]
    done = {k: e for k, e in levels.items() if k.startswith(server + ":")}
    saturated = {(e["mode"], e["variant"]) for e in done.values() if e.get("saturated")}
    todo = [p for p in plan if level_key(server, *p) not in done and p[:2] not in saturated]
    if not todo:
        return
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    command = server_command(server, free_port(), args)
    log = args.log_dir / f"{server}.log"
    process, url, startup = start_server(command, log, headers, args.startup_timeout)
    sampler = RssSampler(process.pid)
    info = bench.result["servers"].setdefault(server, {})
    info.update(command=command, log=str(log), startup_s=startup, rss_idle_mb=sampler.sample())
    print(f"{server}: ready in {startup:.1f} s, {info['rss_idle_mb']:.0f} MB", flush=True)
    loop = asyncio.new_event_loop()
    limits = httpx.Limits(max_connections=4096, max_keepalive_connections=4096)
    client = httpx.AsyncClient(base_url=url, headers=headers, timeout=args.timeout, limits=limits)
    try:
        model = httpx.get(url + "/v1/models", headers=headers).json()["data"][0]["id"]
        for variant in args.variants:  # one warm-up request per variant, not measured
            n = 8 if variant == "fixed8" else (None if server == "t2" else 1)
            body = payload(server, model, Question(-1, 12, 34), n, args)
            warm = loop.run_until_complete(send(client, server, body, -1))
            info[f"warmup_{variant}"] = {"status": warm.status, "seconds": warm.latency}
        for mode, variant, level in todo:
            if (mode, variant) in saturated:
                continue
            key = level_key(server, mode, variant, level)
            entry = run_level(bench, client, loop, server, model, (mode, variant, level), sampler)
            t = entry["total"]
            if entry.get("saturated"):
                saturated.add((mode, variant))
            levels[key] = entry
            bench.save()
            print(f"{key}: {t['requests_per_s']:.2f} req/s, {t['completion_tokens_per_s']:.0f} "
                  f"tok/s, p50/p95 {_fmt(t['p50_s'])}/{_fmt(t['p95_s'])} s, 429s "
                  f"{t['status_429']}, errors {t['errors']}, cross-talk "
                  f"{entry['crosstalk']['failures']}, RSS peak {entry['rss_peak_mb']:.0f} MB"
                  + (f"; saturated: {entry['saturated']}" if entry.get("saturated") else ""),
                  flush=True)  # fmt: skip
    finally:
        sampler.close()
        info["shutdown"] = stop_server(process, sampler.seen)
        bench.save()
        with contextlib.suppress(Exception):
            loop.run_until_complete(client.aclose())
        loop.close()
        print(f"{server}: stopped in {info['shutdown']['seconds']:.1f} s, "
              f"left over {info['shutdown']['left_over']}", flush=True)  # fmt: skip


def prompt_tokens(questions: Sequence[Question]) -> dict[int, int]:
    """Each question's own prompt length: the model's chat template and tokenizer."""
    from t2_agents.backends.base import render_chat
    from t2_agents.backends.default_model import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model(None))
    rendered = {q.index: render_chat(tokenizer, q.text, None) for q in questions}
    return {
        i: len(tokenizer(t, add_special_tokens=False)["input_ids"]) for i, t in rendered.items()
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docs)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--levels", default="1,8,32,64", help="closed loop: concurrent clients")
    add("--requests", type=int, default=16, help="closed loop: max(2 * clients, this) per round")
    add("--rounds", type=int, default=3, help="closed loop: rounds per level (RSS after each)")
    add("--poisson-rates", default="0.25,0.5,1,2,4", help="open loop: arrivals per second")
    add("--poisson-seconds", type=float, default=60.0, help="open loop: arrivals for this long")
    add("--p95-bound", type=float, default=30.0, help="open loop: saturated above this p95 (s)")
    add("--min-served", type=float, default=0.8, help="open loop: saturated below this share")
    add("--variants", default="fixed8,t2", help="fixed8 and/or t2 (T2 chooses, vLLM replays)")
    add("--servers", default="t2,vllm", help="t2 and/or vllm (t2 runs first: vLLM replays it)")
    add("--t2-n-max", type=int, default=8, help="t2 variant: the largest N T2 may choose")
    add("--t2-max-concurrency", type=int, default=256, help="t2 serve --max-concurrency")
    add("--max-tokens", type=int, default=48)
    add("--temperature", type=float, default=0.7)
    add("--timeout", type=float, default=600.0, help="seconds per request (client, t2 serve)")
    add("--startup-timeout", type=float, default=600.0)
    add("--api-key", default=None, help="pass --api-key to both servers")
    add("--seed", type=int, default=0, help="seed of the questions")
    add("--t2-bin", default=str(Path(sys.executable).with_name("t2")))
    add("--vllm-python", default=sys.executable)
    add("--log-dir", type=Path, default=Path("/tmp/serve_vllm_load"), help="server logs")
    add("--out", type=Path, default=Path("bench/results/serve_vllm_load.json"))
    add("--resume", action="store_true", help="keep the levels already in --out")
    args = parser.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",") if x]
    args.poisson_rates = [float(x) for x in args.poisson_rates.split(",") if x]
    for name, known in (("variants", VARIANTS), ("servers", SERVERS)):
        chosen = [x for x in getattr(args, name).split(",") if x]
        if set(chosen) - set(known):
            parser.error(f"--{name}: use {', '.join(known)}")
        setattr(args, name, [x for x in known if x in chosen])
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both servers one after the other; print the table; write and return the results."""
    args = parse_args(argv)
    settings = {
        k: v for k, v in vars(args).items() if k not in ("api_key", "resume", "out", "servers")
    }
    settings["log_dir"] = str(args.log_dir)
    result: dict[str, Any] = {"command": " ".join(["python", *sys.argv]), "settings": settings}
    if args.resume and args.out.exists():
        result = json.loads(args.out.read_text())
        if result["settings"] != settings:
            raise SystemExit(f"--resume: {args.out} was written with other settings")
    most = max([0.0, *args.poisson_rates]) * args.poisson_seconds
    count = max([2 * c for c in args.levels] + [args.requests, round(most), 1])
    questions = make_questions(count, seed=args.seed)
    tokens = prompt_tokens(questions)
    result.setdefault("servers", {})
    result.setdefault("levels", {})
    lengths = Counter(str(n) for n in tokens.values())
    result.update(server_env=SERVER_ENV, omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
                  prompt_tokens=dict(lengths))  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.log_dir.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        result["ratios"] = ratios(result["levels"])
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(args.out)

    bench = Bench(args, questions, tokens, result, save)
    started = time.perf_counter()
    for server in args.servers:
        run_server(bench, server)
    result["script_s"] = result.get("script_s", 0.0) + time.perf_counter() - started
    save()
    print(format_table(result))
    for r in result["ratios"]:
        if r["mode"] == "closed" and r["level"] == 32:
            print(f"32 clients, {r['variant']}: t2 serve / plain vLLM requests/s "
                  f"{_fmt(r['requests_per_s'])} (target >= 0.90)")  # fmt: skip
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
