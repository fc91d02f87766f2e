"""PNG plots of the end-to-end runs: CPU, failover time and RSS against N,
hivrrp beside keepalived (matplotlib: `pip install '.[bench]'`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")      # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

STYLE = {"hivrrp": {"color": "tab:blue", "marker": "o"},
         "keepalived": {"color": "tab:red", "marker": "s"}}


def series(runs: list[dict], key: str) -> dict[tuple[str, str], tuple[list[int], list[float]]]:
    """(daemon, mode) -> (N values, figures), sizes without a figure left out."""
    out: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for r in sorted(runs, key=lambda r: r["instances"]):
        value = r.get(key)
        if value is None or value <= 0:      # no figure, or none a log scale can show
            continue
        xs, ys = out.setdefault((r["daemon"], f"v{r['version']} {r['advert_int']:g} s"), ([], []))
        xs.append(r["instances"])
        ys.append(value)
    return out


def panel(ax, runs: list[dict], key: str, title: str, ylabel: str, log_y: bool) -> None:
    modes = sorted({m for _, m in series(runs, key)})
    dashes = ["-", "--", ":", "-."]
    for (daemon, mode), (xs, ys) in sorted(series(runs, key).items()):
        ax.plot(xs, ys, linestyle=dashes[modes.index(mode) % len(dashes)],
                label=f"{daemon} {mode}", **STYLE.get(daemon, {}))
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    plain = ticker.FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("VRRP instances")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")


def draw(runs: list[dict], out_dir: Path) -> list[str]:
    """Writes cpu.png, failover.png and rss.png; returns their file names."""
    figures = (
        ("cpu.png", [("master_cpu_percent", "master", "% of one core"),
                     ("backup_cpu_percent", "backup", "% of one core")], True),
        ("failover.png", [("kill_failover_s", "SIGKILL of the master", "s until every VIP moved"),
                          ("term_failover_s", "SIGTERM of the master",
                           "s until every VIP moved")], True),
        ("rss.png", [("master_rss_mib", "master", "RSS MiB"),
                     ("backup_rss_mib", "backup", "RSS MiB")], False),
    )
    written = []
    for name, panels, log_y in figures:
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5))
        for ax, (key, title, ylabel) in zip(axes, panels):
            panel(ax, runs, key, title, ylabel, log_y)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        written.append(name)
    return written
