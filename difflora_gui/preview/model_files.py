"""The diffusers preview backend's model: which files, what they are, and whether they are all there.

:class:`ModelSettings` is the backend's options (``PreviewJob.options``): a diffusers-format Wan
folder (Wan2.1 T2V 1.3B/14B, Wan2.2 A14B with ``transformer_2``, TI2V-5B) and optionally
single-file DiTs that replace its transformer(s) (``from_single_file``; ``dit_file`` is the
low-noise expert of A14B, as in the Settings), optionally VAE and text encoder folders that replace
its ``vae/`` and ``text_encoder/`` (diffusers component folders: config.json and *.safetensors; the
tokenizer comes from the text encoder folder when it holds one, else the model folder's
``tokenizer/``), the compute dtype and the memory savers.
:func:`model_facts` says what the model is (blocks, experts, size) from configs and safetensors
headers alone, so the block panel can show one control per block before anything is loaded;
:func:`check_model` names every missing file, :func:`check_size` a width or height the model cannot
render (TI2V-5B's VAE downsamples 16×, so it renders multiples of 32, not 16). Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.lora import wan_layout
from difflora_gui.preview.backend import ModelFacts
from difflora_gui.train.builtin.model_loading import (
    TOKENIZER_MARKER,
    component_dir,
    has_two_experts,
    override_problem,
    read_model_index,
    tokenizer_dir,
)

DTYPES = ("bf16", "fp16", "fp32")
OFFLOADS = ("none", "model", "group")
#: what the text side of the pipeline needs from the folder (a single-file DiT replaces only a transformer)
_TEXT_COMPONENTS = ("vae", "text_encoder", "tokenizer", "scheduler")
_VARIANT_TITLES = {"1.3B": "Wan2.1 T2V 1.3B", "14B": "Wan 14B", "5B": "Wan2.2 TI2V-5B"}
#: the Wan2.2 VAE's latent channels (TI2V-5B); Wan2.1's VAE, which A14B uses too, has 16
TI2V_LATENT_CHANNELS = 48


@dataclass(frozen=True)
class ModelSettings:
    """The diffusers backend's options (``PreviewJob.options = settings.to_json()``)."""

    model_dir: str = ""
    dit_file: str = ""
    dit_high_file: str = ""
    vae_dir: str = ""
    text_encoder_dir: str = ""
    dtype: str = "bf16"
    offload: str = "none"
    vae_tiling: bool = False
    vae_slicing: bool = False
    device: str = "cpu"

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise UserError(f"preview dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.offload not in OFFLOADS:
            raise UserError(f"preview offload must be one of {', '.join(OFFLOADS)}, got {self.offload!r}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | ModelSettings) -> ModelSettings:
        if isinstance(data, ModelSettings):
            return data
        if not isinstance(data, Mapping):
            raise UserError("the preview model options must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"unknown preview model option(s): {', '.join(unknown)}")
        return cls(**dict(data))

    @classmethod
    def from_settings(cls, settings, *, device: str = "cpu") -> ModelSettings:
        """From the app's :class:`~difflora_gui.settings.AppSettings` (Settings ▸ Wan, Preview)."""
        return cls(
            model_dir=settings.wan_model_dir,
            dit_file=settings.wan_dit,
            dit_high_file=settings.wan_dit_high_noise,
            vae_dir=settings.wan_vae_dir,
            text_encoder_dir=settings.wan_text_encoder_dir,
            dtype=settings.preview_dtype,
            offload=settings.preview_offload,
            vae_tiling=bool(settings.preview_vae_tiling),
            vae_slicing=bool(settings.preview_vae_slicing),
            device=device,
        )

    @property
    def folder(self) -> Path:
        return Path(self.model_dir).expanduser()

    @property
    def vae_folder(self) -> Path:
        """Where the VAE is read from: :attr:`vae_dir`, else the model folder's ``vae/``."""
        return component_dir(self.folder, "vae", self.vae_dir)

    @property
    def text_encoder_folder(self) -> Path:
        """Where the text encoder is read from: :attr:`text_encoder_dir`, else ``text_encoder/``."""
        return component_dir(self.folder, "text_encoder", self.text_encoder_dir)

    @property
    def tokenizer_folder(self) -> Path:
        """The text encoder folder when it holds a tokenizer, else the model folder's ``tokenizer/``."""
        return tokenizer_dir(self.folder, self.text_encoder_dir)

    def fingerprint(self) -> str:
        """A hex key of the files used (path, size, modification time of every config and weight
        file, no hashing, wherever they are read from) and of the settings that change the pixels
        (dtype, VAE tiling); offload and device move weights around but compute the same thing,
        and VAE slicing only splits a batch of clips, while a render decodes one clip (diffusers
        skips slicing for a batch of one), so they are left out."""
        files = []
        for path in sorted(set(used_files(self))):
            try:
                stat = path.stat()
            except OSError:
                files.append([str(path), None, None])
                continue
            files.append([str(path), stat.st_size, stat.st_mtime_ns])
        data = {"files": files, "dtype": self.dtype, "vae_tiling": self.vae_tiling}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _settings(options: Mapping[str, Any] | ModelSettings) -> ModelSettings:
    return ModelSettings.from_json(options)


def _replaced_subfolders(settings: ModelSettings, two_experts: bool) -> set[str]:
    """The transformer subfolders a single-file DiT stands in for."""
    replaced = set()
    if settings.dit_file:
        replaced.add("transformer_2" if two_experts else "transformer")
    if settings.dit_high_file:
        replaced.add("transformer")
    return replaced


def _index_or_none(folder: Path) -> dict[str, Any] | None:
    try:
        return read_model_index(folder)
    except UserError:
        return None


def used_files(options: Mapping[str, Any] | ModelSettings) -> list[Path]:
    """Every file the pipeline would read: model_index.json, the components' files, the DiT files."""
    settings = _settings(options)
    out: list[Path] = []
    folder = settings.folder
    index = _index_or_none(folder) if settings.model_dir else None
    # the component folders read instead of the model folder's own subfolders
    elsewhere = {
        "vae": settings.vae_folder,
        "text_encoder": settings.text_encoder_folder,
        "tokenizer": settings.tokenizer_folder,
    }
    if index is not None:
        out.append(folder / "model_index.json")
        replaced = _replaced_subfolders(settings, has_two_experts(index))
        for name, entry in sorted(index.items()):
            if name.startswith("_") or not (isinstance(entry, list) and entry and entry[0] is not None):
                continue
            sub = elsewhere.get(name, folder / name)
            if name in replaced:
                # from_single_file still reads the folder's transformer config
                out.append(sub / "config.json")
            elif sub.is_dir():
                out.extend(p for p in sub.rglob("*") if p.is_file())
    for file in (settings.dit_file, settings.dit_high_file):
        if file:
            out.append(Path(file).expanduser())
    return out


# --- what the model is ---------------------------------------------------------------------------

_BLOCK_KEY = re.compile(r"^(?:model\.diffusion_model\.|diffusion_model\.)?blocks\.(\d+)\.")
_PATCH_KEYS = ("patch_embedding.weight", "model.diffusion_model.patch_embedding.weight")


def _variant_of(dim: int | None) -> str:
    for name in wan_layout.KNOWN_VARIANTS:
        variant = wan_layout.get_variant(name)
        if dim == variant.dim:
            return name
    return "unknown"


def _read_config(path: Path, what: str) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the {what} config ({exc})") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: the {what} config is not a JSON object")
    return config


def _config_facts(path: Path) -> tuple[int, int | None]:
    """(num_blocks, dim) from a transformer config.json."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        blocks = int(config["num_layers"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: cannot read the transformer's num_layers ({exc})") from None
    heads, head_dim = config.get("num_attention_heads"), config.get("attention_head_dim")
    dim = int(heads) * int(head_dim) if heads and head_dim else None
    return blocks, dim


def _is_ti2v(index: Mapping[str, Any], folder: Path) -> bool:
    """Whether the folder is the Wan2.2 TI2V family: 48 latent channels (the Wan2.2 VAE) or
    ``expand_timesteps`` (a timestep per latent token) in model_index.json. Dim alone cannot tell:
    a test model of any width has this layout too."""
    if index.get("expand_timesteps") is True:
        return True
    try:
        config = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
        return int(config.get("in_channels") or 0) == TI2V_LATENT_CHANNELS
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def dit_file_facts(path: str | Path) -> tuple[int, int | None]:
    """(num_blocks, dim) of a single-file DiT from its safetensors header (no weights read)."""
    from difflora_gui.lora.safetensors_header import read_header

    header = read_header(path)
    blocks = {int(m.group(1)) for key in header.tensors if (m := _BLOCK_KEY.match(key))}
    if not blocks:
        raise UserError(f"{path}: no Wan transformer blocks in this file (keys such as blocks.0.self_attn.q)")
    dim = None
    for key in _PATCH_KEYS:
        info = header.tensors.get(key)
        if info is not None and info.shape:
            dim = int(info.shape[0])
            break
    return max(blocks) + 1, dim


def model_facts(options: Mapping[str, Any] | ModelSettings) -> ModelFacts:
    """Blocks, experts and size of the model the options name, from configs and headers only."""
    settings = _settings(options)
    if not settings.model_dir and not settings.dit_file and not settings.dit_high_file:
        raise UserError(
            "no Wan model set: choose a diffusers Wan folder in Settings ▸ Training ▸ Wan diffusers folder"
        )
    index = read_model_index(settings.folder) if settings.model_dir else {}
    two = bool(index) and has_two_experts(index) and index.get("boundary_ratio") is not None
    if settings.dit_high_file and not settings.dit_file:
        raise UserError(
            f"{settings.dit_high_file}: a high-noise DiT needs the low-noise one too (Settings ▸ Training ▸ Wan DiT)"
        )
    if settings.dit_file:
        blocks, dim = dit_file_facts(settings.dit_file)
    else:
        blocks, dim = _config_facts(settings.folder / "transformer" / "config.json")
    variant = _variant_of(dim)
    boundary = float(index["boundary_ratio"]) if two else None
    if two:
        title = "Wan2.2 A14B" if variant == "14B" else f"Wan-like two experts (dim {dim})"
        label = f"{title}: high- and low-noise experts, {blocks} blocks (switch at {boundary:g})"
    elif settings.model_dir and variant in ("unknown", "5B") and _is_ti2v(index, settings.folder):
        # the 48-channel latent and per-token timesteps make it a TI2V-5B, whatever its width
        full = variant == "5B"
        variant = "5B"
        title = _VARIANT_TITLES["5B"] if full else f"{_VARIANT_TITLES['5B']} layout (dim {dim})"
        label = f"{title}, {blocks} blocks"
    else:
        title = _VARIANT_TITLES.get(variant) or f"Wan-like (dim {dim})"
        label = f"{title}, {blocks} blocks"
    return ModelFacts(
        num_blocks=blocks, two_experts=two, variant=variant, boundary_ratio=boundary, label=label
    )


# --- the sizes a model renders -------------------------------------------------------------------


def _size_factors(settings: ModelSettings) -> tuple[int, int]:
    """(the VAE's spatial factor, the transformer's spatial patch) from their configs."""
    try:
        vae = _read_config(settings.vae_folder / "config.json", "VAE")
        transformer = _read_config(settings.folder / "transformer" / "config.json", "transformer")
        patch = transformer.get("patch_size") or (1, 2, 2)
        return int(vae.get("scale_factor_spatial") or 8), max(int(patch[1]), int(patch[2]))
    except (UserError, ValueError, TypeError, IndexError):
        return 8, 2


def size_multiple(options: Mapping[str, Any] | ModelSettings) -> int:
    """The multiple of pixels the model's width and height must be: the VAE's spatial factor
    (``scale_factor_spatial``: 8 for Wan2.1's VAE, 16 for Wan2.2's) times the transformer's
    spatial patch (2), so 16 for Wan2.1 and A14B, 32 for TI2V-5B. diffusers crops any other size
    down with only a log warning, so the clip would come out smaller than asked. Unreadable
    configs give 16 (the request's own rule): :func:`check_model` reports the missing file."""
    factor, patch = _size_factors(_settings(options))
    return factor * patch


def size_problem(width: int, height: int, options: Mapping[str, Any] | ModelSettings) -> str | None:
    """One line when ``width``×``height`` is not a size the model renders (None: it is)."""
    settings = _settings(options)
    factor, patch = _size_factors(settings)
    multiple = factor * patch
    if width % multiple == 0 and height % multiple == 0:
        return None
    try:
        name = model_facts(settings).label.split(",")[0]
    except UserError:
        name = "this model"

    def down(value: int) -> int:
        return value // multiple * multiple

    def near(value: int) -> int:
        return max(multiple, round(value / multiple) * multiple)

    cropped = (
        f"diffusers would crop it to {down(width)}x{down(height)}"
        if down(width) and down(height)
        else "diffusers cannot render it"
    )
    return (
        f"size {width}x{height}: {name} renders widths and heights in multiples of {multiple} "
        f"(its VAE shrinks a frame {factor}× and the transformer patches {patch}×{patch}); "
        f"{cropped}: use {near(width)}x{near(height)}"
    )


def check_size(width: int, height: int, options: Mapping[str, Any] | ModelSettings) -> None:
    """Raise a :class:`UserError` when the model cannot render ``width``×``height``."""
    problem = size_problem(width, height, options)
    if problem:
        raise UserError(problem)


# --- checks --------------------------------------------------------------------------------------


def _has_weights(sub: Path) -> bool:
    return any(any(sub.glob(p)) for p in ("*.safetensors", "*.safetensors.index.json", "*.bin"))


def model_problems(options: Mapping[str, Any] | ModelSettings) -> list[str]:
    """One line per missing folder or file (empty: the pipeline can be loaded)."""
    settings = _settings(options)
    if not settings.model_dir:
        return [
            "no Wan diffusers folder set (Settings ▸ Training ▸ Wan diffusers folder): it supplies the VAE, the text "
            "encoder and the configs; a single-file DiT replaces only its transformer"
        ]
    folder = settings.folder
    try:
        index = read_model_index(folder)
    except UserError as exc:
        return [str(exc)]
    two = has_two_experts(index)
    problems = []
    if two and index.get("boundary_ratio") is None:
        problems.append(
            f"{folder / 'model_index.json'}: transformer_2 is named but boundary_ratio is missing"
        )
    if settings.dit_high_file and not two:
        problems.append(
            f"{settings.dit_high_file}: a high-noise DiT is set but {folder} has one transformer "
            "(Wan2.2 A14B folders have transformer_2); clear Settings ▸ Training ▸ High-noise DiT"
        )
    replaced = _replaced_subfolders(settings, two)
    for name in ("transformer", "transformer_2") if two else ("transformer",):
        sub = folder / name
        if not (sub / "config.json").is_file():
            problems.append(
                f"{sub}: no config.json (the {name} config is needed even with a single-file DiT)"
            )
        elif name not in replaced and not _has_weights(sub):
            problems.append(
                f"{sub}: no weights (*.safetensors); or set a single-file DiT in Settings ▸ Training ▸ Wan DiT"
            )
    overrides = {"vae": settings.vae_dir, "text_encoder": settings.text_encoder_dir}
    for name in _TEXT_COMPONENTS:
        if str(overrides.get(name) or "").strip():
            if problem := override_problem(name, overrides[name]):
                problems.append(problem)
            continue
        if name == "tokenizer" and settings.tokenizer_folder != folder / "tokenizer":
            continue  # the text encoder folder brings its own
        sub = folder / name
        if not sub.is_dir() and name == "tokenizer" and settings.text_encoder_dir:
            problems.append(
                f"{folder}: no tokenizer/ folder, and the Wan text encoder folder "
                f"{settings.text_encoder_folder} holds no tokenizer ({TOKENIZER_MARKER})"
            )
        elif not sub.is_dir():
            problems.append(f"{folder}: no {name}/ folder")
        elif name in ("vae", "text_encoder") and not _has_weights(sub):
            problems.append(f"{sub}: no weights (*.safetensors)")
    subfolders = {"DiT": "transformer_2" if two else "transformer", "high-noise DiT": "transformer"}
    for label, file in (("DiT", settings.dit_file), ("high-noise DiT", settings.dit_high_file)):
        if file and not Path(file).expanduser().is_file():
            problems.append(f"{file}: the {label} file does not exist (Settings ▸ Training)")
        elif file:
            problem = _dit_mismatch(Path(file).expanduser(), folder / subfolders[label] / "config.json")
            if problem:
                problems.append(problem)
    return problems


def _dit_mismatch(file: Path, config: Path) -> str | None:
    """A line when a single-file DiT is not the size of the folder's transformer config."""
    try:
        blocks, dim = dit_file_facts(file)
        want_blocks, want_dim = _config_facts(config)
    except UserError as exc:
        return str(exc)
    if (blocks, dim) == (want_blocks, want_dim) or dim is None:
        return None
    have = _VARIANT_TITLES.get(_variant_of(dim)) or f"dim {dim}"
    want = _VARIANT_TITLES.get(_variant_of(want_dim)) or f"dim {want_dim}"
    return (
        f"{file}: a {have} DiT ({blocks} blocks) but {config.parent} is {want} ({want_blocks} blocks): "
        "pick the folder of the same model size"
    )


def check_model(options: Mapping[str, Any] | ModelSettings) -> None:
    """Raise a :class:`UserError` naming the first missing thing (and how many more)."""
    problems = model_problems(options)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)
