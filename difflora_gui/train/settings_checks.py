"""Checks of the training settings (Settings ▸ Training), Qt-free and quick.

The Settings dialog calls them as the user types, so each one only looks at the file system: a
folder's marker files, a file's suffix and, for a ``.safetensors`` DiT, its header (a few kB of a
28 GB file; no tensor is read). ``.pth`` files are PyTorch pickles and are never opened. The deep
checks (the Python's packages, the DiT fitting the task and the precision) run before a launch,
in the backends' ``validate``.

Every check returns ``''`` for a usable value (an empty value is "not set", also usable) or one
line that says what is wrong. :func:`training_problems` checks all the fields of
:class:`~difflora_gui.settings.AppSettings` at once and says, per problem, whether the path is
simply absent (a drive that is away, a share that is offline), which the dialog does not hold
against a value the user did not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from difflora_gui.fileio import read_model_index
from difflora_gui.params import Param

#: the script whose presence marks a Musubi Tuner checkout (the backend runs it from there)
MUSUBI_TRAIN_SCRIPT = "src/musubi_tuner/wan_train_network.py"
#: suffixes Musubi and ComfyUI use for Wan model files
MODEL_SUFFIXES = (".safetensors", ".pth")
#: the key Musubi reads a DiT's dtype from; a Wan DiT in the original layout always has it
DIT_KEY = "blocks.0.cross_attn.k.weight"
DIT_PREFIXES = ("", "model.diffusion_model.")
#: the same weight in diffusers' layout (a diffusers transformer file, which Musubi cannot load)
DIFFUSERS_DIT_KEY = "blocks.0.attn2.to_k.weight"


@dataclass(frozen=True)
class TrainingField:
    """One training setting: its AppSettings field, its label and what it holds."""

    name: str
    label: str
    kind: str  # "musubi", "python", "dit", "model", "wan_folder", "component_folder"
    what: str  # how a message names it


TRAINING_FIELDS = (
    TrainingField("musubi_tuner_dir", "Musubi Tuner checkout", "musubi", "Musubi Tuner checkout"),
    TrainingField("musubi_python", "Musubi's Python", "python", "Python for Musubi"),
    TrainingField("wan_dit", "Wan DiT", "dit", "Wan DiT"),
    TrainingField("wan_dit_high_noise", "High-noise DiT", "dit", "high-noise DiT"),
    TrainingField("wan_vae", "VAE", "model", "Wan VAE"),
    TrainingField("wan_t5", "T5", "model", "T5 text encoder"),
    TrainingField("wan_clip", "CLIP", "model", "CLIP image encoder"),
    TrainingField("wan_model_dir", "Wan diffusers folder", "wan_folder", "Wan diffusers folder"),
    TrainingField("wan_vae_dir", "Wan VAE folder", "component_folder", "Wan VAE folder"),
    TrainingField(
        "wan_text_encoder_dir", "Wan text encoder folder", "component_folder", "Wan text encoder folder"
    ),
)
FIELDS_BY_NAME = {f.name: f for f in TRAINING_FIELDS}
#: the backends' options for those two folders (the preview's and the built-in trainer's), declared once
COMPONENT_FOLDER_PARAMS = (
    Param(
        "vae_dir",
        "path",
        "",
        "a diffusers VAE folder (config.json, *.safetensors) used instead of the model folder's vae/; "
        "default: Settings ▸ Wan VAE folder",
        title="VAE folder",
        advanced=True,
    ),
    Param(
        "text_encoder_dir",
        "path",
        "",
        "a diffusers UMT5 text encoder folder (config.json, *.safetensors; its tokenizer, else the model "
        "folder's tokenizer/) used instead of the model folder's text_encoder/; default: Settings ▸ Wan "
        "text encoder folder",
        title="Text encoder folder",
        advanced=True,
    ),
)


@dataclass(frozen=True)
class SettingProblem:
    """A problem with one setting: ``absent`` when the path does not exist at all."""

    field: str
    text: str
    absent: bool = False


def musubi_dir_problem(folder: str | Path) -> str:
    """Why ``folder`` is not a Musubi Tuner checkout the backend can run ('' if it is or is empty)."""
    if not str(folder):
        return ""
    path = Path(folder)
    if path.is_file():
        return f"the Musubi Tuner checkout is a file, not a folder: {folder}"
    if not path.is_dir():
        return f"Musubi Tuner folder not found: {folder}"
    if (path / MUSUBI_TRAIN_SCRIPT).is_file():
        return ""
    if (path / "wan_train_network.py").is_file():
        return (
            f"{folder} is an old Musubi Tuner checkout (no {MUSUBI_TRAIN_SCRIPT}); update it "
            "(git pull) to the src/ layout"
        )
    return f"{folder} does not look like a Musubi Tuner checkout (no {MUSUBI_TRAIN_SCRIPT})"


def python_problem(path: str | Path) -> str:
    """Why ``path`` is not a Python program to run Musubi with ('' if it is or is empty)."""
    if not str(path):
        return ""
    file = Path(path)
    if file.is_dir():
        inside = "Scripts\\python.exe" if (file / "Scripts").is_dir() else "bin/python"
        return f"the Python for Musubi is a folder; choose the python inside it ({inside}): {path}"
    if not file.is_file():
        return f"Python for Musubi not found: {path}"
    return ""


def _suffix_problem(path: Path, what: str) -> str:
    if path.suffix.lower() not in MODEL_SUFFIXES:
        return f"the {what} should be a .safetensors or .pth file: {path}"
    return ""


def model_file_problem(path: str | Path, what: str = "model file") -> str:
    """Why ``path`` is not a usable Wan model file ('' if it is or is empty); reads no bytes."""
    if not str(path):
        return ""
    file = Path(path)
    if file.is_dir():
        return f"the {what} is a folder, not a file: {path}"
    if not file.is_file():
        return f"{what} not found: {path}"
    if problem := _suffix_problem(file, what):
        return problem
    try:
        if file.stat().st_size == 0:
            return f"the {what} is empty (0 bytes): {path}"
    except OSError as exc:
        return f"the {what} cannot be read ({exc.strerror or exc}): {path}"
    return ""


def dit_file_problem(path: str | Path, what: str = "Wan DiT") -> str:
    """:func:`model_file_problem`, and a ``.safetensors`` file must hold a Wan DiT in the layout
    Musubi loads (its header is read; a LoRA or a diffusers transformer file is named as such)."""
    if problem := model_file_problem(path, what):
        return problem
    if not str(path) or Path(path).suffix.lower() != ".safetensors":
        return ""
    from difflora_gui.errors import BadFileError
    from difflora_gui.lora.safetensors_header import read_header

    try:
        keys = read_header(path).tensors.keys()
    except BadFileError as exc:
        return f"the {what} cannot be used: {exc}"
    if any(prefix + DIT_KEY in keys for prefix in DIT_PREFIXES):
        return ""
    if any(".lora_down." in k or ".lora_A." in k or "lora_unet_" in k for k in keys):
        return f"the {what} is a LoRA file, not a Wan DiT: {path}"
    if any(k.endswith(DIFFUSERS_DIT_KEY) for k in keys):
        return (
            f"the {what} is a diffusers-format transformer file; Musubi needs the original layout "
            f"(for example ComfyUI's repackaged wan2.1_*.safetensors): {path}"
        )
    return f"the {what} has no Wan DiT weights ({DIT_KEY} is missing): {path}"


def wan_folder_problem(folder: str | Path) -> str:
    """Why ``folder`` is not a diffusers-format Wan folder ('' if it looks usable or is empty)."""
    if not str(folder):
        return ""
    path = Path(folder)
    if path.is_file():
        return f"the Wan diffusers folder is a file; choose the folder that holds model_index.json: {folder}"
    if not path.is_dir():
        return f"Wan diffusers folder not found: {folder}"
    data, problem = read_model_index(path)
    if data is None:
        return problem
    class_name = str(data.get("_class_name", ""))
    if class_name and not class_name.startswith("Wan"):
        return f"{folder} holds a {class_name}, not a Wan pipeline"
    if not (path / "transformer").is_dir():
        return f"{folder} has no transformer/ folder (an unfinished download?)"
    if not (path / "transformer" / "config.json").is_file():
        return f"{folder}: transformer/config.json is missing (an unfinished download?)"
    return ""


def component_folder_problem(folder: str | Path, what: str = "component folder") -> str:
    """Why ``folder`` is not a diffusers component folder (a ``vae`` or ``text_encoder`` folder:
    config.json and *.safetensors) ('' if it is or is empty); reads no weights."""
    if not str(folder):
        return ""
    path = Path(folder)
    if path.is_file():
        return f"the {what} is a file; choose the folder that holds config.json and *.safetensors: {folder}"
    if not path.is_dir():
        return f"{what} not found: {folder}"
    if not (path / "config.json").is_file():
        return (
            f"the {what} has no config.json (a diffusers component folder, like a download's vae/): {folder}"
        )
    if not any(path.glob("*.safetensors")):
        return f"the {what} has no weights (*.safetensors): {folder}"
    return ""


_CHECKS = {
    "musubi": lambda value, what: musubi_dir_problem(value),
    "python": lambda value, what: python_problem(value),
    "dit": dit_file_problem,
    "model": model_file_problem,
    "wan_folder": lambda value, what: wan_folder_problem(value),
    "component_folder": component_folder_problem,
}


def field_problem(name: str, value: str) -> str:
    """The problem with the training setting ``name`` (an AppSettings field) set to ``value``.

    A relative path is refused: it would mean a different file depending on the folder the app
    was started from, and Musubi runs in its checkout folder, where it would mean another one."""
    spec = FIELDS_BY_NAME[name]
    text = str(value or "").strip()
    if text and not Path(text).is_absolute():
        return f"the {spec.what} needs a full path (from the drive or /), not {text}"
    return _CHECKS[spec.kind](text, spec.what)


def is_absent(value: str) -> bool:
    """The path is set but nothing is there (not even a parent drive may be present)."""
    text = str(value or "").strip()
    if not text:
        return False
    try:
        return not Path(text).exists()
    except OSError:  # an unreachable share or a bad drive letter
        return True


def training_problems(settings) -> list[SettingProblem]:
    """Every problem with the training settings of ``settings`` (an AppSettings), in field order."""
    problems = []
    for spec in TRAINING_FIELDS:
        value = str(getattr(settings, spec.name, "") or "").strip()
        if text := field_problem(spec.name, value):
            problems.append(SettingProblem(spec.name, text, is_absent(value)))
    return problems
