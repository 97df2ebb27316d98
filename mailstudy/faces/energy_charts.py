"""Notebook 07's charts with the tables behind them: joules per day by state, and staleness against joules.

Why a module of its own: a chart is a face over a sweep (as :mod:`mailstudy.faces.charts`); the notebook calls
:func:`energy` so that no logic lives in it, and every figure has its table beside it under ``data/``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from mailstudy.energy.ledger import CATEGORIES
from mailstudy.faces.plots import save_figure
from mailstudy.faces.radio import COLORS
from mailstudy.outputs import data_dir
from mailstudy.study.experiment import write_csv_atomically

RADIO_MARKERS = {"lte": "o", "3g": "s", "wifi": "^"}


def joules_per_day_chart(summary, title: str):
    """Stacked bars per setting (promotion, transfer, tail, idle; per day), one panel per radio, with the
    95 % bootstrap interval of the total's median over seeds as an error bar."""
    radios = list(dict.fromkeys(summary["radio"]))
    fig, axes = plt.subplots(1, len(radios), figsize=(5.2 * len(radios), 4.8), squeeze=False)
    for ax, radio in zip(axes[0], radios):
        s = summary[summary["radio"] == radio].reset_index(drop=True)
        scale = s["joules_per_day"] / (s[[f"{c}_j" for c in CATEGORIES]].sum(axis=1))
        bottom = [0.0] * len(s)
        for c in CATEGORIES:
            vals = (s[f"{c}_j"] * scale).tolist()
            ax.bar(range(len(s)), vals, bottom=bottom, color=COLORS[c], label=c)
            bottom = [b + v for b, v in zip(bottom, vals)]
        err = [(s["joules_per_day"] - s["joules_per_day_lo"]).tolist(),
               (s["joules_per_day_hi"] - s["joules_per_day"]).tolist()]
        ax.errorbar(range(len(s)), s["joules_per_day"], yerr=err, fmt="none", ecolor="#222222", capsize=4)
        for i, row in s.iterrows():
            ax.text(i, row["joules_per_day_hi"], f"{row['joules_per_day']:,.0f} J\ntail {row['tail_share']:.0%}",
                    ha="center", va="bottom", fontsize=7.5)
        ax.set_xticks(range(len(s)))
        ax.set_xticklabels(s["setting"], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("joules per day (radio)")
        ax.set_title(radio, fontsize=10)
        ax.set_ylim(top=max(s["joules_per_day_hi"]) * 1.25)
    axes[0][0].legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def tradeoff_chart(summary, title: str):
    """Staleness (minutes until a new message is shown, median) against joules per day, one point per setting
    and radio, with the ranges over seeds as error bars: the picture a user chooses a setting from."""
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    for radio, s in summary.groupby("radio", sort=False):
        x = s["staleness_median_s"] / 60
        xerr = [x - s["staleness_median_s_lo"] / 60, s["staleness_median_s_hi"] / 60 - x]
        yerr = [s["joules_per_day"] - s["joules_per_day_lo"], s["joules_per_day_hi"] - s["joules_per_day"]]
        ax.errorbar(x, s["joules_per_day"], xerr=xerr, yerr=yerr, fmt=RADIO_MARKERS.get(radio, "D"), capsize=3,
                    label=radio, markersize=7)
        at: dict[tuple, list[str]] = {}  # settings that land on one point share one label
        for xi, yi, label in zip(x, s["joules_per_day"], s["setting"]):
            at.setdefault((round(xi, 1), round(yi, -1)), []).append(label)
        for (xi, yi), labels in at.items():
            ax.annotate(" / ".join(labels), (xi, yi), textcoords="offset points", xytext=(6, 4), fontsize=7.5)
    ax.set_yscale("log")
    ax.set_xlabel("staleness: minutes until a new message is shown (median)")
    ax.set_ylabel("joules per day (radio, log scale)")
    ax.legend(title="radio", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def energy(settings=None, seeds=(0, 1, 2), hours: float = 24.0, rate: float = 100.0, server: str = "embedded",
           results: Path | None = None, figures: Path | None = None, progress=None, cache_dir=None) -> dict:
    """Notebook 07's tables and charts: rows per setting, seed and radio; the summary with intervals over seeds;
    ``energy_per_day.png`` and ``energy_tradeoff.png``. Returns a dict of frames and paths. ``cache_dir``: the
    fleet cache the device days are kept in (:func:`mailstudy.study.energy.fleet_day`)."""
    from mailstudy.study.energy import STANDARD_SETTINGS, energy_day_rows, summarize

    results, figures = Path(results or data_dir("results")), Path(figures or data_dir("figures"))
    rows = energy_day_rows(settings or STANDARD_SETTINGS, seeds, hours, rate, server, progress=progress,
                           cache_dir=cache_dir)
    summary = summarize(rows)
    what = f"one device, {hours:g} h, {rate:g} messages/day, {len(list(seeds))} seeds, {server}"
    out = {"rows": rows, "summary": summary,
           "rows_csv": write_csv_atomically(rows, results / "energy_per_day_rows.csv"),
           "summary_csv": write_csv_atomically(summary, results / "energy_per_day.csv")}
    out["per_day_png"] = save_figure(joules_per_day_chart(
        summary, f"Radio joules per day by state, median of seeds with its 95 % interval ({what})"), "energy_per_day", figures)
    out["tradeoff_png"] = save_figure(tradeoff_chart(
        summary, f"Staleness against radio energy per day ({what})"), "energy_tradeoff", figures)
    plt.close("all")
    return out


def read_energy_chart(rows, radio: str, title: str):
    """Joules against the read fraction, one panel per protocol: header-first with the opens in the session
    and spread at the user's pace (medians over seeds, error bars their 95 % interval), download-all as a level
    line, break-evens marked (medians over seeds)."""
    from mailstudy.study.energy import energy_breakeven
    from mailstudy.study.intervals import summarize

    protocols = list(dict.fromkeys(rows["protocol"]))
    fig, axes = plt.subplots(1, len(protocols), figsize=(6 * len(protocols), 4.4), squeeze=False)
    r = rows[rows["radio"] == radio]
    for ax, protocol in zip(axes[0], protocols):
        p = r[r["protocol"] == protocol]
        hf = summarize(p[p["strategy"] == "header-first"], ["read_fraction"], ["joules_together", "joules_spread"])
        think = int(p["think_s"].iloc[0])
        for col, label, colour in (("joules_together", "header-first, opens in the session", "#1f5fa8"),
                                   ("joules_spread", f"header-first, one open every {think} s", "#d9480f")):
            ax.errorbar(hf["read_fraction"], hf[col], yerr=[hf[col] - hf[f"{col}_lo"], hf[f"{col}_hi"] - hf[col]],
                        marker="o", color=colour, capsize=3, label=label)
        da = p[p["strategy"] == "download-all"]["joules_together"]
        ax.axhline(da.median(), color="#2e7d32", linestyle="--", label="download-all (reading after: no radio)")
        for col, colour in (("joules_together", "#1f5fa8"), ("joules_spread", "#d9480f")):
            even = energy_breakeven(rows, protocol, radio, col)
            if even is not None:
                ax.axvline(even, color=colour, linestyle=":", linewidth=1)
                ax.annotate(f" break-even {even:.2f}", (even, 1.0), xycoords=("data", "axes fraction"),
                            color=colour, fontsize=8, va="top", rotation=90)
        ax.set_yscale("log")
        ax.set_xlabel("read fraction (share of messages opened)")
        ax.set_ylabel(f"radio joules ({radio}, log scale)")
        ax.set_title(protocol.upper(), fontsize=10)
        ax.legend(fontsize=7.5, loc="center right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def read_energy(fractions=(0.0, 0.1, 0.25, 0.5, 1.0), messages: int = 50, profile: str = "lte-2012",
                seeds=(0,), think_s: float = 60.0, server: str = "embedded", radio: str = "lte",
                results: Path | None = None, figures: Path | None = None, workers: int = 1) -> dict:
    """Notebook 07's read-fraction question: rows, break-evens per protocol and radio, ``energy_read_fraction.png``;
    the sessions run ``workers`` at a time (:func:`mailstudy.study.energy.read_energy_rows`)."""
    import pandas as pd

    from mailstudy.study.energy import energy_breakeven, read_energy_rows
    from mailstudy.study.experiment import count_executor

    results, figures = Path(results or data_dir("results")), Path(figures or data_dir("figures"))
    with count_executor(workers) as pool:
        rows = read_energy_rows(fractions, messages, profile=profile, seeds=seeds, think_s=think_s, server=server,
                                executor=pool)
    evens = pd.DataFrame([{"protocol": p, "radio": r, "breakeven_together": energy_breakeven(rows, p, r),
                           "breakeven_spread": energy_breakeven(rows, p, r, "joules_spread")}
                          for p in dict.fromkeys(rows["protocol"]) for r in dict.fromkeys(rows["radio"])])
    out = {"rows": rows, "breakeven": evens,
           "rows_csv": write_csv_atomically(rows, results / "energy_read_fraction.csv"),
           "breakeven_csv": write_csv_atomically(evens, results / "energy_breakeven.csv")}
    out["png"] = save_figure(read_energy_chart(
        rows, radio, f"Radio joules of reading {messages} messages on {profile} ({radio}), median and 95 % interval over "
                     f"{len(list(seeds))} seed(s)"), "energy_read_fraction", figures)
    plt.close("all")
    return out


def batching_chart(summary, title: str):
    """The batching what-if: per radio (one row each), per polling setting and batch size, the day's joules
    stacked by state (so the tail's share shows), labelled with the saving against the day as measured; each
    tick names the batch and the median staleness it buys."""
    radios = list(dict.fromkeys(summary["radio"]))
    fig, axes = plt.subplots(len(radios), 1, figsize=(15, 4.1 * len(radios)), squeeze=False)
    for ax, radio in zip(axes[:, 0], radios):
        s = summary[summary["radio"] == radio].reset_index(drop=True)
        settings = list(dict.fromkeys(s["setting"]))
        xs, ticks, x = [], [], 0.0
        for setting in settings:
            for _, row in s[s["setting"] == setting].iterrows():
                xs.append(x)
                stale = row["staleness_median_s"]
                ticks.append(("every poll" if row["batch"] == 0 else f"after {row['batch']:g}")
                             + ("" if stale != stale else f"\n{stale / 60:.0f} min"))
                x += 1
            ax.text(xs[-1] - (len(s[s["setting"] == setting]) - 1) / 2, 1.0, setting,
                    transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8.5, fontweight="bold")
            x += 0.8
        scale = s["joules_per_day"] / s[[f"{c}_j" for c in CATEGORIES]].sum(axis=1)
        bottom = [0.0] * len(s)
        for c in CATEGORIES:
            vals = (s[f"{c}_j"] * scale).tolist()
            ax.bar(xs, vals, bottom=bottom, color=COLORS[c], label=c, width=0.8)
            bottom = [b + v for b, v in zip(bottom, vals)]
        err = [(s["joules_per_day"] - s["joules_per_day_lo"]).tolist(),
               (s["joules_per_day_hi"] - s["joules_per_day"]).tolist()]
        ax.errorbar(xs, s["joules_per_day"], yerr=err, fmt="none", ecolor="#222222", capsize=2)
        for xi, (_, row) in zip(xs, s.iterrows()):
            label = (f"tail {row['tail_share']:.0%}" if row["batch"] == 0 else
                     f"-{row['saving']:.0%}" if row["saving"] >= 0.005 else "same")
            ax.text(xi, row["joules_per_day_hi"], label, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(xs)
        ax.set_xticklabels(ticks, fontsize=7)
        ax.set_ylabel(f"{radio}: joules per day")
        ax.set_ylim(top=max(s["joules_per_day_hi"]) * 1.32)
        ax.legend(fontsize=7.5, loc="upper right", ncol=4, framealpha=0.95)
    axes[-1][0].set_xlabel("fetch on every poll (the day as measured) or only on the first poll after N new "
                           "arrivals; under each: the median minutes from arrival to fetch")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def batching(settings=None, seeds=(0, 1, 2), hours: float = 24.0, rate: float = 100.0, server: str = "embedded",
             batches=None, results: Path | None = None, figures: Path | None = None, progress=None,
             cache_dir=None) -> dict:
    """Notebook 07's batching what-if: rows, the summary and ``energy_batching.png`` (``cache_dir``: as
    :func:`energy`'s)."""
    from mailstudy.study.energy import BATCHES, STANDARD_SETTINGS, batching_rows, summarize_batching

    results, figures = Path(results or data_dir("results")), Path(figures or data_dir("figures"))
    rows = batching_rows(settings or STANDARD_SETTINGS, seeds, hours, rate, server, batches=batches or BATCHES,
                         progress=progress, cache_dir=cache_dir)
    summary = summarize_batching(rows)
    what = f"one device, {hours:g} h, {rate:g} messages/day, {len(list(seeds))} seeds, {server}"
    out = {"rows": rows, "summary": summary,
           "rows_csv": write_csv_atomically(rows, results / "energy_batching_rows.csv"),
           "summary_csv": write_csv_atomically(summary, results / "energy_batching.csv")}
    out["png"] = save_figure(batching_chart(
        summary, f"Batching what-if: radio joules per day by state, fetching on every poll or on the first poll "
                 f"after N arrivals; labels: the tail's share, then the saving\n({what}; ours: the phone learns "
                 "of arrivals without its radio, so this bounds what batching could save)"),
        "energy_batching", figures)
    plt.close("all")
    return out
