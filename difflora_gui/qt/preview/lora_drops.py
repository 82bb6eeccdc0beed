"""LoRA files dropped on a panel with a LoRA stack (Preview, Compare) go into its stack.

A mixin for a ``QWidget`` that has ``self.stack`` (a :class:`~difflora_gui.qt.preview.lora_stack.LoraStack`)
and ``self.set_status(text, level)``; the window's drop router calls :meth:`accept_files` too.
"""

from __future__ import annotations


class LoraDrops:
    def accept_files(self, paths) -> None:
        refused = self.stack.add_files(paths)
        if refused:
            self.set_status("Not added: " + "; ".join(refused), "warning")

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if any(url.toLocalFile().lower().endswith(".safetensors") for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    dragMoveEvent = dragEnterEvent  # noqa: N815 - Qt override

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.accept_files(paths)
