"""Parameter forms generated from the core's settings classes.

A dock's parameters are the fields of its core pipeline's settings dataclass
(``QuantifySettings``, ``FibSettings`` ...): magicgui makes one control per field from
the field's type and default, the class's numpydoc ``Parameters`` section becomes the
tooltips, and :meth:`SettingsForm.value` gives the settings object back. So a field added,
renamed or documented in the core changes the form with it, and the widget, the CLI and
the docs say the same thing.

Mapping (a :class:`Field` per shown field says what the type cannot):

- ``bool`` -> check box; ``int`` / ``float`` -> spin box (``int``: no decimals); a ``None``-able number shows
  ``None`` as the spin box's lowest value with a word (``auto``, ``off``, ``none``);
- ``str`` with ``choices`` (or any field with ``choices`` given as a label -> value
  mapping) -> combo box; other ``str`` -> line edit (empty = ``None`` where allowed);
- ``tuple[...]`` -> line edit of comma-separated values (empty = ``None`` or ``()``).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import docstring_parser
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit
from magicgui.widgets.bases import ValueWidget
from qtpy.QtWidgets import QWidget
from superqt import QCollapsible

from ..core._checks import SettingError, in_words

#: largest value of a number field without its own ``max``
_BIG = 1e9


@dataclass(frozen=True)
class Field:
    """How one settings field is shown (everything else comes from its type and docstring).

    Parameters
    ----------
    label
        Text beside the control; default: the field name in words.
    choices
        Allowed values: a sequence of values, or a mapping of the words shown -> values.
    none_text
        Word the spin box shows at its lowest value: there it stands for ``None``
        (default ``auto`` for a ``None``-able number, no word for others).
    min, max, step, decimals
        Spin box range, step and (float) decimals; ``min`` of a ``None``-able number is
        the value that stands for ``None``.
    unit
        ``"length"`` or ``"volume"``: the spin box shows the layer's unit
        (:meth:`SettingsForm.set_unit`).
    placeholder
        Grey hint in an empty line edit.
    """

    label: str | None = None
    choices: Sequence[Any] | Mapping[str, Any] | None = None
    none_text: str | None = None
    min: float = 0.0
    max: float = _BIG
    step: float | None = None
    decimals: int = 4
    unit: str | None = None
    placeholder: str = ""


def tooltips(settings_type: type) -> dict[str, str]:
    """Field name -> its description in the class's numpydoc ``Parameters`` section, in
    plain words (reST roles and literals reduced to their text)."""
    out = {}
    for p in docstring_parser.parse(settings_type.__doc__ or "").params:
        text = " ".join((p.description or "").split())
        text = re.sub(r":\w+:`~?\.?(?:[\w.]*\.)?([^`<]+?)(?: <[^>]*>)?`", r"\1", text)
        text = text.replace("``", "")
        for name in p.arg_name.split(","):
            out[name.strip()] = text
    return out


def _kind(annotation: Any) -> tuple[Any, bool]:
    """(the type without ``None``, whether ``None`` is allowed)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else rest), len(rest) < len(args)
    return annotation, False


def _hints(settings_type: type) -> dict[str, Any]:
    """The evaluated annotations of a dataclass's fields or a class's ``__init__``."""
    if dataclasses.is_dataclass(settings_type):
        return typing.get_type_hints(settings_type)
    return typing.get_type_hints(settings_type.__init__)


class SettingsForm:
    """The controls of ``fields`` of ``settings_type`` (a settings dataclass, or a class
    whose ``__init__`` takes the fields as keyword arguments), in that order.

    ``form[name]`` is the magicgui widget of a field; ``form.widget`` the Qt widget to lay
    out (inside a collapsible section when ``title`` is given, collapsed by default
    with ``collapsed``).
    """

    def __init__(self, settings_type: type, fields: Mapping[str, Field | None], *,
                 title: str | None = None, collapsed: bool = False):
        self.settings_type = settings_type
        self._fields = {name: f or Field() for name, f in fields.items()}
        self._hints = hints = _hints(settings_type)
        defaults = {name: p.default
                    for name, p in inspect.signature(settings_type).parameters.items()}
        tips = tooltips(settings_type)
        self._widgets: dict[str, ValueWidget] = {}
        for name, f in self._fields.items():
            if name not in tips:
                raise ValueError(f"{settings_type.__name__}.{name} has no description in its "
                                 "docstring (its form control needs one as tooltip)")
            self._widgets[name] = self._make(name, f, hints[name], tips[name])
        self.container = Container(widgets=list(self._widgets.values()), labels=True)
        self.container.margins = (0, 0, 0, 0)
        for name in self._widgets:
            self._show(name, defaults[name])
        self.widget: QWidget = self.container.native
        if title is not None:
            # superqt's default marks a collapsed section with an up arrow
            section = QCollapsible(title, expandedIcon="\u25bc", collapsedIcon="\u25b6")
            section.setDuration(0)
            names = ", ".join(w.label for w in self._widgets.values())
            section.toggleButton().setToolTip(f"show or hide: {names}")
            section.addWidget(self.container.native)
            if collapsed:
                section.collapse(animate=False)
            else:
                section.expand(animate=False)
            self.widget = section
            self.section = section

    def __getitem__(self, name: str) -> ValueWidget:
        return self._widgets[name]

    # ------------------------------------------------------------------ building

    def _make(self, name: str, f: Field, annotation: Any, tip: str) -> ValueWidget:
        base, optional = _kind(annotation)
        common = {"name": name, "label": f.label or name.replace("_", " "), "tooltip": tip}
        if f.choices is not None:
            return ComboBox(choices=list(self._labels(f)), **common)
        if base is bool:
            return CheckBox(**common)
        if base in (int, float):
            # a float spin box for both: magicgui's integer one (superqt's large-int box)
            # shows no word at its lowest value
            decimals = 0 if base is int else f.decimals
            step = f.step if f.step is not None else 10.0 ** -decimals
            w = FloatSpinBox(min=f.min, max=f.max, step=step, **common)
            w.native.setDecimals(decimals)
            if optional or f.none_text:
                w.native.setSpecialValueText(f.none_text or "auto")
            return w
        w = LineEdit(**common)
        if f.placeholder:
            w.native.setPlaceholderText(f.placeholder)
        return w

    @staticmethod
    def _labels(f: Field) -> Mapping[str, Any]:
        return f.choices if isinstance(f.choices, Mapping) else {str(c): c for c in f.choices}

    # ------------------------------------------------------------------ values

    def _show(self, name: str, value: Any) -> None:
        f, w = self._fields[name], self._widgets[name]
        if f.choices is not None:
            labels = [k for k, v in self._labels(f).items() if v == value]
            if labels:
                w.value = labels[0]
        elif isinstance(w, FloatSpinBox):
            w.value = f.min if value is None else value
        elif isinstance(w, CheckBox):
            w.value = bool(value)
        elif isinstance(value, tuple):
            w.value = ", ".join(str(v) for v in value)
        else:
            w.value = "" if value is None else str(value)

    def _read(self, name: str, annotation: Any) -> Any:
        f, w = self._fields[name], self._widgets[name]
        base, optional = _kind(annotation)
        if f.choices is not None:
            return self._labels(f)[w.value]
        if isinstance(w, FloatSpinBox):
            return None if optional and w.value <= f.min else base(w.value)
        if isinstance(w, CheckBox):
            return bool(w.value)
        text = str(w.value).strip()
        if typing.get_origin(base) is tuple:
            item = typing.get_args(base)[0]
            words = [v for v in re.split(r"[,;\s]+", text) if v]
            try:
                values = tuple(item(v) for v in words)
            except ValueError:
                raise ValueError(f"{w.label}: {'whole ' if item is int else ''}numbers "
                                 f"separated by commas, not {text!r}") from None
            return values if values or not optional else None
        return text if text or not optional else None

    def kwargs(self) -> dict[str, Any]:
        """The form's fields as keyword arguments of ``settings_type``."""
        return {name: self._read(name, self._hints[name]) for name in self._widgets}

    def value(self, base: Any = None, **override: Any) -> Any:
        """The settings: ``base`` (default: the class defaults) with the form's fields and
        ``override`` (fields the widget takes from elsewhere, e.g. a layer; they win over
        the form's)."""
        values = {**self.kwargs(), **override}
        try:
            if base is None:
                return self.settings_type(**values)
            return dataclasses.replace(base, **values)
        except SettingError as exc:  # in the form's words: its labels, not the field names
            raise ValueError(in_words(exc, self.words)) from None

    @property
    def words(self) -> dict[str, str]:
        """Field name -> its control's label, quoted (how the form names a setting)."""
        return {name: f"'{w.label}'" for name, w in self._widgets.items()}

    def set_value(self, settings: Any) -> None:
        """Show ``settings`` (fields not in the form are ignored)."""
        for name in self._widgets:
            self._show(name, getattr(settings, name))

    def set_unit(self, unit: str) -> None:
        """Show ``unit`` (``''`` or ``pixel``: none) beside the length and volume fields."""
        word = "" if unit in ("", "pixel") else f" {unit}"
        for name, f in self._fields.items():
            if f.unit is not None:
                self._widgets[name].native.setSuffix(word + ("^3" if word and f.unit == "volume"
                                                             else ""))
