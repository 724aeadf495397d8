"""``t2 serve --record``: full answer pools for a sampled share of live requests.

A request is eligible when T2 chose its N (no fixed ``n``, no stop rule that ignores T2), it
has no tools, and its sampling matches the estimator's calibration (``t2.calibrated`` is true):
only such pools can train the estimator. For an eligible request that the
:class:`~t2_agents.calibrate.record.Recorder` draws, once the response is built the service
samples the pool's remaining ``M - N`` paths with the same settings, reads the prompt's
features, and stores the pool (the request's own N paths first) in the background: the
client's answer, latency and ``usage`` are those of T2 alone.

Example:
    >>> config = RecordConfig(directory="traffic", fraction=0.05)
    >>> recording = TrafficRecorder.for_service(engine, policy, config)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from t2_agents.backends.base import Engine, SamplingParams
from t2_agents.budget.policies import BudgetPolicy, T2Policy
from t2_agents.calibrate.collect import CollectConfig
from t2_agents.calibrate.record import RecordConfig, RecordedPath, Recorder
from t2_agents.errors import ConfigError
from t2_agents.graph.result import ThinkingResult
from t2_agents.serve.jobs import Job

__all__ = ["TrafficRecorder"]

_log = logging.getLogger("t2_agents.serve")


class TrafficRecorder:
    """Records pools of eligible requests for one service (see the module docs).

    Args:
        engine: The service's engine (samples the extra paths, encodes the prompt).
        recorder: Where the pools go; its ``collect`` settings give M and the sampling.
    """

    def __init__(self, engine: Engine, recorder: Recorder) -> None:
        self.engine, self.recorder = engine, recorder
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def for_service(
        cls, engine: Engine, policy: BudgetPolicy | None, config: RecordConfig
    ) -> TrafficRecorder:
        """A recorder whose pools match ``policy``'s estimator calibration.

        Raises:
            ConfigError: No T2 policy, or an estimator that does not record its calibration
                settings (pool size, temperature, max_tokens): nothing to record against.
        """
        from t2_agents.estimator.estimator import T2Estimator

        estimator = policy.estimator if isinstance(policy, T2Policy) else None
        summary = estimator.training if isinstance(estimator, T2Estimator) else None
        pools = summary.samples_per_question if summary is not None else None
        if summary is None or not pools or summary.max_tokens is None:
            raise ConfigError(
                "--record needs the T2 policy with an estimator that records its calibration "
                "(pool size, temperature, max_tokens); serve with the shipped estimator or one "
                "trained by t2 train"
            )
        collect = CollectConfig(
            recorded=True,
            questions=config.max_questions,
            samples=min(pools),
            temperature=summary.temperature if summary.temperature is not None else 0.7,
            max_tokens=summary.max_tokens,
            instruction=summary.instruction or "",
            model=engine.identity,
            layers=tuple(range(engine.num_layers)),
            batch_questions=config.batch_questions,
            keep_texts=False,
        )
        return cls(engine, Recorder(config, collect=collect))

    def eligible(self, job: Job) -> bool:
        """Whether ``job`` may be recorded (T2 chose N, no tools, calibrated sampling)."""
        return job.fallback is not None and job.tools is None and job.calibration == []

    def consider(self, job: Job, result: ThinkingResult, question: str, task: str) -> None:
        """Draw whether to record ``job``'s pool; if so, record it in the background."""
        if not self.eligible(job) or len(result.paths) > self.recorder.collect.samples:
            return
        if not self.recorder.wants():
            return
        task_ = asyncio.get_running_loop().create_task(self._record(job, result, question, task))
        self._tasks.add(task_)
        task_.add_done_callback(self._tasks.discard)

    async def _record(self, job: Job, result: ThinkingResult, question: str, task: str) -> None:
        try:
            await asyncio.to_thread(self._record_now, job, result, question, task)
        except Exception as exc:  # a failed recording never touches the request it copies
            self.recorder.release()
            _log.warning("recording a pool failed: %s: %s", type(exc).__name__, exc)

    def _record_now(self, job: Job, result: ThinkingResult, question: str, task: str) -> None:
        collect = self.recorder.collect
        extractor: Callable[[str], str | None] = job.overrides["extractor"]
        served = [
            RecordedPath(p.answer, p.completion_tokens, p.finish_reason)
            for p in result.paths
            if p.error is None
        ]
        missing = collect.samples - len(served)
        params = SamplingParams(
            temperature=collect.temperature, top_p=collect.top_p, max_tokens=collect.max_tokens
        )
        extra = self.engine.sample([job.prompt], missing, params)[0] if missing > 0 else []
        paths = served + [
            RecordedPath(extractor(c.text), c.completion_tokens, c.finish_reason) for c in extra
        ]
        layers = list(collect.layers or range(self.engine.num_layers))
        features = self.engine.encode([job.prompt], layers)[0]  # [L, d]
        prompt_tokens = result.paths[0].prompt_tokens if result.paths else 0
        self.recorder.add(
            question=question.removesuffix(collect.instruction).strip(),
            task=task,
            features=features,
            paths=paths,
            served_n=len(served),
            prompt_tokens=prompt_tokens,
        )

    async def close(self) -> None:
        """Wait for recordings in flight, then write the buffered pools."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.recorder.flush()

    def status(self) -> dict[str, Any]:
        """What has been recorded (for logs)."""
        return {"folder": str(self.recorder.folder), "stored": self.recorder.stored}
