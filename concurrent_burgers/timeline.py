"""Draw an :class:`~concurrent_burgers.testing.EventLog` as a Gantt-style timeline.

One row per actor (``who``), one bar per span, one colour per thread or process, so
a learner sees at a glance what overlapped and who ran it. The same chart is used in
every notebook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from concurrent_burgers.testing import EventLog


def plot(log: EventLog, title: str = "", color_by: str = "thread", width: float = 9.0) -> Figure:
    """Return a matplotlib figure of ``log``: rows are actors, bars are spans.

    ``color_by`` is ``"thread"``, ``"process"`` or ``"who"``. Instants (zero-length
    events) are drawn as diamonds. The figure is returned, so a notebook shows it.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    events = sorted(log.events, key=lambda e: e.start)
    actors: list[str] = []
    for event in events:
        if event.who not in actors:
            actors.append(event.who)
    colour_keys: list[Any] = []
    for event in events:
        key = _colour_key(event, color_by)
        if key not in colour_keys:
            colour_keys.append(key)

    fig = Figure(figsize=(width, 0.6 * len(actors) + 1.4), layout="constrained")
    ax = fig.subplots()
    palette = [f"C{i % 10}" for i in range(len(colour_keys))]
    colours = dict(zip(colour_keys, palette, strict=True))
    end = max((e.end for e in events), default=1.0) or 1.0
    for event in events:
        row = actors.index(event.who)
        colour = colours[_colour_key(event, color_by)]
        if event.end > event.start:
            ax.barh(
                row,
                event.end - event.start,
                left=event.start,
                height=0.6,
                color=colour,
                edgecolor="black",
                linewidth=0.5,
                alpha=0.85,
            )
            if event.end - event.start > end / 25:
                ax.text(
                    (event.start + event.end) / 2,
                    row,
                    event.what,
                    ha="center",
                    va="center",
                    fontsize=8,
                    clip_on=True,
                )
        else:
            ax.plot(event.start, row, marker="D", color=colour, markeredgecolor="black")
            ax.annotate(
                event.what,
                (event.start, row),
                xytext=(0, 9),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    ax.set_yticks(range(len(actors)), actors)
    ax.invert_yaxis()
    ax.set_xlim(0, end * 1.03)
    ax.set_xlabel("seconds since the start")
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title)
    _show_figures_in_notebooks()
    if len(colour_keys) > 1:
        legend = [Patch(color=colours[k], label=_colour_label(k, color_by)) for k in colour_keys]
        ax.legend(
            handles=legend,
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
            fontsize=8,
            title=color_by,
            title_fontsize=8,
        )
    return fig


def _colour_key(event: Any, color_by: str) -> Any:
    return {"thread": (event.process, event.thread), "process": event.process, "who": event.who}[
        color_by
    ]


def _colour_label(key: Any, color_by: str) -> str:
    if color_by == "thread":
        return f"{key[1]} (pid {key[0]})"
    if color_by == "process":
        return f"pid {key}"
    return str(key)


def _show_figures_in_notebooks() -> None:
    """Let IPython draw a bare matplotlib Figure as a PNG (pyplot usually arranges that)."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
        from matplotlib.figure import Figure
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    png = shell.display_formatter.formatters["image/png"]
    png.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))
