"""A results table in a dock widget, with 'Export CSV'."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.io import write_table

#: widest a column is made for its contents (px); the rest of a text is in its tooltip
MAX_COLUMN_PX = 180

class TableView(QWidget):
    """Shows a DataFrame; ``export(path)`` writes it as CSV (atomically)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = QTableWidget()
        self.export_button = QPushButton("Export CSV ...")
        self.export_button.clicked.connect(self._ask_export)
        self.export_button.setEnabled(False)
        self.export_button.setToolTip("write this table as a CSV file (units in the column "
                                      "names)")
        self.table.setMinimumHeight(160)  # a few rows visible even in a crowded dock
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addWidget(self.export_button)
        self.frame = pd.DataFrame()

    def set_frame(self, frame: pd.DataFrame, float_format: str = "{:.4g}", *,
                  headers: Sequence[str] | None = None,
                  formats: Mapping[str, Callable[[Any], str]] | None = None) -> None:
        """Show ``frame`` (:meth:`export` writes it as it is, full precision, its column
        names).

        ``headers``: the column heads shown (default the column names; a head may span
        lines, ``"\n"``); ``formats``: column name -> the text of a value (default
        ``float_format`` for floats, ``str`` otherwise). The whole value is in each cell's
        tooltip."""
        self.frame = frame.reset_index(drop=True)
        formats = dict(formats or {})
        self.table.clear()
        self.table.setRowCount(len(self.frame))
        self.table.setColumnCount(len(self.frame.columns))
        self.table.setHorizontalHeaderLabels(
            [str(c) for c in (self.frame.columns if headers is None else headers)])
        for r, row in enumerate(self.frame.itertuples(index=False)):
            for c, value in enumerate(row):
                fmt = formats.get(str(self.frame.columns[c]))
                if fmt is None:
                    text = float_format.format(value) if isinstance(value, float) else str(value)
                    tip = text
                else:
                    text, tip = fmt(value), str(value)
                item = QTableWidgetItem(text)
                item.setToolTip(tip)  # the whole text where the column cuts it
                if fmt is not None and isinstance(value, (int, float, np.number)) and \
                        not isinstance(value, (bool, np.bool_)):
                    # numbers of one format line up on their decimal point
                    item.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()  # contents and heads
        # a long layer name once took the dock's whole width: the other columns stay in
        # view; a column is never narrower than its head
        header = self.table.horizontalHeader()
        for c in range(self.table.columnCount()):
            self.table.setColumnWidth(c, min(self.table.columnWidth(c),
                                             max(MAX_COLUMN_PX, header.sectionSizeHint(c))))
        self.export_button.setEnabled(not self.frame.empty)

    def export(self, path: str) -> None:
        write_table(path, self.frame)

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export table", "table.csv", "CSV (*.csv)")
        if path:
            self.export(path)
