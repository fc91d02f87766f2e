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


def case_label(row: dict) -> str:
    """A bar's name: the follower run's case, or the send-path run's topology and path."""
    if "case" in row:
        return f"{row['case']}\n{row['daemon']}"
    path = row.get("send_path") or row["daemon"]
    return f"{row['topology']} {row['instances']:,}\n{path}"


def bars(ax, rows: list[dict], keys: list[tuple[str, str]], ylabel: str, title: str,
         mark: str | None = None) -> None:
    """Grouped bars, one group per case; a case without a figure shows "-".
    mark: a figure drawn as a black tick across each group (Master_Down_Interval)."""
    width = 0.8 / len(keys)
    colours = ["tab:blue", "tab:orange", "tab:green"]
    for i, (key, name) in enumerate(keys):
        xs = [n + (i - (len(keys) - 1) / 2) * width for n in range(len(rows))]
        values = [r.get(key) for r in rows]
        drawn = ax.bar(xs, [v or 0 for v in values], width, label=name, color=colours[i % 3])
        ax.bar_label(drawn, labels=["-" if v is None else f"{v:.3g}" for v in values],
                     fontsize="x-small", padding=2)
    if mark:
        ticks = [(n, r[mark]) for n, r in enumerate(rows) if r.get(mark) is not None]
        ax.scatter([n for n, _ in ticks], [v for _, v in ticks], marker="_", s=900,
                   color="black", label="Master_Down_Interval", zorder=3)
    ax.set_xticks(range(len(rows)), [case_label(r) for r in rows], fontsize="small")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")


def draw_cases(summaries: list[tuple[str, list[dict]]], out_dir: Path) -> list[str]:
    """cases_cpu.png and cases_failover.png: for every (title, medians) of the
    follower and send-path runs, the master's and backup's CPU, and the
    seconds from SIGKILL to the first and to every VIP on the peer."""
    summaries = [(title, rows) for title, rows in summaries if rows]
    if not summaries:
        return []
    figures = (
        ("cases_cpu.png", [("master_cpu_percent", "master"), ("backup_cpu_percent", "backup")],
         "% of one core", "steady CPU", None),
        ("cases_failover.png", [("kill_first_vip_s", "first VIP"),
                                ("kill_all_vips_s", "every VIP")],
         "s after SIGKILL of the master", "VIPs on the peer", "master_down_interval_s"),
    )
    written = []
    for name, keys, ylabel, what, mark in figures:
        fig, axes = plt.subplots(1, len(summaries), squeeze=False,
                                 figsize=(max(6, 1.6 * max(len(r) for _, r in summaries))
                                          * len(summaries), 4.5))
        for ax, (title, rows) in zip(axes[0], summaries):
            bars(ax, rows, keys, ylabel, f"{title}: {what}", mark)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        written.append(name)
    return written
