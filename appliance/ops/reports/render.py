"""A built report as text (a terminal, a mail body), CSV (its main table, raw values), HTML (every table, and the
chart as inline SVG) or, for the lists a vault company takes, the tab-and-tilde `.IM` file (`im`).

Invariants: text and HTML show values for a person (sizes in KiB..TiB, times local to the second, durations as
"2h 05m"); CSV keeps them raw (bytes, seconds, ISO 8601 times with their offset), one header row, RFC 4180 quoting.
HTML escapes every value and loads nothing from anywhere.
"""

from __future__ import annotations

import csv
import html
import io
from datetime import datetime

from appliance.errors import UsageError
from appliance.ops.reports.model import Column, Report, Table
from appliance.text import plural, size, text_time

FORMATS = ("text", "csv", "html", "im")
ABOUT_NOW = ("protection", "pick-list-library", "pick-list-vault", "vault-inventory", "restore-needs")


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    if d:
        return f"{d}d {h:02d}h"
    if h:
        return f"{h}h {m:02d}m" if m else f"{h}h"
    return f"{m}m {sec:02d}s" if sec else f"{m}m"


def shown(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "bytes":
        return size(value)
    if kind == "time":
        return text_time(value)
    if kind == "duration":
        return human_duration(value)
    if kind == "ratio":
        return f"{value:.2f}"
    return str(value)


def raw(value, kind: str) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if kind == "duration":
        return str(int(round(value)))
    return str(value)


def _heading(report: Report) -> str:
    return (f"{report.title}, {text_time(report.generated)}"
            + ("" if report.name in ABOUT_NOW else f" (the last {plural(report.days, 'day')})"))


def text(report: Report) -> str:
    out = [_heading(report), "=" * len(_heading(report)), *report.summary]
    for table in report.tables:
        out += ["", table.title, "-" * len(table.title)]
        if not table.rows:
            out.append(table.empty)
            continue
        cells = [[c.name for c in table.columns]] + [[shown(v, c.kind) for v, c in zip(row, table.columns)]
                                                    for row in table.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(table.columns))]
        right = [c.kind not in ("text", "time") for c in table.columns]
        for r in cells:
            out.append("  ".join(x.rjust(w) if rj else x.ljust(w) for x, w, rj in zip(r, widths, right)).rstrip())
    out += [f"note: {n}" for n in report.notes]
    return "\n".join(out) + "\n"


def csv_text(report: Report) -> str:
    table = report.tables[0]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([c.name for c in table.columns])
    for row in table.rows:
        writer.writerow([raw(v, c.kind) for v, c in zip(row, table.columns)])
    return buf.getvalue()


STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.2em .6em}
th{background:#eee;text-align:left}td.n{text-align:right}p.attention{color:#a00;font-weight:bold}
p.note{color:#666;font-size:90%}"""


def _html_table(table: Table) -> str:
    if not table.rows:
        return f"<h2>{html.escape(table.title)}</h2>\n<p>{html.escape(table.empty)}</p>"
    head = "".join(f"<th>{html.escape(c.name)}</th>" for c in table.columns)
    body = "\n".join("<tr>" + "".join(_cell(v, c) for v, c in zip(row, table.columns)) + "</tr>"
                     for row in table.rows)
    return f"<h2>{html.escape(table.title)}</h2>\n<table>\n<tr>{head}</tr>\n{body}\n</table>"


def _cell(value, column: Column) -> str:
    cls = "" if column.kind in ("text", "time") else ' class="n"'
    return f"<td{cls}>{html.escape(shown(value, column.kind))}</td>"


def html_text(report: Report) -> str:
    from appliance.ops.reports.chart import growth_svg  # pygal loads only for the HTML format
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
             f"<title>{html.escape(_heading(report))}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
             f"<h1>{html.escape(_heading(report))}</h1>"]
    cls = ' class="attention"' if report.needs_attention else ""
    parts += [f"<p{cls}>{html.escape(line)}</p>" for line in report.summary]
    if report.chart is not None:
        parts.append(f"<h2>{html.escape(report.chart.title)}</h2>\n<figure>{growth_svg(report.chart)}</figure>")
    parts += [_html_table(t) for t in report.tables]
    parts += [f"<p class=\"note\">Note: {html.escape(n)}</p>" for n in report.notes]
    parts.append("</body>\n</html>\n")
    return "\n".join(parts)


def im_text(report: Report) -> str:
    """The `.IM` layout Bareos' media_vault writes for vault companies (contrib/misc/media_vault): per vault a
    header line, one line per cartridge (barcode, a tab, its return date as MMDDYYYY; empty when it is kept
    forever), and a footer line with the count. The account field is the vault's name in Tapeline."""
    if report.vault_lists is None:
        raise UsageError(f"the {report.name} report is not a vault list",
                         "use --format im with pick-list-library, pick-list-vault, distribution or vault-inventory")
    out = []
    for vl in report.vault_lists:
        out.append(f"StartHeaderText~D~{vl.vault}~tapeline-{vl.library}~EndHeaderText")
        out += [f"{barcode}\t{back.astimezone().strftime('%m%d%Y') if back else ''}" for barcode, back in vl.rows]
        out.append(f"StartFooterText~D~{vl.vault}~tapeline-{vl.library}-{len(vl.rows)}~EndFooterText")
    return "".join(line + "\n" for line in out)


def render(report: Report, fmt: str) -> str:
    return {"text": text, "csv": csv_text, "html": html_text, "im": im_text}[fmt](report)
