"""The model registry and the per-process pipeline cache.

A model name maps to a source: the built-in `tiny` pipeline, a local diffusers folder, a single
`.safetensors` checkpoint, or a hub id that must already be in the Hugging Face cache. Nothing is
ever downloaded here: a missing model is a `ModelUnavailable` error that names it and its source.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from huggingface_hub import try_to_load_from_cache

from imagegen.config import Settings
from inference import speed
from inference.fingerprint import fingerprint
from inference.tiny import TINY_NAME

if TYPE_CHECKING:  # torch and diffusers load only where pipelines do: the api lists models without them
    import torch
    from diffusers import StableDiffusionXLPipeline

log = logging.getLogger(__name__)

SourceKind = Literal["builtin", "folder", "single_file", "hub"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str
    description: str
    default_steps: int
    default_guidance: float
    draw_scale: float = 1.0  # the share of the family's SDXL bucket the model draws at
    # the hi-res pass's strength when a variation names none (0: none; inference/generation.py)
    default_refine: float = 0.0
    builtin: bool = False
    # A single-file checkpoint needs its pipeline's configs and tokenizers: a local diffusers
    # folder (no weights needed); by default SDXL base's, made offline by inference/sdxl.py.
    config: str | None = None
    # Device memory the loaded pipeline needs (SDXL in fp16: 2.6 G UNet + 0.8 G text encoders + VAE
    # parameters ≈ 7 GB, plus activations); used to plan before loading, the measured size after.
    memory_gb: float = 8.0

    @property
    def kind(self) -> SourceKind:
        if self.builtin:
            return "builtin"
        if self.source.endswith((".safetensors", ".ckpt")):
            return "single_file"
        path = Path(self.source).expanduser()
        if path.exists() or path.is_absolute() or self.source.startswith((".", "~")):
            return "folder"
        return "hub"


class ModelError(Exception):
    pass


class UnknownModel(ModelError, KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown model {self.name!r}; known models: {', '.join(self.known)}"


class ModelUnavailable(ModelError, RuntimeError):
    def __init__(self, name: str, source: str, reason: str) -> None:
        super().__init__(f"model {name!r} is not available from {source!r}: {reason}")
        self.name = name
        self.source = source


def registry(env: Mapping[str, str] = os.environ) -> dict[str, ModelSpec]:
    def configured(name: str, default: str) -> dict[str, Any]:
        key = f"MODEL_{name.upper()}"
        return {"name": name, "source": env.get(f"{key}_SOURCE", default), "config": env.get(f"{key}_CONFIG")}

    specs = [
        ModelSpec(
            name="tiny",
            source=f"builtin:{TINY_NAME}",
            description="Built-in SDXL with tiny random weights: noise-like pictures, for tests and CPUs",
            default_steps=4,
            default_guidance=5.0,
            draw_scale=0.125,
            builtin=True,
            memory_gb=0.05,
        ),
        ModelSpec(
            **configured("photorealistic", "RunDiffusion/Juggernaut-XL-v9"),
            description="Photorealistic SDXL (Juggernaut XL)",
            default_steps=30,
            default_guidance=5.0,
            default_refine=0.3,
        ),
        ModelSpec(
            **configured("anime", "cagliostrolab/animagine-xl-3.1"),
            description="Anime and illustration SDXL (Animagine XL)",
            default_steps=28,
            default_guidance=7.0,
            default_refine=0.3,
        ),
        ModelSpec(
            **configured("turbo", "stabilityai/sdxl-turbo"),
            description="SDXL Turbo: one step, no guidance",
            default_steps=1,
            default_guidance=0.0,
        ),
    ]
    return {spec.name: spec for spec in specs}


REGISTRY = registry()


def available(spec: ModelSpec) -> bool:
    """Whether `spec` can be loaded without a download."""
    source = Path(spec.source).expanduser()
    match spec.kind:
        case "builtin":
            return True
        case "folder":
            return (source / "model_index.json").is_file()
        case "single_file":
            # configs: the operator's folder, or SDXL base's, which imagegen makes offline
            return source.is_file() and (spec.config is None or Path(spec.config).is_dir())
        case "hub":
            return isinstance(try_to_load_from_cache(spec.source, "model_index.json"), str)


def load(spec: ModelSpec, device: str, cache_dir: Path, levers: str = "") -> StableDiffusionXLPipeline:
    """`spec`'s pipeline on `device`; built-in weights are made under `cache_dir`, `levers` applied to real models."""
    import diffusers
    import torch
    import transformers
    from diffusers import StableDiffusionXLPipeline

    from inference.tiny import tiny_path

    # progress bars belong to terminals, not to a worker's log
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()

    if spec.kind == "builtin":
        # always on the CPU in float32: its pixels are the same on every machine
        pipeline = StableDiffusionXLPipeline.from_pretrained(
            tiny_path(cache_dir), dtype=torch.float32, local_files_only=True
        )
    else:
        pipeline = _load_weights(spec, torch.float16 if device.startswith("cuda") else torch.float32, cache_dir)
        pipeline.to(device)
        # the levers are for real models; tiny stays the same reference everywhere
        speed.apply(pipeline, speed.parse(levers))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _load_weights(spec: ModelSpec, dtype: torch.dtype, cache_dir: Path) -> StableDiffusionXLPipeline:
    from diffusers import StableDiffusionXLPipeline

    if not available(spec):
        reason = {
            "folder": "no diffusers folder (model_index.json) there",
            "single_file": f"the file, or the config folder MODEL_{spec.name.upper()}_CONFIG names, is missing",
            "hub": "not in the Hugging Face cache, and imagegen never downloads weights",
        }[spec.kind]
        raise ModelUnavailable(spec.name, spec.source, reason)
    source = str(Path(spec.source).expanduser()) if spec.kind != "hub" else spec.source
    try:
        if spec.kind == "single_file":
            from inference import sdxl

            config = spec.config or str(sdxl.config_path(cache_dir))
            return StableDiffusionXLPipeline.from_single_file(source, config=config, dtype=dtype, local_files_only=True)
        return StableDiffusionXLPipeline.from_pretrained(source, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as error:  # a partial cache or folder: files missing or malformed
        raise ModelUnavailable(spec.name, spec.source, str(error)) from error


def weights_path(spec: ModelSpec, cache_dir: Path) -> Path:
    """Where a model's weights are on disk (for a hub id: its snapshot in the local cache)."""
    match spec.kind:
        case "builtin":
            from inference.tiny import tiny_path

            return tiny_path(cache_dir)
        case "hub":
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(spec.source, local_files_only=True))
    return Path(spec.source).expanduser()


def _size_gb(pipeline: Any) -> float:
    """The loaded pipeline's parameters and buffers, in GB."""
    total = 0
    for component in pipeline.components.values():
        for tensor in [*getattr(component, "parameters", list)(), *getattr(component, "buffers", list)()]:
            total += tensor.numel() * tensor.element_size()
    return total / 1e9


class Pipelines:
    """Each model's pipeline, loaded once per process and kept. `settings`: where built-in weights are
    made, the speed levers, the memory budget and torch's threads (default: from the environment)."""

    def __init__(
        self,
        models: Mapping[str, ModelSpec] | None = None,
        device: str | None = None,
        budget_gb: float | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        import torch

        self.settings = settings = settings or Settings()

        self._models = dict(REGISTRY if models is None else models)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # least recently used first: the first to go when a new model does not fit the budget
        self._pipelines: OrderedDict[str, StableDiffusionXLPipeline] = OrderedDict()
        self._sizes: dict[str, float] = {}
        self._fingerprints: dict[str, str] = {}
        self._lock = threading.Lock()
        self.budget_gb = settings.model_memory_budget_gb if budget_gb is None else budget_gb
        if not self.budget_gb and self.device.startswith("cuda"):
            self.budget_gb = torch.cuda.get_device_properties(self.device).total_memory / 1e9 * 0.9
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        # a lever this device cannot pull stops the worker now, named, not at its first job
        speed.check(speed.parse(settings.speed_levers), self.device)

    def spec(self, name: str) -> ModelSpec:
        try:
            return self._models[name]
        except KeyError:
            raise UnknownModel(name, sorted(self._models)) from None

    def get(self, name: str) -> tuple[ModelSpec, StableDiffusionXLPipeline]:
        spec = self.spec(name)
        with self._lock:
            if name in self._pipelines:
                self._pipelines.move_to_end(name)
                return spec, self._pipelines[name]
            self._make_room(spec.memory_gb)
            pipeline = load(spec, self.device, self.settings.model_cache_dir, self.settings.speed_levers)
            self._pipelines[name] = pipeline
            self._sizes[name] = _size_gb(pipeline)
            self._fingerprints[name] = fingerprint(weights_path(spec, self.settings.model_cache_dir))
            return spec, pipeline

    def _make_room(self, need_gb: float) -> None:
        """Unload the least recently used models until `need_gb` more fits the budget (0: no budget)."""
        while self.budget_gb and self._pipelines and sum(self._sizes.values()) + need_gb > self.budget_gb:
            name, _ = self._pipelines.popitem(last=False)
            log.info("unloading model %s (%.2f GB) to stay within %.2f GB", name, self._sizes.pop(name), self.budget_gb)
            self.release_memory()

    def fingerprint(self, name: str) -> str:
        """The fingerprint of the weights `name` was loaded from (load it first)."""
        return self._fingerprints[name]

    def loaded(self) -> list[str]:
        return sorted(self._pipelines)

    def sizes_gb(self) -> dict[str, float]:
        return dict(self._sizes)

    def release_memory(self) -> None:
        """After an out-of-memory error: drop what the failed call held so the next job fits."""
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def available(self, name: str) -> bool:
        return available(self.spec(name))

    def list_models(self) -> list[dict[str, Any]]:
        return [describe(spec, loaded=spec.name in self._pipelines) for spec in self._models.values()]


def describe(spec: ModelSpec, loaded: bool = False) -> dict[str, Any]:
    return {
        "name": spec.name,
        "description": spec.description,
        "source": spec.source,
        "defaultSteps": spec.default_steps,
        "defaultGuidance": spec.default_guidance,
        "defaultRefine": spec.default_refine,
        "memoryGb": spec.memory_gb,
        "loaded": loaded,
        "available": available(spec),
    }


def list_models(pipelines: Pipelines | None = None) -> list[dict[str, Any]]:
    """The registry as `GET /models` shows it; `loaded` is about `pipelines`. Without them, nothing is
    loaded here and torch is not touched (the api says which workers have each model loaded)."""
    return pipelines.list_models() if pipelines is not None else [describe(spec) for spec in REGISTRY.values()]
