"""``t2 serve --record``: full answer pools for a sampled share of live requests.

A request is eligible when T2 chose its N (no fixed ``n``, no stop rule that ignores T2), it
has no tools, and its sampling matches the estimator's calibration (``t2.calibrated`` is true):
only such pools can train the estimator. For an eligible request that the
:class:`~t2_agents.calibrate.record.Recorder` draws, once the response is built the service
completes the pool in the background (:class:`~t2_agents.graph.recording.PoolRecording`: the
request's own N paths first, ``M - N`` more with the same settings, the prompt's features):
the client's answer, latency and ``usage`` are those of T2 alone.

Example:
    >>> config = RecordConfig(directory="traffic", fraction=0.05)
    >>> recording = TrafficRecorder.for_service(engine, policy, config)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from t2_agents.backends.base import Engine
from t2_agents.budget.policies import BudgetPolicy
from t2_agents.calibrate.record import RecordConfig
from t2_agents.graph.recording import PoolRecording
from t2_agents.graph.result import ThinkingResult
from t2_agents.serve.jobs import Job

__all__ = ["TrafficRecorder"]

_log = logging.getLogger("t2_agents.serve")


class TrafficRecorder:
    """Records pools of eligible requests for one service (see the module docs).

    Args:
        pools: Completes and stores one request's pool.
    """

    def __init__(self, pools: PoolRecording) -> None:
        self.pools = pools
        self.recorder = pools.recorder
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def for_service(
        cls, engine: Engine, policy: BudgetPolicy | None, config: RecordConfig
    ) -> TrafficRecorder:
        """A recorder whose pools match ``policy``'s estimator calibration.

        Raises:
            ConfigError: No T2 policy, or an estimator without calibration settings.
        """
        return cls(PoolRecording.for_policy(engine, policy, config))

    def eligible(self, job: Job) -> bool:
        """Whether ``job`` may be recorded (T2 chose N, no tools, calibrated sampling)."""
        return job.fallback is not None and job.tools is None and job.calibration == []

    def consider(self, job: Job, result: ThinkingResult) -> None:
        """Draw whether to record ``job``'s pool; if so, record it in the background."""
        if not self.eligible(job) or len(result.paths) > self.recorder.collect.samples:
            return
        if not self.recorder.wants():
            return
        task = asyncio.get_running_loop().create_task(self._record(job, result))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, job: Job, result: ThinkingResult) -> None:
        try:
            await asyncio.to_thread(
                self.pools.record, prompt=job.prompt, result=result,
                extractor=job.overrides["extractor"], question=job.question, task=job.task,
            )  # fmt: skip
        except Exception as exc:  # a failed recording never touches the request it copies
            self.recorder.release()
            _log.warning("recording a pool failed: %s: %s", type(exc).__name__, exc)

    async def close(self) -> None:
        """Wait for recordings in flight, then write the buffered pools."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.recorder.flush()

    def status(self) -> dict[str, Any]:
        """What has been recorded (for logs)."""
        return {"folder": str(self.recorder.folder), "stored": self.recorder.stored}
