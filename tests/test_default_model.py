"""Tests of t2_agents.backends.default_model: model choices, the cache, the default model folder."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from t2_agents.backends.default_model import (
    DEFAULT_MODEL_NAME,
    cache_root,
    default_model_dir,
    materialize_default_model,
    resolve_model,
)
from t2_agents.errors import ModelError


# ------------------------------------------------------------------------- resolve_model
def test_missing_path_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelError, match="does not exist") as info:
        resolve_model(str(missing))
    assert str(missing) in str(info.value)


def test_folder_without_config_json(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelError, match=r"no config\.json") as info:
        resolve_model(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_local_folder_identity_is_its_name(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    spec = resolve_model(folder)
    assert spec.path == str(folder)
    assert spec.identity == "my-model"
    assert not spec.is_default


def test_hub_id_is_passed_through() -> None:
    spec = resolve_model("some-org/some-model")
    assert spec.path == "some-org/some-model"
    assert spec.identity == "some-org/some-model"


# --------------------------------------------------------------------------- cache root
def test_cache_dir_argument_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("T2_AGENTS_CACHE", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    assert default_model_dir(tmp_path / "arg").is_relative_to(tmp_path / "arg")


def test_env_cache_beats_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("T2_AGENTS_CACHE", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "env"


def test_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("T2_AGENTS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "t2-agents"
    folder = default_model_dir()
    assert folder.parent == tmp_path / "xdg" / "t2-agents" / "models"
    assert folder.name.startswith(DEFAULT_MODEL_NAME)


def test_home_cache_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("T2_AGENTS_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root() == tmp_path / ".cache" / "t2-agents"


def test_empty_env_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("T2_AGENTS_CACHE", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "t2-agents"


# -------------------------------------------------------------------- the default model
@pytest.fixture(scope="module")
def default_folder() -> Path:
    return materialize_default_model()


@pytest.mark.slow
def test_default_model_resolves(default_folder: Path) -> None:
    for choice in (None, "default", DEFAULT_MODEL_NAME):
        spec = resolve_model(choice)
        assert spec.is_default
        assert spec.identity == DEFAULT_MODEL_NAME
        assert Path(spec.path) == default_folder


@pytest.mark.slow
def test_default_model_folder_layout(default_folder: Path) -> None:
    config = json.loads((default_folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
    assert config["num_hidden_layers"] == 30
    assert config["hidden_size"] == 576
    assert (default_folder / "model.safetensors").stat().st_size > 100_000_000
    assert (default_folder / "tokenizer.json").is_file()
    tok_config = json.loads((default_folder / "tokenizer_config.json").read_text())
    assert tok_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert (default_folder / "generation_config.json").is_file()
    marker = json.loads((default_folder / "t2_model.json").read_text())
    assert marker["identity"] == DEFAULT_MODEL_NAME
    # A folder found by path is recognised as the default model by its marker.
    assert resolve_model(default_folder).identity == DEFAULT_MODEL_NAME
    # No temporary siblings are left behind by the conversion.
    assert [p.name for p in default_folder.parent.iterdir()] == [default_folder.name]


_MATERIALISE = textwrap.dedent(
    """
    import sys
    from t2_agents.backends.default_model import materialize_default_model
    print(materialize_default_model(sys.argv[1]))
    """
)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_concurrent_first_runs_share_one_good_folder(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MATERIALISE, str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=800) for p in procs]
    for proc, (_out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-2000:]
    target = default_model_dir(cache)
    assert [Path(out.strip().splitlines()[-1]) for out, _ in results] == [target, target]
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no leftovers

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(target))
    ids = tokenizer("2 + 3 =", return_tensors="pt")
    with torch.inference_mode():
        logits = model(**ids).logits
    assert torch.isfinite(logits).all()
    assert model.config.num_hidden_layers == 30


# ------------------------------------------------------------ not a causal LM -> ModelError
def _engine(path: Path) -> None:
    from t2_agents.backends.transformers import TransformersEngine

    TransformersEngine(model=str(path), device="cpu", dtype="float32")


def test_unknown_model_type_is_model_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no_such_arch_xyz"}))
    with pytest.raises(ModelError, match="cannot load a model config"):
        _engine(tmp_path)


def test_encoder_config_is_model_error(tmp_path: Path) -> None:
    bert = {
        "model_type": "bert",
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 16,
        "vocab_size": 32,
    }
    (tmp_path / "config.json").write_text(json.dumps(bert))
    with pytest.raises(ModelError) as info:
        _engine(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_encoder_decoder_config_is_model_error(tmp_path: Path) -> None:
    t5 = {"model_type": "t5", "d_model": 8, "num_layers": 1, "num_heads": 2, "d_ff": 16}
    (tmp_path / "config.json").write_text(json.dumps({**t5, "d_kv": 4, "vocab_size": 32}))
    with pytest.raises(ModelError, match="not a causal language model"):
        _engine(tmp_path)


def test_encoder_with_weights_is_model_error(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
        vocab_size=32,
    )  # fmt: skip
    BertModel(config).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="decoder layers"):
        _engine(tmp_path)


def test_decoder_without_tokenizer_is_model_error(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=8, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
        intermediate_size=16, vocab_size=32,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="tokenizer"):
        _engine(tmp_path)


@pytest.mark.parametrize(
    ("marker", "match"),
    [
        ("{not json", r"t2_model\.json is corrupt \(JSONDecodeError"),  # was a bare JSONDecodeError
        ('{"source": "x"}', r"t2_model\.json is corrupt \(KeyError"),  # was a bare KeyError
        ("[1, 2]", r"t2_model\.json is corrupt \(TypeError"),
        ("[" * 100_000 + "]" * 100_000, r"t2_model\.json is corrupt \(RecursionError"),
        ('{"identity": ""}', r"names the model '', not a non-empty string"),
        ('{"identity": {"x": 1}}', r"names the model \{'x': 1\}"),
    ],
)
def test_corrupt_marker_is_model_error(tmp_path: Path, marker: str, match: str) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "t2_model.json").write_text(marker)
    with pytest.raises(ModelError, match=match) as info:
        resolve_model(folder)
    assert "delete" in str(info.value)


def test_marker_names_the_model(tmp_path: Path) -> None:
    folder = tmp_path / "copy-of-default"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "t2_model.json").write_text(json.dumps({"identity": DEFAULT_MODEL_NAME}))
    assert resolve_model(folder).identity == DEFAULT_MODEL_NAME
