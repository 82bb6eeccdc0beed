"""The one question asked before a file is replaced: which files, what each one is, default No."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget

REPLACE_TITLE = "Replace existing file?"


def ask_replace(parent: QWidget, files: list[Path], what: str) -> bool:
    """Ask before replacing ``files`` with ``what``; the question says what each file is."""
    from difflora_gui.merge.existing_output import describe_file

    lines = "\n".join(f"• {describe_file(path)}" for path in files)
    folder = files[0].parent if files else ""
    text = (
        f"{'This file exists' if len(files) == 1 else 'These files exist'} in {folder}:\n\n{lines}\n\n"
        f"Replace {'it' if len(files) == 1 else 'them'} with {what}? Choose No to keep "
        f"{'it' if len(files) == 1 else 'them'}: nothing is written."
    )
    answer = QMessageBox.question(
        parent,
        REPLACE_TITLE,
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes
