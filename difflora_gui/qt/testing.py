"""Helpers for testing the window and panels with pytest-qt (used by our tests; plugin authors may too).

* :class:`DialogAnswers` replaces ``QMessageBox``'s static dialogs: every question is recorded
  and answered from a script, and an unexpected dialog fails the test instead of blocking it.
* :func:`make_main_window` builds a :class:`MainWindow` on a fresh plugin host (plugins given
  as objects, no autoload) and closes it cleanly at the end of the test.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtWidgets import QMessageBox

Button = QMessageBox.StandardButton


@dataclass
class AskedDialog:
    kind: str  # question | warning | information | critical | about
    title: str
    text: str


@dataclass
class DialogAnswers:
    """Scripted answers for ``QMessageBox.question/warning/information/critical/about``.

    ``answers[title]`` is the button to return for a dialog with that title (warnings and
    information boxes need none: they return ``Ok``). A question without a scripted answer
    raises ``AssertionError`` so a test never hangs on a modal dialog.
    """

    answers: dict[str, Any] = field(default_factory=dict)
    asked: list[AskedDialog] = field(default_factory=list)

    def install(self, monkeypatch) -> DialogAnswers:
        def make(kind: str):
            def fake(_parent, title, text, *args, **kwargs):
                self.asked.append(AskedDialog(kind, str(title), str(text)))
                if kind == "question":
                    if title not in self.answers:
                        raise AssertionError(f"unexpected question dialog {title!r}: {text}")
                    return self.answers[title]
                return self.answers.get(title, Button.Ok)

            return staticmethod(fake)

        for kind in ("question", "warning", "information", "critical", "about"):
            monkeypatch.setattr(QMessageBox, kind, make(kind))
        return self

    def titles(self, kind: str | None = None) -> list[str]:
        return [d.title for d in self.asked if kind is None or d.kind == kind]


def make_host(plugins: Iterable[tuple[str, Any]] = (), *, builtin_panels: bool = True):
    """A plugin host with only the app's own plugins plus ``plugins`` (``(name, object)`` pairs).

    ``builtin_panels=False`` leaves out the app's own plugins that contribute panels (the Merge
    workbench ...), for tests of the window itself with panels of their own.
    """
    from difflora_gui.plugin_host import PluginHost, set_plugin_host
    from difflora_gui.qt.gui_hookspecs import GUI_REGISTER_HOOKS

    host = PluginHost(autoload=False)
    host.load()
    if not builtin_panels:
        for info in host.infos():
            plugin = host.pm.get_plugin(info.name)
            if info.source == "built-in" and any(hasattr(plugin, hook) for hook in GUI_REGISTER_HOOKS):
                host.unregister(info.name)
    for name, plugin in plugins:
        host.register(plugin, name)
    set_plugin_host(host)
    return host


def _answer_closing_questions(dialogs: DialogAnswers | None) -> None:
    if dialogs is not None:
        dialogs.answers.setdefault("Unsaved changes", Button.Discard)
        dialogs.answers.setdefault("Jobs are running", Button.Yes)


def close_window(window, dialogs: DialogAnswers | None = None) -> None:
    """Close a window the way a user would, discarding unsaved changes and cancelling jobs."""
    try:
        if window._closed:
            return
    except RuntimeError:  # already deleted
        return
    _answer_closing_questions(dialogs)
    if not window.close():
        raise AssertionError("the main window refused to close")


def make_main_window(
    qtbot,
    monkeypatch,
    *,
    plugins: Iterable[tuple[str, Any]] = (),
    show: bool = True,
    builtin_panels: bool = True,
    **kwargs,
):
    """Build a main window for a test; returns ``(window, dialogs)``. Close it with :func:`close_window`.

    ``builtin_panels=False``: without the app's own panels (see :func:`make_host`).
    """
    from difflora_gui.qt.main_window import MainWindow

    dialogs = DialogAnswers().install(monkeypatch)
    host = make_host(plugins, builtin_panels=builtin_panels)
    window = MainWindow(host=host, **kwargs)
    # pytest-qt closes added widgets before fixtures are torn down: answer the closing questions then
    qtbot.addWidget(window, before_close_func=lambda _w: _answer_closing_questions(dialogs))
    if show:
        window.show()
        qtbot.waitExposed(window)
    return window, dialogs
