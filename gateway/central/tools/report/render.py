"""The weekly report as PDF (one A4 page per site, more only when a site's daily table is
long) or as one HTML file, drawn with matplotlib's Agg backend: no display, no browser.

Text stays text (TrueType in the PDF, ``<text>`` in the SVG), so the report can be searched,
read aloud and checked by ``pdftotext``; bands carry a hatch and a word as well as a colour.
"""

from __future__ import annotations

import html
import io
import textwrap
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # before pyplot: no display on a server
import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from gateway.central.tools.report.data import DayFigures, SiteWeek
from gateway.central.tools.report.text import WORDS, Lang, number, summary

__all__ = ["render_html", "render_pdf", "usage_rows", "ventilation_rows"]

_A4 = (8.27, 11.69)
_COLOURS = ("#2e7d32", "#ef6c00", "#c62828")  # fine, ventilate, critical
_HATCHES = ("", "//", "xx")
#: Daily rows on a site's first page, and on each page after it.
_FIRST_ROWS, _MORE_ROWS = 22, 55


def _style() -> AbstractContextManager[None]:
    """Text stays text: TrueType in the PDF (``pdftotext`` reads it), ``<text>`` in SVG."""
    return mpl.rc_context(
        {"pdf.fonttype": 42, "svg.fonttype": "none", "font.family": "DejaVu Sans"}
    )


def _day_name(week: SiteWeek, fig: DayFigures, lang: Lang) -> str:
    names = WORDS[lang]["weekdays"].split()
    return f"{names[fig.day.weekday()]} {fig.day:%d.%m.}"


def ventilation_rows(week: SiteWeek, lang: Lang, names: dict[str, str]) -> list[list[str]]:
    """Per room: in use, the three bands (minutes) and the share that was fine."""
    rows = []
    for room in week.rooms:
        bands = week.band_totals(room)
        measured = sum(bands)
        share = (
            f"{number(100 * bands[0] / measured, lang)} %" if measured else WORDS[lang]["unknown"]
        )
        used = week.total(room, "occupied_min")
        rows.append([names.get(room, room), str(used), *(str(b) for b in bands), share])
    return rows


def _has_data(fig: DayFigures) -> bool:
    return bool(fig.occupied_min or fig.people_max is not None or fig.lent or fig.overdue) or bool(
        fig.wifi_degraded_min or fig.open_min
    )


def usage_rows(week: SiteWeek, lang: Lang, names: dict[str, str]) -> list[list[str]]:
    """Per room and day with any data: the usage figures, a dash where unknown."""
    dash = WORDS[lang]["unknown"]
    rows = []
    for room, days in week.rooms.items():
        for fig in days:
            if not _has_data(fig):
                continue
            rows.append(
                [
                    names.get(room, room),
                    _day_name(week, fig, lang),
                    dash if fig.open_min is None else str(fig.open_min),
                    str(fig.occupied_min),
                    dash if fig.people_mean is None else number(fig.people_mean, lang, 1),
                    dash if fig.people_max is None else str(fig.people_max),
                    dash if fig.seat_use is None else f"{number(100 * fig.seat_use, lang)} %",
                    str(fig.lent),
                    str(fig.overdue),
                    str(fig.wifi_degraded_min),
                ]
            )
    return rows


def _headers(lang: Lang) -> tuple[list[str], list[str]]:
    w = WORDS[lang]
    vent = [w["room"], w["in_use"], w["fine"], w["ventilate"], w["critical"], w["share_fine"]]
    use = [w[k] for k in ("room", "day", "open", "occupied", "people_mean", "people_max")]
    use += [w[k] for k in ("seats", "lent", "overdue", "wifi")]
    return vent, use


def _plots(
    fig: Figure,
    rect: tuple[float, float, float, float],
    week: SiteWeek,
    lang: Lang,
    names: dict[str, str],
) -> None:
    """Minutes in use per day (bars per room) and per CO2 band (stacked per room)."""
    w = WORDS[lang]
    left, bottom, width, height = rect
    use = fig.add_axes((left, bottom, width * 0.46, height))
    air = fig.add_axes((left + width * 0.6, bottom, width * 0.4, height))
    rooms = list(week.rooms)
    days = WORDS[lang]["weekdays"].split()
    step = 0.8 / max(len(rooms), 1)
    for i, room in enumerate(rooms):
        xs = [d + i * step - 0.4 + step / 2 for d in range(7)]
        values = [f.occupied_min for f in week.rooms[room]]
        use.bar(xs, values, width=step, label=names.get(room, room))
    use.set_xticks(range(7), days)
    use.set_title(w["plot_use"], fontsize=9)
    use.set_ylabel(w["minutes"], fontsize=8)
    use.tick_params(labelsize=7)
    if rooms:
        use.legend(fontsize=6, loc="upper right")
    starts = [0] * len(rooms)
    labels = [names.get(r, r) for r in rooms]
    for b, key in enumerate(("fine", "ventilate", "critical")):
        values = [week.band_totals(r)[b] for r in rooms]
        air.barh(
            labels,
            values,
            left=starts,
            color=_COLOURS[b],
            hatch=_HATCHES[b],
            edgecolor="white",
            label=w[key],
        )
        starts = [s + v for s, v in zip(starts, values, strict=True)]
    air.set_title(w["plot_air"], fontsize=9)
    air.set_xlabel(w["minutes"], fontsize=8)
    air.tick_params(labelsize=7)
    air.invert_yaxis()
    if rooms:
        air.legend(fontsize=6, loc="lower right")


def _table(
    fig: Figure, rect: tuple[float, float, float, float], header: list[str], rows: list[list[str]]
) -> None:
    ax = fig.add_axes(rect)
    ax.axis("off")
    if not rows:
        return
    table = ax.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.auto_set_column_width(list(range(len(header))))
    for (r, c), cell in table.get_celld().items():
        if r == 0:
            cell.set_text_props(weight="bold")
        if c == 0:
            cell.set_text_props(ha="left")


def _pages(week: SiteWeek, lang: Lang, names: dict[str, str], site_name: str) -> list[Figure]:
    w = WORDS[lang]
    vent_header, use_header = _headers(lang)
    pages = []
    fig = plt.figure(figsize=_A4)
    title = w["title"].format(site=site_name, week=f"{week.week:02d}", year=week.year)
    period = w["period"].format(first=f"{week.days[0]:%d.%m.%Y}", last=f"{week.days[-1]:%d.%m.%Y}")
    fig.text(0.06, 0.955, title, fontsize=15, weight="bold")
    fig.text(0.06, 0.935, period, fontsize=9)
    fig.text(0.06, 0.905, w["summary"], fontsize=11, weight="bold")
    y = 0.885
    for paragraph in summary(week, lang, names):
        for line in textwrap.wrap(paragraph, 110):
            fig.text(0.06, y, line, fontsize=8)
            y -= 0.014
        y -= 0.004
    _plots(fig, (0.08, y - 0.2, 0.86, 0.17), week, lang, names)
    y -= 0.25
    fig.text(0.06, y, w["ventilation"], fontsize=11, weight="bold")
    vent = ventilation_rows(week, lang, names)
    height = 0.022 * (len(vent) + 1)
    _table(fig, (0.06, y - height - 0.01, 0.88, height), vent_header, vent)
    y -= height + 0.04
    fig.text(0.06, y, w["usage"], fontsize=11, weight="bold")
    rows = usage_rows(week, lang, names)
    first, rest = rows[:_FIRST_ROWS], rows[_FIRST_ROWS:]
    height = min(0.018 * (len(first) + 1), y - 0.07)
    _table(fig, (0.06, y - height - 0.01, 0.88, height), use_header, first)
    if not week.rooms:
        fig.text(0.06, y - 0.03, w["no_data"], fontsize=9)
    fig.text(0.06, 0.03, w["footer"], fontsize=6)
    pages.append(fig)
    while rest:
        chunk, rest = rest[:_MORE_ROWS], rest[_MORE_ROWS:]
        more = plt.figure(figsize=_A4)
        more.text(0.06, 0.955, f"{title}: {w['usage']}", fontsize=12, weight="bold")
        height = 0.016 * (len(chunk) + 1)
        _table(more, (0.06, 0.93 - height, 0.88, height), use_header, chunk)
        pages.append(more)
    return pages


def render_pdf(
    weeks: Sequence[SiteWeek],
    path: Path,
    lang: Lang,
    names: dict[str, str],
    site_names: dict[str, str],
) -> None:
    """One page per site (a long daily table continues on the next), into ``path``."""
    with _style(), PdfPages(path, metadata={"Creator": "learnroom report"}) as pdf:
        for week in weeks:
            for fig in _pages(week, lang, names, site_names.get(week.site, week.site)):
                pdf.savefig(fig)
                plt.close(fig)


def _svg(week: SiteWeek, lang: Lang, names: dict[str, str]) -> str:
    with _style():
        fig = plt.figure(figsize=(8.0, 2.6))
        _plots(fig, (0.08, 0.15, 0.88, 0.72), week, lang, names)
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
        plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in header)
    body = "".join(
        "<tr>"
        + f'<th scope="row">{html.escape(r[0])}</th>'
        + "".join(f"<td>{html.escape(c)}</td>" for c in r[1:])
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(
    weeks: Sequence[SiteWeek],
    path: Path,
    lang: Lang,
    names: dict[str, str],
    site_names: dict[str, str],
) -> None:
    """The same content as one HTML file, plots as inline SVG with their text kept."""
    w = WORDS[lang]
    vent_header, use_header = _headers(lang)
    sections: list[str] = []
    titles: list[str] = []
    for week in weeks:
        site = site_names.get(week.site, week.site)
        title = w["title"].format(site=site, week=f"{week.week:02d}", year=week.year)
        titles.append(title)
        period = w["period"].format(
            first=f"{week.days[0]:%d.%m.%Y}", last=f"{week.days[-1]:%d.%m.%Y}"
        )
        parts: list[Any] = [
            f"<section><h1>{html.escape(title)}</h1><p>{html.escape(period)}</p>",
            f"<h2>{html.escape(w['summary'])}</h2>",
            *(f"<p>{html.escape(p)}</p>" for p in summary(week, lang, names)),
            f'<figure role="img" aria-label="{html.escape(w["plot_use"])}; '
            f'{html.escape(w["plot_air"])}">{_svg(week, lang, names)}</figure>',
            f"<h2>{html.escape(w['ventilation'])}</h2>",
            _html_table(vent_header, ventilation_rows(week, lang, names)),
            f"<h2>{html.escape(w['usage'])}</h2>",
            _html_table(use_header, usage_rows(week, lang, names)),
            f"<p><small>{html.escape(w['footer'])}</small></p></section>",
        ]
        sections.append("\n".join(parts))
    style = (
        "body{font-family:sans-serif;max-width:60rem;margin:auto;padding:1rem}"
        "table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #999;"
        "padding:.2rem .5rem;text-align:right}th[scope=row]{text-align:left}"
        "section{page-break-after:always}"
    )
    doc = (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{html.escape('; '.join(titles))}</title>"
        f"<style>{style}</style></head><body>{''.join(sections)}</body></html>"
    )
    path.write_text(doc, encoding="utf-8")
