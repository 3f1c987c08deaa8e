"""Model loading: the bundled GGUF is converted once and cached; failures name the setting."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from server.settings import Settings
from streaming.errors import ModelLoadError
from streaming.loader import (
    BUNDLED_NAME,
    bundled_gguf,
    choose_device,
    choose_dtype,
    convert_bundled,
    cpu_runs_bf16,
    load_model,
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
    assert loaded.name == BUNDLED_NAME
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
