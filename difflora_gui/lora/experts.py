"""Wan2.2 A14B experts as files show them: which expert a LoRA file is for, and the file names of a pair.

Wan2.2 A14B has a high-noise and a low-noise expert with identical key names and shapes, so a
file's shapes never say which expert it is for (``shared/reference/wan22-and-field.md`` §1). What
does say it, strongest first:

1. the key prefix: ai-toolkit's "combo" file (``split_multistage_loras: false``) keys the high-noise
   expert ``diffusion_model.transformer_1.…`` and the low-noise one ``diffusion_model.transformer_2.…``;
2. the file name: ``_high_noise``/``_low_noise`` (ai-toolkit's pair, which loaders pair by name),
   ``_high``/``_low``, ``HIGH``/``LOW``, ``HighNoise`` — whole tokens only, so "highlight" says nothing;
3. the metadata: our own ``difflora_expert``, or Musubi's ``ss_sd_model_name`` naming a
   ``high_noise``/``low_noise`` DiT (a Musubi run of both experts at once names the low-noise DiT too).

Only 14B-shaped files (and Wan-like layouts of no released size, as tests build) can be A14B
experts: a 1.3B or 5B file's "high" token is ignored. Pure string work: nothing is read here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

EXPERTS = ("high", "low")
EXPERT_TITLES = {"high": "high-noise expert", "low": "low-noise expert"}
#: The suffixes ai-toolkit writes for the two files of a pair (and loaders pair by).
EXPERT_SUFFIXES = {"high": "_high_noise", "low": "_low_noise"}
#: Our own metadata key naming the expert a written file is for.
EXPERT_METADATA_KEY = "difflora_expert"
_METADATA_KEYS = (EXPERT_METADATA_KEY, "difflora.expert")
#: Model variants that cannot be A14B experts (an expert word in their names is ignored).
NO_EXPERT_VARIANTS = {"1.3B": "Wan 1.3B", "5B": "Wan2.2 TI2V-5B"}

ROLES = ("high", "low", "both", "combo")
SOURCES = ("prefix", "name", "metadata", "none")


def other_expert(expert: str) -> str:
    return "low" if expert == "high" else "high"


def expert_title(expert: str | None) -> str:
    """ "high-noise expert", "low-noise expert", or "both experts" for None / "both"."""
    return EXPERT_TITLES.get(expert or "", "both experts")


@dataclass(frozen=True)
class ExpertRole:
    """Which expert(s) a file is for, what said so, and a sentence a user can read."""

    role: str  # "high" | "low" | "both" (one file for both, or a one-model LoRA) | "combo"
    source: str = "none"  # "prefix" | "name" | "metadata" | "none"
    detail: str = ""

    @property
    def experts(self) -> tuple[str, ...]:
        if self.role in EXPERTS:
            return (self.role,)
        return EXPERTS

    @property
    def is_single(self) -> bool:
        """True when the file is for one expert only (high or low)."""
        return self.role in EXPERTS

    @property
    def title(self) -> str:
        if self.role == "combo":
            return "both experts in one combo file"
        if self.role == "both":
            return "one file for both experts"
        return EXPERT_TITLES[self.role]

    @property
    def text(self) -> str:
        """ "high-noise expert (from the file name '…_high_noise')" and the like."""
        return f"{self.title} ({self.detail})" if self.detail else self.title


BOTH = ExpertRole("both", "none", "")


# --- file names ----------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z0-9]+")
# a camel-case "HighNoise"/"LowNoise" inside a longer word ("WanHighNoiseV2")
_CAMEL = re.compile(r"(?:(?<=[a-z0-9])|^)(High|Low)(Noise)(?=[A-Z0-9]|$)")
#: words after a bare "high"/"low" that make it describe something else ("low_res", "high_quality")
_NOT_EXPERT_AFTER = frozenset(
    {
        "res",
        "resolution",
        "quality",
        "detail",
        "details",
        "contrast",
        "key",
        "light",
        "poly",
        "lr",
        "cfg",
        "rank",
    }
)


@dataclass(frozen=True)
class NameMatch:
    """Where an expert word is in a file name's stem (``start``..``end``, separator before it included)."""

    expert: str
    start: int
    end: int
    stem: str

    @property
    def text(self) -> str:
        return self.stem[self.start : self.end]

    @property
    def shown(self) -> str:
        """The match as shown to a user: ``…_high_noise`` (with what follows it when it is not the end)."""
        head = "…" if self.start > 0 else ""
        tail = "…" if self.end < len(self.stem) else ""
        return f"{head}{self.text}{tail}"


def _stem(path: str | Path) -> str:
    name = Path(path).name
    return name[: -len(".safetensors")] if name.lower().endswith(".safetensors") else Path(name).stem


def find_expert_in_name(path: str | Path) -> NameMatch | None:
    """The expert word of a file name, or None when there is none or both experts are named."""
    stem = _stem(path)
    words = list(_WORD.finditer(stem))
    found: list[NameMatch] = []
    for index, word in enumerate(words):
        lower = word.group().lower()
        start = word.start()
        if start > 0 and not stem[start - 1].isalnum():
            start -= 1  # show the separator: "_high"
        following = words[index + 1].group().lower() if index + 1 < len(words) else ""
        if lower in ("high", "low"):
            if following in _NOT_EXPERT_AFTER:
                continue
            end = words[index + 1].end() if following == "noise" else word.end()
            found.append(NameMatch(lower, start, end, stem))
        elif lower in ("highnoise", "lownoise"):
            found.append(NameMatch(lower[:-5], start, word.end(), stem))
        else:
            for camel in _CAMEL.finditer(word.group()):
                at = word.start() + camel.start()
                found.append(NameMatch(camel.group(1).lower(), at, word.start() + camel.end(), stem))
    experts = {m.expert for m in found}
    if len(experts) != 1:
        return None  # none, or "high_to_low": the name does not say
    return found[-1]


def expert_from_name(path: str | Path) -> str | None:
    """ "high"/"low" from the file name's tokens (``_high_noise``, ``_low``, ``HIGH``, ``HighNoise``)."""
    match = find_expert_in_name(path)
    return None if match is None else match.expert


def _swap_case_like(word: str, template: str) -> str:
    if template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def partner_name(path: str | Path) -> Path | None:
    """The other expert's file name beside ``path`` (``a_high_noise`` ↔ ``a_low_noise``), existing or not."""
    path = Path(path)
    match = find_expert_in_name(path)
    if match is None:
        return None
    text = match.text
    word = re.search(r"high|low", text, re.IGNORECASE)
    assert word is not None
    other = _swap_case_like(other_expert(match.expert), word.group())
    new_text = text[: word.start()] + other + text[word.end() :]
    stem = match.stem[: match.start] + new_text + match.stem[match.end :]
    suffix = path.name[len(match.stem) :]
    return path.with_name(stem + suffix)


def partner_path(path: str | Path) -> Path | None:
    """The other expert's file beside ``path`` if it exists (``a_high_noise`` ↔ ``a_low_noise``, ``_HIGH`` ↔ ``_LOW``)."""
    partner = partner_name(path)
    return partner if partner is not None and partner.is_file() else None


def expert_suffix(expert: str) -> str:
    """``"_high_noise"`` or ``"_low_noise"``."""
    try:
        return EXPERT_SUFFIXES[expert]
    except KeyError:
        raise ValueError(f"unknown expert {expert!r} (use 'high' or 'low')") from None


def expert_output_path(output: str | Path, expert: str) -> Path:
    """``x.safetensors`` → ``x_high_noise.safetensors``; a name ending in an expert suffix gets this one's."""
    output = Path(output)
    suffix = expert_suffix(expert)
    name = output.name
    ext = ".safetensors" if name.lower().endswith(".safetensors") else output.suffix
    stem = name[: len(name) - len(ext)] if ext else name
    for other in EXPERT_SUFFIXES.values():
        if stem.lower().endswith(other):
            stem = stem[: -len(other)]
            break
    return output.with_name(f"{stem}{suffix}{ext}")


# --- metadata ------------------------------------------------------------------------------------


def expert_from_metadata(metadata: Mapping[str, str]) -> tuple[str, str] | None:
    """(expert, detail) from our ``difflora_expert`` key, else Musubi's ``ss_sd_model_name``; None if neither."""
    for key in _METADATA_KEYS:
        value = str(metadata.get(key, "")).strip().lower()
        if value in EXPERTS:
            return value, f"from the metadata {key} = {value!r}"
    if joint_run_from_metadata(metadata) is not None:
        return None
    dit = str(metadata.get("ss_sd_model_name", "")).strip()
    if dit:
        expert = expert_from_name(Path(dit.replace("\\", "/")).name)
        if expert is not None:
            detail = f"from the metadata ss_sd_model_name {dit!r}, the DiT it was trained on"
            if expert == "low":
                detail += (
                    "; a Musubi run that trained both experts at once names the low-noise DiT too "
                    "(newer Musubi versions also record ss_dit_high_noise_name then)"
                )
            return expert, detail
    return None


def joint_run_from_metadata(metadata: Mapping[str, str]) -> str | None:
    """A detail when the metadata says one LoRA was trained on both experts at once, else None.

    Musubi's joint mode (``--dit`` low-noise + ``--dit_high_noise``) records the high-noise DiT as
    ``ss_dit_high_noise_name`` beside ``ss_sd_model_name``; such a file is for both experts.
    """
    high = str(metadata.get("ss_dit_high_noise_name", "")).strip()
    if not high:
        return None
    low = str(metadata.get("ss_sd_model_name", "")).strip()
    return (
        f"trained on both experts at once (Musubi joint mode: the metadata names the high-noise DiT {high!r}"
        + (f" and the low-noise DiT {low!r})" if low else ")")
    )


# --- the role of a file --------------------------------------------------------------------------


def resolve_role(
    path: str | Path,
    metadata: Mapping[str, str],
    *,
    variant: str,
    task: str = "t2v",
    prefix_experts: tuple[str, ...] = (),
    model_title: str = "",
) -> ExpertRole:
    """A file's :class:`ExpertRole`: key prefix > file name > metadata; never from shapes.

    ``prefix_experts``: the experts the key prefixes name (``("high", "low")`` for a combo file).
    ``variant``/``task``: the identified model; 1.3B, 5B and Wan2.1 I2V (``k_img``) files cannot be
    A14B experts.
    """
    name_match = find_expert_in_name(path)
    from_meta = expert_from_metadata(metadata)
    if len(prefix_experts) == 2:
        return ExpertRole(
            "combo",
            "prefix",
            "key prefixes transformer_1: high-noise, transformer_2: low-noise",
        )
    if len(prefix_experts) == 1:
        expert = prefix_experts[0]
        marker = "transformer_1" if expert == "high" else "transformer_2"
        detail = f"from the key prefix {marker}"
        if name_match is not None and name_match.expert != expert:
            detail += f"; the file name ('{name_match.shown}') says {EXPERT_TITLES[name_match.expert]}, the keys win"
        return ExpertRole(expert, "prefix", detail)
    if variant in NO_EXPERT_VARIANTS or task == "i2v":
        said = None
        if name_match is not None:
            said = f"the file name ('{name_match.shown}') says {EXPERT_TITLES[name_match.expert]}"
        elif from_meta is not None:
            said = f"the metadata says {EXPERT_TITLES[from_meta[0]]}"
        if said is None:
            return BOTH
        what = (
            model_title or NO_EXPERT_VARIANTS.get(variant) or "Wan2.1 I2V (image cross-attention k_img/v_img)"
        )
        return ExpertRole(
            "both",
            "none",
            f"{said}, but the file is for {what}: only Wan2.2 A14B (14B) has experts, so it is ignored",
        )
    if name_match is not None:
        detail = f"from the file name '{name_match.shown}'"
        if from_meta is not None and from_meta[0] != name_match.expert:
            detail += (
                f"; the metadata says {EXPERT_TITLES[from_meta[0]]} ({from_meta[1]}), the file name wins"
            )
        return ExpertRole(name_match.expert, "name", detail)
    if from_meta is not None:
        return ExpertRole(from_meta[0], "metadata", from_meta[1])
    joint = joint_run_from_metadata(metadata)
    if joint is not None:
        return ExpertRole("both", "metadata", joint)
    return ExpertRole("both", "none", "no expert named by the key prefixes, the file name or the metadata")
