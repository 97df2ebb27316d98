"""The study's charts, checked through matplotlib's objects for what a person sees (issue 17 item 7): a title
of one line, units on both axes, as many visible series as labelled legend entries, no raw column names, bars
on linear axes, intervals drawn when a table carries ``X_lo``/``X_hi`` (and said in the subtitle), "never" in
words. Each chart is fed small frames built here, with and without intervals."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from mailstudy.faces import chart_kit, device_charts, latency_charts, plots  # noqa: E402

LABELS = ["IMAP header-first", "IMAP download-all", "POP3 header-first", "POP3 download-all"]
UNIT = re.compile(r"\(([^)]*)\)")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def with_interval(df, columns, seeds=10, spread=0.2):
    """``df`` as a summary table: each metric with its interval and the seed count."""
    out = df.copy()
    for c in columns:
        out[f"{c}_lo"] = out[c] * (1 - spread)
        out[f"{c}_hi"] = out[c] * (1 + spread)
    out["seeds"] = seeds
    return out


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def suptitle(fig) -> str:
    return fig._suptitle.get_text() if fig._suptitle else ""


def data_axes(fig):
    """The axes that draw data (not a table-like figure's invisible axes)."""
    return [ax for ax in fig.axes if ax.axison]


def check_common(fig, interval: bool):
    """Title one line; every data axis with a unit on both axes; bars never on a log axis; no raw column
    name in a legend; the interval caption exactly when intervals are drawn."""
    title = suptitle(fig)
    assert title and "\n" not in title and title.endswith("?"), title
    for ax in data_axes(fig):
        xlabel = ax.get_xlabel() or " ".join(a.get_xlabel() for a in ax.get_shared_x_axes().get_siblings(ax)
                                             if a.get_xlabel())
        assert UNIT.search(xlabel) or xlabel in ("strategy", "client profile", "variant"), \
            f"x axis without unit: {xlabel!r}"
        ylabel = ax.get_ylabel() or " ".join(a.get_ylabel() for a in ax.get_shared_y_axes().get_siblings(ax)
                                             if a.get_ylabel())
        assert UNIT.search(ylabel) or ylabel in ("variant", "messages", "profile · strategy"), \
            f"y axis without unit: {ylabel!r}"
        bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() > 0 and p.get_height() > 0]
        if bars:
            assert ax.get_yscale() == "linear" and ax.get_xscale() == "linear", "bars on a log axis"
        legend = ax.get_legend()
        for t in legend.get_texts() if legend else []:
            assert not re.search(r"\b\w+_\w+\b", t.get_text()), f"raw column name in legend: {t.get_text()!r}"
    caption = " ".join(texts(fig))
    if interval:
        assert "median of 10 seeds, 95 % interval" in caption
    else:
        assert "seeds" not in caption


def errorbars(fig) -> int:
    return sum(isinstance(c, ErrorbarContainer) for ax in fig.axes for c in ax.containers)


def lines_with_labels(ax) -> list[str]:
    """The labels of the series drawn: plain lines, and lines drawn with error bars (labelled on their
    container)."""
    plain = [ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    return plain + [c.get_label() for c in ax.containers if isinstance(c, ErrorbarContainer)
                    and not str(c.get_label()).startswith("_")]


def series_lines(ax) -> dict:
    """Label -> the data line of each labelled series (with or without error bars)."""
    out = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    out.update({c.get_label(): c.lines[0] for c in ax.containers if isinstance(c, ErrorbarContainer)
                and not str(c.get_label()).startswith("_")})
    return out


# ---- frames -------------------------------------------------------------------------------------------------

def volume_frame():
    rows = []
    for server in ("embedded", "dovecot"):
        for n, mb in ((10, 0.2), (20, 1.0), (40, 2.5)):
            for label in LABELS:
                protocol, strategy = label.split()
                down = mb * 2**20 * (0.1 if strategy == "header-first" else 1.0) * (1.0 if protocol == "IMAP" else 0.995)
                rows.append(dict(server=server, label=label, protocol=protocol.lower(), strategy=strategy,
                                 messages=n, mailbox_bytes=mb * 2**20, bytes_down=down, bytes_up=150 + n,
                                 overhead_share=0.01 + 0.001 * n))
    return pd.DataFrame(rows)


def reads_frame():
    rows = []
    for protocol in ("imap", "pop3"):
        for f in (0, 0.25, 0.5, 0.75, 1.0):
            rows.append(dict(protocol=protocol, strategy="header-first", read_fraction=f, bytes_down=1e5 + 1.5e6 * f))
        rows.append(dict(protocol=protocol, strategy="download-all", read_fraction=0.0, bytes_down=1.45e6))
    return pd.DataFrame(rows)


def measured_frame():
    rows = []
    for profile, rtt, down, k in (("lan", 0.001, 1e8, 0.05), ("4g", 0.055, 21.3e6, 1.0)):
        for label in LABELS:
            for repeat in range(3):
                hf = "header-first" in label
                rows.append(dict(profile=profile, rtt_s=rtt, down_bps=down, label=label, repeat=repeat,
                                 time_to_list_s=k * (0.5 if hf else 0.7) + 0.01 * repeat,
                                 open_median_s=k * 0.06 if hf else float("nan"),
                                 open_p95_s=k * 0.08 if hf else float("nan")))
    return pd.DataFrame(rows)


def versus_frame():
    rows = []
    for profile in ("lan", "4g"):
        for label in LABELS:
            for time, err in (("duration_s", 0.04), ("time_to_list_s", -0.333 if profile == "lan" else 0.02)):
                rows.append(dict(profile=profile, label=label, time=time, measured=1.0, model=1 + err, error=err))
    return pd.DataFrame(rows)


def sweep_frame(x_col, values, fixed):
    rows = []
    for v in values:
        for label in LABELS:
            rows.append(dict(label=label, **{x_col: v}, **fixed, up_bps=6.3e6,
                             time_to_list_s=0.1 + (v if x_col == "rtt_s" else 1e6 / v) * (2 if "POP3" in label else 1),
                             duration_s=0.2 + (v if x_col == "rtt_s" else 1e6 / v) * 3))
    return pd.DataFrame(rows)


def pipe_frame():
    variants = ["IMAP header-first, batched FETCH", "IMAP header-first, one FETCH per message",
                "POP3 header-first, one command at a time", "POP3 header-first, pipelined"]
    rows = []
    for profile, rtt, down, k in (("lan", 0.001, 1e8, 0.05), ("4g", 0.055, 21.3e6, 1.0)):
        for i, v in enumerate(variants):
            rows.append(dict(variant=v, profile=profile, rtt_s=rtt, down_bps=down, round_trips=5 + 4 * i,
                             duration_s=k * (0.5 + 0.2 * i)))
    return pd.DataFrame(rows)


def breakeven_frame():
    rows = []
    for profile, rtt, down, waits in (("loopback", 0.0, None, (float("nan"), float("nan"))),
                                      ("lan", 0.001, 1e8, (1.7, 0.93)), ("4g", 0.055, 21.3e6, (0.15, 0.19)),
                                      ("edge", 1.0, 2e5, (-0.2, 0.3))):
        for protocol, w in zip(("imap", "pop3"), waits):
            rows.append(dict(profile=profile, protocol=protocol, rtt_s=rtt, down_bps=down, waiting_r=w,
                             bytes_r=0.51))
    return pd.DataFrame(rows)


def fleet_frame(servers=("embedded",)):
    rows = []
    for server in servers:
        for client in ("thunderbird", "k9", "thunderbird-pop3", "pop3-delete", "neomutt"):
            for devices in (1, 2, 4):
                body = client != "neomutt"
                rows.append(dict(server=server, clients=client, devices=devices,
                                 bytes_down_per_day=2e6 * (devices if body and client != "pop3-delete" else 1),
                                 duplicate_downloads=7 * (devices - 1) if body else 0, availability_min=1.0,
                                 read_agreement=1.0 if "pop3" not in client else 0.5, staleness_median_s=480.0))
    return pd.DataFrame(rows)


# ---- the charts ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("interval", [False, True])
def test_bytes_up_and_down(interval):
    df = volume_frame()
    df = with_interval(df, ["bytes_down", "bytes_up"]) if interval else df
    df.loc[df.server == "dovecot", "bytes_down"] *= 1.1  # the servers differ: a column each
    fig = plots.bytes_up_and_down(df, conditions="buchner2009, seed 0; loopback")
    check_common(fig, interval)
    assert len(fig.axes) == 4
    ax = fig.axes[0]
    assert len(lines_with_labels(ax)) == 4
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == LABELS  # every series labelled once
    assert (errorbars(fig) > 0) == interval
    # IMAP and POP3 download-all coincide (0.5 % apart): drawn apart and named in a note
    x = {k: tuple(ln.get_xdata()) for k, ln in series_lines(ax).items()}
    assert x["IMAP download-all"] != x["POP3 download-all"]
    assert any("IMAP download-all = POP3 download-all" in t for t in texts(fig))


def test_bytes_up_and_down_one_column_when_the_servers_agree():
    fig = plots.bytes_up_and_down(volume_frame())
    assert len(fig.axes) == 2 and any("give the same bytes" in t for t in texts(fig))


@pytest.mark.parametrize("interval", [False, True])
def test_bytes_vs_read_fraction(interval):
    df = with_interval(reads_frame(), ["bytes_down"]) if interval else reads_frame()
    fig = plots.bytes_vs_read_fraction(df, {"imap": 0.9, "pop3": None}, conditions="20 messages")
    check_common(fig, interval)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == sorted(LABELS)
    hf = series_lines(ax)
    assert tuple(hf["IMAP header-first"].get_xdata()) != tuple(hf["POP3 header-first"].get_xdata())
    assert any("never" in t for t in texts(fig))  # POP3's break-even in words
    assert (errorbars(fig) > 0) == interval


@pytest.mark.parametrize("interval", [False, True])
def test_overhead_share(interval):
    df = with_interval(volume_frame(), ["overhead_share"]) if interval else volume_frame()
    fig = plots.overhead_share(df[df.server == "embedded"])
    check_common(fig, interval)
    assert len(fig.axes[0].get_legend().get_texts()) == 4


@pytest.mark.parametrize("interval", [False, True])
def test_list_and_open_bars_are_linear_per_profile(interval):
    df = with_interval(measured_frame(), ["time_to_list_s", "open_median_s"]) if interval else measured_frame()
    fig = latency_charts.list_and_open_bars(df, conditions="10 messages")
    check_common(fig, interval)
    assert len(data_axes(fig)) == 4  # 2 profiles x (list, open), each its own linear axis
    assert all(ax.get_yscale() == "linear" for ax in fig.axes)
    assert errorbars(fig) > 0  # intervals, or the repeats' 95th percentile
    assert sum("no open" in t for t in texts(fig)) == 4  # download-all's open said in words, per profile
    assert [t.get_text() for t in fig.legends[0].get_texts()] == LABELS


@pytest.mark.parametrize("interval", [False, True])
def test_model_error_on_a_linear_axis(interval):
    df = versus_frame()
    if interval:
        df = df.assign(error_lo=df.error - 0.05, error_hi=df.error + 0.05, seeds=10)
    fig = latency_charts.model_vs_measured_scatter(df, conditions="10 messages")
    check_common(fig, interval)
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_yscale() == "linear"
    assert "%" in ax.get_xlabel()
    assert any("-33.3 %" in t for t in texts(fig))  # the worst error is written, not hidden
    assert sum(1 for t in texts(fig) if re.fullmatch(r"[+-]\d+\.\d %", t)) == len(df)  # no row dropped


@pytest.mark.parametrize("interval", [False, True])
def test_waiting_moves_one_figure_at_a_time(interval):
    rtt = sweep_frame("rtt_s", [0.001, 0.055, 0.6], {"down_bps": 21.3e6})
    rate = sweep_frame("down_bps", [1e6, 21.3e6, 1e8], {"rtt_s": 0.055})
    if interval:
        rtt, rate = (with_interval(d, ["time_to_list_s", "duration_s"]) for d in (rtt, rate))
    fig = latency_charts.waiting_vs_rtt(rtt, rate, conditions="model")
    check_common(fig, interval)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["RTT varied, bandwidth fixed at 21.3 Mbit/s down, 6.3 Mbit/s up",
                      "bandwidth varied, RTT fixed at 55 ms"]
    assert len(fig.axes[0].get_legend().get_texts()) == len(lines_with_labels(fig.axes[0])) == 4
    assert (errorbars(fig) > 0) == interval


@pytest.mark.parametrize("interval", [False, True])
def test_pipelining_one_colour_per_protocol_and_linear_bars(interval):
    df = with_interval(pipe_frame(), ["round_trips", "duration_s"]) if interval else pipe_frame()
    fig = latency_charts.pipelining_chart(df, conditions="model")
    check_common(fig, interval)
    colours = {}
    for ax in fig.axes:
        assert ax.get_xscale() == "linear"
        for bar, variant in zip(ax.patches, df["variant"].unique()):
            colours.setdefault(variant.split()[0], set()).add(matplotlib.colors.to_hex(bar.get_facecolor()))
    assert all(len(c) == 1 for c in colours.values()) and colours["IMAP"] != colours["POP3"]
    assert (errorbars(fig) > 0) == interval


@pytest.mark.parametrize("interval", [False, True])
def test_breakeven_never_in_words(interval):
    df = with_interval(breakeven_frame(), ["waiting_r"]) if interval else breakeven_frame()
    sweep = breakeven_frame().assign(profile="4g")
    fig = latency_charts.breakeven_chart(df, {"rtt": sweep}, conditions="model")
    check_common(fig, interval)
    words = texts(fig)
    assert sum("never" in t for t in words) >= 3  # loopback x2, lan IMAP: none drawn as a bar
    assert any("always" in t for t in words)  # edge IMAP < 0
    assert not [p for ax in fig.axes for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 1]
    assert "4g (55 ms, 21.3 Mbit/s)" in [t.get_text() for t in fig.axes[0].get_yticklabels()]


@pytest.mark.parametrize("interval", [False, True])
def test_devices_bytes_every_client_visible(interval):
    df = fleet_frame(("embedded", "dovecot"))
    df = with_interval(df, ["bytes_down_per_day"]) if interval else df
    fig = device_charts.bytes_per_day_vs_devices(df, conditions="4 h")
    check_common(fig, interval)
    assert len(data_axes(fig)) == 1  # the two servers gave the same bytes: one panel, said so
    assert any("give the same bytes" in t for t in texts(fig))
    ax = fig.axes[0]
    assert len(ax.get_legend().get_texts()) == len(lines_with_labels(ax)) == 5
    xs = {k: tuple(ln.get_xdata()) for k, ln in series_lines(ax).items()}
    assert xs["thunderbird"] != xs["k9"]  # coinciding clients offset
    markers = {ln.get_marker() for ln in series_lines(ax).values()}
    assert len(markers) == 5
    assert (errorbars(fig) > 0) == interval


def test_devices_servers_apart_when_they_differ():
    df = fleet_frame(("embedded", "dovecot"))
    df.loc[df.server == "dovecot", "bytes_down_per_day"] *= 1.5
    assert len(data_axes(device_charts.bytes_per_day_vs_devices(df))) == 2


@pytest.mark.parametrize("interval", [False, True])
def test_device_agreement(interval):
    cols = ["duplicate_downloads", "availability_min", "read_agreement", "staleness_median_s"]
    df = with_interval(fleet_frame(), cols) if interval else fleet_frame()
    fig = device_charts.device_agreement(df)
    check_common(fig, interval)
    for ax in fig.axes:
        assert len(lines_with_labels(ax)) == 5
    assert any("thunderbird = k9" in t for t in texts(fig))


def test_claims_every_row_with_server_and_measurement():
    ledger = pd.DataFrame([
        dict(key="a", claim="IMAP keeps mail", server="embedded", measured="20/20 remain", verdict="supported",
             condition="", interval=""),
        dict(key="a", claim="IMAP keeps mail", server="dovecot", measured="20/20 remain", verdict="supported",
             condition="", interval=""),
        dict(key="b", claim="POP3 suits many messages", server="embedded", measured="7.78 x", verdict="holds-only-when",
             condition="only when nearly every message is read", interval="2.6 to 17.2")])
    fig = plots.claims_chart(ledger, conditions="seed 0")
    assert "\n" not in suptitle(fig)
    words = texts(fig)
    assert sum(t in ("supported", "holds-only-when") for t in words) == 3  # no drop_duplicates
    assert any("(dovecot)" in t for t in words) and any("(embedded)" in t for t in words)
    assert any("7.78 x" in t and "only when nearly every" in t for t in words)
    assert not [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]  # no full-width fake bars


def test_bytes_per_exchange_labels_are_distinct_and_bars_linear():
    frame = pd.DataFrame(dict(command=["CAPABILITY", "LOGIN", "UID FETCH", "UID FETCH", "UID FETCH", "LOGOUT"],
                              bytes_up=[18, 35, 60, 28, 28, 14], bytes_down=[100, 150, 2300, 5200, 5200, 60]))
    fig = plots.bytes_per_exchange(frame, conditions="imap-header-first")
    check_common(fig, False)
    labels = [t.get_text() for t in fig.axes[-1].get_xticklabels()]
    assert labels == ["CAPABILITY", "LOGIN", "UID FETCH #1", "UID FETCH #2", "UID FETCH #3", "LOGOUT"]


def test_crowded_exchange_ticks_are_thinned():
    frame = pd.DataFrame(dict(command=[f"RETR {i}" for i in range(200)], bytes_up=[10] * 200,
                              bytes_down=[1000] * 200))
    fig = plots.bytes_per_exchange(frame)
    assert len(fig.axes[-1].get_xticklabels()) <= 40


def test_titles_one_line_and_subtitle_broken_between_clauses():
    fig = plt.figure(figsize=(6, 4))
    question = "How many bytes does each strategy move as the mailbox grows, on every server we have?"
    chart_kit.titles(fig, question, "200 messages, buchner2009, seed 0; server embedded; implicit TLS 1.3, "
                                    "slow start, each profile's loss; read fraction 0.2")
    assert suptitle(fig) == question
    sub = [t.get_text() for t in fig.texts if t.get_text() != question][0]
    for line in sub.splitlines():
        assert line.endswith((";", ",")) or line == sub.splitlines()[-1], line  # no mid-phrase break


def test_summary_takes_the_interval_only_when_present():
    df = pd.DataFrame(dict(x=[1, 2], y=[3.0, 4.0]))
    s = chart_kit.summary(df, "x", "y")
    assert s["lo"].isna().all() and chart_kit.yerr(s) is None and chart_kit.interval_note(df, "y") == ""
    s = chart_kit.summary(with_interval(df, ["y"], seeds=12), "x", "y")
    assert list(s["lo"].round(9)) == [2.4, 3.2] and list(s["seeds"]) == [12] * 2
    assert chart_kit.interval_note(with_interval(df, ["y"], seeds=12), "y") == "median of 12 seeds, 95 % interval"


@pytest.mark.parametrize("interval", [False, True])
def test_losses_and_condstore(interval):
    losses = pd.DataFrame([dict(clients=c, lose_device=lose, messages_only_on_one_device=m, messages_lost=lost)
                           for c, m, lost in (("thunderbird", 0, 0), ("pop3-delete", 14, 3))
                           for lose in (None, 0)])
    cond = pd.DataFrame([dict(condstore=c, start_messages=n, bytes_down_per_day=n * (1e4 if c else 2e4))
                         for c in (False, True) for n in (20, 80)])
    if interval:
        losses = with_interval(losses, ["messages_lost", "messages_only_on_one_device"])
        cond = with_interval(cond, ["bytes_down_per_day"])
    for fig in (device_charts.losses_chart(losses), device_charts.condstore_chart(cond)):
        check_common(fig, interval)
        assert (errorbars(fig) > 0) == interval
    fig = device_charts.losses_chart(losses)
    assert sum(t == "0" for t in texts(fig)) >= 3  # a zero is a result too: written on its bar
