"""The promotion delay as waiting: what the first packet after a quiet spell waits for the radio.

Why: a radio that sits idle must be promoted before its first packet leaves (260.1 ms on LTE in Huang et al.,
MobiSys 2012, Table 3; 2 s from IDLE and 1.5 s from FACH on the 3G of Qian et al.). So the time to open a
message after a quiet spell includes that delay, and the latency model and the link can take it from here
(issue 19 item 5): one function, the same state machine the energy ledger walks.

Only the promotion is counted: a packet that reaches a radio in DRX may also wait for its next wake-up (up to
one DRX cycle, 40 ms on LTE's long DRX), which this does not add.
"""

from __future__ import annotations

import math

from mailstudy.energy.ledger import TimelineError
from mailstudy.energy.radios import RadioModel


def promotion_delay(model: RadioModel, quiet_s: float, bytes_up: int | None = None,
                    bytes_down: int | None = None) -> float:
    """Seconds the first packet after ``quiet_s`` seconds without traffic waits for the radio's promotion.

    0 while the radio is still in a tail stage that carries data at once (LTE's whole tail, 3G's DCH tail);
    the stage's own promotion in a stage that needs one (3G's FACH: 1.5 s); the promotion from idle once the
    tail timer has run out (LTE: 0.2601 s; ``math.inf``: long idle). Given the transfer's bytes each way, a
    stage that carries so small a transfer itself (3G's FACH under its RLC thresholds) makes it wait for nothing.
    """
    if math.isnan(quiet_s) or quiet_s < 0:  # math.inf is allowed: a radio that has long been idle
        raise TimelineError(f"quiet_s must be a number of seconds >= 0, not {quiet_s!r}")
    t = 0.0
    for stage in model.tail:
        t += stage.duration_s
        if quiet_s <= t:
            if bytes_up is not None and bytes_down is not None and stage.carries(bytes_up, bytes_down):
                return 0.0
            return stage.promotion_s
    return model.promotion_s
