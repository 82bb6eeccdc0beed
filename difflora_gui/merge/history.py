"""The workbench's merge history: every merge a record in the project, with what it wrote (Qt-free).

Each finished merge appends a :class:`~difflora_gui.project.MergeRecord` (never replaces one):
its recipe, every file written (two for a Wan2.2 two-expert merge) with their sha256, the files it
replaced after the user agreed, and when it ran. The project's ``merge`` section points at the
latest one (``last_merge_id``, ``last_outputs``) for Re-run recipe and Open output folder.
"""

from __future__ import annotations

from pathlib import Path

from difflora_gui.project.records import MergeRecord, utc_now

SECTION = "merge"


def unwrap(outcome):
    """``(MergeResult, {path: sha256})`` of a merge job's result (a bare ``MergeResult`` has no hashes)."""
    if hasattr(outcome, "result") and hasattr(outcome, "sha256"):
        return outcome.result, dict(outcome.sha256)
    return outcome, {}


def written_files(result) -> list[str]:
    """Every LoRA file a merge wrote (one, or one per expert)."""
    outputs = [str(path) for path in (getattr(result, "outputs", None) or []) if path]
    return outputs or ([str(result.output)] if getattr(result, "output", None) else [])


def record_merge(
    project, result, sha256: dict[str, str], *, record_id: str, replaced: list[str]
) -> MergeRecord:
    """Append the merge to ``project``'s history and point its ``merge`` section at it."""
    outputs = written_files(result)
    record = project.record_merge(
        result.recipe,
        outputs[0] if outputs else None,
        id=record_id,
        outputs=outputs,
        sha256={path: sha256[path] for path in outputs if path in sha256},
        replaced=[str(path) for path in replaced],
        meta={"merged_at": utc_now()},
    )
    project.update_section(
        SECTION,
        recipe=result.recipe,
        last_output=outputs[0] if outputs else None,
        last_outputs=outputs,
        last_merge_id=record.id,
    )
    return record


def status_text(result, outputs: list[str]) -> str:
    """The run bar's line after a merge: the file(s) written and the numbers that matter."""
    names = " and ".join(Path(path).name for path in outputs) or "?"
    return (
        f"Wrote {names}: {result.merged} modules merged, alpha {result.alpha:.6g}, {result.elapsed_s:.2f} s"
    )
