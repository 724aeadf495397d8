"""bench/serve_vllm_load.py: its pure helpers (fast, no model) and one tiny real run (vLLM).

The fast tests check the percentiles, the Poisson schedule, the questions, the client-side vote,
the cross-talk check (it must catch a reply carrying a concurrent request's numbers, a wrong
prompt length, missing paths and a distribution that is not its own paths' vote), the
summaries, ratios, the table, the replay of T2's choices, the saturation rule and the shutdown
of a process tree. The ``vllm`` test starts both real servers one after the other at levels 1
and 2 with a few requests and checks the result's structure and that nothing crossed.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import load_script, needs_vllm

BENCH = Path(__file__).resolve().parents[1] / "bench" / "serve_vllm_load.py"


svl: ModuleType = load_script(BENCH, "bench_serve_vllm_load")


def _reply(index: int, start: float, end: float, texts: list[str], **fields: Any) -> Any:
    reply = svl.Reply(index=index, seed=1000 + index, n_asked=len(texts), start=start, end=end,
                      status=200, n=len(texts), texts=texts)  # fmt: skip
    for key, value in fields.items():
        setattr(reply, key, value)
    return reply


def test_percentile_interpolates_between_order_statistics() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert svl.percentile(values, 0.5) == 3.0
    assert svl.percentile(values, 0.95) == pytest.approx(4.8)
    assert svl.percentile(values, 0.0) == 1.0 and svl.percentile(values, 1.0) == 5.0
    assert svl.percentile([7.0], 0.99) == 7.0
    assert svl.percentile([], 0.5) is None


def test_poisson_schedule_is_seeded_increasing_and_has_the_rate() -> None:
    times = svl.poisson_schedule(2.0, 4000, seed=3)
    assert times == svl.poisson_schedule(2.0, 4000, seed=3) != svl.poisson_schedule(2.0, 4000)
    assert all(b > a for a, b in itertools.pairwise(times)) and times[0] > 0
    assert len(times) / times[-1] == pytest.approx(2.0, rel=0.06)
    with pytest.raises(ValueError):
        svl.poisson_schedule(0.0, 3)


def test_questions_share_no_number_and_have_3_to_5_digit_operands() -> None:
    questions = svl.make_questions(200, seed=1)
    numbers = [n for q in questions for n in q.numbers]
    assert len(numbers) == len(set(numbers)) == 600
    assert {len(str(q.a)) for q in questions} == {3, 4, 5} == {len(str(q.b)) for q in questions}
    assert [q.index for q in questions] == list(range(200))
    assert (
        questions[0].text
        == f"What is {questions[0].a} + {questions[0].b}? Give only the final answer."
    )


def test_client_vote_and_reply_parsing() -> None:
    answer, distribution = svl.vote_texts(["The answer is 12.", "12", "7"])
    assert answer == "12" and distribution == {"12": 2.0, "7": 1.0}
    plain = svl.Reply(index=0, seed=1, n_asked=3, start=0.0)
    body = {"choices": [{"message": {"content": t}} for t in ("12", "12", "7")],
            "usage": {"prompt_tokens": 48, "completion_tokens": 9}}  # fmt: skip
    svl.parse_reply(plain, body, "vllm")
    assert (plain.n, plain.answer, plain.prompt_tokens, plain.completion_tokens) == (3, "12", 48, 9)
    served = svl.Reply(index=0, seed=1, n_asked=None, start=0.0)
    paths = [{"text": "12", "answer": "12"}, {"text": "7", "answer": "7"}]
    t2 = {"n": 2, "answer": "12", "distribution": {"12": 1.0, "7": 1.0}, "paths": paths,
          "cost": {"seconds": {"budget": 0.25, "vote": None}}}  # fmt: skip
    body = {"choices": [{"message": {"content": "12"}}], "usage": {"prompt_tokens": 48}, "t2": t2}
    svl.parse_reply(served, body, "t2")
    assert served.texts == ["12", "7"] and served.path_answers == ["12", "7"] and served.n == 2
    assert served.node_seconds == {"budget": 0.25}


def test_crosstalk_check_catches_foreign_numbers_only_from_requests_in_flight() -> None:
    qs = svl.make_questions(3)
    own = str(qs[0].a + qs[0].b)
    replies = [
        _reply(0, 0.0, 2.0, [f"{qs[0].a} + {qs[0].b} = {own}", own]),
        _reply(1, 1.0, 3.0, [f"It is {qs[0].b}", "8"]),  # overlaps 0 and holds 0's operand
        _reply(2, 5.0, 6.0, [f"{qs[1].a}"]),  # holds 1's operand, but 1 was done by then
    ]
    assert svl.overlapping(replies) == [{1}, {0}, set()]
    report = svl.check_crosstalk(replies, qs, {})
    assert report["foreign"] == [1] and report["failures"] == 1 and report["checked"] == 3


def test_crosstalk_check_catches_tokens_paths_and_votes() -> None:
    qs = svl.make_questions(4)
    replies = [
        _reply(0, 0.0, 1.0, ["5"], prompt_tokens=49),  # wrong prompt length
        _reply(1, 0.0, 1.0, ["5", "5"], n_asked=3),  # asked 3 paths, got 2
        _reply(2, 0.0, 1.0, ["5"], path_answers=["5"], distribution={"6": 1.0}),  # not its vote
        _reply(3, 0.0, 1.0, ["5"], status=429),  # refused: not checked
    ]
    tokens = {0: 48, 1: 48, 2: 48, 3: 48}
    for r in replies[1:]:
        r.prompt_tokens = 48
    report = svl.check_crosstalk(replies, qs, tokens)
    assert report["prompt_tokens"] == [0] and report["paths"] == [1] and report["vote"] == [2]
    assert report["checked"] == 3 and report["failures"] == 3
    merged = svl.merge_crosstalk([report, report])
    assert merged["failures"] == 6 and merged["vote"] == [2, 2]


def test_summary_counts_throughput_latency_429s_errors_and_accuracy() -> None:
    qs = svl.make_questions(4)
    right = str(qs[0].a + qs[0].b)
    replies = [
        _reply(0, 0.0, 1.0, ["x"], answer=right, completion_tokens=10),
        _reply(1, 0.0, 3.0, ["y"], answer="1", completion_tokens=30),
        _reply(2, 0.0, 0.1, [], status=429),
        _reply(3, 0.0, 0.1, [], status=0, error="ReadTimeout"),
    ]
    s = svl.summarize(replies, 4.0, qs)
    assert (s["ok"], s["requests_per_s"], s["completion_tokens_per_s"]) == (2, 0.5, 10.0)
    assert s["status_429"] == 1 and s["errors"] == {"ReadTimeout": 1} and s["accuracy"] == 0.5
    assert s["p50_s"] == 2.0 and s["paths"] == 2


def _entry(server: str, mode: str, variant: str, level: float, rps: float) -> dict[str, Any]:
    total = {"requests_per_s": rps, "completion_tokens_per_s": 100 * rps, "p50_s": 1 / rps,
             "p95_s": 2 / rps, "paths": 16, "status_429": 0, "errors": {}}  # fmt: skip
    return {"server": server, "mode": mode, "variant": variant, "level": level, "total": total,
            "crosstalk": {"failures": 0}, "rss_peak_mb": 3700.0,
            "rows": [[[0, 200, 6, 1.0, 48, 200, "7"], [1, 200, 2, 1.0, 49, 60, "9"]]]}  # fmt: skip


def test_ratios_and_table_put_both_servers_side_by_side() -> None:
    levels = {svl.level_key(s, "closed", "fixed8", c): _entry(s, "closed", "fixed8", c, rps)
              for s, rps in (("t2", 0.9), ("vllm", 1.0)) for c in (1.0, 32.0)}  # fmt: skip
    levels["t2:open:fixed8:0.5"] = _entry("t2", "open", "fixed8", 0.5, 0.5)
    out = svl.ratios(levels)
    assert len(out) == 2 and {r["level"] for r in out} == {1.0, 32.0}
    assert all(r["requests_per_s"] == pytest.approx(0.9) and r["paths_equal"] for r in out)
    table = svl.format_table({"levels": levels, "ratios": out})
    lines = table.splitlines()
    assert "ratio" in lines[1] and len(lines) == 5
    assert "0.90/1.00" in lines[2] and lines[2].split()[:3] == ["closed", "fixed8", "1"]
    assert lines[3].split()[2] == "32" and "0.50/-" in lines[4]


def test_replay_uses_t2s_choice_for_the_same_question_then_falls_back() -> None:
    levels = {"t2:closed:t2:2": _entry("t2", "closed", "t2", 2.0, 1.0)}
    assert svl.replayed_n(levels, "closed:t2:2", 0, 1) == 2
    assert svl.replayed_n(levels, "open:t2:1", 0, 0) == 6  # that level is missing: any level
    assert svl.replayed_n(levels, "closed:t2:2", 0, 9) in (2, 6)  # never asked: most common
    with pytest.raises(RuntimeError):
        svl.replayed_n({}, "closed:t2:2", 0, 0)


def test_saturation_rule() -> None:
    args = svl.parse_args(["--p95-bound", "30", "--min-served", "0.8"])
    ok = {"status_429": 0, "errors": {}, "p95_s": 5.0, "requests_per_s": 0.95}
    assert svl.saturation(ok, 1.0, args) is None
    assert "429" in svl.saturation({**ok, "status_429": 2}, 1.0, args)
    assert "p95" in svl.saturation({**ok, "p95_s": 31.0}, 1.0, args)
    assert "served" in svl.saturation({**ok, "requests_per_s": 0.5}, 1.0, args)


def test_parse_args_and_server_commands() -> None:
    args = svl.parse_args(["--levels", "1,2", "--variants", "t2", "--servers", "vllm,t2"])
    assert args.levels == [1, 2] and args.variants == ["t2"] and args.servers == ["t2", "vllm"]
    with pytest.raises(SystemExit):
        svl.parse_args(["--variants", "fixed16"])
    t2 = svl.server_command("t2", 8123, args)
    assert t2[1:4] == ["serve", "--engine", "vllm"] and "--max-concurrency" in t2
    plain = svl.server_command("vllm", 8124, args)
    assert plain[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert plain[plain.index("--port") + 1] == "8124" and "--no-enable-chunked-prefill" in plain


def test_rss_sampler_and_shutdown_of_a_process_tree() -> None:
    code = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    sampler = svl.RssSampler(process.pid, interval=0.05)
    deadline = time.monotonic() + 10
    while not sampler.seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sampler.sample() > 0 and len(sampler.seen) == 1
    sampler.close()
    child = next(iter(sampler.seen))
    report = svl.stop_server(process, sampler.seen, linger=0.2)
    assert report["signals"] == ["SIGTERM main"] and report["left_over"] == {str(child): "sleep"}
    deadline = time.monotonic() + 5
    while svl._alive(child) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert svl._alive(child) is None  # killed: it was in the server's process group
    assert svl.RssSampler(os.getpid()).sample() > 0


@needs_vllm
def test_real_smoke_run_on_both_servers(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    argv = ["--levels", "1,2", "--requests", "2", "--rounds", "1", "--poisson-rates", "1",
            "--poisson-seconds", "3", "--out", str(out), "--log-dir", str(tmp_path)]  # fmt: skip
    result = svl.main(argv)
    assert result == json.loads(out.read_text())
    levels = result["levels"]
    expected = {f"{s}:{m}:{v}:{x}" for s in ("t2", "vllm") for v in ("fixed8", "t2")
                for m, x in (("closed", 1), ("closed", 2), ("open", 1))}  # fmt: skip
    assert set(levels) == expected
    for key, entry in levels.items():
        total = entry["total"]
        assert total["ok"] == total["requests"] > 0, key
        assert total["status_429"] == 0 and not total["errors"], key
        assert entry["crosstalk"]["failures"] == 0 and entry["crosstalk"]["checked"] > 0, key
        assert entry["rss_peak_mb"] > 1000 and entry["rounds"][0]["rss_after_mb"] > 1000, key
    for rest in ("closed:t2:1", "closed:t2:2"):  # vLLM replayed T2's N per question
        ns = [[row[2] for row in rnd] for rnd in levels["t2:" + rest]["rows"]]
        assert ns == [[row[2] for row in rnd] for rnd in levels["vllm:" + rest]["rows"]]
    assert {(r["mode"], r["variant"], r["level"]) for r in result["ratios"]} == {
        (k.split(":")[1], k.split(":")[2], float(k.split(":")[3])) for k in expected
    }
    for server in ("t2", "vllm"):
        info = result["servers"][server]
        assert info["startup_s"] > 0 and info["shutdown"]["left_over"] == {}
