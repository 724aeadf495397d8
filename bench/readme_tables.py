"""The README's calibration and evidence tables, rendered from the committed results files.

``tests/test_readme.py`` renders every table here and checks that the README contains it
verbatim, so a README number can only come from a results file in ``docs/results/`` (or, for
the benchmarks of ``bench/``, in ``bench/results/``).

    python bench/readme_tables.py          # print every table
    python bench/readme_tables.py --write  # replace the table after each <!-- table:NAME -->
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from t2_agents.curves.compare import fixed_accuracy

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
BENCH_RESULTS = ROOT / "bench" / "results"


def _load(name: str, folder: Path = RESULTS) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / name).read_text(encoding="utf-8"))
    return data


def _ci(pair: list[float]) -> str:
    return f"[{100 * pair[0]:+.1f}, {100 * pair[1]:+.1f}]"


def _pt(value: float) -> str:
    return f"{100 * value:+.1f}"


def calibration_table() -> str:
    """Per collection folder: questions, accuracy, tokens, overlap with training, hash."""
    data = _load("calibration_data.json")
    rows = data["folders"]
    out = [
        "| folder | task settings | questions | acc@1 | mean tokens | cut at 48 | seen in "
        "training (text / instance) | records SHA-256 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        seen = (
            f"{r['seen_in_training']} / {r['instances_in_training']}"
            if "seen_in_training" in r
            else "–"
        )
        settings = json.dumps(r["task_config"]) if r["task_config"] else "defaults"
        out.append(
            f"| {name} | `{settings}` | {r['questions']} | {r['accuracy']:.3f} | "
            f"{r['mean_tokens']:.1f} | {100 * r['cut_at_max_tokens']:.0f} % | {seen} | "
            f"`{r['records_sha256'][:12]}` |"
        )
    total = sum(r["questions"] for r in rows.values())
    out.append(f"| all | | {total} | | | | | |")
    return "\n".join(out)


def curse_table() -> str:
    """The overscaling curse on the training collections (``t2 curse --json``)."""
    tasks = _load("curse_train.json")["tasks"]
    out = [
        "| task | questions | acc@1 | N_D | acc@N_D | mean N*_x | M_D | oracle acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, r in tasks.items():
        out.append(
            f"| {task} | {r['n_questions']} | {r['mean_single_accuracy']:.3f} | {r['n_d']} | "
            f"{r['accuracy_at_n_d']:.3f} | {r['mean_optimal']:.2f} | "
            f"{r['overscaling_index']:.2f} | {r['oracle_accuracy']:.3f} |"
        )
    return "\n".join(out)


def heads_table() -> str:
    """Every head at its default knob on all held-out questions, against equal cost and N_D."""
    data = _load("heldout_heads.json")
    out = [
        "| head | validation gain | held-out accuracy | mean N | share of N_D's samples | "
        "fixed N at equal cost | gain (95 % CI), points | vs N_D (95 % CI), points |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, head in data["heads"].items():
        d = head["default"]["all"]
        val = data["validation"][name]["equal_cost"]
        mark = " (chosen)" if name == data["chosen_on_validation"] else ""
        out.append(
            f"| {name}{mark} | {_pt(val['gain'])} | {d['accuracy']:.3f} | {d['mean_n']:.2f} | "
            f"{100 * d['sample_share']:.0f} % | {d['fixed_at_equal_cost']:.3f} | "
            f"{_pt(d['gain'])} {_ci(d['gain_ci'])} | {_pt(d['vs_n_d'])} {_ci(d['vs_n_d_ci'])} |"
        )
    return "\n".join(out)


def _group_rows(groups: dict[str, Any], lead: Callable[[str, Any], str]) -> list[str]:
    """One row per question group: ``lead`` cells, then accuracy, cost and the intervals."""
    return [
        f"| {lead(group, d)} | {d['accuracy']:.3f} | {d['mean_n']:.2f} | "
        f"{d['n_d_accuracy']:.3f} | {100 * (1 - d['sample_share']):.0f} % | "
        f"{_pt(d['vs_n_d'])} {_ci(d['vs_n_d_ci'])} | {_pt(d['gain'])} {_ci(d['gain_ci'])} |"
        for group, d in groups.items()
    ]


_GROUP_HEADER = (
    "accuracy | mean N | N_D accuracy | saving vs N_D | vs N_D (95 % CI), points | "
    "gain vs equal cost (95 % CI), points |"
)


def groups_table() -> str:
    """The chosen head on tasks seen in training and on tasks never seen."""
    data = _load("heldout_heads.json")
    chosen = data["chosen_on_validation"]
    out = [f"| {chosen}: questions | count | {_GROUP_HEADER}", "|---|---|---|---|---|---|---|---|"]
    groups = data["heads"][chosen]["default"]
    return "\n".join(out + _group_rows(groups, lambda g, d: f"{g} | {d['questions']}"))


def ood_table() -> str:
    """The chosen head with the out-of-distribution fall-back (bench/heads.py)."""
    ood = _load("heldout_heads.json")["chosen_with_ood_fallback"]
    out = [f"| with the fall-back | flagged | {_GROUP_HEADER}", "|---|---|---|---|---|---|---|---|"]
    flagged = ood["flagged"]
    return "\n".join(
        out + _group_rows(ood["default"], lambda g, _: f"{g} | {100 * flagged[g]:.0f} %")
    )


def targets_table() -> str:
    """The issue's targets against the measured held-out figures: met or not."""
    data = _load("heldout_heads.json")
    chosen = data["chosen_on_validation"]
    policies = {
        chosen: data["heads"][chosen]["default"],
        f"{chosen} + fall-back": data["chosen_with_ood_fallback"]["default"],
    }
    out = ["| target | policy | questions | measured | met |", "|---|---|---|---|---|"]
    for name, groups in policies.items():
        for group in ("all", "seen tasks"):
            d = groups[group]
            ok = d["sample_share"] <= 0.35 and d["vs_n_d"] >= -0.01
            out.append(
                f"| ≤ 35 % of N_D's samples, within 1 point of N_D | {name} | {group} | "
                f"{100 * d['sample_share']:.0f} %, {_pt(d['vs_n_d'])} {_ci(d['vs_n_d_ci'])} | "
                f"{'yes' if ok else 'no'} |"
            )
            out.append(
                f"| ≥ 2 points above fixed N at equal cost | {name} | {group} | "
                f"{_pt(d['gain'])} {_ci(d['gain_ci'])} | {'yes' if d['gain'] >= 0.02 else 'no'} |"
            )
        d = groups["unseen tasks"]
        ok = d["sample_share"] <= 0.60 and d["vs_n_d"] >= -0.02
        out.append(
            f"| unseen tasks: ≥ 40 % fewer samples than N_D, within 2 points | {name} | "
            f"unseen tasks | {100 * (1 - d['sample_share']):.0f} % fewer, {_pt(d['vs_n_d'])} "
            f"{_ci(d['vs_n_d_ci'])} | {'yes' if ok else 'no'} |"
        )
    return "\n".join(out)


def knob_table() -> str:
    """The shipped estimator's knob sweep (chosen head + guard) on the held-out questions."""
    data = _load("heldout_heads.json")
    head = data["chosen_with_ood_fallback"]
    fixed = np.array([data["fixed"]])
    out = ["| knob | value | mean N | accuracy | fixed N at equal cost |", "|---|---|---|---|---|"]
    for p in head["sweep"]:
        n = p["mean_n"]
        at = fixed_accuracy(fixed, n)
        mark = (
            " (default)" if p["knob"] == head["knob"] and p["value"] == head["default_knob"] else ""
        )
        out.append(
            f"| {p['knob']}{mark} | {p['value']:g} | {n:.2f} | {p['accuracy']:.3f} | {at:.3f} |"
        )
    return "\n".join(out)


def eval_table() -> str:
    """``t2 eval`` on the held-out pools: every replay policy of the shipped estimator."""
    data = _load("eval_heldout.json")
    out = ["| policy | accuracy | mean N | mean tokens | rounds |", "|---|---|---|---|---|"]
    for r in data["results"]:
        if r["policy"] == "fixed" and r["name"] not in (f"fixed N={data['n_d']}",):
            continue
        out.append(
            f"| {r['name']} | {r['accuracy']:.3f} | {r['mean_samples']:.2f} | "
            f"{r['mean_tokens']:.0f} | {r['rounds']:.1f} |"
        )
    return "\n".join(out)


def live_table() -> str:
    """``bench/live_vs_replay.py``: every live policy replayed and live on the same questions."""
    data = _load("live_vs_replay.json", BENCH_RESULTS)
    replay, live = data["modes"]["replay"], data["modes"]["live"]
    out = [
        "| policy | accuracy replay | accuracy live | mean samples replay | mean samples live | "
        "mean tokens replay | mean tokens live | rounds replay | rounds live | wall s live |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, name in data["names"].items():
        r, v = replay[key], live[key]
        if key == "fixed":
            name = f"{name}={data['n_d']}"
        elif key == "budget":
            budgets = data["replay_alloc_budget"], data["live_run_budget"]
            name = f"{name} (B = {budgets[0]} replay, {budgets[1]} live)"
        out.append(
            f"| {name} | {r['accuracy']:.3f} | {v['accuracy']:.3f} | {r['mean_samples']:.2f} | "
            f"{v['mean_samples']:.2f} | {r['mean_tokens']:.0f} | {v['mean_tokens']:.0f} | "
            f"{r['rounds']:.1f} | {v['rounds']:.1f} | {v['wall_seconds']:.0f} |"
        )
    return "\n".join(out)


def live_targets_table() -> str:
    """The issue's live targets, replay and live, with paired bootstrap intervals."""
    data = _load("live_vs_replay.json", BENCH_RESULTS)
    out = ["| target | mode | measured (95 % CI) | met |", "|---|---|---|---|"]
    whole = data["replay_all"]
    modes = {"replay": data["comparisons"]["replay"], "live": data["comparisons"]["live"],
             f"replay, all {whole['questions']} held-out": whole["comparisons"]}  # fmt: skip
    for mode, c in modes.items():
        met = {k: "yes" if v else "no" for k, v in c["targets"].items()}
        acc, samples = c["hybrid_minus_nd_accuracy"], c["hybrid_minus_adaptive_samples"]
        budget, rounds = c["budget_minus_t2_accuracy"], c["hybrid_and_adaptive_rounds"]
        out += [
            f"| hybrid within 1 point of N_D's accuracy | {mode} | {_pt(acc['difference'])} "
            f"{_ci(acc['ci'])} points | {met['hybrid_within_1_point_of_nd']} |",
            f"| hybrid: fewer samples than Adaptive-Consistency | {mode} | "
            f"{samples['difference']:+.2f} [{samples['ci'][0]:+.2f}, {samples['ci'][1]:+.2f}] "
            f"samples per question | {met['hybrid_fewer_samples_than_adaptive']} |",
            f"| hybrid: fewer rounds than Adaptive-Consistency | {mode} | {rounds[0]:.1f} vs "
            f"{rounds[1]:.1f} rounds per question | {met['hybrid_fewer_rounds_than_adaptive']} |",
            f"| run budget at per-call T2's total samples at least as accurate as per-call T2 | "
            f"{mode} | {_pt(budget['difference'])} {_ci(budget['ci'])} points "
            f"({c['budget_samples']:.2f} vs {c['t2_samples']:.2f} samples) | "
            f"{met['budget_at_least_as_accurate_as_t2']} |",
        ]
    return "\n".join(out)


def hybrid_cap_table() -> str:
    """``bench/hybrid_cap.py``: the hybrid's cap swept on a validation split of training tasks."""
    data = _load("hybrid_cap_validation.json")
    nd, ac = data["nd"], data["adaptive"]
    out = [
        "| hybrid cap_tolerance | mean cap | accuracy | mean samples | rounds | vs N_D (points) "
        "| vs Adaptive-Consistency (samples) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        cap = "none (n_max)" if row["cap_tolerance"] is None else f"{row['cap_tolerance']:g}"
        mean_cap = "32" if row["mean_cap"] is None else f"{row['mean_cap']:.1f}"
        a, s = row["minus_nd_accuracy"], row["minus_adaptive_samples"]
        out.append(
            f"| {cap} | {mean_cap} | {row['accuracy']:.3f} | {row['mean_samples']:.2f} | "
            f"{row['rounds']:.1f} | {_pt(a['difference'])} {_ci(a['ci'])} | "
            f"{s['difference']:+.2f} [{s['ci'][0]:+.2f}, {s['ci'][1]:+.2f}] |"
        )
    out.append(
        f"| (fixed N_D={data['n_d']}) | | {nd['accuracy']:.3f} | {nd['mean_samples']:.2f} | 1.0 "
        f"| | |"
    )
    out.append(
        f"| (Adaptive-Consistency) | | {ac['accuracy']:.3f} | {ac['mean_samples']:.2f} | "
        f"{ac['rounds']:.1f} | | |"
    )
    return "\n".join(out)


_AGENT_GROUPS = {
    "rg_seen": "reasoning-gym, trained tasks",
    "rg_unseen": "reasoning-gym, unseen tasks",
    "agent_phrasings": "agent families, held-out phrasing",
    "agent_unseen": "agent families never trained on",
}


def agent_table() -> str:
    """``bench/agent_eval.py``: the shipped estimator per held-out group, and the previous one."""
    data = _load("agent_eval.json", BENCH_RESULTS)
    out = [
        "| held-out group | questions | flagged | accuracy | mean N | N_D accuracy | saving vs N_D "
        "| vs N_D (95 % CI), points | gain vs equal cost (95 % CI), points | previous estimator: "
        "flagged, mean N, accuracy | minus previous (95 % CI), points |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, name in _AGENT_GROUPS.items():
        g = data["groups"][key]
        d, b = g["t2"], g["baseline"]
        out.append(
            f"| {name} | {g['questions']} | {100 * g['flagged_share']:.0f} % | "
            f"{d['accuracy']:.3f} | {d['mean_n']:.2f} | {d['n_d_accuracy']:.3f} | "
            f"{100 * (1 - d['sample_share']):.0f} % | {_pt(d['vs_n_d'])} {_ci(d['vs_n_d_ci'])} | "
            f"{_pt(d['gain'])} {_ci(d['gain_ci'])} | {100 * b['flagged_share']:.0f} %, "
            f"{b['mean_n']:.2f}, {b['accuracy']:.3f} | {_pt(b['t2_minus_baseline'])} "
            f"{_ci(b['t2_minus_baseline_ci'])} |"
        )
    return "\n".join(out)


def agent_families_table() -> str:
    """``bench/agent_eval.py``: per family of the agent groups (T2 with its guard)."""
    data = _load("agent_eval.json", BENCH_RESULTS)
    out = [
        "| family | group | questions | acc@1 | acc@N_D | flagged | T2 mean N | T2 accuracy | "
        "oracle mean N |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ("agent_phrasings", "agent_unseen"):
        for fam, f in data["groups"][key]["families"].items():
            out.append(
                f"| {fam} | {_AGENT_GROUPS[key]} | {f['questions']} | {f['acc_at_1']:.3f} | "
                f"{f['acc_at_n_d']:.3f} | {100 * f['flagged_share']:.0f} % | "
                f"{f['t2_mean_n']:.2f} | {f['t2_accuracy']:.3f} | {f['oracle_mean_n']:.2f} |"
            )
    return "\n".join(out)


def agent_targets_table() -> str:
    """Issue 19's targets against ``bench/results/agent_eval.json``: met (point estimate) or not."""
    groups = _load("agent_eval.json", BENCH_RESULTS)["groups"]
    ph, un, rg = groups["agent_phrasings"], groups["agent_unseen"], groups["rg_seen"]
    d, u = ph["t2"], un["t2"]
    within = d["sample_share"] <= 0.35 and d["vs_n_d"] >= -0.01
    b = rg["baseline"]
    crosses = "; the interval crosses the line" if d["gain_ci"][0] <= 0 else ""
    rows = [
        ("guard: ≤ 10 % of held-out phrasings flagged", f"{100 * ph['flagged_share']:.0f} %",
         ph["flagged_share"] <= 0.10),
        ("guard: most unseen-family questions flagged", f"{100 * un['flagged_share']:.0f} %",
         un["flagged_share"] > 0.5),
        ("held-out phrasings: ≤ 35 % of N_D's samples, within 1 point of N_D",
         f"{100 * d['sample_share']:.0f} %, {_pt(d['vs_n_d'])} {_ci(d['vs_n_d_ci'])}", within),
        ("held-out phrasings: ≥ +2 points over fixed N at equal cost, interval excluding 0",
         f"{_pt(d['gain'])} {_ci(d['gain_ci'])}{crosses}",
         d["gain"] >= 0.02 and d["gain_ci"][0] > 0),
        ("unseen families: ≥ 40 % fewer samples than N_D, within 2 points",
         f"{100 * (1 - u['sample_share']):.0f} % fewer, {_pt(u['vs_n_d'])} {_ci(u['vs_n_d_ci'])}",
         u["sample_share"] <= 0.60 and u["vs_n_d"] >= -0.02),
        ("reasoning-gym trained tasks: no regression against the previous estimator",
         f"{_pt(b['t2_minus_baseline'])} {_ci(b['t2_minus_baseline_ci'])} points at "
         f"{rg['t2']['mean_n']:.2f} vs {b['mean_n']:.2f} samples",
         b["t2_minus_baseline"] >= 0 or rg["t2"]["mean_n"] < b["mean_n"]),
    ]  # fmt: skip
    out = ["| target | measured | met |", "|---|---|---|"]
    out += [f"| {t} | {m} | {'yes' if ok else 'no'} |" for t, m, ok in rows]
    return "\n".join(out)


def guard_table() -> str:
    """``bench/guard_select.py``: the chosen guard setting and the rule it replaced."""
    data = _load("guard_select.json", BENCH_RESULTS)
    out = [
        "| guard setting | layer | PCA dims | k | threshold | phrasing folds: flagged | unseen-"
        "family folds: flagged (agent, reasoning-gym) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in (("chosen", data["chosen"]), ("before issue 19", data["shipped_setting"])):
        rule = {"row": "one, row left out", "template": "one, phrasing left out",
                "family": "per task, phrasing left out"}[r["rule"]]  # fmt: skip
        out.append(
            f"| {name} | {r['layer']} | {r['dims']} | {r['neighbours']} | {rule}, "
            f"{r['quantile']:g}th percentile | {100 * r['phrasing_flagged']:.1f} % | "
            f"{100 * r['unseen_flagged']:.0f} % ({100 * r['unseen_agent_flagged']:.0f} %, "
            f"{100 * r['unseen_rg_flagged']:.0f} %) |"
        )
    return "\n".join(out)


def safe_budget_table() -> str:
    """``bench/guard_select.py``: a never-seen family's safe budget, global vs nearest tasks."""
    folds = _load("guard_select.json", BENCH_RESULTS)["safe_budget_folds"]
    names = {
        "global": "one number: the slowest training task's",
        "nearest_tasks_20": "the slowest of the 20 nearest training questions' tasks",
        "nearest_rows_20": "from the mean curve of the 20 nearest training questions",
    }
    out = [
        "| safe budget of a flagged question | mean N | vs N_D, points (mean over families) | "
        "worst family, points |",
        "|---|---|---|---|",
    ]
    for key, name in names.items():
        n = np.mean([f[key]["mean_n"] for f in folds.values()])
        diffs = [f[key]["accuracy"] - f["acc_n_d"] for f in folds.values()]
        out.append(f"| {name} | {n:.1f} | {_pt(float(np.mean(diffs)))} | {_pt(min(diffs))} |")
    return "\n".join(out)


def phrasing_folds_table() -> str:
    """``bench/phrasing_folds.py``: T2 on agent phrasings its probes never saw (validation)."""
    data = _load("phrasing_folds.json", BENCH_RESULTS)
    out = [
        "| budgets | mean N | accuracy | gain vs equal cost (95 % CI), points | vs N_D (95 % CI), "
        "points |",
        "|---|---|---|---|---|",
    ]
    for name, d in data["policies"].items():
        label = name.replace("_", " ").replace("default", "default knob")
        out.append(
            f"| {label} | {d['mean_n']:.1f} | {d['accuracy']:.3f} | {_pt(d['gain'])} "
            f"{_ci(d['gain_ci'])} | {_pt(d['vs_n_d'])} {_ci(d['vs_n_d_ci'])} |"
        )
    return "\n".join(out)


def traffic_families_table() -> str:
    """``bench/family_probe.py`` on the candidate new-traffic families (issue 20)."""
    data = _load("family_probe_traffic.json", BENCH_RESULTS)
    out = [
        "| family | accuracy | mixed questions | majority@8 | no answer | kept |",
        "|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        kept = "no" if r.get("dropped") else "yes"
        out.append(
            f"| {r['family']} | {r['accuracy']:.2f} | {r['mixed_share']:.0%} | "
            f"{r['majority_accuracy']:.2f} | {r['no_answer_share']:.0%} | {kept} |"
        )
    return "\n".join(out)


def _adapt_row(label: str, p: dict[str, Any]) -> str:
    draws = len(p["draws"])
    return (
        f"| {label} | {p['labels']} | {draws} | {p['flagged_share']:.0%} | {p['mean_n']:.1f} | "
        f"{p['accuracy']:.3f} | {_pt(p['gain'])} {_ci(p['gain_ci_range'])} | "
        f"{_pt(p['vs_n_d'])} {_ci(p['vs_n_d_ci_range'])} |"
    )


def adapt_table() -> str:
    """``bench/adapt_curve.py``: equal-cost gain on new traffic against labelled questions."""
    data = _load("adapt_curve.json", BENCH_RESULTS)
    out = [
        "| method | labelled questions | draws | flagged | mean N | accuracy | gain vs equal cost "
        "(95 % CI, widest over draws), points | vs N_D (95 % CI), points |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, points in data["curve"].items():
        out += [_adapt_row(name.replace("_", " "), p) for p in points]
    return "\n".join(out)


def adapt_selection_table() -> str:
    """``bench/adapt_curve.py``: the adaptation methods on the validation half of the pool."""
    data = _load("adapt_curve.json", BENCH_RESULTS)
    sel = data["selection"]
    out = [
        "| method | mean N | accuracy | gain vs equal cost (95 % CI), points | chosen |",
        "|---|---|---|---|---|",
    ]
    for name, d in sel["scores"].items():
        chosen = "yes" if name == sel["chosen"] else ""
        out.append(
            f"| {name.replace('_', ' ')} | {d['mean_n']:.1f} | {d['accuracy']:.3f} | "
            f"{_pt(d['gain'])} {_ci(d['gain_ci'])} | {chosen} |"
        )
    return "\n".join(out)


def confidence_table() -> str:
    """``bench/confidence_rules.py``: each vote rule against the majority at fixed N and T2's N."""
    data = _load("confidence_rules.json", BENCH_RESULTS)
    columns = [(f"N = {n}", data["fixed"][n]) for n in data["fixed"]]
    if "t2" in data:
        columns.append((f"T2 (mean N {data['t2']['mean_n']:.1f})", data["t2"]))
    head = " | ".join(f"{name}: accuracy, minus majority (95 % CI), points" for name, _ in columns)
    out = [f"| vote rule | {head} |", "|---|" + "---|" * len(columns)]
    for rule in data["rules"]:
        cells = []
        for _, block in columns:
            row = block[rule]
            cell = f"{row['accuracy']:.3f}"
            if rule != "majority":
                cell += f", {_pt(row['vs_majority'])} {_ci(row['vs_majority_ci'])}"
            cells.append(cell)
        out.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def math_equivalence_table() -> str:
    """``bench/math_equivalence.py``: the vote with mathematically equal answers merged."""
    data = _load("math_equivalence.json", BENCH_RESULTS)
    out = [
        "| N | as collected | answers merged by math key | difference (95 % CI), points "
        "| pools with a merge |",
        "|---|---|---|---|---|",
    ]
    for n, row in data["fixed"].items():
        low, high = (100 * v for v in row["ci"])
        out.append(
            f"| {n} | {row['as_collected']:.4f} | {row['math_merged']:.4f} | "
            f"{row['difference'] * 100:+.2f} [{low:+.2f}, {high:+.2f}] "
            f"| {data['pools_with_a_merge']} of {data['questions']} |"
        )
    return "\n".join(out)


def early_stop_table() -> str:
    """``bench/early_stop.py replay``: online early stop vs the plain vote, test half."""
    data = _load("early_stop.json", BENCH_RESULTS)
    budgets = data["budgets"]
    names = [k for k in budgets["t2"] if k not in ("mean_n", "chosen_on_validation")]
    labels = [f"N = {b}" if b != "t2" else f"T2 (mean N {budgets[b]['mean_n']:.1f})"
              for b in budgets]  # fmt: skip
    head = " | ".join(f"{label}: accuracy, tokens (saved), vs plain at equal tokens"
                      for label in labels)  # fmt: skip
    out = [f"| policy | {head} |", "|---|" + "---|" * len(budgets)]
    for name in names:
        cells = []
        for block in budgets.values():
            row = block[name]["test"]
            same = row["vs_plain_same_n"]
            cell = f"{row['accuracy']:.3f}, {row['tokens']:.0f} ({same['token_saving']:+.0%})"
            equal = row["vs_plain_equal_tokens"]
            if equal is not None and (name != "plain" or block is budgets["t2"]):
                cell += f", {_pt(equal['difference'])} {_ci(equal['ci'])}"
            if block["chosen_on_validation"] == name:
                cell = f"**{cell}**"
            cells.append(cell)
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def pooled_features_table() -> str:
    """``bench/pooled_features.py``: last-token vs pooled features, ridge curve heads, folds."""
    data = _load("pooled_features.json", BENCH_RESULTS)
    tol = "0.02"
    out = [
        "| features | folds | curve R² | Spearman, accuracy within family x template "
        f"| Spearman, rise within cell | mean N (tol {tol}) | gain vs equal cost (95 % CI), "
        "points | gain minus last token's (paired 95 % CI), points |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scheme, label in (("leave_one_template_out", "template left out"),
                          ("key_5fold", "5-fold by question")):  # fmt: skip
        for name in ("last", "user_mean", "all_mean", "last+user_mean"):
            row = data["schemes"][scheme]["types"][name]
            diag, at = row["diagnostics"], row["tolerances"][tol]
            paired = row.get("paired_vs_last", {}).get(tol)
            diff = (
                "—"
                if paired is None
                else (f"{_pt(paired['gain_difference'])} {_ci(paired['gain_difference_ci'])}")
            )
            out.append(
                f"| {name} | {label} | {diag['test_r2']:.3f} | "
                f"{diag['spearman_mean_accuracy_within_cell']:.2f} | "
                f"{diag['spearman_rise_within_cell']:.2f} | {at['mean_n']:.1f} | "
                f"{_pt(at['gain'])} {_ci(at['gain_ci'])} | {diff} |"
            )
    return "\n".join(out)


def serve_vllm_load_table() -> str:
    """``bench/serve_vllm_load.py``: t2 serve vs a plain vLLM server, same paths per request."""
    return _load_table("serve_vllm_load.json")


def serve_vllm_load_after_table() -> str:
    """The closed ``fixed8`` levels rerun after the disconnect watch stopped polling."""
    return _load_table("serve_vllm_load_after.json")


def serve_vllm_load_ab_table() -> str:
    """t2 serve alone at 32 clients, before and after the disconnect change, back to back."""
    ab = _load("serve_vllm_load_after.json", BENCH_RESULTS)["same_sitting_before_after"]
    head = "| t2 serve alone, 32 clients, fixed8 | requests/s | completion tokens/s | p50 / p95 s |"
    out = [head, "|---|---|---|---|"]
    for label, key in (("disconnect polled every 0.1 s (before)", "before"),
                       ("disconnect awaited (after)", "after")):  # fmt: skip
        r = ab[key]
        out.append(
            f"| {label} | {r['requests_per_s']:.2f} | {r['completion_tokens_per_s']:.0f} | "
            f"{r['p50_s']:.1f} / {r['p95_s']:.1f} |"
        )
    return "\n".join(out)


def _load_table(name: str) -> str:
    data = _load(name, BENCH_RESULTS)
    levels = data["levels"]
    ratio_of = {(r["mode"], r["variant"], r["level"]): r for r in data["ratios"]}
    out = [
        "| load | variant | t2 serve: requests/s, p50 / p95 s | plain vLLM: requests/s, "
        "p50 / p95 s | throughput ratio | 429s (t2 / vLLM) | foreign numbers (t2 / vLLM) |",
        "|---|---|---|---|---|---|---|",
    ]

    def order(key: str) -> tuple[str, str, float]:
        _, mode, variant, level = key.split(":")
        return (mode, variant, float(level))

    for key in sorted(levels, key=order):
        server, _, rest = key.partition(":")
        plain = levels.get("vllm:" + rest)
        if server != "t2" or plain is None:
            continue
        ours = levels[key]
        mode, variant, level = rest.split(":")
        clients = int(float(level))
        load = (
            f"{clients} client{'s' * (clients > 1)}" if mode == "closed" else f"Poisson {level}/s"
        )
        ratio = ratio_of[(mode, variant, float(level))]["requests_per_s"]

        def cell(entry: dict[str, Any]) -> str:
            total = entry["total"]
            return (f"{total['requests_per_s']:.2f}, {total['p50_s']:.1f} / "
                    f"{total['p95_s']:.1f}")  # fmt: skip

        out.append(
            f"| {load} | {variant} | {cell(ours)} | {cell(plain)} | {ratio:.2f} | "
            f"{ours['total']['status_429']} / {plain['total']['status_429']} | "
            f"{ours['crosstalk']['failures']} / {plain['crosstalk']['failures']} |"
        )
    return "\n".join(out)


def _points(d: dict[str, Any]) -> str:
    """A difference already in points, with its interval."""
    return f"{d['points']:+.1f} [{d['ci'][0]:+.1f}, {d['ci'][1]:+.1f}]"


_MULTISTEP_ROWS = (
    ("fixed N=1", "one path per step"), ("fixed N=4", "fixed N = 4"),
    ("fixed N=8", "fixed N = 8"), ("fixed N=16", "fixed N = 16"), ("N_D", "fixed N_D"),
    ("t2", "T2 per call (default knob)"), ("hybrid", "hybrid (T2's N, then waves)"),
    ("budget sum (same total as t2)", "run budget = T2's total, objective sum"),
    ("budget success (same total as t2)", "run budget = T2's total, objective success"),
    ("budget sum (8 per step)", "run budget 8 per step, objective sum"),
    ("budget success (8 per step)", "run budget 8 per step, objective success"),
)  # fmt: skip


def multistep_table() -> str:
    """``bench/multistep.py replay``: run success and cost per policy on the same runs."""
    data = _load("multistep.json", BENCH_RESULTS)
    out = ["| policy | run success | samples per run | tokens per run | rounds per run |",
           "|---|---|---|---|---|"]  # fmt: skip
    for key, label in _MULTISTEP_ROWS:
        r = data["policies"][key]
        if key == "N_D":
            label = f"fixed N_D = {data['n_d']}"
        out.append(
            f"| {label} | {100 * r['run_success']:.1f} % | {r['samples_per_run']:.1f} | "
            f"{r['tokens_per_run']:.0f} | {r['rounds_per_run']:.1f} |"
        )
    return "\n".join(out)


def multistep_targets_table() -> str:
    """Issue 21's targets against ``bench/results/multistep.json``: met (point estimate) or not."""
    data = _load("multistep.json", BENCH_RESULTS)
    t = data["targets"]
    share = t["hybrid_samples_share_of_n_d"]
    rows = [
        ("per-call T2 >= +2 points of run success over fixed N at equal samples per run",
         t["t2_minus_fixed_equal_samples"], 2.0),
        ("run-success allocation >= +1 point over per-call T2 at the same total",
         t["success_budget_minus_t2_same_total"], 1.0),
        ("hybrid within 1 point of fixed N_D's run success", t["hybrid_minus_n_d"], -1.0),
    ]  # fmt: skip
    out = ["| target | measured, points (95 % CI) | met | interval |", "|---|---|---|---|"]
    for label, d, line in rows:
        met = d["points"] >= line
        low, high = d["ci"]
        where = "crosses the line" if low < line < high else ("above" if low >= line else "below")
        out.append(f"| {label} | {_points(d)} | {'yes' if met else 'no'} | {where} |")
    out.append(
        f"| hybrid with <= 50 % of N_D's samples | {100 * share:.0f} % of N_D's samples | "
        f"{'yes' if share <= 0.5 else 'no'} | |"
    )
    return "\n".join(out)


def multistep_live_table() -> str:
    """``bench/multistep.py live``: the same runs live on vLLM and replayed on their pools."""
    data = _load("multistep_live.json", BENCH_RESULTS)
    names = {"t2": "T2 per call", "fixed8": "fixed N = 8", "hybrid": "hybrid"}
    out = [
        "| policy | runs | run success live / replay (live - replay, 95 % CI) | samples per run "
        "live / replay | tokens per run live / replay | rounds live / replay | wall s per run "
        "live | gold-chained steps: asked, accuracy live / replay |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, row in data["policies"].items():
        live, replay, steps = row["live"], row["replay"], row["gold_chained_steps"]
        out.append(
            f"| {names.get(key, key)} | {row['runs']} | {100 * live['run_success']:.1f} % / "
            f"{100 * replay['run_success']:.1f} % ({_points(row['live_minus_replay_run_success'])})"
            f" | {live['samples_per_run']:.1f} / {replay['samples_per_run']:.1f} | "
            f"{live['tokens_per_run']:.0f} / {replay['tokens_per_run']:.0f} | "
            f"{live['rounds_per_run']:.1f} / {replay['rounds_per_run']:.1f} | "
            f"{live['seconds_per_run']:.1f} | {steps['asked']}, {steps['live_accuracy']:.3f} / "
            f"{steps['replay_accuracy']:.3f} |"
        )
    return "\n".join(out)


TABLES: dict[str, Callable[[], str]] = {
    "calibration": calibration_table,
    "curse": curse_table,
    "heads": heads_table,
    "groups": groups_table,
    "ood": ood_table,
    "targets": targets_table,
    "knob": knob_table,
    "eval": eval_table,
    "live": live_table,
    "live_targets": live_targets_table,
    "hybrid_cap": hybrid_cap_table,
    "agent": agent_table,
    "agent_families": agent_families_table,
    "agent_targets": agent_targets_table,
    "guard": guard_table,
    "safe_budget": safe_budget_table,
    "phrasing_folds": phrasing_folds_table,
    "traffic_families": traffic_families_table,
    "adapt": adapt_table,
    "adapt_selection": adapt_selection_table,
    "confidence": confidence_table,
    "math_equivalence": math_equivalence_table,
    "early_stop": early_stop_table,
    "pooled_features": pooled_features_table,
    "serve_vllm_load": serve_vllm_load_table,
    "serve_vllm_load_after": serve_vllm_load_after_table,
    "serve_vllm_load_ab": serve_vllm_load_ab_table,
    "multistep": multistep_table,
    "multistep_targets": multistep_targets_table,
    "multistep_live": multistep_live_table,
}


def write_readme(path: Path = ROOT / "README.md") -> list[str]:
    """Replace the table under every ``<!-- table:NAME -->`` marker; returns the names done."""
    lines = path.read_text(encoding="utf-8").split("\n")
    done = []
    for name, render in TABLES.items():
        marker = f"<!-- table:{name} -->"
        if marker not in lines:
            continue
        start = lines.index(marker) + 1
        end = start
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        lines[start:end] = render().split("\n")
        done.append(name)
    path.write_text("\n".join(lines), encoding="utf-8")
    return done


if __name__ == "__main__":
    import sys

    if "--write" in sys.argv:
        print("updated:", ", ".join(write_readme()))
    else:
        for name, render in TABLES.items():
            print(f"<!-- table:{name} -->\n{render()}\n")
