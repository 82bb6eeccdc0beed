"""The Preview panel's Export: the selected stack entry baked into a new LoRA file as a job.

The current strength, block weights and layer filter are folded into the file (excluded blocks
dropped; two expert files for Wan2.2), in the comfy format (:mod:`difflora_gui.preview.bake`).
Existing files are replaced only after the user says so; the dialog starts in the folder used last.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from difflora_gui.errors import UserError
from difflora_gui.jobs.job import JobRequest
from difflora_gui.qt.preview.lora_stack import LORA_FILTER
from difflora_gui.qt.preview.render_form import entry_text
from difflora_gui.qt.replace_question import ask_replace

BAKE_TASK = "difflora_gui.preview.bake:run_bake"
EXPORT_SLOT = "preview-export"


class PanelExport:
    """Export… of :class:`~difflora_gui.qt.preview.panel.PreviewPanel` (``export_job`` while it runs)."""

    def export_clicked(self) -> bool:
        from difflora_gui.lora.experts import expert_output_path

        entry = self.stack.selected_entry()
        if entry is None:
            self.set_status("Select the LoRA to export in the stack first", "warning")
            return False
        start = self.folders.start(EXPORT_SLOT, current=None) or str(Path(entry.file).parent)
        name = f"{Path(entry.file).stem}_baked_{entry.strength:g}.safetensors"
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export the baked LoRA",
            str(Path(start) / name),
            LORA_FILTER,
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if not path:
            return False
        out = Path(path)
        self.folders.remember(EXPORT_SLOT, out.parent)
        existing = [
            p for p in (out, expert_output_path(out, "high"), expert_output_path(out, "low")) if p.exists()
        ]
        overwrite = bool(existing)
        if existing and not ask_replace(self, existing, "the baked LoRA"):
            self.set_status("Export cancelled: nothing was written", "info")
            return False
        return self.export_entry(out, overwrite=overwrite) is not None

    def export_entry(self, out: str | Path, *, overwrite: bool = False):
        """Bake the selected entry into ``out`` (two expert files for a two-expert model)."""
        entry = self.stack.selected_entry()
        if entry is None:
            self.set_status("Select the LoRA to export in the stack first", "warning")
            return None
        if self.export_job is not None:
            self.set_status("An export is running; wait for it to end", "warning")
            return None
        try:
            facts = self.model_facts()
        except UserError:
            facts = None  # the bake needs no model: the block count only checks the selector
        params = {
            "entry": entry.to_json(),
            "out": str(out),
            "two_experts": bool(facts.two_experts) if facts is not None else False,
            "num_blocks": facts.num_blocks if facts is not None else None,
            "overwrite": overwrite,
        }
        handle = self.services.submit(
            JobRequest(f"Export {Path(out).name}", BAKE_TASK, params=params, lane="light")
        )
        self.export_job = handle
        self._connections += [
            handle.succeeded.connect(self._on_exported),
            handle.failed.connect(lambda message, _tb: self.set_status(f"Export failed: {message}", "error")),
            handle.finished.connect(self._on_export_finished),
        ]
        self.set_status(f"Exporting {Path(entry.file).name} ({entry_text(entry)}) to {out}…", "info")
        return handle

    def _on_exported(self, result) -> None:
        files = result.get("files") if isinstance(result, Mapping) else None
        written = ", ".join(str(f) for f in files) if files else str(result)
        self.set_status(f"Exported: {written}", "ok")

    def _on_export_finished(self, _state: str) -> None:
        self.export_job = None

