"""Medians over rounds and within-round ratios of the case benchmarks
(bench/follow.py, bench/sendpath.py): pure, so their report is testable."""

from __future__ import annotations

import statistics

FIGURES = ("start_s", "master_cpu_percent", "backup_cpu_percent", "master_rss_mib",
           "backup_rss_mib", "master_pps", "kill_first_vip_s", "kill_all_vips_s",
           "kill_ping_gap_max_ms", "kill_ping_gap_median_ms")


def case_of(run: dict, keys: tuple[str, ...]) -> tuple:
    return tuple(run.get(k) for k in keys)


def medians(runs: list[dict], keys: tuple[str, ...], figures: tuple[str, ...] = FIGURES,
            ) -> list[dict]:
    """One row per case (the values of `keys`), in order of first appearance:
    the median of each figure over the rounds that have it, how many rounds
    ran and how many gave every figure, and the notes of the others."""
    order: list[tuple] = []
    grouped: dict[tuple, list[dict]] = {}
    for run in runs:
        case = case_of(run, keys)
        if case not in grouped:
            order.append(case)
        grouped.setdefault(case, []).append(run)
    rows = []
    for case in order:
        group = grouped[case]
        row = dict(zip(keys, case))
        for key in ("master_down_interval_s",):
            if group[0].get(key) is not None:
                row[key] = group[0][key]
        for figure in figures:
            values = [r[figure] for r in group if r.get(figure) is not None]
            row[figure] = statistics.median(values) if values else None
        row["rounds"] = len(group)
        row["complete"] = sum(1 for r in group if r.get("kill_all_vips_s") is not None
                              and not r.get("note"))
        notes = sorted({r["note"] for r in group if r.get("note")})
        if notes:
            row["note"] = "; ".join(notes)
        rows.append(row)
    return rows


def round_ratios(runs: list[dict], keys: tuple[str, ...], over: tuple, under: tuple,
                 figure: str) -> list[float]:
    """figure(case `over`) / figure(case `under`) within each round that has
    both, in round order."""
    by_round: dict[int, dict[tuple, dict]] = {}
    for run in runs:
        by_round.setdefault(run.get("round", 0), {})[case_of(run, keys)] = run
    out = []
    for _, cases in sorted(by_round.items()):
        a, b = cases.get(over, {}).get(figure), cases.get(under, {}).get(figure)
        if a is not None and b:
            out.append(round(a / b, 3))
    return out


def ratio_summary(ratios: list[float]) -> dict:
    return {"median": statistics.median(ratios) if ratios else None, "rounds": ratios}


def text_table(rows: list[dict], columns: tuple) -> list[str]:
    """The rows under (title, key, alignment) columns, the note last and unpadded."""
    def cell(value) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    out = [" ".join(f"{title:{align}}" for title, _, align in columns)]
    for row in rows:
        out.append(" ".join(f"{cell(row.get(key)):{align}}" if key != "note"
                            else row.get("note", "") for _, key, align in columns))
    return out
