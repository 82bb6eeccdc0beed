"""Settings ▸ ComfyUI servers: the table of servers (name, URL, shared LoRA folder, enabled) and a
health line per server (up with its GPUs, down and why, its LoRA folder's problem), kept current
by :class:`~difflora_gui.qt.comfy_health.HealthWatcher` without the window waiting on a server."""

from __future__ import annotations

import copy

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Slot
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.qt.comfy_health import CHECKING, DISABLED, HealthWatcher
from difflora_gui.qt.theme import COLORS
from difflora_gui.settings import ComfyServer, server_name_for, url_problem


def beside_buttons(owner: QWidget, main: QWidget, buttons) -> None:
    """Lay out ``main`` with a column of ``buttons`` on its right, top-aligned (list editors)."""
    column = QVBoxLayout()
    for button in buttons:
        column.addWidget(button)
    column.addStretch(1)
    layout = QHBoxLayout(owner)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(main, 1)
    layout.addLayout(column)


class ServerTable(QWidget):
    """The ComfyUI servers: name, URL, shared LoRA folder and an enabled box per row.

    A bad URL is marked in its cell (colour and tooltip) as it is typed; keys of a server record
    this version does not know ride along on the row, so editing a server keeps them.
    """

    COLUMNS = ("Name", "URL", "Shared LoRA folder", "Enabled")
    NAME, URL, LORA_DIR, ENABLED = range(4)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("comfyServerTable")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(self.NAME, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(self.URL, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(self.LORA_DIR, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(self.ENABLED, QHeaderView.ResizeMode.ResizeToContents)
        self.fit_to_editor()
        self.table.setMinimumHeight(120)
        self.table.setMaximumHeight(170)
        self.table.setToolTip(
            "Double-click a cell to edit it. The shared LoRA folder is where this computer sees a "
            "folder the server lists under models/loras (local or a network share)."
        )
        self.table.itemChanged.connect(self._mark_url)

        self.add_button = QPushButton("Add")
        self.remove_button = QPushButton("Remove")
        self.folder_button = QPushButton("LoRA folder…")
        self.folder_button.setToolTip("Choose the shared LoRA folder of the selected server")
        self.check_button = QPushButton("Check now")
        self.check_button.setToolTip("Ask every server again and look at its LoRA folder")
        self.add_button.clicked.connect(self._add)
        self.remove_button.clicked.connect(self._remove)
        self.folder_button.clicked.connect(self._choose_folder)

        self.health_label = QLabel()
        self.health_label.setObjectName("comfyServerHealth")
        self.health_label.setWordWrap(True)
        self.health_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.watcher = HealthWatcher(self)
        self.watcher.changed.connect(self._show_health)
        self.check_button.clicked.connect(self.watcher.check_now)
        # edits are watched a moment after typing stops: each change of a URL is a new server
        self._rewatch = QTimer(self)
        self._rewatch.setSingleShot(True)
        self._rewatch.setInterval(400)
        self._rewatch.timeout.connect(self._watch_rows)
        self.table.itemChanged.connect(lambda _item: self._rewatch.start())
        self.table.model().rowsRemoved.connect(lambda *_: self._rewatch.start())

        main = QWidget()
        column = QVBoxLayout(main)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.table)
        column.addWidget(self.health_label)
        buttons = (self.add_button, self.remove_button, self.folder_button, self.check_button)
        beside_buttons(self, main, buttons)
        self._show_health()

    def editor_size(self, text: str) -> QSize:
        """The size a cell editor (a themed line edit) needs to show ``text`` whole."""
        probe = QLineEdit()  # styled by the application's style sheet, as the cell editors are
        probe.setFont(self.table.font())
        probe.ensurePolished()
        hint = probe.sizeHint()
        # the text, the style's frame and padding (what sizeHint adds beyond its own text width),
        # and the cursor at the end
        padding = hint.width() - probe.fontMetrics().horizontalAdvance("x" * 17)
        width = probe.fontMetrics().horizontalAdvance(text) + max(padding, 12) + 8
        return QSize(width, hint.height())

    def fit_to_editor(self) -> None:
        """Rows and the Name/URL columns big enough for an editor holding a local URL (Add's text):
        the URL column does not share the width with the folder column, which takes what is left."""
        url = self.editor_size("http://127.0.0.1:65535")
        name = self.editor_size("127.0.0.1:65535 (22)")
        row_height = max(self.table.verticalHeader().defaultSectionSize(), url.height() + 4)
        self.table.verticalHeader().setDefaultSectionSize(row_height)
        self.table.verticalHeader().setMinimumSectionSize(row_height)
        self.table.setColumnWidth(self.NAME, max(150, name.width()))
        self.table.setColumnWidth(self.URL, max(200, url.width()))

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() in (QEvent.Type.StyleChange, QEvent.Type.FontChange):
            self.fit_to_editor()

    def servers(self) -> list[ComfyServer]:
        """The rows as server records (rows with neither name nor URL are skipped)."""
        result = []
        for row in range(self.table.rowCount()):
            name = self._text(row, self.NAME)
            url = self._text(row, self.URL)
            if not name and not url:
                continue
            extra = self.table.item(row, self.NAME).data(Qt.ItemDataRole.UserRole) or {}
            enabled = self.enabled_box(row).isChecked()
            result.append(
                ComfyServer(
                    name=name,
                    url=url,
                    lora_dir=self._text(row, self.LORA_DIR),
                    enabled=enabled,
                    extra=copy.deepcopy(extra),
                )
            )
        return result

    def set_servers(self, servers: list[ComfyServer]) -> None:
        self.table.setRowCount(0)
        for server in servers:
            self.add_server(server)
        self._watch_rows()

    @Slot()
    def _watch_rows(self) -> None:
        self._rewatch.stop()
        self.watcher.set_servers(self.servers())
        self._show_health()

    @Slot()
    def _show_health(self) -> None:
        colours = {"up": None, CHECKING: COLORS["muted"], DISABLED: COLORS["muted"]}
        lines = []
        for row in range(self.table.rowCount()):
            name = self._text(row, self.NAME)
            item = self.table.item(row, self.NAME)
            if not name or item is None:
                continue
            line = self.watcher.line(name)
            lines.append(f"{name}: {line}")
            self.table.blockSignals(True)  # a tooltip is no edit of the server
            item.setToolTip(line)
            colour = colours.get(self.watcher.state(name), COLORS["error"])
            # up keeps the table's own text colour; the others stand out from it
            item.setData(Qt.ItemDataRole.ForegroundRole, QColor(colour) if colour else None)
            self.table.blockSignals(False)
        self.health_label.setText("\n".join(lines) if lines else "No ComfyUI server yet: Add one.")

    def add_server(self, server: ComfyServer) -> int:
        row = self.table.rowCount()
        self.table.insertRow(row)
        name = QTableWidgetItem(server.name)
        name.setData(Qt.ItemDataRole.UserRole, copy.deepcopy(server.extra))
        self.table.setItem(row, self.NAME, name)
        self.table.setItem(row, self.URL, QTableWidgetItem(server.url))
        self.table.setItem(row, self.LORA_DIR, QTableWidgetItem(server.lora_dir))
        # a check box widget, not a checkable item: the dark theme draws no box for an unchecked item
        cell_under_box = QTableWidgetItem()  # the Enabled check box widget sits on it
        cell_under_box.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        self.table.setItem(row, self.ENABLED, cell_under_box)
        box = QCheckBox()
        box.setChecked(server.enabled)
        palette = box.palette()  # Fusion fills the box with Base: the table's own colour, invisible
        palette.setColor(QPalette.ColorRole.Base, QColor(COLORS["button"]))
        box.setPalette(palette)
        box.setToolTip("A disabled server is kept here but gets no jobs")
        box.toggled.connect(lambda _on: self._rewatch.start())
        holder = QWidget()
        centred = QHBoxLayout(holder)
        centred.setContentsMargins(0, 0, 0, 0)
        centred.setAlignment(Qt.AlignmentFlag.AlignCenter)
        centred.addWidget(box)
        self.table.setCellWidget(row, self.ENABLED, holder)
        return row

    def enabled_box(self, row: int) -> QCheckBox:
        return self.table.cellWidget(row, self.ENABLED).findChild(QCheckBox)

    def _text(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return item.text().strip() if item is not None else ""

    @Slot(QTableWidgetItem)
    def _mark_url(self, item: QTableWidgetItem) -> None:
        if item.column() != self.URL:
            return
        problem = url_problem(item.text().strip()) if item.text().strip() else "a server needs a URL"
        self.table.blockSignals(True)  # colouring the cell would report a change again
        item.setToolTip(problem)
        # a good URL keeps the table's own text colour (an explicit one draws dimmer in the theme)
        item.setData(Qt.ItemDataRole.ForegroundRole, QColor(COLORS["error"]) if problem else None)
        self.table.blockSignals(False)

    def _unused_name(self, url: str) -> str:
        names = {self._text(row, self.NAME) for row in range(self.table.rowCount())}
        base = server_name_for(url)
        name, number = base, 2
        while name in names:
            name, number = f"{base} ({number})", number + 1
        return name

    @Slot()
    def _add(self) -> None:
        port = 8188 + self.table.rowCount()  # a second local server usually takes the next port
        url = f"http://127.0.0.1:{port}"
        row = self.add_server(ComfyServer(name=self._unused_name(url), url=url))
        item = self.table.item(row, self.URL)
        self.table.setCurrentItem(item)
        self.table.editItem(item)

    @Slot()
    def _remove(self) -> None:
        for row in sorted({index.row() for index in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(row)

    @Slot()
    def _choose_folder(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            return
        start = self._text(row, self.LORA_DIR)
        folder = QFileDialog.getExistingDirectory(self, "Shared LoRA folder of the server", start)
        if folder:
            self.table.item(row, self.LORA_DIR).setText(folder)
