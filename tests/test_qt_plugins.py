"""Plugins in the GUI: panels in their sections, isolation of broken plugins, the Plugins dialog."""

from __future__ import annotations

import sys
import textwrap

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QTabWidget, QWidget

from difflora_gui import hookimpl
from difflora_gui.plugin_host import PluginHost
from difflora_gui.qt.sections import ErrorCard
from difflora_gui.qt.testing import DialogAnswers, close_window, make_main_window
from difflora_gui.settings import AppSettings
from difflora_gui.specs import PanelSpec


class TitlePanel(QLabel):
    def __init__(self, services):
        super().__init__("panel body")
        self.services = services


class PanelsPlugin:
    @hookimpl
    def difflora_gui_register_panels(self):
        return [
            PanelSpec("second", "Second", "merge", TitlePanel, order=20),
            PanelSpec("first", "First", "merge", TitlePanel, order=10),
            PanelSpec("alone", "Alone", "preview", TitlePanel),
        ]


class BrokenImportPanelPlugin:
    @hookimpl
    def difflora_gui_register_panels(self):
        return [PanelSpec("ghost", "Ghost", "train", "difflora_no_such_module.widgets:Ghost")]


class Exploding(QWidget):
    def __init__(self, services):
        raise RuntimeError("the panel blew up in __init__")


class ExplodingPanelPlugin:
    @hookimpl
    def difflora_gui_register_panels(self):
        return [PanelSpec("boom", "Boom", "dataset", Exploding)]


class RaisingHookPlugin:
    @hookimpl
    def difflora_gui_register_panels(self):
        raise KeyError("hook failed")


class WrongTypePlugin:
    @hookimpl
    def difflora_gui_register_panels(self):
        return ["not a PanelSpec"]


@pytest.fixture
def window_with(qtbot, monkeypatch):
    made = []

    def build(*plugins):
        win, dialogs = make_main_window(qtbot, monkeypatch, plugins=plugins, builtin_panels=False)
        made.append((win, dialogs))
        return win

    yield build
    for win, dialogs in made:
        close_window(win, dialogs)


def test_panels_appear_in_their_sections_in_order(window_with):
    win = window_with(("panels", PanelsPlugin()))
    merge = win.pages["merge"]
    assert [e.spec.name for e in merge.entries] == ["first", "second"]
    tabs = merge.findChild(QTabWidget, "panels-merge")
    assert [tabs.tabText(i) for i in range(tabs.count())] == ["First", "Second"]
    preview = win.pages["preview"]
    assert [e.spec.name for e in preview.entries] == ["alone"]
    assert preview.entries[0].widget.services is win.services
    assert preview.findChild(QTabWidget) is None  # a single panel fills the page
    assert win.pages["train"].has_panels is False


def test_a_panel_whose_module_fails_to_import_gets_an_error_card(window_with):
    win = window_with(("ghost", BrokenImportPanelPlugin()), ("panels", PanelsPlugin()))
    entry = win.panels["ghost"]
    assert not entry.ok
    assert isinstance(entry.widget, ErrorCard)
    assert entry.error.startswith("ModuleNotFoundError")
    texts = " ".join(label.text() for label in entry.widget.findChildren(QLabel))
    assert "The panel 'Ghost' (plugin 'ghost') could not be created." in texts
    assert "Panel 'Ghost' from plugin 'ghost' failed: ModuleNotFoundError" in win.log_dock.text()
    assert win.panels["first"].ok  # everything else works


def test_a_panel_that_raises_when_constructed_gets_an_error_card(window_with):
    win = window_with(("boom", ExplodingPanelPlugin()))
    entry = win.panels["boom"]
    assert isinstance(entry.widget, ErrorCard)
    assert entry.error == "RuntimeError: the panel blew up in __init__"
    assert "in __init__" in entry.traceback
    assert win.pages["dataset"].entries == [entry]


@pytest.mark.parametrize(
    ("plugin", "error"),
    [
        (RaisingHookPlugin(), "difflora_gui_register_panels raised KeyError"),
        (WrongTypePlugin(), "must return PanelSpec"),
    ],
)
def test_a_gui_hook_that_fails_disables_only_that_plugin(window_with, plugin, error):
    win = window_with(("bad", plugin), ("panels", PanelsPlugin()))
    info = win.host.info("bad")
    assert info.status == "failed"
    assert error in info.error
    assert "Plugin 'bad' (package) is switched off" in win.log_dock.text()
    assert "1 plugin(s) failed (bad)" in win.statusBar().currentMessage()
    assert [e.spec.name for e in win.pages["merge"].entries] == ["first", "second"]


def test_a_plugin_that_fails_to_import_does_not_stop_the_window(qtbot, monkeypatch, tmp_path):
    user_plugins = tmp_path / "user plugins"
    user_plugins.mkdir()
    (user_plugins / "broken_plugin.py").write_text(
        "raise ImportError('missing dependency xyz')\n", encoding="utf-8"
    )
    (user_plugins / "good").mkdir()
    (user_plugins / "good" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from difflora_gui import hookimpl
            from difflora_gui.specs import PanelSpec

            @hookimpl
            def difflora_gui_register_panels():
                # a string reference: this module never imports Qt itself
                return [PanelSpec("good", "Good", "compare", "difflora_user_plugins.good.widget:GoodPanel")]
            """
        ),
        encoding="utf-8",
    )
    (user_plugins / "good" / "widget.py").write_text(
        textwrap.dedent(
            """
            from PySide6.QtWidgets import QLabel

            class GoodPanel(QLabel):
                def __init__(self, services):
                    super().__init__("good panel")
            """
        ),
        encoding="utf-8",
    )
    from difflora_gui.qt.main_window import MainWindow
    from difflora_gui.qt.testing import DialogAnswers

    dialogs = DialogAnswers().install(monkeypatch)
    host = PluginHost(user_dir=user_plugins, autoload=True)
    host.load()
    assert "difflora_user_plugins.good" in sys.modules
    assert "difflora_user_plugins.good.widget" not in sys.modules  # imported only when the panel is built
    win = MainWindow(host=host)
    qtbot.addWidget(win)
    try:
        assert host.info("broken_plugin").status == "failed"
        assert "missing dependency xyz" in host.info("broken_plugin").error
        assert win.panels["good"].ok
        assert win.panels["good"].widget.text() == "good panel"
        assert "Plugin 'broken_plugin' (folder) is switched off" in win.log_dock.text()
    finally:
        close_window(win, dialogs)
        for name in [m for m in sys.modules if m.startswith("difflora_user_plugins")]:
            del sys.modules[name]


def test_plugins_dialog_lists_plugins_with_status_and_errors(window_with, qtbot):
    from difflora_gui.qt.plugins_dialog import COLUMNS, PluginsDialog

    win = window_with(("panels", PanelsPlugin()), ("bad", RaisingHookPlugin()))
    dialog = PluginsDialog(win.host, win)
    qtbot.addWidget(dialog)
    table = dialog.table
    rows = {table.item(r, 1).text(): r for r in range(table.rowCount())}
    assert set(rows) >= {"core", "panels", "bad"}
    status = COLUMNS.index("Status")
    error = COLUMNS.index("Error")
    hooks = COLUMNS.index("Hooks")
    assert table.item(rows["panels"], status).text() == "enabled"
    assert table.item(rows["panels"], hooks).text() == "panels (GUI)"
    assert table.item(rows["bad"], status).text() == "failed"
    assert "KeyError" in table.item(rows["bad"], error).text()
    core_check = table.item(rows["core"], 0)
    assert not core_check.flags() & Qt.ItemFlag.ItemIsUserCheckable  # the app's own commands stay on
    table.setCurrentCell(rows["bad"], 1)
    assert "error: difflora_gui_register_panels raised KeyError" in dialog.details.toPlainText()


def test_disabling_a_plugin_in_the_dialog_removes_its_panels_and_is_remembered(
    window_with, qtbot, monkeypatch
):
    from difflora_gui.qt.plugins_dialog import DISABLE_TITLE, PluginsDialog

    win = window_with(("panels", PanelsPlugin()))
    dialog = PluginsDialog(win.host, win)
    qtbot.addWidget(dialog)
    dialog.plugin_toggled.connect(win._on_plugin_toggled)
    old_tabs = win.pages["merge"].findChild(QTabWidget, "panels-merge")
    assert not old_tabs.isHidden()

    answers = DialogAnswers(answers={DISABLE_TITLE: QMessageBox.StandardButton.Yes}).install(monkeypatch)
    dialog.set_plugin_enabled("panels", False)
    assert answers.titles("question") == [DISABLE_TITLE]
    assert "takes the panels Second (Merge section), First (Merge section) and Alone" in answers.asked[0].text
    assert old_tabs.isHidden()  # replaced by the section's introduction page at once
    assert win.host.info("panels").status == "disabled"
    assert AppSettings.load().disabled_plugins == ["panels"]
    assert not win.pages["merge"].has_panels and "first" not in win.panels
    assert dialog.table.item(dialog.row_of("panels"), 0).checkState() == Qt.CheckState.Unchecked
    assert "Plugin 'panels' disabled" in win.log_dock.text()
    # a new host (next start) starts with it disabled
    fresh = PluginHost(autoload=False)
    fresh.register(PanelsPlugin(), "panels")
    assert fresh.info("panels").status == "disabled"

    dialog.set_plugin_enabled("panels", True)
    assert win.host.info("panels").status == "enabled"
    assert AppSettings.load().disabled_plugins == []
    assert [e.spec.name for e in win.pages["merge"].entries] == ["first", "second"]


def test_disabling_the_merge_workbench_asks_first_and_no_keeps_it(qtbot, monkeypatch):
    from difflora_gui.qt.plugins_dialog import DISABLE_TITLE, PluginsDialog

    win, dialogs = make_main_window(qtbot, monkeypatch)
    try:
        dialog = PluginsDialog(win.host, win)
        qtbot.addWidget(dialog)
        dialog.plugin_toggled.connect(win._on_plugin_toggled)
        assert "merge-workbench" in win.panels
        dialogs.answers[DISABLE_TITLE] = QMessageBox.StandardButton.No
        dialog.set_plugin_enabled("merge_workbench", False)
        question = dialogs.asked[-1]
        assert (question.kind, question.title) == ("question", DISABLE_TITLE)
        assert question.text.startswith(
            "Disabling 'merge_workbench' takes the panel Merge workbench (Merge section) with its "
            "analysis (plots and table) out of the window now."
        )
        # No: nothing changes, the box is ticked again
        assert win.host.info("merge_workbench").status == "enabled"
        assert "merge-workbench" in win.panels and AppSettings.load().disabled_plugins == []
        row = dialog.row_of("merge_workbench")
        assert dialog.table.item(row, 0).checkState() == Qt.CheckState.Checked
        assert dialog.message.text() == "'merge_workbench' stays enabled."
        # a plugin without panels is disabled without a question
        asked = len(dialogs.asked)
        dialog.set_plugin_enabled("randomized_svd", False)
        assert len(dialogs.asked) == asked and win.host.info("randomized_svd").status == "disabled"
        dialog.set_plugin_enabled("randomized_svd", True)
        # Yes: the workbench goes
        dialogs.answers[DISABLE_TITLE] = QMessageBox.StandardButton.Yes
        dialog.set_plugin_enabled("merge_workbench", False)
        assert win.host.info("merge_workbench").status == "disabled" and "merge-workbench" not in win.panels
        dialog.set_plugin_enabled("merge_workbench", True)
    finally:
        close_window(win, dialogs)
