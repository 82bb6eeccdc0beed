"""File ▸ Settings: folders, ComfyUI servers, device, jobs and autosave (the typed AppSettings)."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Slot
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.dataset.kontext_params import model_folder_problem
from difflora_gui.qt.theme import COLORS
from difflora_gui.settings import (
    DEFAULT_COMFYUI_URL,
    AppSettings,
    ComfyServer,
    default_output_dir,
    device_problem,
    server_name_for,
    setting_bounds,
)
from difflora_gui.settings import url_problem as url_problem

#: files whose presence marks a Musubi Tuner checkout (current layout, then the older flat one)
MUSUBI_MARKERS = ("src/musubi_tuner/wan_train_network.py", "wan_train_network.py")
DEFAULT_COMFYUI = DEFAULT_COMFYUI_URL


def musubi_problem(folder: str) -> str:
    """Why ``folder`` is not a usable Musubi Tuner checkout ('' if it is, or if it is empty)."""
    if not folder:
        return ""
    path = Path(folder)
    if not path.is_dir():
        return f"Musubi Tuner folder not found: {folder}"
    if not any((path / marker).is_file() for marker in MUSUBI_MARKERS):
        return f"{folder} does not look like a Musubi Tuner checkout (no {MUSUBI_MARKERS[0]})"
    return ""


def server_problems(servers: list[ComfyServer]) -> list[str]:
    """Every problem with the ComfyUI server list, one line each, naming the row."""
    problems = []
    seen: set[str] = set()
    for row, server in enumerate(servers, start=1):
        label = f"ComfyUI server {row}" + (f" ({server.name})" if server.name else "")
        if not server.name:
            problems.append(f"{label}: needs a name")
        elif server.name in seen:
            problems.append(f"{label}: another server has the same name")
        seen.add(server.name)
        if problem := url_problem(server.url):
            problems.append(f"{label}: {problem}")
        if server.lora_dir and not Path(server.lora_dir).is_dir():
            problems.append(f"{label}: shared LoRA folder not found: {server.lora_dir}")
    return problems


def validate_settings(values: AppSettings) -> list[str]:
    """Every problem with the values, one line each (empty list = can be saved)."""
    problems = []
    for folder in values.model_folders:
        if not Path(folder).is_dir():
            problems.append(f"model folder not found: {folder}")
    if problem := musubi_problem(values.musubi_tuner_dir):
        problems.append(problem)
    if values.kontext_model_dir and (problem := model_folder_problem(values.kontext_model_dir)):
        problems.append(problem)
    problems.extend(server_problems(values.comfyui_servers))
    if device_problem(values.default_device):
        problems.append(f"unknown device {values.default_device!r}")
    if values.output_dir:
        out = Path(values.output_dir)
        if out.exists() and not out.is_dir():
            problems.append(f"output folder is a file: {values.output_dir}")
        elif not out.exists() and not out.parent.is_dir():
            problems.append(
                f"output folder cannot be created (its parent does not exist): {values.output_dir}"
            )
    return problems


def _beside_buttons(owner: QWidget, main: QWidget, buttons) -> None:
    """Lay out ``main`` with a column of ``buttons`` on its right, top-aligned (list editors)."""
    column = QVBoxLayout()
    for button in buttons:
        column.addWidget(button)
    column.addStretch(1)
    layout = QHBoxLayout(owner)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(main, 1)
    layout.addLayout(column)


class _WheelOnlyWhenFocused(QObject):
    """Scrolling the dialog over a spin box or combo box scrolls the dialog, not the value."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QWidget) and not watched.hasFocus():
            event.ignore()  # ignored + filtered: Qt hands the wheel to the parent (the scroll area)
            return True
        return super().eventFilter(watched, event)


class _PathList(QWidget):
    """A list of folders with Add… (a folder picker) / Remove."""

    def __init__(self, caption: str, parent: QWidget | None = None):
        super().__init__(parent)
        self._caption = caption
        self.list = QListWidget()
        self.list.setMaximumHeight(84)
        self.add_button = QPushButton("Add…")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(self._add)
        self.remove_button.clicked.connect(self._remove)
        _beside_buttons(self, self.list, (self.add_button, self.remove_button))

    def values(self) -> list[str]:
        texts = [self.list.item(i).text().strip() for i in range(self.list.count())]
        return list(dict.fromkeys(t for t in texts if t))

    def set_values(self, values: list[str]) -> None:
        self.list.clear()
        for value in values:
            self.list.addItem(QListWidgetItem(value))

    @Slot()
    def _add(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self._caption)
        if folder:
            self.list.addItem(QListWidgetItem(folder))

    @Slot()
    def _remove(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))


class _FolderField(QWidget):
    def __init__(self, caption: str, hint: str, parent: QWidget | None = None):
        super().__init__(parent)
        self._caption = caption
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(hint)
        self.edit.setClearButtonEnabled(True)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def text(self) -> str:
        return self.edit.text().strip()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt naming, like QLineEdit
        self.edit.setText(text)

    @Slot()
    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self._caption, self.text())
        if folder:
            self.edit.setText(folder)


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
        self.add_button.clicked.connect(self._add)
        self.remove_button.clicked.connect(self._remove)
        self.folder_button.clicked.connect(self._choose_folder)
        _beside_buttons(self, self.table, (self.add_button, self.remove_button, self.folder_button))

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
        item.setForeground(QColor(COLORS["error"]) if problem else QColor(COLORS["text"]))
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


class SettingsDialog(QDialog):
    """Edits a copy of the settings; :meth:`values` gives the result after Save (``accept``)."""

    def __init__(
        self, settings: AppSettings, devices: list[str] | None = None, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self.resize(820, 640)
        self._settings = settings
        self._wheel_guard = _WheelOnlyWhenFocused(self)

        self.model_folders = _PathList("Add a model folder")
        self.musubi_dir = _FolderField("Musubi Tuner checkout", "folder of a kohya-ss/musubi-tuner checkout")
        self.kontext_dir = _FolderField(
            "FLUX.1 Kontext model folder",
            "diffusers folder of FLUX.1-Kontext-dev (model_index.json, transformer, …)",
        )
        self.comfyui_servers = ServerTable()
        self.default_device = QComboBox()
        self.output_dir = _FolderField("Output folder", str(default_output_dir()))
        self.autosave_interval = self._spin(QSpinBox(), "autosave_interval_s", " s")
        self.light_jobs = self._spin(QSpinBox(), "max_parallel_light_jobs", "")
        self.shutdown_timeout = self._spin(QDoubleSpinBox(), "shutdown_timeout_s", " s")
        self.shutdown_timeout.setDecimals(1)
        self.load_user_plugins = QCheckBox("Load third-party plugins")
        self.load_user_plugins.setToolTip(
            "Plugins from your plugins folder and installed packages; the built-in ones always load. "
            "Takes effect at the next start."
        )
        self.errors = QLabel()
        self.errors.setObjectName("validationErrors")
        self.errors.setWordWrap(True)

        known = ["auto", "cpu", *[d for d in (devices or []) if d not in ("auto", "cpu")]]
        if settings.default_device and settings.default_device not in known:
            known.append(settings.default_device)  # keep a saved device even if not detected now
        self.default_device.addItems(known)
        self.default_device.setToolTip("auto = the first CUDA GPU if there is one, else the CPU")
        self._guard_wheel(self.default_device)

        paths = self._form()
        paths.addRow("Model folders", self.model_folders)
        paths.addRow("", self._hint("Folders searched for Wan models and LoRA files."))
        paths.addRow("Musubi Tuner", self.musubi_dir)
        paths.addRow("Kontext model", self.kontext_dir)
        paths.addRow("", self._hint("FLUX.1 Kontext [dev] in diffusers format, for counterpart generation."))
        paths.addRow("Output folder", self.output_dir)
        paths.addRow("", self._hint("Where new outputs go unless a project sets its own folder."))
        paths.addRow("Default device", self.default_device)

        servers = QVBoxLayout()
        servers.addWidget(self.comfyui_servers)
        servers.addWidget(
            self._hint("The Preview section renders through these; each runs one job at a time.")
        )

        jobs = self._form()
        jobs.addRow("Autosave every", self.autosave_interval)
        jobs.addRow("Light jobs at once", self.light_jobs)
        jobs.addRow("Wait for jobs on quit", self.shutdown_timeout)
        jobs.addRow("Plugins", self.load_user_plugins)

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.addWidget(self._group("Folders and device", paths))
        content_layout.addWidget(self._group("ComfyUI servers", servers))
        content_layout.addWidget(self._group("Jobs and saving", jobs))
        content_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(content)  # fits a 1280×720 screen: the content scrolls, the buttons stay

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.try_accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.errors)
        layout.addWidget(self.buttons)
        self.load(settings)

    @staticmethod
    def _hint(text: str) -> QLabel:
        label = QLabel(text)
        label.setObjectName("mutedLabel")
        label.setWordWrap(True)
        return label

    @staticmethod
    def _form() -> QFormLayout:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        return form

    @staticmethod
    def _group(title: str, layout) -> QGroupBox:
        group = QGroupBox(title)
        group.setLayout(layout)
        return group

    def _guard_wheel(self, widget: QWidget) -> None:
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # not WheelFocus: a wheel never grabs it
        widget.installEventFilter(self._wheel_guard)

    def _spin(self, spin: QAbstractSpinBox, name: str, suffix: str):
        low, high = setting_bounds(name)
        spin.setRange(low, high)
        spin.setSuffix(suffix)
        spin.setMaximumWidth(140)
        spin.setToolTip(f"from {low} to {high}")
        self._guard_wheel(spin)
        return spin

    def load(self, settings: AppSettings) -> None:
        self.model_folders.set_values(settings.model_folders)
        self.musubi_dir.setText(settings.musubi_tuner_dir)
        self.kontext_dir.setText(settings.kontext_model_dir)
        self.comfyui_servers.set_servers(settings.comfyui_servers)
        index = self.default_device.findText(settings.default_device or "auto")
        self.default_device.setCurrentIndex(max(index, 0))
        self.output_dir.setText(settings.output_dir)
        self.autosave_interval.setValue(settings.autosave_interval_s)
        self.light_jobs.setValue(settings.max_parallel_light_jobs)
        self.shutdown_timeout.setValue(settings.shutdown_timeout_s)
        self.load_user_plugins.setChecked(settings.load_user_plugins)

    def values(self) -> AppSettings:
        """The edited settings (fields this dialog does not show are kept from the original)."""
        return replace(copy.deepcopy(self._settings), **self.changes())

    def changes(self) -> dict[str, object]:
        """The edited fields, for ``AppServices.update_settings(**changes)``."""
        return {
            "model_folders": self.model_folders.values(),
            "musubi_tuner_dir": self.musubi_dir.text(),
            "kontext_model_dir": self.kontext_dir.text(),
            "comfyui_servers": self.comfyui_servers.servers(),
            "default_device": self.default_device.currentText(),
            "output_dir": self.output_dir.text(),
            "autosave_interval_s": self.autosave_interval.value(),
            "max_parallel_light_jobs": self.light_jobs.value(),
            "shutdown_timeout_s": self.shutdown_timeout.value(),
            "load_user_plugins": self.load_user_plugins.isChecked(),
        }

    @Slot()
    def try_accept(self) -> None:
        """Save: accept only if the values are valid; otherwise list the problems."""
        problems = validate_settings(self.values())
        if problems:
            self.errors.setText("\n".join(problems))
            return
        self.errors.setText("")
        self.accept()
