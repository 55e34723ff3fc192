"""Parameter forms generated from the core's settings classes (widgets._form)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit

from napari_corrtomo.core.classify import PixelClassifier
from napari_corrtomo.core.quantify import QuantifySettings
from napari_corrtomo.widgets._form import Field, SettingsForm, tooltips


@dataclass
class Demo:
    """Settings of a test.

    Parameters
    ----------
    count
        How many (see :func:`~.core.quantify.quantify`).
    label
        A label, ``None`` for none.
    size, depth
        Lengths; ``None``: automatic.
    on
        Switch.
    kind
        ``"a"`` or ``"b"``.
    axes
        Axes; None: all.
    values
        Numbers.
    name
        A name.
    """

    count: int = 3
    label: int | None = None
    size: float | None = None
    depth: float = 2.5
    on: bool = True
    kind: str = "b"
    axes: tuple[int, ...] | None = (1,)
    values: tuple[float, ...] = ()
    name: str | None = None


FIELDS = {"count": Field(min=1, max=10), "label": Field(min=-1, none_text="none"),
          "size": Field(unit="length"), "depth": Field(unit="volume"), "on": None,
          "kind": Field(choices=("a", "b")), "axes": Field(choices={"all": None, "y": (1,)}),
          "values": None, "name": None}


def test_tooltips_are_the_docstring_in_plain_words():
    tips = tooltips(Demo)
    assert tips["count"] == "How many (see quantify)."
    assert tips["kind"] == '"a" or "b".'
    assert tips["size"] == tips["depth"] == "Lengths; None: automatic."


def test_controls_follow_the_types_and_show_the_defaults(qtbot):
    form = SettingsForm(Demo, FIELDS)
    qtbot.addWidget(form.widget)
    kinds = {name: type(form[name]) for name in FIELDS}
    assert kinds == {"count": FloatSpinBox, "label": FloatSpinBox, "size": FloatSpinBox,
                     "depth": FloatSpinBox, "on": CheckBox, "kind": ComboBox, "axes": ComboBox,
                     "values": LineEdit, "name": LineEdit}
    assert form["count"].native.decimals() == 0
    assert form["label"].native.text() == "none" and form["size"].native.text() == "auto"
    assert form["axes"].value == "y" and form["kind"].value == "b"
    assert form["count"].tooltip == "How many (see quantify)."
    assert form.value() == Demo()


def test_values_read_back_typed_with_none_at_the_lowest_value(qtbot):
    form = SettingsForm(Demo, FIELDS)
    qtbot.addWidget(form.widget)
    form["count"].value = 7
    form["label"].value = 4
    form["size"].value = 0.25
    form["on"].value = False
    form["kind"].value = "a"
    form["axes"].value = "all"
    form["values"].value = "1.5; 2 3"
    form["name"].value = "x"
    got = form.value(depth=9.0)
    assert got == Demo(count=7, label=4, size=0.25, depth=9.0, on=False, kind="a", axes=None,
                       values=(1.5, 2.0, 3.0), name="x")
    assert type(got.count) is int
    form["label"].value = -1
    form["name"].value = " "
    form["values"].value = ""
    got = form.value()
    assert got.label is None and got.name is None and got.values == ()
    form.set_value(Demo(count=2, size=1.0, axes=None))
    assert form.value() == Demo(count=2, size=1.0, axes=None)


def test_bad_text_and_units(qtbot):
    form = SettingsForm(Demo, FIELDS)
    qtbot.addWidget(form.widget)
    form["values"].value = "1, x"
    with pytest.raises(ValueError, match="values: numbers separated by commas, not '1, x'"):
        form.value()
    form.set_unit("um")
    assert form["size"].native.suffix() == " um" and form["depth"].native.suffix() == " um^3"
    assert form["count"].native.suffix() == ""
    form.set_unit("pixel")
    assert form["size"].native.suffix() == ""


@dataclass
class Bare:
    """No parameters section."""

    x: int = 1


def test_an_undocumented_field_is_refused():
    with pytest.raises(ValueError, match="Bare.x has no description"):
        SettingsForm(Bare, {"x": None})


def test_a_titled_form_is_a_collapsible_section(qtbot):
    form = SettingsForm(QuantifySettings, {"radius": Field(unit="length")}, title="More",
                        collapsed=True)
    qtbot.addWidget(form.widget)
    assert not form.section.isExpanded()
    assert form.section.toggleButton().toolTip() == "show or hide: radius"
    form.section.expand(animate=False)
    assert form.section.isExpanded()
    assert form.value() == QuantifySettings()


def test_a_form_on_a_class_signature(qtbot):
    """A class (not a dataclass) gives its ``__init__`` defaults and builds itself."""
    form = SettingsForm(PixelClassifier, {"n_trees": Field(min=1, max=1000), "seed": None})
    qtbot.addWidget(form.widget)
    assert form.kwargs() == {"n_trees": 100, "seed": 0}
    form["n_trees"].value = 12
    clf = form.value(seed=3)
    assert isinstance(clf, PixelClassifier) and (clf.n_trees, clf.seed) == (12, 3)
