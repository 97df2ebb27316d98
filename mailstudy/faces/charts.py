"""The study's charts with the tables behind them: each function runs its sweep, writes the CSV and the PNG.

Why a module of its own: a chart is a face over a sweep; the notebooks call these so that no logic lives in a
notebook, and every figure has its table beside it under ``data/``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mailstudy.faces.plots import save_figure
from mailstudy.outputs import data_dir
from mailstudy.study.experiment import Experiment, write_csv_atomically



def traffic_volume(servers: list[str], message_counts, fractions, read_messages: int, sizes: str = "buchner2009",
                   seed: int = 0, results: Path | None = None, figures: Path | None = None, cache_dir=None):
    """Notebook 01's three charts and their tables: bytes up/down against mailbox size, bytes against the read
    fraction with the measured break-even, and the overhead share. Returns a dict of frames and paths."""
    from mailstudy.faces.plots import bytes_up_and_down, bytes_vs_read_fraction, overhead_share
    from mailstudy.study.volume import measured_breakeven, read_fraction_sweep, volume_sweep, with_overhead

    what = f"{sizes}, seed {seed}"
    results, figures = results or data_dir("results"), figures or data_dir("figures")
    volume = with_overhead(volume_sweep(servers, message_counts, sizes, seed, cache_dir))
    out = {"volume": volume, "volume_csv": write_csv_atomically(volume, Path(results) / "traffic_volume.csv")}
    out["volume_png"] = save_figure(bytes_up_and_down(
        volume, conditions=f"{what}; read fraction 0; loopback"), "traffic_volume_up_down", figures)
    out["overhead_png"] = save_figure(overhead_share(
        volume[volume["server"] == servers[0]], conditions=f"{what}; server {servers[0]}"),
        "traffic_volume_overhead", figures)
    base = Experiment(server=servers[0], messages=read_messages, sizes=sizes, seed=seed)
    reads = read_fraction_sweep(base, fractions, cache_dir)
    even = measured_breakeven(reads)
    out.update(reads=reads, breakeven=even,
               reads_csv=write_csv_atomically(reads, Path(results) / "bytes_vs_read_fraction.csv"))
    out["reads_png"] = save_figure(bytes_vs_read_fraction(
        reads, even, conditions=f"{read_messages} messages, {what}; server {servers[0]}; loopback"),
        "bytes_vs_read_fraction", figures)
    return out


def round_trips_and_latency(server: str, profiles_measured, profiles_modelled, messages: int, read_fraction: float,
                            repeats: int, sizes: str = "buchner2009", seed: int = 0, results: Path | None = None,
                            figures: Path | None = None, cache_dir=None, conditions: str = "realistic") -> dict:
    """Notebook 03's five charts and their tables (see :mod:`mailstudy.study.latency`); a dict of frames and
    paths. Measured cells go through the link; modelled ones take the baseline sessions' counts and work and the
    model's times. All run on the network ``conditions`` (:mod:`mailstudy.study.network`: realistic, the
    default, or control)."""
    from mailstudy.faces.latency_charts import (breakeven_chart, list_and_open_bars, model_vs_measured_scatter,
                                                pipelining_chart, waiting_vs_rtt)
    from mailstudy.study import latency, link_sweeps
    from mailstudy.study.modelled import breakeven_rows

    base = Experiment(server=server, messages=messages, sizes=sizes, seed=seed, read_fraction=read_fraction,
                      repeats=repeats)
    from mailstudy.study.network import conditions as network_conditions

    net = network_conditions(conditions)
    what = f"{messages} messages, {sizes}, read fraction {read_fraction}, seed {seed}, {server}; {net.describe()}"
    results, figures = results or data_dir("results"), figures or data_dir("figures")
    out: dict = {}
    measured = latency.measured(base, profiles_measured, cache_dir, conditions=net)
    modelled_same = latency.modelled(base, profiles_measured, net)
    versus = latency.model_vs_measured(measured, modelled_same)
    # like with like: RTT moved at 4g's bandwidth, bandwidth moved at 4g's RTT (mailstudy.study.link_sweeps)
    by_rtt, by_rate = link_sweeps.rtt_sweep(), link_sweeps.bandwidth_sweep()
    swept = latency.modelled(base, by_rtt + by_rate, net)
    rtt_sweep, rate_sweep = _split_sweeps(swept, by_rtt, by_rate)
    pipe = latency.pipelining_and_batching(base, profiles_measured, net)
    even = latency.breakeven_table(base, latency.profiles_by_rtt(profiles_modelled), net)
    even_swept = pd.DataFrame(breakeven_rows(base, by_rtt + by_rate, conditions=net))
    even_rtt, even_rate = _split_sweeps(even_swept, by_rtt, by_rate)
    for name, df in (("latency_measured", measured), ("model_vs_measured", versus), ("waiting_vs_rtt", rtt_sweep),
                     ("waiting_vs_bandwidth", rate_sweep), ("pipelining_batching", pipe),
                     ("breakeven_per_profile", even), ("breakeven_vs_rtt", even_rtt),
                     ("breakeven_vs_bandwidth", even_rate)):
        out[name] = df
        out[f"{name}_csv"] = write_csv_atomically(df, Path(results) / f"{name}.csv")
    runs = f"{repeats} run{'s' if repeats != 1 else ''} each"
    out["bars_png"] = save_figure(list_and_open_bars(measured, conditions=f"through the link; {what}; {runs}"),
                                  "latency_list_open", figures)
    out["scatter_png"] = save_figure(model_vs_measured_scatter(versus, conditions=what),
                                     "latency_model_vs_measured", figures)
    out["rtt_png"] = save_figure(waiting_vs_rtt(rtt_sweep, rate_sweep, conditions=f"model; {what}"),
                                 "latency_waiting_vs_rtt", figures)
    out["pipelining_png"] = save_figure(pipelining_chart(
        pipe, conditions=f"round trips counted, times modelled; {what}"), "latency_pipelining_batching", figures)
    out["breakeven_png"] = save_figure(breakeven_chart(
        even, {"rtt": even_rtt, "bandwidth": even_rate},
        conditions=f"model; {messages} messages, {sizes}, seed {seed}, {server}; {net.describe()}"),
        "latency_breakeven", figures)
    return out


def _split_sweeps(df, by_rtt, by_rate):
    """The rows of one run over ``by_rtt + by_rate`` split back into the RTT sweep and the bandwidth sweep
    (the rows come per experiment, in the profiles' order within each)."""
    every = by_rtt + by_rate
    position = [i % len(every) for i in range(len(df))]
    df = df.assign(rtt_s=[every[p].rtt_s for p in position], down_bps=[every[p].down_bps for p in position],
                   up_bps=[every[p].up_bps for p in position])  # break-even rows do not carry them
    first = [p < len(by_rtt) for p in position]
    return df[first].reset_index(drop=True), df[[not f for f in first]].reset_index(drop=True)


def devices(servers, clients, device_counts, hours: float, rate: float, loss_clients, condstore_counts,
            seed: int = 0, results: Path | None = None, figures: Path | None = None, cache_dir=None) -> dict:
    """Notebook 04's four charts and their tables (see :mod:`mailstudy.study.device_counts`)."""
    from mailstudy.faces.device_charts import (bytes_per_day_vs_devices, condstore_chart, device_agreement,
                                               losses_chart)
    from mailstudy.study import device_counts as dc

    what = f"{hours:g} h simulated, {rate:g} new messages/day, seed {seed}, loopback"
    results, figures = results or data_dir("results"), figures or data_dir("figures")
    out: dict = {}
    sweep_tables = dc.run(dc.device_count_cells(servers, clients, device_counts, hours, rate, seed), cache_dir)
    loss = dc.run(dc.loss_cells(servers[0], loss_clients, max(device_counts), hours, rate, seed), cache_dir)
    from mailstudy.servers import available_servers

    # Dovecot offers CONDSTORE, the embedded server does not: use it whenever it is installed
    cond_server = "dovecot" if "dovecot" in available_servers() else servers[0]
    cond = dc.run(dc.condstore_cells(cond_server, condstore_counts, hours, seed), cache_dir)
    for name, df in (("devices_fleet", sweep_tables["fleet"]), ("devices_per_device", sweep_tables["devices"]),
                     ("devices_losses", loss["fleet"]), ("devices_condstore", cond["fleet"])):
        out[name] = df
        out[f"{name}_csv"] = write_csv_atomically(df, Path(results) / f"{name}.csv")
    fleet = sweep_tables["fleet"]
    out["bytes_png"] = save_figure(bytes_per_day_vs_devices(fleet, conditions=what), "devices_bytes_per_day",
                                   figures)
    first = fleet[fleet["server"] == servers[0]]
    out["agreement_png"] = save_figure(device_agreement(first, conditions=f"{what}; server {servers[0]}"),
                                       "devices_agreement", figures)
    out["losses_png"] = save_figure(losses_chart(
        loss["fleet"], conditions=f"POP3 delete and a lost device; {max(device_counts)} devices, {what}; "
                                  f"server {servers[0]}"), "devices_losses", figures)
    offered = bool(cond["fleet"]["condstore_offered"].any()) if "condstore_offered" in cond["fleet"] else False
    out["condstore_png"] = save_figure(condstore_chart(
        cond["fleet"], conditions=f"no new mail; {hours:g} h, neomutt x2, polls every 15 min, seed {seed}; "
                                  f"server {cond_server}{'' if offered else ', CONDSTORE not offered'}"),
        "devices_condstore", figures)
    return out
