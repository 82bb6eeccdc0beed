"""Tools ▸ Plugins: every plugin with its source, version, hooks, status and error; enable/disable.

Disabling a plugin that provides panels (the Merge workbench is one) takes them out of the window
at once, with what they show; the dialog asks first and names them. No keeps the plugin enabled.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.errors import UserError
from difflora_gui.plugin_host import PluginHost, PluginInfo
from difflora_gui.qt.theme import COLORS

COLUMNS = ("Enabled", "Name", "Source", "Version", "Hooks", "Status", "Error")
_STATUS_COLORS = {"enabled": COLORS["ok"], "disabled": COLORS["muted"], "failed": COLORS["error"]}
#: the title of the question asked before a plugin's panels are taken away
DISABLE_TITLE = "Disable plugin"
#: what a panel shows that goes away with it, beyond its settings (by panel name)
_PANEL_CONTENTS = {"merge-workbench": "its analysis (plots and table)"}


def _short_hook(name: str) -> str:
    for prefix in ("difflora_gui_register_", "difflora_register_"):
        if name.startswith(prefix):
            return name[len(prefix) :] + (" (GUI)" if prefix.startswith("difflora_gui") else "")
    return name


class PluginsDialog(QDialog):
    """Ticking a box enables or disables the plugin now and remembers it (``host.set_enabled``)."""

    #: a plugin was enabled or disabled: ``(name, enabled)``
    plugin_toggled = Signal(str, bool)

    def __init__(self, host: PluginHost, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Plugins")
        self.setObjectName("pluginsDialog")
        self.resize(900, 460)
        self.host = host
        self._updating = False

        intro = QLabel(
            "Plugins add merge strategies, trainer backends, dataset tools, preview backends, commands "
            "and panels. A plugin that fails to load is switched off and its error is shown here; "
            "the rest of the app keeps working. Your choices are saved."
        )
        intro.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("pluginsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        for column in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.details = QPlainTextEdit()
        self.details.setObjectName("tracebackView")
        self.details.setReadOnly(True)
        self.details.setMaximumHeight(110)
        self.details.setPlaceholderText("Select a plugin to see where it comes from and its full error.")
        self.message = QLabel()
        self.message.setObjectName("validationErrors")
        self.message.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addWidget(self.message)
        layout.addWidget(buttons)

        self.table.itemChanged.connect(self._on_item_changed)
        self.table.currentCellChanged.connect(self._on_current_changed)
        self.refresh()

    def refresh(self) -> None:
        self._updating = True
        try:
            infos = self.host.infos()
            self.table.setRowCount(len(infos))
            for row, info in enumerate(infos):
                self._fill_row(row, info)
        finally:
            self._updating = False

    def _fill_row(self, row: int, info: PluginInfo) -> None:
        check = QTableWidgetItem()
        flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
        if info.can_disable:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        check.setFlags(flags)
        check.setCheckState(Qt.CheckState.Unchecked if info.status == "disabled" else Qt.CheckState.Checked)
        check.setData(Qt.ItemDataRole.UserRole, info.name)
        check.setToolTip("part of the app; always on" if not info.can_disable else "use this plugin")
        values = (
            info.name,
            info.source,
            info.version,
            ", ".join(_short_hook(h) for h in info.hooks),
            info.status,
            info.error,
        )
        self.table.setItem(row, 0, check)
        for column, value in enumerate(values, start=1):
            item = QTableWidgetItem(value)
            item.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)
            item.setToolTip(value)
            if COLUMNS[column] == "Status":
                item.setForeground(QColor(_STATUS_COLORS.get(value, COLORS["text"])))
            if COLUMNS[column] == "Error" and value:
                item.setForeground(QColor(COLORS["error"]))
            self.table.setItem(row, column, item)

    def row_of(self, name: str) -> int:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == name:
                return row
        return -1

    def set_plugin_enabled(self, name: str, enabled: bool) -> None:
        """What ticking the box does (also callable directly)."""
        row = self.row_of(name)
        if row < 0:
            raise KeyError(name)
        self.table.item(row, 0).setCheckState(Qt.CheckState.Checked if enabled else Qt.CheckState.Unchecked)

    def panels_of(self, name: str) -> list:
        """The panels (``PanelSpec``) a plugin provides to the window now."""
        try:
            registered = self.host.call_register("difflora_gui_register_panels")
        except Exception:  # noqa: BLE001 - no GUI hooks (a host without a window): no panels
            return []
        return [spec for plugin, spec in registered if plugin == name]

    def disable_question(self, name: str, panels) -> str:
        """What the question before disabling says: the panels that go away and what they show."""
        parts = []
        for spec in panels:
            part = f"{spec.title} ({str(spec.section).capitalize()} section)"
            contents = _PANEL_CONTENTS.get(spec.name)
            parts.append(f"{part} with {contents}" if contents else part)
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        what = "the panel" if len(parts) == 1 else "the panels"
        return (
            f"Disabling '{name}' takes {what} {listed} out of the window now. "
            "Settings stored in the project are kept; enable the plugin again to get them back.\n\n"
            "Disable it?"
        )

    def _confirm_disable(self, name: str) -> bool:
        panels = self.panels_of(name)
        if not panels:
            return True
        answer = QMessageBox.question(
            self,
            DISABLE_TITLE,
            self.disable_question(name, panels),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    @Slot(QTableWidgetItem)
    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._updating or item.column() != 0:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        enabled = item.checkState() == Qt.CheckState.Checked
        if not enabled and not self._confirm_disable(name):
            self.message.setText(f"'{name}' stays enabled.")
            self.refresh()  # the box ticked again
            return
        try:
            info = self.host.set_enabled(name, enabled)
        except UserError as exc:
            self.message.setText(str(exc))
            self.refresh()
            return
        if enabled and info.status == "failed":
            self.message.setText(f"'{name}' is enabled but failed to load: {info.error}")
        else:
            self.message.setText("")
        self.refresh()
        self.plugin_toggled.emit(name, enabled)

    @Slot(int, int, int, int)
    def _on_current_changed(self, row: int, _column: int, _prev_row: int, _prev_column: int) -> None:
        if row < 0 or self.table.item(row, 0) is None:
            self.details.setPlainText("")
            return
        info = self.host.info(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole))
        if info is None:
            return
        lines = [f"{info.name} ({info.source}) {info.version}".rstrip(), f"location: {info.location}"]
        if info.hooks:
            lines.append("hooks: " + ", ".join(info.hooks))
        if info.error:
            lines.append(f"error: {info.error}")
        self.details.setPlainText("\n".join(lines))
