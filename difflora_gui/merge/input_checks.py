"""What the Merge workbench says about its inputs before anything runs (Qt-free).

:func:`compare_inputs` lists the ways LoRA A and LoRA B differ that matter for a differential
merge: an ``error`` (different model sizes, conflicting shapes, the same file twice) disables Run
because the merge would fail or mean nothing; a ``warning`` (T2V vs I2V, different block or layer
coverage, different training settings) lets it run but says what the result will be; an ``info``
notes harmless differences (ranks, alphas, dtypes, key formats). :func:`training_facts` reads the
trainer's ``ss_*`` metadata (kohya / Musubi Tuner) for the input cards. A Wan2.2 A14B merge
compares each expert's pair (:func:`compare_expert_inputs`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from difflora_gui.fileio import same_file
from difflora_gui.lora.experts import EXPERT_TITLES, find_expert_in_name
from difflora_gui.lora.inspect import LoraSummary
from difflora_gui.lora.selector import GROUP_ORDER, format_blocks

ERROR, WARNING, INFO = "error", "warning", "info"
LEVELS = (ERROR, WARNING, INFO)

#: trainer metadata (kohya / Musubi Tuner ``ss_*`` keys) worth comparing between A and B, with labels
TRAINING_KEYS: tuple[tuple[str, str], ...] = (
    ("ss_network_module", "network module"),
    ("ss_network_dim", "network dim"),
    ("ss_network_alpha", "network alpha"),
    ("ss_network_args", "network args"),
    ("ss_optimizer", "optimizer"),
    ("ss_learning_rate", "learning rate"),
    ("ss_unet_lr", "U-Net/DiT learning rate"),
    ("ss_lr_scheduler", "LR scheduler"),
    ("ss_lr_warmup_steps", "warm-up steps"),
    ("ss_max_train_steps", "max train steps"),
    ("ss_steps", "steps trained"),
    ("ss_num_epochs", "epochs"),
    ("ss_epoch", "epoch"),
    ("ss_resolution", "resolution"),
    ("ss_batch_size_per_device", "batch size"),
    ("ss_gradient_accumulation_steps", "gradient accumulation"),
    ("ss_mixed_precision", "mixed precision"),
    ("ss_timestep_sampling", "timestep sampling"),
    ("ss_discrete_flow_shift", "flow shift"),
    ("ss_base_model_version", "base model"),
)
#: the subset shown on an input card (the rest only appear when A and B disagree)
CARD_TRAINING_KEYS = (
    "ss_optimizer",
    "ss_learning_rate",
    "ss_max_train_steps",
    "ss_steps",
    "ss_network_dim",
    "ss_network_alpha",
    "ss_resolution",
)


@dataclass(frozen=True)
class Issue:
    level: str  # error | warning | info
    text: str

    @property
    def blocks_run(self) -> bool:
        return self.level == ERROR


def _same_value(a: str, b: str) -> bool:
    """Metadata values are text; ``2e-05`` and ``0.00002`` are the same learning rate."""
    if a.strip() == b.strip():
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=0.0)


def _short(value: str, limit: int = 40) -> str:
    value = value.replace("\n", " ").strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


def training_facts(summary: LoraSummary, keys: tuple[str, ...] = CARD_TRAINING_KEYS) -> list[tuple[str, str]]:
    """(label, value) of the trainer settings the file's metadata records (empty when none)."""
    labels = dict(TRAINING_KEYS)
    return [
        (labels[key], _short(summary.metadata[key]))
        for key in keys
        if key in summary.metadata and summary.metadata[key].strip()
    ]


def _histogram_text(counts: dict) -> str:
    return ", ".join(str(k) for k in counts)


def compare_inputs(a: LoraSummary, b: LoraSummary) -> list[Issue]:
    """Differences between A and B that a user should know before merging, errors first."""
    issues: list[Issue] = []
    ma, mb = a.model, b.model
    if same_file(a.path, b.path):
        issues.append(Issue(ERROR, "A and B are the same file: their difference is zero"))
    if ma.dim != mb.dim or (ma.ffn_dim and mb.ffn_dim and ma.ffn_dim != mb.ffn_dim):
        issues.append(
            Issue(
                ERROR,
                f"A is for {ma.label} (dim {ma.dim}) but B is for {mb.label} (dim {mb.dim}): LoRAs of "
                "different model sizes cannot be subtracted",
            )
        )
    else:
        shapes_a = {m.name: tuple(m.shape) for m in a.modules}
        conflicts = [m.name for m in b.modules if m.name in shapes_a and tuple(m.shape) != shapes_a[m.name]]
        if conflicts:
            issues.append(
                Issue(
                    ERROR,
                    f"{len(conflicts)} module(s) have different shapes in A and B (e.g. {conflicts[0]}): "
                    "they are for different models",
                )
            )
    if ma.task != mb.task:
        issues.append(
            Issue(
                WARNING,
                f"A is {ma.task.upper()} but B is {mb.task.upper()}: modules only one of them has (such as "
                "the image cross-attention k_img/v_img) are merged against zero",
            )
        )
    blocks_a, blocks_b = set(a.blocks), set(b.blocks)
    if blocks_a != blocks_b:
        parts = []
        if blocks_a - blocks_b:
            parts.append(f"blocks {format_blocks(blocks_a - blocks_b)} only in A")
        if blocks_b - blocks_a:
            parts.append(f"blocks {format_blocks(blocks_b - blocks_a)} only in B")
        issues.append(
            Issue(
                WARNING,
                f"different block coverage ({'; '.join(parts)}): there the other LoRA counts as zero, "
                "so the output is not a difference",
            )
        )
    groups_a, groups_b = set(a.groups), set(b.groups)
    if groups_a != groups_b:
        only_a = [g for g in GROUP_ORDER if g in groups_a - groups_b]
        only_b = [g for g in GROUP_ORDER if g in groups_b - groups_a]
        parts = ([f"{', '.join(only_a)} only in A"] if only_a else []) + (
            [f"{', '.join(only_b)} only in B"] if only_b else []
        )
        issues.append(Issue(WARNING, f"different layer groups ({'; '.join(parts)})"))
    names_a = {m.name for m in a.modules}
    names_b = {m.name for m in b.modules}
    if names_a != names_b and blocks_a == blocks_b and groups_a == groups_b:
        issues.append(
            Issue(
                WARNING,
                f"{len(names_a - names_b)} module(s) only in A and {len(names_b - names_a)} only in B: "
                "they are merged against zero",
            )
        )
    if not names_a & names_b and names_a and names_b:
        issues.append(Issue(WARNING, "A and B have no module in common: nothing cancels"))
    for key, label in TRAINING_KEYS:
        va, vb = a.metadata.get(key), b.metadata.get(key)
        if va is not None and vb is not None and not _same_value(va, vb):
            issues.append(
                Issue(
                    WARNING,
                    f"trained with a different {label}: {_short(va)} (A) vs {_short(vb)} (B); a "
                    "differential LoRA works best when only the data differs",
                )
            )
    if a.ranks and b.ranks and set(a.ranks) != set(b.ranks):
        issues.append(
            Issue(
                INFO,
                f"ranks differ (A {_histogram_text(a.ranks)}, B {_histogram_text(b.ranks)}): fine for the "
                "merge, which is exact for any ranks",
            )
        )
    if a.ranks and b.ranks and set(a.scales) != set(b.scales):
        issues.append(
            Issue(
                INFO,
                f"scales alpha/rank differ (A {_histogram_text(a.scales)}, B {_histogram_text(b.scales)}): "
                "each input is applied with its own scale",
            )
        )
    if a.format != b.format:
        issues.append(Issue(INFO, f"key formats differ (A {a.format}, B {b.format}): both are read alike"))
    if set(a.dtypes) != set(b.dtypes):
        issues.append(Issue(INFO, f"dtypes differ (A {', '.join(a.dtypes)}, B {', '.join(b.dtypes)})"))
    order = {level: i for i, level in enumerate(LEVELS)}
    return sorted(issues, key=lambda issue: order[issue.level])


def compare_expert_inputs(pairs: Sequence[tuple[str | None, LoraSummary, LoraSummary]]) -> list[Issue]:
    """:func:`compare_inputs` per expert pair ``(expert, A, B)``, each issue naming its expert.

    An issue both experts share (a joint file on each side, or the same trainer settings) is said
    once, for "both experts"; a one-model pair (``expert`` None) is :func:`compare_inputs` itself.
    """
    if len(pairs) == 1 and pairs[0][0] is None:
        return compare_inputs(pairs[0][1], pairs[0][2])
    per_expert = [(expert, compare_inputs(a, b)) for expert, a, b in pairs]
    seen: dict[tuple[str, str], list[str | None]] = {}
    for expert, issues in per_expert:
        for issue in issues:
            seen.setdefault((issue.level, issue.text), []).append(expert)
    merged: list[Issue] = []
    for (level, text), experts in seen.items():
        if len(per_expert) > 1 and len(experts) == len(per_expert):
            where = "both experts"
        else:
            where = " and ".join(EXPERT_TITLES.get(e or "", "one model") for e in experts)
        merged.append(Issue(level, f"{where}: {text}"))
    order = {level: i for i, level in enumerate(LEVELS)}
    return sorted(merged, key=lambda issue: order[issue.level])


def expert_free_stem(path: str | Path) -> str:
    """The file's stem without its expert word (``x_high_noise`` → ``x``), for naming outputs."""
    match = find_expert_in_name(path)
    stem = Path(path).stem
    if match is None or match.stem != stem:
        return stem
    rest = (stem[: match.start] + stem[match.end :]).strip("_-. ")
    return rest or stem


def default_output_name(lora_a: str | Path, lora_b: str | Path) -> str:
    """``<A stem>-minus-<B stem>.safetensors`` (an expert word such as ``_high_noise`` left out:
    a two-expert merge adds its own suffix to each file it writes)."""
    return f"{expert_free_stem(lora_a)}-minus-{expert_free_stem(lora_b)}.safetensors"
