"""Record a step's full answer pool, to calibrate T2 on your own traffic.

:class:`PoolRecording` completes the pool of one step that T2 budgeted: the step's own N paths
first, then ``M - N`` more sampled with the estimator's calibration settings, plus the prompt's
features at every layer, stored by a :class:`~t2_agents.calibrate.record.Recorder` (``t2 label``
and ``t2 adapt`` take it from there). ``t2 serve --record`` uses it for a sampled share of
requests (:mod:`t2_agents.serve.recording`); in your own code call :meth:`PoolRecording.record`
after a run of the graph:

Example:
    >>> config = RecordConfig(directory="traffic")
    >>> recording = PoolRecording.for_policy(engine, policy, config)  # doctest: +SKIP
    >>> state = graph.invoke({"question": prompt})  # doctest: +SKIP
    >>> if recording.recorder.wants():  # doctest: +SKIP
    ...     recording.record(prompt=prompt, result=ThinkingResult.from_state(state),
    ...                      extractor=get_extractor("agent_parity"), task="agent_parity")
"""

from __future__ import annotations

from collections.abc import Callable

from t2_agents.backends.base import Engine, SamplingParams
from t2_agents.budget.policies import BudgetPolicy, T2Policy
from t2_agents.calibrate.collect import CollectConfig
from t2_agents.calibrate.record import RecordConfig, RecordedPath, Recorder
from t2_agents.errors import ConfigError
from t2_agents.graph.result import ThinkingResult

__all__ = ["PoolRecording"]


class PoolRecording:
    """Completes and stores the pools of budgeted steps (see the module docs).

    Args:
        engine: Samples the extra paths and encodes the prompt (the graph's engine).
        recorder: Where the pools go; its ``collect`` settings give M and the sampling.
    """

    def __init__(self, engine: Engine, recorder: Recorder) -> None:
        self.engine, self.recorder = engine, recorder

    @classmethod
    def for_policy(
        cls, engine: Engine, policy: BudgetPolicy | None, config: RecordConfig
    ) -> PoolRecording:
        """A recording whose pools match ``policy``'s estimator calibration.

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

    def record(
        self,
        *,
        prompt: str,
        result: ThinkingResult,
        extractor: Callable[[str], str | None],
        question: str | None = None,
        task: str = "traffic",
    ) -> None:
        """Complete ``result``'s pool to M paths and store it (call after
        ``recorder.wants()`` returned True; it takes the place that reserved).

        Args:
            prompt: What the graph was asked (the rendered prompt, as the engine sees it).
            result: The step (its paths are the pool's first ones).
            extractor: The step's answer extractor (``get_extractor(task)``).
            question: The question text the pool is keyed by (default ``prompt``); the
                calibration instruction at its end is left out of the key.
            task: The task name stored with the pool.

        Raises:
            ConfigError: The step sampled more paths than the pool holds.
        """
        collect = self.recorder.collect
        served = [
            RecordedPath(p.answer, p.completion_tokens, p.finish_reason)
            for p in result.paths
            if p.error is None
        ]
        missing = collect.samples - len(served)
        if missing < 0:
            self.recorder.release()
            raise ConfigError(
                f"the step sampled {len(served)} paths, more than the pool of {collect.samples}; "
                "record steps whose N is at most the calibration pool size"
            )
        params = SamplingParams(
            temperature=collect.temperature, top_p=collect.top_p, max_tokens=collect.max_tokens
        )
        extra = self.engine.sample([prompt], missing, params)[0] if missing > 0 else []
        paths = served + [
            RecordedPath(extractor(c.text), c.completion_tokens, c.finish_reason) for c in extra
        ]
        layers = list(collect.layers or range(self.engine.num_layers))
        features = self.engine.encode([prompt], layers)[0]  # [L, d]
        text = prompt if question is None else question
        self.recorder.add(
            question=text.removesuffix(collect.instruction).strip(),
            task=task,
            features=features,
            paths=paths,
            served_n=len(served),
            prompt_tokens=result.paths[0].prompt_tokens if result.paths else 0,
        )
