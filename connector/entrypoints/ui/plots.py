"""The dashboard's plots, drawn on the server with matplotlib as inline SVG: the page loads
nothing and runs no script (the pages' Content-Security-Policy), and a figure reads the same
in any browser. `Figure` objects are used directly (no pyplot): no global state between the
requests of several threads."""

from __future__ import annotations

import io

import matplotlib
from matplotlib.figure import Figure

matplotlib.use("svg")

BLUE, GREEN, ORANGE, RED, GREY = "#234a7a", "#3a8f55", "#d08a1e", "#b03030", "#8a94a3"
SIZE = (5.2, 2.9)  # inches at 72 dpi in SVG: about 375 x 210 px


def _svg(fig: Figure) -> str:
    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "telederm"}):
        fig.savefig(out, format="svg", bbox_inches="tight")
    text = out.getvalue()
    return text[text.index("<svg"):]  # inline: no XML prolog or DOCTYPE


def _axes(title: str):
    fig = Figure(figsize=SIZE)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    return fig, ax


def bars(title: str, labels: list[str], values: list[float], *, color: str = BLUE,
         percent: bool = False, colors: list[str] | None = None) -> str:
    """A bar chart as SVG, each bar labelled with its value."""
    fig, ax = _axes(title)
    heights = [v * 100 for v in values] if percent else values
    drawn = ax.bar(range(len(labels)), heights, color=colors or color)
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 5 else 0,
                  ha="right" if len(labels) > 5 else "center")
    ax.bar_label(drawn, labels=[f"{h:.0f} %" if percent else f"{h:g}" for h in heights],
                 fontsize=7)
    if percent:
        ax.set_ylim(0, 100)
    return _svg(fig)


def dashboard_plots(figures: dict, t: dict) -> dict[str, str]:
    """The four plots of `/ui/dashboard` from `statistics.figures`, titled in the page's
    language (`t`, the labels): turnaround distribution, weekly volume, outcomes, SLA."""
    histogram = figures["turnaround_histogram"]
    weeks = figures["volumes"]["requests_per_week"]
    outcomes = figures["outcomes"]
    conducts = outcomes["by_conduct"]
    sla = {k: v for k, v in figures["turnaround_hours"].items() if v["answered"]}
    targets = [k for k in next(iter(sla.values()), {}) if k.startswith("within_")]
    priority_names = t["priority"]
    out = {
        "turnaround": bars(t["plot_turnaround"], list(histogram), list(histogram.values())),
        "weekly": bars(t["plot_weekly"], list(weeks), list(weeks.values()), color=GREEN),
        "outcomes": bars(t["plot_outcomes"], [*conducts, t["refused"]],
                         [*conducts.values(), outcomes["refused"]],
                         colors=[ORANGE] * len(conducts) + [RED]),
    }
    labels, values, colors = [], [], []
    for name, entry in sla.items():
        for target, color in zip(targets, (BLUE, GREY, GREEN)):
            labels.append(f"{priority_names.get(name, t['all_priorities'] if name == 'all' else name)}"
                          f" ≤ {target[len('within_'):]}")
            values.append(entry[target] or 0)
            colors.append(color)
    out["sla"] = bars(t["plot_sla"], labels, values, percent=True, colors=colors)
    return out
