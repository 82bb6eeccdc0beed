"""The rank hint beside the rank field: "rank 8 keeps 99 % of the targeted energy" (from the analysis).

:class:`RankHint` shows nothing until an analysis arrives (:meth:`RankHint.set_analysis`) and
goes blank when it is cleared (``None``). Its "use" link puts the suggested rank into the rank
field as a user edit would (so it is one undoable step). :meth:`RankHint.attach` places it under
a form's rank field and follows that field.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from difflora_gui.merge.rank_hint import detail_lines, hint_text, hints_for, suggested_rank


class RankHint(QLabel):
    """A muted one-line hint with a "use" link; empty without an analysis."""

    #: the user clicked "use": the suggested rank
    use_rank = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("rankHint")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.linkActivated.connect(self._on_link)
        self.hints = []
        self.suggested: int | None = None
        self._rank: int | None = None
        self.hide()

    def set_analysis(self, result, weight_of: Callable[[str], float] | None = None) -> None:
        """Show the hint for an ``AnalysisResult`` (``None``: no analysis, no hint)."""
        self.hints = hints_for(result, weight_of)
        self.suggested = suggested_rank(self.hints)
        self._show()

    def set_rank(self, rank: int | None) -> None:
        """The rank the form has now (its share goes in the tooltip)."""
        self._rank = None if rank is None else int(rank)
        self._show()

    def plain_text(self) -> str:
        """The hint without markup ("" when there is none)."""
        return hint_text(self.hints)

    def attach(self, form, name: str = "rank") -> None:
        """Sit under ``form``'s ``name`` field, follow its value, and set it on "use"."""
        form.set_field_note(name, self)
        editor = form.editors[name]
        self.set_rank(editor.value())
        form.connect_value(name, self.set_rank)
        self.use_rank.connect(editor.set_value)

    def _show(self) -> None:
        text = hint_text(self.hints)
        if not text:
            self.clear()
            self.setToolTip("")
            self.hide()
            return
        link = ""
        if self.suggested is not None and self.suggested != self._rank:
            link = f' · <a href="use" style="color:#8ab4ff">use {self.suggested}</a>'
        self.setText(f"<span style='color:#8b9098'>{html.escape(text)}</span>{link}")
        self.setToolTip(
            "Share of the targeted modules' difference energy kept by one fixed rank:\n"
            + "\n".join(detail_lines(self.hints, self._rank))
        )
        self.show()

    def _on_link(self, _link: str) -> None:
        if self.suggested is not None:
            self.use_rank.emit(self.suggested)
