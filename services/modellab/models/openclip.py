"""OpenCLIP / SigLIP foundation models as backbones: an image tower that plugs into the
embedder, and a text tower (with its tokenizer) that embeds words into the same space.

Registered in the configurations of the Marqo fashion checkpoints:

- ``ViT-B-32``: OpenCLIP ViT-B/32 (512-d);
- ``ViT-B-16``: OpenCLIP ViT-B/16 (512-d), Marqo-FashionCLIP's architecture;
- ``ViT-B-16-SigLIP``: SigLIP ViT-B/16 (768-d), Marqo-FashionSigLIP's architecture.

Nothing ships offline for them, so ``weights`` must say where they come from:

- ``"random"``: random initialisation (tests, speed figures);
- a file: ``.pt``/``.pth``/``.bin``/``.safetensors``, an open_clip state dict;
- a directory in the Hugging Face hub's layout: ``open_clip_config.json`` and a weights file
  (``open_clip_model.safetensors``, ``open_clip_pytorch_model.bin``, ...), plus the tokenizer
  files for SigLIP (``tokenizer.json``);
- ``hf-hub:ORG/REPO``: that directory in the Hugging Face cache (``HF_HOME``); nothing is
  downloaded unless ``embedder.allow_download`` is on and ``HF_HUB_OFFLINE`` is not set.

A missing or mismatched file raises :class:`~shared.errors.ConfigurationError` (or
:class:`~shared.errors.NotFoundError`) naming it, before anything is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from services.modellab.models.preprocess import Preprocess
from services.modellab.models.registry import Backbone, Weights, register_backbone
from shared.errors import ConfigurationError, NotFoundError

__all__ = [
    "CLIP_FAMILIES",
    "ClipBackbone",
    "ClipFamily",
    "WeightsSource",
    "build_clip",
    "family_of_directory",
    "resolve_weights",
]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)

CONFIG_FILE = "open_clip_config.json"
WEIGHT_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
    "open_clip_pytorch_model.pt",
    "model.pt",
)
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
TOKENIZER_FILE = "tokenizer.json"

# What must agree between a directory's model_cfg and the registered architecture.
_MATCHED_FIELDS = (
    ("embed_dim",),
    ("vision_cfg", "image_size"),
    ("vision_cfg", "patch_size"),
    ("vision_cfg", "width"),
    ("vision_cfg", "layers"),
    ("vision_cfg", "timm_model_name"),
    ("text_cfg", "context_length"),
    ("text_cfg", "vocab_size"),
    ("text_cfg", "width"),
    ("text_cfg", "layers"),
)


@dataclass(frozen=True)
class ClipFamily:
    """A registered OpenCLIP architecture and how its images are prepared."""

    name: str
    dim: int
    preprocess: Preprocess
    tokenizer: str  # "clip" (open_clip's bundled BPE) or "hf" (a tokenizer.json beside weights)
    description: str


CLIP_FAMILIES: dict[str, ClipFamily] = {
    family.name: family
    for family in (
        ClipFamily(
            "ViT-B-32",
            512,
            Preprocess(224, 224, OPENAI_MEAN, OPENAI_STD, "bicubic", "crop"),
            "clip",
            "OpenCLIP ViT-B/32 (512-d, image and text towers, 151M params); weights by path",
        ),
        ClipFamily(
            "ViT-B-16",
            512,
            Preprocess(224, 224, OPENAI_MEAN, OPENAI_STD, "bicubic", "crop"),
            "clip",
            "OpenCLIP ViT-B/16 (512-d, image and text towers, 150M params), Marqo-FashionCLIP's "
            "architecture; weights by path",
        ),
        ClipFamily(
            "ViT-B-16-SigLIP",
            768,
            Preprocess(224, 224, INCEPTION_MEAN, INCEPTION_STD, "bicubic", "squash"),
            "hf",
            "SigLIP ViT-B/16 (768-d, image and text towers, 203M params), Marqo-FashionSigLIP's "
            "architecture; weights by path",
        ),
    )
}


@dataclass
class WeightsSource:
    """Where a model's weights came from: what the model card records."""

    source: str
    files: list[Path] = field(default_factory=list)
    directory: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    licence: str = "unknown"

    digests: dict[str, str] = field(default_factory=dict)

    def sha256(self) -> dict[str, str]:
        """sha256 of each weight file (read once)."""
        if not self.digests:
            self.digests = {path.name: _sha256(path) for path in self.files}
        return self.digests

    def card(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "path": str(self.directory or (self.files[0] if self.files else "")),
            "sha256": self.sha256(),
            "licence": self.licence,
        }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------ weights sources


def _field(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = config
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _builtin_config(arch: str) -> dict[str, Any]:
    from open_clip import get_model_config

    config = get_model_config(arch)
    if config is None:
        raise ConfigurationError(f"open_clip has no built-in config {arch}")
    return dict(config)


def config_mismatches(model_cfg: dict[str, Any], arch: str) -> list[str]:
    """The fields where ``model_cfg`` differs from ``arch``'s built-in configuration."""
    builtin = _builtin_config(arch)
    out = []
    for path in _MATCHED_FIELDS:
        want, got = _field(builtin, path), _field(model_cfg, path)
        if want != got:
            out.append(f"{'.'.join(path)} {got!r} (expected {want!r})")
    return out


def _read_config(directory: Path) -> dict[str, Any]:
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise NotFoundError(
            f"OpenCLIP model directory {directory} has no {CONFIG_FILE} (a directory in the "
            "Hugging Face hub's layout holds it beside the weights)"
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {config_path}: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("model_cfg"), dict):
        raise ConfigurationError(f"{config_path} has no model_cfg")
    return config


def family_of_directory(
    directory: str | os.PathLike[str], *, allow_download: bool = False
) -> str | None:
    """The registered architecture a directory's ``open_clip_config.json`` describes (None when
    the directory has no such file); an unregistered one raises a clear error. ``hf-hub:ORG/REPO``
    names that directory in the Hugging Face cache."""
    text = str(directory)
    if text.startswith("hf-hub:"):
        path = _hf_snapshot(text.removeprefix("hf-hub:"), allow_download)
        if not (path / CONFIG_FILE).is_file():
            raise NotFoundError(f"{text} (in {path}) has no {CONFIG_FILE}")
    else:
        path = Path(directory)
    if not (path / CONFIG_FILE).is_file():
        return None
    model_cfg = _read_config(path)["model_cfg"]
    for name in CLIP_FAMILIES:
        if not config_mismatches(model_cfg, name):
            return name
    raise ConfigurationError(
        f"{path / CONFIG_FILE} describes none of the registered OpenCLIP architectures "
        f"({', '.join(CLIP_FAMILIES)})"
    )


def _licence(directory: Path, config: dict[str, Any]) -> str:
    for key in ("license", "licence"):
        if isinstance(config.get(key), str) and config[key].strip():
            return str(config[key]).strip()
    readme = directory / "README.md"
    if readme.is_file():
        text = readme.read_text(errors="replace")
        if text.startswith("---"):
            header = text.split("---", 2)[1] if text.count("---") >= 2 else ""
            match = re.search(r"^licen[sc]e:\s*['\"]?([^'\"\n]+)", header, re.MULTILINE)
            if match:
                return match.group(1).strip()
    return "unknown"


def _hf_snapshot(repo: str, allow_download: bool) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:
        raise ConfigurationError(
            "hf-hub: weights need the huggingface_hub package (pip install 'lookalike[clip]')"
        ) from exc
    # Read at call time (huggingface_hub reads its environment once, at import).
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    cache = os.environ.get("HF_HUB_CACHE") or (
        str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME") else None
    )
    try:
        return Path(
            snapshot_download(repo, cache_dir=cache, local_files_only=offline or not allow_download)
        )
    except LocalEntryNotFoundError as exc:
        raise NotFoundError(
            f"hf-hub:{repo} is not in the Hugging Face cache (HF_HOME="
            f"{os.environ.get('HF_HOME', '~/.cache/huggingface')}); nothing is downloaded while "
            "serving: fetch it once (huggingface-cli download), give its directory as weights, "
            "or allow downloads (LOOKALIKE_EMBEDDER__ALLOW_DOWNLOAD=true)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read hf-hub:{repo}: {exc}") from exc


def resolve_weights(
    arch: str, weights: Weights, *, allow_download: bool = False, licence: str = ""
) -> WeightsSource | None:
    """Where ``arch``'s weights are (None for random ones), checked before anything is built:
    a missing file, a config of another architecture or an unknown format raise an error that
    names it."""
    text = str(weights)
    if text == "random":
        return None
    if text == "imagenet":
        raise ConfigurationError(
            f"{arch} has no weights that ship offline: give weights as a file, a directory "
            "(open_clip_config.json + weights), hf-hub:ORG/REPO (from the Hugging Face cache) "
            "or random"
        )
    if text.startswith("hf-hub:"):
        path = _hf_snapshot(text.removeprefix("hf-hub:"), allow_download)
    else:
        path = Path(text).expanduser()
    if path.is_dir():
        config = _read_config(path)
        mismatched = config_mismatches(config["model_cfg"], arch)
        if mismatched:
            raise ConfigurationError(
                f"{path / CONFIG_FILE} does not describe {arch}: {'; '.join(mismatched)}"
            )
        files = [path / name for name in WEIGHT_FILES if (path / name).is_file()]
        if not files:
            raise NotFoundError(
                f"OpenCLIP model directory {path} has no weights file (looked for "
                f"{', '.join(WEIGHT_FILES)})"
            )
        if CLIP_FAMILIES[arch].tokenizer == "hf" and not (path / TOKENIZER_FILE).is_file():
            raise NotFoundError(
                f"OpenCLIP model directory {path} has no {TOKENIZER_FILE} ({arch}'s text tower "
                "needs its tokenizer)"
            )
        return WeightsSource(text, [files[0]], path, config, licence or _licence(path, config))
    if path.is_file():
        if path.suffix not in WEIGHT_SUFFIXES:
            raise ConfigurationError(
                f"weights file {path} is not one of {', '.join(WEIGHT_SUFFIXES)}"
            )
        return WeightsSource(text, [path], None, {}, licence or "unknown")
    raise NotFoundError(f"weights for {arch} not found: {path}")


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ConfigurationError(f"cannot read weights file {path}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise ConfigurationError(f"weights file {path} does not hold a state dict")
    for prefix in ("module.", "model."):  # saved from a DataParallel or a wrapping module
        if all(key.startswith(prefix) for key in state):
            state = {key.removeprefix(prefix): value for key, value in state.items()}
    return state


def _load_weights(model: nn.Module, path: Path) -> None:
    state = _load_state(path)
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    shapes = [
        f"{key} {tuple(state[key].shape)} (expected {tuple(own[key].shape)})"
        for key in own
        if key in state and tuple(state[key].shape) != tuple(own[key].shape)
    ]
    if missing or unexpected or shapes:
        raise ConfigurationError(
            f"weights file {path} does not fit this model: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, other shapes {shapes[:3]}"
        )
    model.load_state_dict(state)


# ------------------------------------------------------------------------------------ towers


class _ImageTower(nn.Module):
    """``images -> (N, dim)`` image embeddings (not normalised)."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)


class TextTower(nn.Module):
    """``token ids (N, context_length) -> (N, dim)`` L2-normalised text embeddings."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens, normalize=True)


Tokenizer = Callable[[Sequence[str]], torch.Tensor]


def _clip_tokenizer(context_length: int) -> Tokenizer:
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer(context_length=context_length)
    return lambda texts: tokenizer(list(texts))


def _hf_tokenizer(path: Path, context_length: int, config: dict[str, Any]) -> Tokenizer:
    """A ``tokenizer.json`` (the Hugging Face ``tokenizers`` package), SigLIP's way: text
    canonicalised (lower case, no punctuation), padded and cut to ``context_length``."""
    try:
        from tokenizers import Tokenizer as HfTokenizer
    except ImportError as exc:
        raise ConfigurationError(
            "SigLIP's tokenizer needs the tokenizers package (pip install 'lookalike[clip]')"
        ) from exc
    from open_clip.tokenizer import canonicalize_text

    try:
        tokenizer = HfTokenizer.from_file(str(path))
    except Exception as exc:  # the Rust library raises its own Exception type
        raise ConfigurationError(f"cannot read tokenizer {path}: {exc}") from exc
    pad_text = "</s>"
    special = path.parent / "special_tokens_map.json"
    if special.is_file():
        token = json.loads(special.read_text()).get("pad_token", pad_text)
        pad_text = token["content"] if isinstance(token, dict) else str(token)
    pad_id = tokenizer.token_to_id(pad_text)
    pad_id = 1 if pad_id is None else pad_id
    clean = _field(config, ("model_cfg", "text_cfg", "tokenizer_kwargs", "clean"))

    def tokenize(texts: Sequence[str]) -> torch.Tensor:
        out = torch.full((len(texts), context_length), pad_id, dtype=torch.long)
        for i, text in enumerate(texts):
            prepared = canonicalize_text(text) if clean == "canonicalize" else text
            ids = tokenizer.encode(prepared).ids[:context_length]
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    return tokenize


class ClipBackbone(Backbone):
    """An OpenCLIP model's image tower as a backbone, with its text tower and tokenizer
    (``tokenizer`` is None when none could be found: the model then embeds images only)."""

    def __init__(
        self,
        family: ClipFamily,
        model: nn.Module,
        preprocess: Preprocess,
        weights: WeightsSource | None,
        tokenizer: Tokenizer | None,
        context_length: int,
    ) -> None:
        super().__init__(family.name, _ImageTower(model.visual), family.dim, preprocess)  # type: ignore[arg-type]
        self.text = TextTower(model)
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.weights_source = weights

    @property
    def weights_tag(self) -> str:
        """``random`` or the first 10 hex digits of the weight file's sha256."""
        if self.weights_source is None:
            return "random"
        return self.weights_source.sha256()[self.weights_source.files[0].name][:10]

    def provenance(self) -> dict[str, Any]:
        """What the model card records about the weights."""
        if self.weights_source is None:
            return {"source": "random", "path": "", "sha256": {}, "licence": "none"}
        return self.weights_source.card()

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        if self.tokenizer is None:
            raise ConfigurationError(f"{self.name} has no tokenizer: it embeds images only")
        return self.tokenizer(texts)


def _preprocess(family: ClipFamily, config: dict[str, Any]) -> Preprocess:
    """The family's transform, overridden by a directory's ``preprocess_cfg``."""
    cfg = config.get("preprocess_cfg") or {}
    base = family.preprocess
    mean = tuple(cfg.get("mean", base.mean))
    std = tuple(cfg.get("std", base.std))
    interpolation = cfg.get("interpolation", base.interpolation)
    mode = cfg.get("resize_mode", "squash" if base.fit == "squash" else "shortest")
    if interpolation not in ("bilinear", "bicubic") or mode not in ("shortest", "squash"):
        raise ConfigurationError(
            f"unsupported preprocess_cfg {cfg}: interpolation bilinear/bicubic and resize_mode "
            "shortest/squash are served"
        )
    return Preprocess.from_dict(
        {
            "input_size": base.input_size,
            "resize_size": base.resize_size,
            "mean": mean,
            "std": std,
            "interpolation": interpolation,
            "fit": "squash" if mode == "squash" else "crop",
        }
    )


def build_clip(
    arch: str,
    weights: Weights,
    input_size: int | None = None,
    *,
    allow_download: bool = False,
    licence: str = "",
) -> ClipBackbone:
    """Build ``arch`` with ``weights`` (see the module doc); all files are checked first.
    ``allow_download`` lets ``hf-hub:`` weights missing from the cache be fetched;
    ``licence`` is recorded on the card (else the directory's metadata, else ``unknown``)."""
    family = CLIP_FAMILIES[arch]
    size = family.preprocess.input_size if input_size is None else input_size
    if size != family.preprocess.input_size:
        raise ConfigurationError(f"{arch} takes {family.preprocess.input_size} px inputs only")
    source = resolve_weights(arch, weights, allow_download=allow_download, licence=licence)
    config = source.config if source is not None else {}
    tokenizer_file = source.directory / TOKENIZER_FILE if source and source.directory else None
    import open_clip

    # A directory's own model_cfg builds the model (it may set what the architecture leaves
    # open, e.g. quick_gelu); its fields checked above match the architecture's.
    name = f"local-dir:{source.directory}" if source and source.directory else arch
    model = open_clip.create_model(name, pretrained=None, load_weights=False)
    if source is not None:
        _load_weights(model, source.files[0])
    context_length = int(_builtin_config(arch)["text_cfg"].get("context_length", 77))
    tokenizer: Tokenizer | None = None
    if family.tokenizer == "clip":
        tokenizer = _clip_tokenizer(context_length)
    elif tokenizer_file is not None:
        tokenizer = _hf_tokenizer(tokenizer_file, context_length, config)
    preprocess = _preprocess(family, config)
    return ClipBackbone(family, model, preprocess, source, tokenizer, context_length).eval()


def _register(family: ClipFamily) -> None:
    @register_backbone(
        family.name, dim=family.dim, preprocess=family.preprocess, description=family.description
    )
    def build(weights: Weights, input_size: int) -> Backbone:
        return build_clip(family.name, weights, input_size)


for _family in CLIP_FAMILIES.values():
    _register(_family)
