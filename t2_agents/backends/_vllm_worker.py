"""Runs inside vLLM's worker processes: forward hooks that read last-prompt-token features.

vLLM mixes :class:`FeatureCaptureExtension` into its worker (``worker_extension_cls``); the
engine arms a capture through ``collective_rpc("t2_arm", ...)``, runs prefill-only requests, and
reads the result back with ``collective_rpc("t2_collect", ...)``. This module imports neither
vLLM nor anything heavy at import time, because the worker imports it by name.

**Splitting the flattened batch.** vLLM runs the tokens of every scheduled request as one
``[num_tokens, d]`` batch. Before the first decoder layer runs, a pre-hook reads the model
runner's batch layout (``input_batch.req_ids``, ``query_start_loc``, ``num_computed_tokens``)
and finds, for every armed prompt, the row holding its final prompt token, if that token is
scheduled in this step (with prefix caching only the uncached suffix is; vLLM always computes
the final token). Prompts are matched by their token ids, so concurrent sampling requests in the
same batch are never mistaken for them, and request ids (which vLLM rewrites) do not matter.

**The value.** vLLM decoder layers return ``(hidden, residual)``; their sum is the residual
stream after the layer before the final norm, which is what the transformers engine reads.

**Tensor parallelism.** Every rank holds the full residual stream (row-parallel layers
all-reduce their outputs), so rank 0's copy is the whole feature; other ranks capture nothing.
Pipeline parallelism splits the layers across ranks and is not supported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FeatureCaptureExtension"]


@dataclass
class _Capture:
    keys: set[tuple[int, ...]]
    layers: list[int]
    found: dict[tuple[int, ...], dict[int, Any]] = field(default_factory=dict)


class FeatureCaptureExtension:
    """Worker mix-in: arm a capture, let prefill run, collect ``[L, d]`` float32 bytes per prompt.

    The methods are called on every worker through ``collective_rpc``; ``self`` is vLLM's worker
    (it has ``model_runner`` and ``rank``).
    """

    _t2_captures: dict[str, _Capture]
    _t2_handles: list[Any]
    _t2_rows: dict[tuple[int, ...], int]

    def t2_arm(self, capture_id: str, keys: list[list[int]], layers: list[int]) -> int:
        """Capture ``layers`` for the prompts with these token ids; return the layer count."""
        decoder_layers = len(self._t2_layers())
        if not hasattr(self, "_t2_captures"):
            self._t2_captures, self._t2_handles, self._t2_rows = {}, [], {}
        if getattr(self, "rank", 0) == 0:  # every rank has the full stream; rank 0 reports it
            self._t2_captures[capture_id] = _Capture({tuple(k) for k in keys}, list(layers))
            self._t2_rehook()
        return decoder_layers

    def t2_collect(self, capture_id: str) -> list[tuple[list[int], bytes]]:
        """Stop a capture; return ``(token ids, float32 [L, d] bytes)`` for every prompt seen."""
        captures = getattr(self, "_t2_captures", {})
        capture = captures.pop(capture_id, None)
        if getattr(self, "rank", 0) != 0 or capture is None:
            return []
        self._t2_rehook()
        import torch

        out: list[tuple[list[int], bytes]] = []
        for key, by_layer in capture.found.items():
            if all(layer in by_layer for layer in capture.layers):
                stacked = torch.stack([by_layer[layer] for layer in capture.layers])  # [L, d]
                out.append((list(key), stacked.float().numpy().tobytes()))
        return out

    # -- internals -----------------------------------------------------------------------
    def _t2_layers(self) -> Any:
        return self.model_runner.model.model.layers  # type: ignore[attr-defined]

    def _t2_rehook(self) -> None:
        for handle in self._t2_handles:
            handle.remove()
        self._t2_handles = []
        if not self._t2_captures:
            return
        layers = self._t2_layers()
        wanted = sorted({layer for c in self._t2_captures.values() for layer in c.layers})
        self._t2_handles.append(layers[0].register_forward_pre_hook(self._t2_locate))
        for layer in wanted:
            self._t2_handles.append(layers[layer].register_forward_hook(self._t2_hook(layer)))

    def _t2_locate(self, _module: Any, _args: Any) -> None:
        runner = self.model_runner  # type: ignore[attr-defined]
        batch = runner.input_batch
        num_reqs = int(batch.num_reqs)
        starts = runner.query_start_loc.np[: num_reqs + 1]  # [R + 1] row offsets
        computed = batch.num_computed_tokens_cpu[:num_reqs]  # [R] tokens cached or done
        wanted = set().union(*(c.keys for c in self._t2_captures.values()))
        rows: dict[tuple[int, ...], int] = {}
        for i, req_id in enumerate(batch.req_ids[:num_reqs]):
            request = runner.requests.get(req_id)
            if request is None:
                continue
            key = tuple(request.prompt_token_ids or ())
            offset = len(key) - 1 - int(computed[i])
            if key in wanted and 0 <= offset < int(starts[i + 1] - starts[i]):
                rows[key] = int(starts[i]) + offset
        self._t2_rows = rows

    def _t2_hook(self, layer: int) -> Any:
        def hook(_module: Any, _args: Any, output: Any) -> None:
            if not self._t2_rows:
                return
            hidden, residual = output if isinstance(output, tuple) else (output, None)
            for key, row in self._t2_rows.items():
                value = hidden[row] if residual is None else hidden[row] + residual[row]  # [d]
                for capture in self._t2_captures.values():
                    if key in capture.keys and layer in capture.layers:
                        capture.found.setdefault(key, {})[layer] = value.detach().float().cpu()

        return hook
