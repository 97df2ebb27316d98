"""What a way of getting mail costs a phone's radio: radio models as data, and the energy ledger that walks one.

Why a package of its own: on a phone the bytes are rarely what costs, the radio's state machine is (issue 19).
An LTE radio that sends one small packet is promoted to its connected state and stays there for its tail timer
at about a watt, so a client that polls, one that keeps IDLE open and one that downloads everything once an hour
cost very different energy even when their bytes are close. The pieces:

* :mod:`mailstudy.energy.radios`: the radio models (LTE and Wi-Fi from Huang et al., MobiSys 2012; 3G UMTS from
  Qian et al., IMC 2010), every figure with the source that gives it; :func:`~mailstudy.energy.radios.model_from_dict`
  builds a custom model and names the first missing field.
* :mod:`mailstudy.energy.ledger`: a timeline of packets or flights (times and bytes each way) walked through a
  model's state machine into joules by state (promotion, transfer, tail, idle).
* :mod:`mailstudy.energy.waiting`: the promotion delay the first packet after a quiet spell waits.
* :mod:`mailstudy.energy.files` (I/O): a custom model from a JSON or TOML file.
* :mod:`mailstudy.energy.timeline`: timelines from a live session's trace (the client's socket, through the link)
  and from flights.
* :mod:`mailstudy.energy.pcap` (behaviour): timelines from a capture, one per client address.

Pure, like the latency model: no sockets, no files here (the two modules that read are ranked apart in
tests/test_layers.py).
"""

from mailstudy.energy.ledger import Activity, Ledger, TimelineError, ledger
from mailstudy.energy.radios import MODELS, ModelError, RadioModel, Stage, get_model, model_from_dict
from mailstudy.energy.timeline import flight_activities, session_ledger, spread_opens, trace_activities
from mailstudy.energy.waiting import promotion_delay

__all__ = ["Activity", "Ledger", "TimelineError", "ledger", "MODELS", "ModelError", "RadioModel", "Stage",
           "get_model", "model_from_dict", "promotion_delay", "flight_activities", "session_ledger",
           "spread_opens", "trace_activities"]
