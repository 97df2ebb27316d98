"""The study's charts with the tables behind them: each function runs its sweep, writes the CSV and the PNG.

Why a module of its own: a chart is a face over a sweep; the notebooks call these so that no logic lives in a
notebook, and every figure has its table beside it under ``data/``.
"""

from __future__ import annotations

from pathlib import Path

from mailstudy.faces.plots import save_figure
from mailstudy.outputs import data_dir
from mailstudy.study.experiment import Experiment, write_csv_atomically



def traffic_volume(servers: list[str], message_counts, fractions, read_messages: int, sizes: str = "buchner2009",
                   seeds=(0,), results: Path | None = None, figures: Path | None = None, cache_dir=None,
                   executor=None):
    """Notebook 01's three charts and their tables: bytes up/down against mailbox size, bytes against the read
    fraction with the measured break-even, and the overhead share, each a median over ``seeds`` with its
    interval (:func:`mailstudy.study.volume.traffic_tables`). Returns a dict of frames and paths."""
    from mailstudy.faces.plots import bytes_up_and_down, bytes_vs_read_fraction, overhead_share
    from mailstudy.study.volume import traffic_tables

    seeds = list(seeds)
    what = f"{sizes}"  # the charts say "median of N seeds, 95 % interval" themselves (chart_kit.interval_note)
    results, figures = results or data_dir("results"), figures or data_dir("figures")
    out = traffic_tables(servers, message_counts, fractions, read_messages, sizes, seeds, cache_dir, executor)
    for name, file in (("volume", "traffic_volume"), ("volume_seeds", "traffic_volume_seeds"),
                       ("reads", "bytes_vs_read_fraction"), ("reads_seeds", "bytes_vs_read_fraction_seeds"),
                       ("breakeven", "bytes_breakeven"), ("breakeven_seeds", "bytes_breakeven_seeds")):
        out[f"{name}_csv"] = write_csv_atomically(out[name], Path(results) / f"{file}.csv")
    volume, reads = out["volume"], out["reads"]
    out["volume_png"] = save_figure(bytes_up_and_down(
        volume, conditions=f"{what}; read fraction 0; loopback"), "traffic_volume_up_down", figures)
    out["overhead_png"] = save_figure(overhead_share(
        volume[volume["server"] == servers[0]], conditions=f"{what}; server {servers[0]}"),
        "traffic_volume_overhead", figures)
    even = dict(zip(out["breakeven"]["protocol"], out["breakeven"]["bytes_r"]))
    out["reads_png"] = save_figure(bytes_vs_read_fraction(
        reads, even, conditions=f"{read_messages} messages, {what}; server {servers[0]}; loopback"),
        "bytes_vs_read_fraction", figures)
    return out


def round_trips_and_latency(server: str, profiles_measured, profiles_modelled, messages: int, read_fraction: float,
                            repeats: int, sizes: str = "buchner2009", seeds=(0,), results: Path | None = None,
                            figures: Path | None = None, cache_dir=None, conditions: str = "realistic",
                            executor=None) -> dict:
    """Notebook 03's five charts (RTT and bandwidth swept apart) and their tables (see :func:`mailstudy.study.latency.latency_tables`): medians
    over ``seeds`` with their intervals, a dict of frames and paths. Measured cells go through the link; modelled
    ones take the baseline sessions' counts and work and the model's times. All run on the network
    ``conditions`` (:mod:`mailstudy.study.network`: realistic, the default, or control)."""
    from mailstudy.faces.latency_charts import (breakeven_chart, list_and_open_bars, model_vs_measured_scatter,
                                                pipelining_chart, waiting_vs_rtt)
    from mailstudy.study import latency
    from mailstudy.study.network import conditions as network_conditions

    seeds = list(seeds)
    base = Experiment(server=server, messages=messages, sizes=sizes, read_fraction=read_fraction, repeats=repeats)
    net = network_conditions(conditions)
    what = f"{messages} messages, {sizes}, read fraction {read_fraction}, {server}; {net.describe()}"
    results, figures = results or data_dir("results"), figures or data_dir("figures")
    out = latency.latency_tables(base, profiles_measured, profiles_modelled, seeds, cache_dir, net, executor)
    for name in list(out):
        out[f"{name}_csv"] = write_csv_atomically(out[name], Path(results) / f"{name}.csv")
    measured, versus = out["latency_measured"], out["model_vs_measured"]
    rtt_sweep, rate_sweep = out["waiting_vs_rtt"], out["waiting_vs_bandwidth"]
    pipe, even = out["pipelining_batching"], out["breakeven_per_profile"]
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
        even, {"rtt": out["breakeven_vs_rtt"], "bandwidth": out["breakeven_vs_bandwidth"]},
        conditions=f"model; {messages} messages, {sizes}, {server}; {net.describe()}"),
        "latency_breakeven", figures)
    return out


def devices(servers, clients, device_counts, hours: float, rate: float, loss_clients, condstore_counts,
            seeds=(0,), results: Path | None = None, figures: Path | None = None, cache_dir=None,
            executor=None) -> dict:
    """Notebook 04's four charts and their tables (see :func:`mailstudy.study.device_counts.device_tables`):
    medians over ``seeds`` with their intervals."""
    from mailstudy.faces.device_charts import (bytes_per_day_vs_devices, condstore_chart, device_agreement,
                                               losses_chart)
    from mailstudy.servers import available_servers
    from mailstudy.study.device_counts import device_tables

    seeds = list(seeds)
    what = f"{hours:g} h simulated, {rate:g} new messages/day, loopback"
    results, figures = results or data_dir("results"), figures or data_dir("figures")
    # Dovecot offers CONDSTORE, the embedded server does not: use it whenever it is installed
    cond_server = "dovecot" if "dovecot" in available_servers() else servers[0]
    out = device_tables(servers, clients, device_counts, hours, rate, loss_clients, cond_server, condstore_counts,
                        seeds, cache_dir, executor)
    for name in list(out):
        out[f"{name}_csv"] = write_csv_atomically(out[name], Path(results) / f"{name}.csv")
    fleet, loss, cond = out["devices_fleet"], out["devices_losses"], out["devices_condstore"]
    out["bytes_png"] = save_figure(bytes_per_day_vs_devices(fleet, conditions=what), "devices_bytes_per_day",
                                   figures)
    first = fleet[fleet["server"] == servers[0]]
    out["agreement_png"] = save_figure(device_agreement(first, conditions=f"{what}; server {servers[0]}"),
                                       "devices_agreement", figures)
    out["losses_png"] = save_figure(losses_chart(
        loss, conditions=f"POP3 delete and a lost device; {max(device_counts)} devices, {what}; "
                         f"server {servers[0]}"), "devices_losses", figures)
    offered = bool(cond["condstore_offered"].any()) if "condstore_offered" in cond else False
    out["condstore_png"] = save_figure(condstore_chart(
        cond, conditions=f"no new mail; {hours:g} h, neomutt x2, polls every 15 min; "
                         f"server {cond_server}{'' if offered else ', CONDSTORE not offered'}"),
        "devices_condstore", figures)
    return out
