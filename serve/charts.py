"""The dashboard's charts, drawn on the server as SVG with matplotlib: nothing from a CDN, no script in the page.

    weekly_svg(stats)                  contamination and confirmed rate per ISO week (lines)
    bars_svg(title, rows)              the same two rates per district, route, fraction or truck (horizontal bars)

matplotlib's object-oriented API (a `Figure` of its own, no pyplot) keeps no
global state, so charts can be drawn in the thread pool side by side. Text
stays text in the SVG (svg.fonttype none: the browser's font, and a smaller
file); svg.hashsalt fixes the ids inside it, so the same numbers give the same
bytes. matplotlib is imported on first use: the truck API never pays for it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from serve.statistics import Counts, Statistics

RATE_COLOUR = "#d1302f"  # --contaminant in binsight.css
CONFIRMED_COLOUR = "#1f6f5c"  # --accent
INK, MUTED, LINE = "#1d2428", "#5b676e", "#d7dde0"
MAX_BARS = 25
SVG_STYLE = {
    "svg.fonttype": "none", "svg.hashsalt": "binsight", "font.family": ["DejaVu Sans", "sans-serif"],
    "font.size": 10, "axes.edgecolor": LINE, "axes.labelcolor": MUTED, "xtick.color": MUTED, "ytick.color": MUTED,
    "text.color": INK, "axes.titleweight": "bold", "axes.titlesize": 11, "axes.titlelocation": "left",
}  # fmt: skip


def _svg(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})  # no creation date: the same numbers, the same bytes
    return buf.getvalue()


def _percent_axis(axis) -> None:
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(1.0, decimals=0))


def _empty(ax, text: str = "no usable inspections in this range") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", color=MUTED, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def weekly_svg(stats: Statistics) -> bytes:
    import matplotlib
    from matplotlib.figure import Figure

    weeks = [(w, c) for w, c in sorted(stats.by_week.items()) if c.usable]
    with matplotlib.rc_context(SVG_STYLE):
        # Sized for the page's full width (about 1140 px at 96 px per inch), so its text shows at the page's size.
        fig = Figure(figsize=(11.6, 3.0), layout="constrained")
        ax = fig.subplots()
        ax.set_title("Contamination rate per ISO week")
        if not weeks:
            _empty(ax)
            return _svg(fig)
        x = range(len(weeks))
        ax.plot(x, [c.rate for _, c in weeks], color=RATE_COLOUR, marker="o", markersize=3.5, linewidth=2, label="model verdict")
        ax.plot(x, [c.confirmed_rate for _, c in weeks], color=CONFIRMED_COLOUR, marker="s", markersize=3.5, linewidth=2,
                label="confirmed by review")  # fmt: skip
        step = max(1, len(weeks) // 16)  # at most about 16 labels: a year of weeks stays readable
        ax.set_xticks(list(x)[::step], week_ticks([w for w, _ in weeks])[::step])
        ax.set_ylim(bottom=0)
        _percent_axis(ax.yaxis)
        ax.grid(axis="y", color=LINE, linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
        fig.legend(frameon=False, loc="outside upper right", ncols=2)
        return _svg(fig)


def week_ticks(weeks: Sequence[str]) -> list[str]:
    """'W47' for each ISO week label, with the year on the first and wherever a new year begins ('2027-W01')."""
    ticks, year = [], None
    for label in weeks:
        this_year, week = label.split("-")
        ticks.append(label if this_year != year else week)
        year = this_year
    return ticks


def bars_svg(title: str, rows: Sequence[tuple[str, Counts]]) -> bytes:
    """Both rates per row (district, route, fraction, truck), the highest rate on top; at most MAX_BARS rows."""
    import matplotlib
    from matplotlib.figure import Figure

    shown = sorted(((label, c) for label, c in rows if c.usable), key=lambda lc: (-(lc[1].rate or 0), lc[0]))[:MAX_BARS]
    height = 1.3 + 0.36 * max(len(shown), 2)
    with matplotlib.rc_context(SVG_STYLE):
        fig = Figure(figsize=(5.6, height), layout="constrained")  # half the page's width (two per row: four bar charts): about 550 px
        ax = fig.subplots()
        ax.set_title(title)
        if not shown:
            _empty(ax)
            return _svg(fig)
        y = [i for i in range(len(shown))][::-1]
        ax.barh([v + 0.2 for v in y], [c.rate for _, c in shown], height=0.38, color=RATE_COLOUR, label="model verdict")
        ax.barh([v - 0.2 for v in y], [c.confirmed_rate for _, c in shown], height=0.38, color=CONFIRMED_COLOUR, label="confirmed")
        ax.set_yticks(y, [label for label, _ in shown])
        ax.set_xlim(left=0)
        _percent_axis(ax.xaxis)
        ax.grid(axis="x", color=LINE, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
        fig.legend(frameon=False, loc="outside lower center", ncols=2, fontsize=9)
        return _svg(fig)
