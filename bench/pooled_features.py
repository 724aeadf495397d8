"""Do prompt features pooled over the question's tokens carry more per-question difficulty signal
than the final prompt token alone? A validation-only experiment on the agent training rows.

For every agent training question (``calibration/.../agent_train/*``; no held-out folder is read)
the default model (transformers engine, its default dtype) encodes the chat-templated prompt once
and keeps, at every stored layer ``l`` (the residual stream after decoder layer ``l``, before the
final norm: the library's convention, read with the same forward hooks as the engine), four
feature blocks:

* ``last``: the final prompt token (what T2 uses; checked against the stored features),
* ``user_mean``: the mean over the tokens of the user message (question + instruction),
* ``question_mean``: the mean over the question's tokens only (the instruction left out),
* ``all_mean``: the mean over every token of the rendered prompt (system prompt included),

plus ``last_stored`` (the collection's stored last-token features) as a control. They are
cached in ``--cache`` (one file per 48 prompts, resumable).

Model, per feature type and layer: standardise, PCA to ``--pca`` dims (fit on the training fold),
ridge to the 32-point accuracy curve A(N); the per-layer predicted curves are averaged with
weights 1 / (inner validation MSE). Ridge alpha and the weights come from an inner split of the
training fold only (inner leave-one-template-out for the template folds, inner 3-fold by key for
the key folds). ``last+user_mean`` concatenates the two blocks' PCA scores (2 x ``--pca`` dims).
Budget = the smallest N whose predicted accuracy is within ``tol`` of the predicted curve's max.

Folds: leave-one-template-out over the agent rows (as ``bench/phrasing_folds.py``) and a
grouped 5-fold by question key. Per scheme, feature type and tolerance, pooled over the folds:
mean N, the gain over fixed N at equal cost and against fixed N_D (paired bootstrap 95 %
intervals, seed 0, same rows in the same order for every type), the paired bootstrap of each
type's gain minus the ``last`` type's gain at the same tolerance, and diagnostics (test R^2 of
the predicted curves; Spearman of predicted vs true mean accuracy and A(32) - A(1), pooled,
within family and within family x template cells of 75 questions).

Usage (12 min on a busy 2-core machine, one thread: 4.3 min encoding, 7.7 min fitting;
about 8 min with the cache filled):
    python bench/pooled_features.py --data 'calibration/smollm2-135m-instruct/agent_train/*' \\
        --out bench/results/pooled_features.json
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads its BLAS: share the machine

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import scipy.linalg  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from t2_agents.calibrate.collect import load_collection  # noqa: E402
from t2_agents.calibrate.training_set import TrainingSet, load_training_set, record_key  # noqa: E402
from t2_agents.curves.compare import equal_cost  # noqa: E402

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

TOLERANCES = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05)
BLOCKS = ("last", "last_stored", "user_mean", "question_mean", "all_mean")
TYPES: dict[str, tuple[str, ...]] = {
    "last": ("last",),
    "last_stored": ("last_stored",),
    "user_mean": ("user_mean",),
    "question_mean": ("question_mean",),
    "all_mean": ("all_mean",),
    "last+user_mean": ("last", "user_mean"),
}
ENCODED = ("last", "user_mean", "question_mean", "all_mean")
ALPHAS = np.logspace(-3, 3, 13)  # ridge alpha / training rows
CHUNK = 48


# -- step 1: pooled features -------------------------------------------------------------------


@dataclass(frozen=True)
class Spans:
    """One prompt's token ids and token ranges (half-open, in the unpadded sequence)."""

    ids: list[int]
    user: tuple[int, int]
    question: tuple[int, int]


def _token_range(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    inside = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
    if not inside or inside != list(range(inside[0], inside[-1] + 1)):
        raise RuntimeError(f"no contiguous token span for characters {start}..{end}")
    return inside[0], inside[-1] + 1


def _spans(engine: Any, prompt: str, instruction: str) -> Spans:
    text = engine.render(prompt)
    start = text.find(prompt)
    if start < 0 or text.find(prompt, start + 1) >= 0:
        raise RuntimeError(f"prompt not found exactly once in its rendering: {prompt!r}")
    question = prompt.removesuffix(instruction).rstrip() if instruction else prompt
    enc = engine.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    return Spans(
        ids=list(enc["input_ids"]),
        user=_token_range(offsets, start, start + len(prompt)),
        question=_token_range(offsets, start, start + len(question)),
    )


@contextmanager
def _capture(engine: Any, layers: Sequence[int], out: dict[int, Any]) -> Iterator[None]:
    """Full-sequence outputs of the decoder layers (the engine's hooks, keeping every token)."""

    def make(layer: int) -> Callable[..., None]:
        def hook(_module: Any, _args: Any, output: Any) -> None:
            out[layer] = (output[0] if isinstance(output, tuple) else output).detach()

        return hook

    decoder = engine.model.model.layers
    handles = [decoder[layer].register_forward_hook(make(layer)) for layer in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _encode_batch(engine: Any, layers: Sequence[int], spans: Sequence[Spans]) -> dict[str, F32]:
    import torch

    width = max(len(s.ids) for s in spans)
    pad = int(engine.tokenizer.pad_token_id)
    ids = torch.full((len(spans), width), pad, dtype=torch.long)
    mask = torch.zeros((len(spans), width), dtype=torch.long)
    for row, s in enumerate(spans):  # left padding, as the engine
        ids[row, width - len(s.ids) :] = torch.tensor(s.ids)
        mask[row, width - len(s.ids) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    captured: dict[int, Any] = {}
    with _capture(engine, layers, captured), torch.inference_mode():
        engine.model.model(
            input_ids=ids.to(engine.device),
            attention_mask=mask.to(engine.device),
            position_ids=positions.to(engine.device),
            use_cache=False,
        )
    hidden = torch.stack([captured[layer] for layer in layers], dim=1).float().cpu().numpy()
    out = {name: np.zeros((len(spans), len(layers), hidden.shape[-1]), np.float32)
           for name in ENCODED}  # fmt: skip
    for row, s in enumerate(spans):
        off = width - len(s.ids)
        h = hidden[row, :, off:, :]  # [L, T, d]
        out["last"][row] = h[:, -1]
        out["user_mean"][row] = h[:, s.user[0] : s.user[1]].mean(axis=1)
        out["question_mean"][row] = h[:, s.question[0] : s.question[1]].mean(axis=1)
        out["all_mean"][row] = h.mean(axis=1)
    return out


def _encode_folder(
    engine: Any, folder: str, layers: Sequence[int], cache: Path, batch: int
) -> tuple[list[str], dict[str, F32], int]:
    """One collection's pooled features (cached per chunk); its record keys; chunks computed."""
    from safetensors.numpy import load_file, save_file

    collection = load_collection(folder)
    records = collection.records
    keys = [record_key(r) for r in records]
    instruction = collection.config.instruction or ""
    where = cache / Path(folder).name
    where.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list[F32]] = {name: [] for name in ENCODED}
    computed = 0
    for index, first in enumerate(range(0, len(records), CHUNK)):
        path = where / f"{index:05d}.safetensors"
        chunk_keys = keys[first : first + CHUNK]
        meta = {"keys": json.dumps(chunk_keys), "layers": json.dumps(list(layers)),
                "model": engine.identity, "dtype": str(engine.dtype)}  # fmt: skip
        blob: dict[str, F32] | None = None
        if path.is_file():
            from safetensors import safe_open

            with safe_open(str(path), framework="np") as handle:
                stored = handle.metadata() or {}
            if all(stored.get(k) == v for k, v in meta.items()):
                blob = load_file(str(path))
        if blob is None:
            spans = [_spans(engine, str(r["prompt"]), instruction)
                     for r in records[first : first + CHUNK]]  # fmt: skip
            pieces = [_encode_batch(engine, layers, spans[i : i + batch])
                      for i in range(0, len(spans), batch)]  # fmt: skip
            blob = {name: np.concatenate([p[name] for p in pieces]) for name in ENCODED}
            tmp = path.with_suffix(".tmp")
            save_file(blob, str(tmp), metadata=meta)
            tmp.replace(path)
            computed += 1
            print(f"  {Path(folder).name} chunk {index}: encoded", file=sys.stderr)
        for name in ENCODED:
            parts[name].append(blob[name])
    return keys, {name: np.concatenate(parts[name]) for name in ENCODED}, computed


def pooled_features(
    data: TrainingSet, folders: Sequence[str], cache: Path, batch: int
) -> tuple[dict[str, F32], dict[str, Any]]:
    """Every block of :data:`BLOCKS` ``[Q, L, d]`` in ``data``'s row order, and a sanity report."""
    import torch

    from t2_agents.backends.transformers import TransformersEngine

    torch.set_num_threads(1)
    engine = TransformersEngine()
    by_key: dict[str, tuple[int, int]] = {}
    blocks: list[dict[str, F32]] = []
    computed = 0
    for f, folder in enumerate(folders):
        keys, feats, done = _encode_folder(engine, folder, data.layers, cache, batch)
        computed += done
        blocks.append(feats)
        for i, key in enumerate(keys):
            by_key.setdefault(key, (f, i))
    where = [by_key[key] for key in data.keys]  # match rows by key (the set may drop records)
    out = {name: np.stack([blocks[f][name][i] for f, i in where]) for name in ENCODED}
    out["last_stored"] = data.features.astype(np.float32)
    a, b = out["last"], out["last_stored"]
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))  # [Q, L]
    sanity = {
        "model": engine.identity,
        "dtype": str(engine.dtype),
        "chunks_encoded_this_run": computed,
        "last_vs_stored_cosine_min": float(cos.min()),
        "last_vs_stored_cosine_mean": float(cos.mean()),
        "last_vs_stored_cosine_min_by_layer": [round(float(x), 5) for x in cos.min(axis=0)],
    }
    del engine
    return out, sanity


# -- step 2: the model -----------------------------------------------------------------------


@dataclass(frozen=True)
class Pca:
    """Standardisation and the top principal directions of one training subset."""

    mean: F64
    scale: F64
    components: F64  # [d, k]

    def scores(self, x: F32) -> F64:
        """PCA scores of rows ``x`` ``[n, d]``."""
        return np.asarray(((x - self.mean) / self.scale) @ self.components)


def fit_pca(x: F32, dims: int) -> Pca:
    """Standardise ``x`` and keep its top ``dims`` principal directions."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=0)
    scale = x64.std(axis=0)
    scale[scale < 1e-8] = 1.0
    z = (x64 - mean) / scale
    d = z.shape[1]
    k = min(dims, d, len(z) - 1)
    _w, v = scipy.linalg.eigh(z.T @ z / len(z), subset_by_index=[d - k, d - 1])
    return Pca(mean=mean, scale=scale, components=v[:, ::-1].copy())


def ridge_predict(z: F64, y: F64, new: F64, alphas: F64) -> F64:
    """Ridge predictions ``[A, m, n_max]`` of ``new`` for every alpha (alpha x training rows)."""
    zm, ym = z.mean(axis=0), y.mean(axis=0)
    zc, yc = z - zm, y - ym
    evals, evecs = np.linalg.eigh(zc.T @ zc)
    proj = evecs.T @ (zc.T @ yc)  # [p, n_max]
    newc = (new - zm) @ evecs  # [m, p]
    stacked = np.stack([newc @ (proj / (evals + a * len(z))[:, None]) for a in alphas])
    return np.asarray(stacked + ym, dtype=np.float64)


@dataclass(frozen=True)
class Fold:
    """One outer fold: training rows, test rows and the inner (train, validation) splits."""

    name: str
    train: I64
    test: I64
    inner: list[tuple[I64, I64]]


def predict_fold(
    blocks: dict[str, F32], curves: F64, fold: Fold, types: Sequence[str], dims: int
) -> tuple[dict[str, F64], dict[str, dict[str, Any]]]:
    """Per type: the test rows' layer-averaged predicted curves, and per-layer fit facts."""
    layers = next(iter(blocks.values())).shape[1]
    needed = sorted({b for t in types for b in TYPES[t]})
    y = curves[fold.train]
    total = {t: np.zeros((len(fold.test), curves.shape[1])) for t in types}
    weight = dict.fromkeys(types, 0.0)
    facts: dict[str, dict[str, Any]] = {t: {"alpha": [], "inner_r2": []} for t in types}
    for layer in range(layers):
        inner_scores: list[dict[str, tuple[F64, F64]]] = []
        for tr, va in fold.inner:
            per: dict[str, tuple[F64, F64]] = {}
            for b in needed:
                x = blocks[b][fold.train, layer]
                pca = fit_pca(x[tr], dims)
                per[b] = (pca.scores(x[tr]), pca.scores(x[va]))
            inner_scores.append(per)
        outer: dict[str, tuple[F64, F64]] = {}
        for b in needed:
            pca = fit_pca(blocks[b][fold.train, layer], dims)
            outer[b] = (pca.scores(blocks[b][fold.train, layer]),
                        pca.scores(blocks[b][fold.test, layer]))  # fmt: skip
        for t in types:
            sse = np.zeros(len(ALPHAS))
            base = 0.0
            for (tr, va), per in zip(fold.inner, inner_scores, strict=True):
                ztr = np.concatenate([per[b][0] for b in TYPES[t]], axis=1)
                zva = np.concatenate([per[b][1] for b in TYPES[t]], axis=1)
                pred = ridge_predict(ztr, y[tr], zva, ALPHAS)
                sse += ((pred - y[va]) ** 2).sum(axis=(1, 2))
                base += float(((y[tr].mean(axis=0) - y[va]) ** 2).sum())
            best = int(np.argmin(sse))
            ztr = np.concatenate([outer[b][0] for b in TYPES[t]], axis=1)
            zte = np.concatenate([outer[b][1] for b in TYPES[t]], axis=1)
            pred = ridge_predict(ztr, y, zte, ALPHAS[best : best + 1])[0]
            w = 1.0 / float(sse[best])
            total[t] += w * pred
            weight[t] += w
            facts[t]["alpha"].append(float(ALPHAS[best]))
            facts[t]["inner_r2"].append(1.0 - float(sse[best]) / base)
    return {t: total[t] / weight[t] for t in types}, facts


def budgets(pred: F64, tol: float) -> I64:
    """Smallest N whose predicted accuracy is within ``tol`` of the predicted curve's max."""
    ok = pred >= pred.max(axis=1, keepdims=True) - tol
    return np.asarray(np.argmax(ok, axis=1) + 1, dtype=np.int64)


# -- step 3: folds and figures -----------------------------------------------------------------


def _key_groups(keys: Sequence[str], rows: I64, k: int, seed: int) -> list[I64]:
    """Rows (positions into ``rows``) split into ``k`` groups by key, deterministically."""
    distinct = sorted({keys[r] for r in rows})
    order = np.random.default_rng(seed).permutation(len(distinct))
    group_of = {distinct[j]: int(g) % k for g, j in enumerate(order)}
    labels = np.asarray([group_of[keys[r]] for r in rows])
    return [np.flatnonzero(labels == g) for g in range(k)]


def template_folds(data: TrainingSet) -> list[Fold]:
    """Leave one template out over the agent rows; inner: leave one training template out."""
    phrasing = np.asarray(data.phrasings)
    template = np.asarray([p.split("#")[1] if "#" in p else "" for p in phrasing])
    folds = []
    for t in sorted(set(template) - {""}):
        test, train = np.flatnonzero(template == t), np.flatnonzero(template != t)
        inner_t = template[train]
        inner = [(np.flatnonzero(inner_t != u), np.flatnonzero(inner_t == u))
                 for u in sorted(set(inner_t) - {""})]  # fmt: skip
        folds.append(Fold(name=f"template {t}", train=train, test=test, inner=inner))
    return folds


def key_folds(data: TrainingSet, k: int = 5, inner_k: int = 3) -> list[Fold]:
    """Grouped k-fold by question key; inner: grouped ``inner_k``-fold on the training rows."""
    everything = np.arange(len(data.keys))
    groups = _key_groups(data.keys, everything, k, seed=0)
    folds = []
    for g, test in enumerate(groups):
        train = np.setdiff1d(everything, test)
        inner_groups = _key_groups(data.keys, train, inner_k, seed=1 + g)
        inner = [(np.setdiff1d(np.arange(len(train)), va), va) for va in inner_groups]
        folds.append(Fold(name=f"keys {g}", train=train, test=test, inner=inner))
    return folds


def _interp(means: F64, n: F64) -> F64:
    low = np.floor(n).astype(np.int64)
    high = np.minimum(low + 1, means.shape[1])
    frac = n - low
    rows = np.arange(len(n))
    return np.asarray((1 - frac) * means[rows, low - 1] + frac * means[rows, high - 1])


def paired_gain_difference(
    curves: F64, a: I64, b: I64, *, resamples: int, seed: int = 0
) -> dict[str, Any]:
    """Equal-cost gain of budgets ``a`` minus that of ``b`` (and their accuracy difference,
    = the difference of their gains over fixed N_D), with a paired bootstrap 95 % interval:
    each resample of the questions recomputes both policies' gains on the same questions."""
    rows = np.arange(len(a))
    got_a, got_b = curves[rows, a - 1], curves[rows, b - 1]
    mean = curves.mean(axis=0, keepdims=True)

    def gain(got: F64, bud: I64) -> float:
        return float(got.mean() - _interp(mean, np.asarray([bud.mean()]))[0])

    rng = np.random.default_rng(seed)
    diffs, accs = [], []
    for start in range(0, resamples, 250):
        idx = rng.integers(0, len(a), size=(min(250, resamples - start), len(a)))
        means = curves[idx].mean(axis=1)
        acc_a, acc_b = got_a[idx].mean(axis=1), got_b[idx].mean(axis=1)
        ga = acc_a - _interp(means, a[idx].mean(axis=1).astype(np.float64))
        gb = acc_b - _interp(means, b[idx].mean(axis=1).astype(np.float64))
        diffs.append(ga - gb)
        accs.append(acc_a - acc_b)
    d, acc = np.concatenate(diffs), np.concatenate(accs)
    return {
        "gain_difference": gain(got_a, a) - gain(got_b, b),
        "gain_difference_ci": [float(x) for x in np.percentile(d, [2.5, 97.5])],
        "accuracy_difference": float(got_a.mean() - got_b.mean()),
        "accuracy_difference_ci": [float(x) for x in np.percentile(acc, [2.5, 97.5])],
        "mean_n_difference": float(a.mean() - b.mean()),
    }


def _spearman(x: F64, y: F64) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def diagnostics(pred: F64, truth: F64, base: F64, tasks: Sequence[str],
                phrasings: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    """Test R^2 of the curves and Spearman of predicted vs true mean accuracy and A(32) - A(1)."""
    out: dict[str, Any] = {
        "test_r2": 1.0 - float(((pred - truth) ** 2).sum()) / float(((base - truth) ** 2).sum())
    }
    stats = {"mean_accuracy": (pred.mean(axis=1), truth.mean(axis=1)),
             "rise": (pred[:, -1] - pred[:, 0], truth[:, -1] - truth[:, 0])}  # fmt: skip
    for name, (p, t) in stats.items():
        out[f"spearman_{name}"] = _spearman(p, t)
        for label, groups in (("family", tasks), ("cell", phrasings)):
            g = np.asarray(groups)
            values = [_spearman(p[g == u], t[g == u]) for u in sorted(set(groups))]
            out[f"spearman_{name}_within_{label}"] = float(np.nanmean(values))
    return out


def run_scheme(
    name: str, folds: list[Fold], data: TrainingSet, blocks: dict[str, F32], dims: int,
    resamples: int,
) -> dict[str, Any]:  # fmt: skip
    """Every feature type on one fold scheme, pooled over its folds."""
    started = time.time()
    types = list(TYPES)
    preds: dict[str, list[F64]] = {t: [] for t in types}
    bases: list[F64] = []
    facts: dict[str, list[dict[str, Any]]] = {t: [] for t in types}
    for fold in folds:
        fold_pred, fold_facts = predict_fold(blocks, data.curves, fold, types, dims)
        for t in types:
            preds[t].append(fold_pred[t])
            facts[t].append(fold_facts[t])
        bases.append(np.repeat(data.curves[fold.train].mean(axis=0)[None], len(fold.test), 0))
        print(f"{name} / {fold.name}: {time.time() - started:.0f} s", file=sys.stderr)
    rows = np.concatenate([f.test for f in folds])
    curves = data.curves[rows]
    base = np.concatenate(bases)
    tasks = [data.tasks[r] for r in rows]
    phrasings = [data.phrasings[r] for r in rows]
    out: dict[str, Any] = {
        "folds": [{"name": f.name, "train": len(f.train), "test": len(f.test),
                   "inner": [[len(a), len(b)] for a, b in f.inner]} for f in folds],
        "questions": len(rows),
        "acc_at_1": float(curves[:, 0].mean()),
        "acc_at_n_d": float(curves[:, data.n_d - 1].mean()),
    }  # fmt: skip
    chosen: dict[str, dict[str, I64]] = {}
    results: dict[str, Any] = {}
    for t in types:
        pred = np.concatenate(preds[t])
        alphas = np.asarray([f["alpha"] for f in facts[t]])  # [folds, layers]
        r2 = np.asarray([f["inner_r2"] for f in facts[t]])
        row: dict[str, Any] = {
            "diagnostics": diagnostics(pred, curves, base, tasks, phrasings),
            "inner_r2_by_layer": [round(float(x), 4) for x in r2.mean(axis=0)],
            "alpha_at_grid_edge_share": float(np.isin(alphas, ALPHAS[[0, -1]]).mean()),
            "tolerances": {},
        }
        chosen[t] = {}
        for tol in TOLERANCES:
            b = budgets(pred, tol)
            chosen[t][str(tol)] = b
            row["tolerances"][str(tol)] = equal_cost(
                curves, b, n_d=data.n_d, resamples=resamples, seed=0
            ).to_dict()
        results[t] = row
    for t in types:
        if t == "last":
            continue
        results[t]["paired_vs_last"] = {
            str(tol): paired_gain_difference(curves, chosen[t][str(tol)],
                                             chosen["last"][str(tol)], resamples=resamples)
            for tol in TOLERANCES
        }  # fmt: skip
    oracle = np.asarray([int(np.argmax(c >= c.max())) + 1 for c in curves], dtype=np.int64)
    out["oracle"] = equal_cost(curves, oracle, n_d=data.n_d, resamples=resamples,
                               seed=0).to_dict()  # fmt: skip
    out["types"] = results
    out["seconds"] = time.time() - started
    return out


# -- step 4: report ----------------------------------------------------------------------------


def _ci(pair: Sequence[float]) -> str:
    return f"[{pair[0]:+.3f},{pair[1]:+.3f}]"


def print_table(name: str, scheme: dict[str, Any]) -> None:
    """A compact table of one scheme."""
    print(f"\n== {name}: {scheme['questions']} questions, A(1) {scheme['acc_at_1']:.3f}, "
          f"A(N_D) {scheme['acc_at_n_d']:.3f}")  # fmt: skip
    print(f"{'type':<15}{'tol':>6}{'mean N':>8}  {'gain [CI]':<24}{'vs N_D [CI]':<24}"
          f"{'gain - last [CI]':<24}")  # fmt: skip
    for t, row in scheme["types"].items():
        for tol, r in row["tolerances"].items():
            paired = row.get("paired_vs_last", {}).get(tol)
            diff = ""
            if paired is not None:
                diff = f"{paired['gain_difference']:+.3f} {_ci(paired['gain_difference_ci'])}"
            print(f"{t:<15}{tol:>6}{r['mean_n']:>8.1f}  {r['gain']:+.3f} {_ci(r['gain_ci']):<17}"
                  f"{r['vs_n_d']:+.3f} {_ci(r['vs_n_d_ci']):<17}{diff}")  # fmt: skip
        d = row["diagnostics"]
        rho = {k.removeprefix("spearman_"): v for k, v in d.items() if k.startswith("spearman")}
        print(f"{'':<15}R2 {d['test_r2']:+.3f}  rho(mean acc) pooled "
              f"{rho['mean_accuracy']:+.3f} family {rho['mean_accuracy_within_family']:+.3f} "
              f"cell {rho['mean_accuracy_within_cell']:+.3f}; rho(rise) cell "
              f"{rho['rise_within_cell']:+.3f}")  # fmt: skip
    o = scheme["oracle"]
    print(f"{'oracle':<15}{'':>6}{o['mean_n']:>8.1f}  {o['gain']:+.3f} {_ci(o['gain_ci']):<17}"
          f"{o['vs_n_d']:+.3f} {_ci(o['vs_n_d_ci'])}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", action="append", required=True, help="agent_train folders (glob)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("runs/pooled"))
    parser.add_argument("--pca", type=int, default=64, help="PCA dims per feature block")
    parser.add_argument("--batch", type=int, default=8, help="prompts per forward pass")
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    folders = sorted(f for pattern in args.data for f in glob.glob(pattern))
    forbidden = ("agent_heldout", "heldout", "heldout_conf", "traffic")
    if not folders or any(part in forbidden for f in folders for part in Path(f).parts):
        parser.error(f"pass training folders only (got {folders}); held-out sets stay unseen")
    started = time.time()
    data = load_training_set(folders)
    loaded = time.time()
    blocks, sanity = pooled_features(data, folders, args.cache, args.batch)
    encoded = time.time()
    print(f"features: {encoded - loaded:.0f} s; last vs stored cosine min "
          f"{sanity['last_vs_stored_cosine_min']:.4f}", file=sys.stderr)  # fmt: skip
    if sanity["last_vs_stored_cosine_min"] <= 0.99:
        print("WARNING: recomputed last-token features differ from the stored ones",
              file=sys.stderr)  # fmt: skip
    schemes = {"leave_one_template_out": template_folds(data), "key_5fold": key_folds(data)}
    out: dict[str, Any] = {
        "command": "python bench/pooled_features.py " + " ".join(sys.argv[1:]),
        "folders": folders,
        "rows": len(data.keys),
        "dropped": data.dropped,
        "n_d": data.n_d,
        "n_max": data.n_max,
        "layers": list(data.layers),
        "pca_dims": args.pca,
        "ridge_alpha_per_row_grid": [float(a) for a in ALPHAS],
        "tolerances": list(TOLERANCES),
        "feature_types": {t: list(b) for t, b in TYPES.items()},
        "sanity": sanity,
        "schemes": {},
    }
    for name, folds in schemes.items():
        out["schemes"][name] = run_scheme(name, folds, data, blocks, args.pca, args.resamples)
    out["timings_seconds"] = {
        "load_training_set": loaded - started,
        "features": encoded - loaded,
        **{f"model_{k}": v["seconds"] for k, v in out["schemes"].items()},
        "total": time.time() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for name, scheme in out["schemes"].items():
        print_table(name, scheme)
    print(f"\ntotal {out['timings_seconds']['total']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
