"""The growth chart of the storage report: an SVG drawn by pygal, embedded in the HTML.

Invariants: the SVG has no XML prolog (it sits inside HTML) and no script: pygal's tooltips load one from the network
by default (`js=[]` drops it) and it always adds an inline one holding its configuration, which is taken out of the
tree (mail readers strip scripts, and nothing here needs one). Its style sheet is inline, so it renders the same in
a mail reader, a browser offline, or a converter such as rsvg-convert.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pygal
from pygal.style import CleanStyle

from appliance.ops.reports.model import Chart

UNITS = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"), (1, "B"))


def _unit(largest: int) -> tuple[int, str]:
    return next(((f, u) for f, u in UNITS if largest >= f), (1, "B"))


def growth_svg(chart: Chart) -> str:
    table = chart.table
    values = [v for row in table.rows for v in row[1:] if v is not None]
    factor, unit = _unit(max(values, default=0))
    line = pygal.Line(js=[], disable_xml_declaration=True, style=CleanStyle, width=900, height=380,
                      x_label_rotation=30, show_minor_x_labels=len(table.rows) <= 16, legend_at_bottom=True,
                      y_title=unit, title=chart.title, dots_size=2, include_x_axis=True,
                      value_formatter=lambda v: f"{v:.1f} {unit}")
    line.x_labels = [row[0] for row in table.rows]
    if len(table.rows) > 16:
        line.x_labels_major = [row[0] for row in table.rows][:: max(1, len(table.rows) // 8)]
    for i, column in enumerate(table.columns[1:], start=1):
        line.add(column.name, [None if row[i] is None else row[i] / factor for row in table.rows])
    root = line.render_tree()
    for parent in root.iter():
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rpartition("}")[2] == "script":
                parent.remove(child)
    return ET.tostring(root, encoding="unicode")
