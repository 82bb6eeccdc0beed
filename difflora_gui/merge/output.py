"""A merge's output: the checks before it starts, the output modules, the file, the result.

The file is written in one atomic rename at the end (:func:`difflora_gui.lora.writer.write_lora`):
a cancelled or failed merge writes nothing. The inputs are hashed for the provenance metadata on a
thread of their own while the merge computes (:class:`InputHashing`).
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from difflora_gui.errors import UserError
from difflora_gui.merge import analysis as an
from difflora_gui.merge.result import MergeResult, analysis_paths, optimal_residual, strategy_text
from difflora_gui.merge.runtime import quiet_logger

if TYPE_CHECKING:
    from difflora_gui.lora.model import LoraModule
    from difflora_gui.merge.params import MergeParams
    from difflora_gui.merge.plan import MergePlan


def check_outputs(
    params: MergeParams, *, write: bool, check_exists: bool = True, inputs: list[str] | None = None
) -> Path | None:
    """The inputs exist; the output (and the analysis files) may be written. Returns the output path.

    ``check_exists=False`` skips the output checks (a two-expert merge checked every file of the
    set before it started). ``inputs``: every input file of the merge (default A and B), none of
    which may be overwritten.
    """
    from difflora_gui.fileio import check_output_path, same_file

    p = params
    for label, path in (("A", p.lora_a), ("B", p.lora_b)):
        if not Path(path).is_file():
            raise UserError(f"LoRA {label} not found: {path}")
    if not write:
        return None
    if not p.output:
        raise UserError("no --output file given")
    output = Path(p.output)
    if output.suffix.lower() != ".safetensors":
        raise UserError("the output must be a .safetensors file", path=output)
    if not check_exists:
        return output
    sources = inputs if inputs is not None else [p.lora_a, p.lora_b]
    check_output_path(output, inputs=sources, overwrite=p.overwrite)
    if p.analyze:
        for extra in analysis_paths(output):
            if any(same_file(extra, source) for source in sources):
                raise UserError("refusing to overwrite an input file with the analysis", path=extra)
            if extra.exists() and not p.overwrite:
                raise UserError("analysis file already exists (use --overwrite to replace it)", path=extra)
    return output


#: recipe fields that only matter to a Wan2.2 two-expert merge, at their one-model values: a
#: one-model file's recorded recipe leaves them out (it is the recipe it always was)
_EXPERT_DEFAULTS = {
    "lora_a_high": None,
    "lora_a_low": None,
    "lora_b_high": None,
    "lora_b_low": None,
    "expert": "both",
}


def file_recipe(params: MergeParams, output: Path) -> dict[str, Any]:
    """The recipe a written file records: file names only (no user paths in a file that gets
    shared), and no flags that do not change its content, so a re-run gives the same bytes."""
    recipe = {k: v for k, v in params.to_json().items() if k not in ("overwrite", "analyze")}
    for key, default in _EXPERT_DEFAULTS.items():
        if recipe.get(key) == default:
            recipe.pop(key, None)
        elif key != "expert" and recipe.get(key):
            recipe[key] = Path(recipe[key]).name
    recipe.update(
        lora_a=Path(params.lora_a).name if params.lora_a else "",
        lora_b=Path(params.lora_b).name if params.lora_b else "",
        output=output.name,
    )
    return recipe


class InputHashing:
    """The inputs' hashes for the provenance metadata, computed on a thread while the merge runs."""

    def __init__(self, params: MergeParams, known: dict[str, str] | None = None):
        """``known``: sha256 by resolved path, shared by the experts of one merge (a joint or combo
        file used by both experts is hashed once); filled in by :meth:`result`."""
        from difflora_gui.lora.writer import InputFile

        self._known = known if known is not None else {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="difflora-hash")
        self._keys = [os.path.realpath(params.lora_a), os.path.realpath(params.lora_b)]
        self._futures: list[Future] = [
            self._pool.submit(InputFile.from_path, path, role, sha256=self._known.get(key))
            for path, role, key in ((params.lora_a, "A", self._keys[0]), (params.lora_b, "B", self._keys[1]))
        ]

    def result(self) -> list:
        try:
            files = [future.result() for future in self._futures]
        except OSError as exc:  # an input vanished or became unreadable while we merged
            raise UserError(f"cannot read an input again to record its hash: {exc}") from None
        for key, item in zip(self._keys, files, strict=True):
            self._known[key] = item.sha256
        return files

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class Computed:
    """What the module passes produced, by module name."""

    stats: dict
    rows: dict[str, an.ModuleRow]
    pending: dict
    final: dict
    status: dict[str, tuple[str, str]]

    def count(self, status: str) -> int:
        return sum(1 for s, _ in self.status.values() if s == status)


def output_modules(plan: MergePlan, computed: Computed, alpha: float, finish) -> list[LoraModule]:
    """Every written module in the model's order (nullified ones as zero pairs); scales the rows by alpha.

    ``finish(pending, alpha)`` turns a pending module into its output module.
    """
    import torch

    from difflora_gui.lora.model import LoraModule

    save = getattr(torch, plan.save_dtype)
    policy = plan.policy
    modules: list[LoraModule] = []
    null_rank = policy.rank if (policy.mode == "fixed" and policy.rank > 0) else 1
    for name in plan.names:
        status, _ = computed.status.get(name, (an.NULLIFIED, an.NOT_TARGETED))
        if status == an.EXCLUDED:
            continue
        if status == an.NULLIFIED:
            out_dim, in_dim = plan.shape(name)
            k = max(1, min(null_rank, out_dim, in_dim))
            modules.append(
                LoraModule(
                    name=name,
                    down=torch.zeros(k, in_dim, dtype=save),
                    up=torch.zeros(out_dim, k, dtype=save),
                    scale=1.0,
                    alpha=float(k),
                )
            )
            continue
        final = computed.final.pop(name, None)
        modules.append(final if final is not None else finish(computed.pending.pop(name), alpha))
    if not modules:
        raise UserError("nothing to write: every module is excluded")
    for row in computed.rows.values():
        row.norm_out *= abs(alpha)
        row.norm_diff *= abs(alpha)
        row.singular_values = [v * abs(alpha) for v in row.singular_values]
    return modules


def write_output(
    output: Path,
    modules: list[LoraModule],
    *,
    params: MergeParams,
    plan: MergePlan,
    computed: Computed,
    alpha: float,
    hashing: InputHashing | None,
    warn,
    recipe: dict[str, Any] | None = None,
    expert: str | None = None,
    stage: Path | None = None,
) -> None:
    """Write the merged LoRA with its provenance metadata (one atomic rename).

    An expert's file (``expert`` set) records ``recipe`` (the pair's, with this expert) and
    ``difflora_expert``; with ``stage`` the file goes there (the caller renames it to ``output``).
    """
    from difflora_gui.lora.writer import build_metadata, portability_warnings, write_lora

    p = params
    for warning in portability_warnings([m.name for m in modules], p.format, task=plan.src_a.model.task):
        warn(warning)
    inputs = hashing.result() if hashing is not None else []
    if recipe is None:
        recipe = file_recipe(p, output)
    merged = [r for r in computed.rows.values() if r.status == an.MERGED]
    extra = {
        "difflora.alpha": repr(float(alpha)),
        "difflora.rank_policy": plan.policy.describe(),
        "difflora.modules": f"{len(merged)} merged, {computed.count(an.NULLIFIED)} nullified, "
        f"{computed.count(an.EXCLUDED)} excluded",
    }
    energies = [r.retained_energy for r in merged if r.retained_energy is not None]
    if energies:
        extra["difflora.retained_energy"] = f"{sum(energies) / len(energies):.6f}"
    metadata = build_metadata(
        modules=modules,
        title=p.title or output.stem,
        model=plan.src_a.model,
        inputs=inputs,
        strategy=strategy_text(plan.strategy.info.to_json()),
        params=recipe,
        selector=str(plan.selector),
        created=p.created,
        description=f"differential LoRA: {p.describe()}",
        extra=extra,
        expert=expert,
    )
    # the writer logs the portability warnings too; they were reported above through the job
    with quiet_logger("difflora_gui.lora.writer"):
        write_lora(
            stage or output,
            modules,
            format=p.format,
            dtype=plan.save_dtype,
            metadata=metadata,
            inputs=[p.lora_a, p.lora_b],
            overwrite=p.overwrite or stage is not None,  # a stage is our own temporary file
        )


def build_analysis(
    params: MergeParams, plan: MergePlan, computed: Computed, alpha: float
) -> an.AnalysisResult:
    rows = [computed.rows[n] for n in plan.names if n in computed.rows]
    return an.AnalysisResult(
        lora_a=str(params.lora_a),
        lora_b=str(params.lora_b),
        model=plan.src_a.model.label,
        alpha=alpha,
        rows=rows,
        strategy=plan.strategy.info.to_json(),
        rank_policy=plan.policy.describe(),
        targets=str(plan.selector),
    )


def build_result(
    params: MergeParams,
    plan: MergePlan,
    computed: Computed,
    *,
    output: Path | None,
    alpha: float,
    analysis: an.AnalysisResult | None,
    files: list[str],
    elapsed: float,
    warnings: list[str],
    expert: str | None = None,
) -> MergeResult:
    merged = [r for r in computed.rows.values() if r.status == an.MERGED and r.retained_energy is not None]
    ranks: dict[int, int] = {}
    for row in merged:
        if row.rank:
            ranks[row.rank] = ranks.get(row.rank, 0) + 1
    energies = [r.retained_energy for r in merged if r.rank]
    residuals = [r.residual for r in merged if r.rank and r.residual is not None]
    optimal: list[Any] = [optimal_residual(r) for r in merged if r.rank]
    optimal = [v for v in optimal if v is not None]
    return MergeResult(
        output=str(output) if output is not None else None,
        recipe=params.to_json(),
        alpha=alpha,
        merged=computed.count(an.MERGED),
        nullified=computed.count(an.NULLIFIED),
        excluded=computed.count(an.EXCLUDED),
        filtered=sum(1 for _, reason in computed.status.values() if reason == an.FILTERED),
        only_in_a=list(plan.only_in_a),
        only_in_b=list(plan.only_in_b),
        ranks=ranks,
        retained_energy_mean=sum(energies) / len(energies) if energies else None,
        retained_energy_min=min(energies) if energies else None,
        residual_mean=sum(residuals) / len(residuals) if residuals else None,
        elapsed_s=elapsed,
        strategy=plan.strategy.info.to_json(),
        save_dtype=plan.save_dtype,
        format=params.format,
        analysis=analysis,
        analysis_files=files,
        warnings=list(warnings),
        optimal_residual_mean=sum(optimal) / len(optimal)
        if optimal and len(optimal) == len(residuals)
        else None,
        expert=expert,
    )
