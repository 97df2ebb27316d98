"""One sync as each client ships against the reconnect-and-poll baseline (issue 18 item 6, notebook 03's table):
a kept connection skips connect, TLS and login, so it logs in no more and its sync is quicker on 4G and on a
geostationary satellite; COMPRESS lowers the bytes on the wire. Every session is real (the embedded server and
Dovecot, implicit TLS 1.3, through the model's baseline link); the times are the model's.
"""

from __future__ import annotations

import pytest

from mailstudy.link import get_profile, predict
from mailstudy.link.model import RoundTrip, Session
from mailstudy.live.values import ParameterValueError
from mailstudy.study.kept_sync import SYNC_COLUMNS, kept_sync_table, sync_cells


def test_a_sync_over_a_kept_connection_pays_no_handshake_in_the_model():
    trips = (RoundTrip(40, 400), RoundTrip(40, 4000))
    fresh, kept = Session(0.0, trips, client_first=True), Session(0.0, trips, client_first=True, connected=True)
    rtt = get_profile("satellite-geo").rtt_s
    t_fresh, t_kept = (predict(s, "satellite-geo")["duration_s"] for s in (fresh, kept))
    assert t_fresh - t_kept == pytest.approx(rtt)  # the TCP handshake's round trip, nothing else


def test_only_clients_that_ask_for_compress_get_the_compress_cell():
    cells = sync_cells(["embedded"], clients=("thunderbird", "mbsync", "thunderbird-pop3"))
    assert [(c.client, c.variant) for c in cells] == [
        ("thunderbird", "reconnect-and-poll"), ("thunderbird", "as shipped"), ("thunderbird", "as shipped + COMPRESS"),
        ("mbsync", "reconnect-and-poll"), ("mbsync", "as shipped"),
        ("thunderbird-pop3", "reconnect-and-poll"), ("thunderbird-pop3", "as shipped")]
    assert {c.tls for c in cells} == {"implicit"} and {c.tls for c in sync_cells(conditions="control")} == {"none"}
    assert [c.way for c in cells[:3]] == ["reconnect", "idle", "idle"]


@pytest.mark.parametrize("bad", [{"messages": 0}, {"new_messages": -1}, {"conditions": "foggy"}])
def test_bad_sync_cells_are_refused_with_a_clear_message(bad):
    with pytest.raises(ParameterValueError if "conditions" not in bad else Exception, match=r"."):
        sync_cells(**bad)


@pytest.mark.parametrize("server", ["embedded", "dovecot"])
def test_a_kept_connection_logs_in_less_and_syncs_sooner_and_compress_lowers_the_wire(server, tmp_path):
    clients = ("thunderbird", "mbsync") if server == "embedded" else ("thunderbird",)
    table = kept_sync_table([server], clients=clients, messages=12, new_messages=2, seed=1, results=tmp_path)
    assert list(table.columns) == [*SYNC_COLUMNS, "sync_s_4g", "sync_s_satellite-geo"]
    assert (tmp_path / "kept_sync_times.csv").read_text().startswith("server,client,ships_with")
    rows = {(r["client"], r["variant"]): r for r in table.to_dict("records")}
    base, kept = rows[("thunderbird", "reconnect-and-poll")], rows[("thunderbird", "as shipped")]
    zipped = rows[("thunderbird", "as shipped + COMPRESS")]
    assert kept["ships_with"] == "keeps its connection; IDLE, checked every 600 s" and kept["way"] == "idle"
    assert kept["compress_default"] == "asks for COMPRESS when offered"
    assert (base["logins"], kept["logins"], zipped["logins"]) == (1, 0, 0)
    assert kept["commands"] < base["commands"] and kept["wire_bytes_up"] < base["wire_bytes_up"]
    for link in ("4g", "satellite-geo"):
        assert kept[f"sync_s_{link}"] < base[f"sync_s_{link}"], link
    assert zipped["compressed"] and not kept["compressed"] and not base["compressed"]
    assert zipped["wire_bytes_down"] < kept["wire_bytes_down"]  # the same two messages, deflated
    if server == "embedded":
        mb, mb_base = rows[("mbsync", "as shipped")], rows[("mbsync", "reconnect-and-poll")]
        assert mb["way"] == mb_base["way"] == "reconnect" and mb["logins"] == mb_base["logins"] == 1
        assert mb["compress_default"] == "never asks for COMPRESS"
        assert (mb["commands"], mb["bytes_down"]) == (mb_base["commands"], mb_base["bytes_down"])


def test_the_chart_draws_every_client_and_variant_on_each_link(tmp_path):
    import pandas as pd

    from mailstudy.faces.kept_charts import kept_sync_chart, kept_sync_figure

    table = pd.DataFrame([
        {"client": "thunderbird", "variant": "reconnect-and-poll", "sync_s_4g": 0.7, "sync_s_satellite-geo": 7.6},
        {"client": "thunderbird", "variant": "as shipped", "sync_s_4g": 0.5, "sync_s_satellite-geo": 5.6},
        {"client": "thunderbird", "variant": "as shipped + COMPRESS", "sync_s_4g": 0.5, "sync_s_satellite-geo": 5.5},
        {"client": "mbsync", "variant": "reconnect-and-poll", "sync_s_4g": 0.7, "sync_s_satellite-geo": 7.4},
        {"client": "mbsync", "variant": "as shipped", "sync_s_4g": 0.7, "sync_s_satellite-geo": 7.4}])
    fig = kept_sync_figure(table)
    assert [len(ax.patches) for ax in fig.axes] == [5, 5]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["mbsync", "thunderbird"]
    path = kept_sync_chart(table, tmp_path)
    assert path == tmp_path / "kept_sync_times.png" and path.read_bytes()[:4] == b"\x89PNG"


def test_the_summary_over_seeds_gives_each_number_its_interval_and_the_chart_draws_it(tmp_path):
    """Two seeds of the real sessions: one row per cell with the seeds' median and its 95 % interval; the login
    counts do not depend on the seed (an exact interval); both tables written; the chart's bars get error bars."""
    from mailstudy.faces.kept_charts import kept_sync_figure
    from mailstudy.study.kept_sync import kept_sync_summary

    summary = kept_sync_summary(["embedded"], clients=("thunderbird",), messages=8, seeds=(0, 1), results=tmp_path)
    assert list(summary["variant"]) == ["reconnect-and-poll", "as shipped", "as shipped + COMPRESS"]
    assert set(summary["seeds"]) == {2}
    assert list(summary["logins"]) == list(summary["logins_lo"]) == list(summary["logins_hi"]) == [1, 0, 0]
    for col in ("sync_s_4g", "sync_s_satellite-geo", "wire_bytes_down"):
        assert (summary[f"{col}_lo"] <= summary[col]).all() and (summary[col] <= summary[f"{col}_hi"]).all()
    seeds = (tmp_path / "kept_sync_times_seeds.csv").read_text().splitlines()
    assert len(seeds) == 1 + 2 * 3 and seeds[0].endswith(",seed")
    assert (tmp_path / "kept_sync_times.csv").read_text().startswith("server,client,ships_with")
    fig = kept_sync_figure(summary)
    from matplotlib.container import BarContainer

    bars = [c for ax in fig.axes for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 2 * 3 and all(c.errorbar is not None for c in bars)
