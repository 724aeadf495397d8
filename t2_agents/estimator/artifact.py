"""The on-disk format of a :class:`~t2_agents.estimator.estimator.T2Estimator`: writing, reading,
checking.

An artifact is a directory holding two or three files:

- ``probes.safetensors``: every probe's tensors under ``layer{l}.<state-dict key>`` (e.g.
  ``layer15.net.0.weight``, ``layer15.mean``); nothing is pickled;
- ``metadata.json``: ``format`` (``"t2-estimator"``) and ``format_version``, the library version,
  the model identity and hidden size, the layers, the probe width and
  :class:`~t2_agents.estimator.probes.ProbeConfig`, the grid and clamp range, the layer weights,
  ``created``, ``training_data`` (a :class:`~t2_agents.estimator.summary.TrainingSummary`),
  ``validation`` (a :class:`~t2_agents.estimator.report.FitReport`, whose ``knob`` entry is a
  :class:`~t2_agents.estimator.heads.KnobCalibration` for a head with a knob), and ``guard``
  when the estimator has a :class:`~t2_agents.estimator.guard.DistributionGuard`;
- ``guard.safetensors`` (only with a guard): its ``mean``, ``std``, ``basis`` and ``points``.

:func:`save_artifact` writes into a temporary sibling directory that is renamed into place, so a
crash never leaves a half-written artifact, and it refuses to replace a directory holding other
files. :func:`load_artifact` checks the format, every field's type and the fields' consistency,
and that the artifact fits the expected model, and reads the typed values (the training
summary, the knob) once; every problem is an
:class:`~t2_agents.errors.ArtifactError` that says how to fix it. ``T2Estimator.save`` and
``T2Estimator.load`` are the public entry points.

An artifact is data, never code. Loading reads only the files above, only as regular files
inside the artifact folder (a symlink that leads outside is refused), parses ``metadata.json``
(at most 16 MB) with :mod:`json`, and checks every tensor's name, shape and dtype in the
safetensors header against the metadata before any tensor is read or any probe is built, so a
hostile file can neither run code nor make the loader allocate more than the file holds. Tensor
values must be finite and the standardisation ``std`` positive. Other files in the folder
(``*.pt``, ``*.pkl``, ``*.bin``...) are never opened.

Example:
    >>> save_artifact("artifacts/est", layers=est.layers, probes=probes,
    ...               metadata=est.metadata)  # doctest: +SKIP
    >>> load_artifact("artifacts/est", expect_hidden_size=576).spec.layers  # doctest: +SKIP
    (4, 15, 24)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from t2_agents.errors import ArtifactError, ConfigError
from t2_agents.estimator.guard import DistributionGuard
from t2_agents.estimator.heads import KnobCalibration
from t2_agents.estimator.probes import EstimatorSpec, LayerProbe, ProbeConfig, make_probe
from t2_agents.estimator.summary import TrainingSummary

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LoadedArtifact",
    "load_artifact",
    "metadata_header",
    "save_artifact",
]

FORMAT_NAME = "t2-estimator"
FORMAT_VERSION = 1
_PROBES = "probes.safetensors"
_GUARD = "guard.safetensors"
_METADATA = "metadata.json"
_FIX_MODEL = "train an estimator for this model with `t2 train`"
_MAX_METADATA_BYTES = 16 * 1024 * 1024
_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
_T = TypeVar("_T")


@dataclass(frozen=True)
class LoadedArtifact:
    """What :func:`load_artifact` read: everything a ``T2Estimator`` is built from."""

    spec: EstimatorSpec
    """Model identity, hidden size, layers, grid and clamp range."""
    config: ProbeConfig
    """The probes' configuration."""
    weights: list[float]
    """Per-layer combination weights (sum to 1)."""
    probes: list[LayerProbe]
    """One probe per layer, in :attr:`spec` layer order, in eval mode."""
    training: TrainingSummary
    """What the estimator was trained on (``training_data``; empty when not recorded)."""
    validation: dict[str, Any] | None = None
    """The fit's validation report as stored (``FitReport.to_dict()``; None: not recorded)."""
    knob: KnobCalibration | None = None
    """The head's knob, read from the report (None for a head without one)."""
    created: str | None = None
    """When the estimator was fitted (ISO 8601, UTC; None: not recorded)."""
    guard: DistributionGuard | None = None
    """The out-of-distribution guard, when the artifact has one."""


def metadata_header(
    spec: EstimatorSpec, config: ProbeConfig, weights: Sequence[float]
) -> dict[str, Any]:
    """The format fields of ``metadata.json`` (all but the estimator's extra metadata).

    Example:
        >>> metadata_header(spec, ProbeConfig(), [1.0])["format"]  # doctest: +SKIP
        't2-estimator'
    """
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "library_version": _library_version(),
        "model_identity": spec.model_identity,
        "hidden_size": spec.hidden_size,
        "layers": list(spec.layers),
        "probe_hidden": config.probe_width(spec.hidden_size),
        "probe_config": json.loads(json.dumps(asdict(config))),
        "grid": list(spec.grid),
        "n_min": spec.n_min,
        "n_max": spec.n_max,
        "weights": [float(w) for w in weights],
    }


def save_artifact(
    directory: str | Path,
    *,
    layers: Sequence[int],
    probes: Sequence[nn.Module],
    metadata: Mapping[str, Any],
    guard: DistributionGuard | None = None,
) -> None:
    """Write ``probes.safetensors``, ``metadata.json`` (and ``guard.safetensors``) to ``directory``.

    The directory is replaced whole.

    Raises:
        ArtifactError: ``directory`` is a file, or a directory holding other files.
    """
    target = Path(directory).absolute()
    _check_overwrite(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        tensors = {
            f"layer{layer}.{key}": t.detach().contiguous()
            for layer, probe in zip(layers, probes, strict=True)
            for key, t in probe.state_dict().items()
        }
        save_file(tensors, str(tmp / _PROBES), metadata={"format": "pt"})
        meta = dict(metadata)
        if guard is not None:
            save_file(guard.tensors(), str(tmp / _GUARD), metadata={"format": "pt"})
            meta["guard"] = guard.metadata()
        text = json.dumps(meta, indent=2) + "\n"
        (tmp / _METADATA).write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o755)
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_artifact(
    directory: str | Path,
    *,
    expect_identity: str | None = None,
    expect_hidden_size: int | None = None,
) -> LoadedArtifact:
    """Read and check an artifact written by :func:`save_artifact`.

    Args:
        directory: The artifact directory.
        expect_identity: The model identity the artifact must be for (None: any).
        expect_hidden_size: The hidden size the artifact must be for (None: any).

    Raises:
        ArtifactError: Missing, corrupt or inconsistent files, another format or version, or an
            artifact for another model.
    """
    root = Path(directory)
    meta = _read_metadata(root)
    spec, config, weights = _parse_metadata(meta, root)
    if expect_hidden_size is not None and expect_hidden_size != spec.hidden_size:
        raise ArtifactError(
            f"{root} was trained on hidden size {spec.hidden_size}, but the model has "
            f"hidden size {expect_hidden_size}; {_FIX_MODEL}"
        )
    if expect_identity is not None and expect_identity != spec.model_identity:
        raise ArtifactError(
            f"{root} was trained for model {spec.model_identity!r}, not "
            f"{expect_identity!r}; {_FIX_MODEL}"
        )
    probes = _load_probes(root, spec, config)
    created, training, validation, knob = _parse_record(meta, config, root)
    guard = _load_guard(root, meta["guard"], spec) if "guard" in meta else None
    return LoadedArtifact(
        spec=spec, config=config, weights=weights, probes=probes, training=training,
        validation=validation, knob=knob, created=created, guard=guard,
    )  # fmt: skip


# ------------------------------------------------------------------------------------ helpers
def _library_version() -> str:
    import t2_agents

    return str(getattr(t2_agents, "__version__", "0"))


def _check_overwrite(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise ArtifactError(f"{target} exists and is not a directory; pick another path")
    if target.is_dir():
        stray = sorted(p.name for p in target.iterdir() if p.name not in (_PROBES, _METADATA))
        if stray:
            raise ArtifactError(
                f"{target} holds {stray[:5]}, not only an estimator artifact; "
                "refusing to replace it; pick an empty or new directory"
            )


def _swap_in(tmp: Path, target: Path) -> None:
    if not target.exists():
        tmp.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _member(root: Path, name: str) -> Path:
    """``root / name`` resolved, after checking it is a regular file inside ``root``."""
    path = root / name
    if not path.is_symlink() and not path.exists():
        raise ArtifactError(f"{path} is missing; the artifact is incomplete, train it again")
    try:
        resolved = path.resolve(strict=True)
        inside = resolved.is_relative_to(root.resolve(strict=True))
    except (OSError, RuntimeError) as exc:  # a dangling or looping symlink
        msg = f"{path} is a broken link ({exc}); put the file itself in the folder"
        raise ArtifactError(msg) from exc
    if not inside:
        raise ArtifactError(
            f"{path} leads to {resolved}, outside the artifact folder {root.resolve()}; "
            "artifact files are read only from inside their folder: copy the file in"
        )
    if not resolved.is_file():
        raise ArtifactError(
            f"{path} is not a regular file (a directory or device?); the artifact is corrupt, "
            "train it again"
        )
    return resolved


def _read_metadata(root: Path) -> dict[str, Any]:
    if not root.is_dir():
        raise ArtifactError(f"{root} is not a directory; pass the folder `t2 train` wrote")
    path = root / _METADATA
    resolved = _member(root, _METADATA)
    size = resolved.stat().st_size
    if size > _MAX_METADATA_BYTES:
        raise ArtifactError(
            f"{path} is {size} bytes, more than the {_MAX_METADATA_BYTES} an estimator's "
            "metadata needs; the file is not t2 metadata, train the estimator again"
        )
    try:
        meta = json.loads(resolved.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        msg = f"{path} is not valid JSON ({exc}); train the estimator again"
        raise ArtifactError(msg) from exc
    if not isinstance(meta, dict):
        raise ArtifactError(f"{path} holds a {type(meta).__name__}, not a JSON object")
    fmt, version = meta.get("format"), meta.get("format_version")
    if fmt != FORMAT_NAME or version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format {fmt!r} version {version!r}; expected {FORMAT_NAME!r} "
            f"version {FORMAT_VERSION}; train the estimator again with this library"
        )
    return meta


def _get(meta: Mapping[str, Any], key: str, kind: type[_T], root: Path) -> _T:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, kind):
        msg = f"{key}={value!r} is not of type {kind.__name__}; the file is corrupt"
        raise ArtifactError(f"{root / _METADATA}: {msg}")
    return value


def _get_list(
    meta: Mapping[str, Any], key: str, kind: type | tuple[type, ...], root: Path
) -> list[Any]:
    value = _get(meta, key, list, root)
    if any(isinstance(v, bool) or not isinstance(v, kind) for v in value):
        raise ArtifactError(f"{root / _METADATA}: {key}={value!r} has entries of the wrong type")
    return value


def _parse_metadata(
    meta: Mapping[str, Any], root: Path
) -> tuple[EstimatorSpec, ProbeConfig, list[float]]:
    try:
        spec = EstimatorSpec(
            _get(meta, "model_identity", str, root),
            _get(meta, "hidden_size", int, root),
            tuple(_get_list(meta, "layers", int, root)),
            tuple(_get_list(meta, "grid", int, root)),
            _get(meta, "n_min", int, root),
            _get(meta, "n_max", int, root),
        )
        config = ProbeConfig(**_get(meta, "probe_config", dict, root))
        weights = [float(w) for w in _get_list(meta, "weights", (int, float), root)]
        if _get(meta, "probe_hidden", int, root) != config.probe_width(spec.hidden_size):
            raise ConfigError(f"probe_hidden={meta['probe_hidden']} disagrees with probe_config")
        finite = all(math.isfinite(w) and w >= 0 for w in weights)
        if len(weights) != len(spec.layers) or not finite or abs(sum(weights) - 1) > 1e-6:
            raise ConfigError(
                f"weights={weights} are not {len(spec.layers)} finite values >= 0 summing to 1"
            )
    except (ConfigError, TypeError) as exc:
        raise ArtifactError(f"{root / _METADATA} is inconsistent: {exc}") from exc
    return spec, config, weights


def _parse_record(
    meta: Mapping[str, Any], config: ProbeConfig, root: Path
) -> tuple[str | None, TrainingSummary, dict[str, Any] | None, KnobCalibration | None]:
    """``created``, the training summary, the validation report and the head's knob."""
    created, validation = meta.get("created"), meta.get("validation")
    if created is not None and not isinstance(created, str):
        raise ArtifactError(f"{root / _METADATA}: created={created!r} is not a str; train again")
    if validation is not None and not isinstance(validation, dict):
        raise ArtifactError(
            f"{root / _METADATA}: validation={validation!r} is not an object; train again"
        )
    try:
        training = TrainingSummary.from_metadata(meta)
        knob = config.head_object.read_calibration(validation)
    except ConfigError as exc:
        raise ArtifactError(f"{root / _METADATA} is inconsistent: {exc}") from exc
    return created, training, validation, knob


def _load_probes(root: Path, spec: EstimatorSpec, config: ProbeConfig) -> list[LayerProbe]:
    path = root / _PROBES
    tensors = _read_tensors(root, _PROBES, _expected_shapes(path, spec, config))
    probes = []
    for layer in spec.layers:
        prefix = f"layer{layer}."
        sub = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        probe = make_probe(spec.hidden_size, config, len(spec.grid))
        try:
            probe.load_state_dict(sub)
        except RuntimeError as exc:
            msg = f"{path}: layer {layer} tensors do not match {_METADATA} ({exc}); train it again"
            raise ArtifactError(msg) from exc
        probes.append(probe.eval())
    return probes


def _load_guard(root: Path, meta: object, spec: EstimatorSpec) -> DistributionGuard:
    if not isinstance(meta, Mapping) or meta.get("layer") not in spec.layers:
        raise ArtifactError(
            f"{root / _METADATA}: the guard entry must be an object whose layer is one of "
            f"{list(spec.layers)}; train the estimator again"
        )
    try:
        expected = DistributionGuard.expected_shapes(meta, spec.hidden_size)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{root / _METADATA}: the guard entry is malformed ({exc})") from exc
    tensors = _read_tensors(root, _GUARD, expected)
    return DistributionGuard.from_parts(meta, tensors, where=str(root / _GUARD))


def _read_tensors(
    root: Path, name: str, expected: Mapping[str, tuple[int, ...]]
) -> dict[str, torch.Tensor]:
    """The tensors of ``root / name`` after checking the header against ``expected`` shapes."""
    path = root / name
    resolved = _member(root, name)
    try:
        with safe_open(str(resolved), framework="pt") as handle:
            layout = {
                key: (tuple(handle.get_slice(key).get_shape()), handle.get_slice(key).get_dtype())
                for key in handle.keys()  # noqa: SIM118 (a safetensors handle, not a dict)
            }
            _check_layout(path, layout, expected)
            tensors = {key: handle.get_tensor(key) for key in expected}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path} is truncated or corrupt ({exc}); train it again") from exc
    for key, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise ArtifactError(f"{path}: tensor {key!r} holds NaN or inf; train it again")
        if key.endswith("std") and not bool((tensor > 0).all()):
            raise ArtifactError(
                f"{path}: tensor {key!r} has values <= 0, but a standard deviation is positive; "
                "train it again"
            )
    return tensors


def _expected_shapes(
    path: Path, spec: EstimatorSpec, config: ProbeConfig
) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape that ``metadata.json`` implies (built on the meta device: no memory)."""
    hidden = config.probe_width(spec.hidden_size)
    try:
        with torch.device("meta"):
            reference = make_probe(spec.hidden_size, config, len(spec.grid))
    except (RuntimeError, TypeError, ValueError, OverflowError) as exc:
        raise ArtifactError(
            f"{path.with_name(_METADATA)}: hidden_size={spec.hidden_size} and "
            f"probe_hidden={hidden} describe no probe that fits in memory ({exc}); the file is "
            "corrupt, train the estimator again"
        ) from exc
    shapes = {key: tuple(t.shape) for key, t in reference.state_dict().items()}
    return {f"layer{layer}.{key}": shape for layer in spec.layers for key, shape in shapes.items()}


def _check_layout(
    path: Path,
    layout: Mapping[str, tuple[tuple[int, ...], str]],
    expected: Mapping[str, tuple[int, ...]],
) -> None:
    """Compare the safetensors header with the shapes ``metadata.json`` implies."""
    for key, shape in expected.items():
        layer = key.split(".", 1)[0].removeprefix("layer")
        if key not in layout:
            raise ArtifactError(
                f"{path}: layer {layer} tensors do not match {_METADATA} (no tensor {key!r}); "
                "train it again"
            )
        found, dtype = layout[key]
        if found != shape:
            raise ArtifactError(
                f"{path}: layer {layer} tensors do not match {_METADATA} ({key!r} has shape "
                f"{list(found)}, the metadata implies {list(shape)}); train it again"
            )
        if dtype not in _FLOAT_DTYPES:
            raise ArtifactError(
                f"{path}: tensor {key!r} has dtype {dtype}, not one of {_FLOAT_DTYPES}; "
                "train it again"
            )
    stray = sorted(set(layout) - set(expected))
    if stray:
        raise ArtifactError(
            f"{path} has tensors not described by {_METADATA} ({stray[:5]}); train it again"
        )
