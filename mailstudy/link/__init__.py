"""The link: sessions over an emulated network, and the model that predicts their times.

Why a package: a profile (data), the link (a relay process applying it) and the model (arithmetic checked
against the link) are three jobs that share one vocabulary. The public API, for notebooks and the CLI:

- :data:`PROFILES`, :func:`rows` (the profiles table as rows), :func:`get_profile`, :func:`custom`,
  :class:`Profile`, :func:`parse_duration`, :func:`parse_rate`, :class:`ProfileError`;
- :class:`Link` (a context manager: the relay's ports in front of a server's);
- :func:`predict` (``predict(session_or_flights, profile)`` -> duration, time to list, open waits; its inputs
  are measured through :data:`BASELINE`; ``radio="lte"`` adds a phone's radio promotion delays, off by default),
  :func:`breakeven` (the read fractions where header-first starts to cost more), :func:`session_from_chunks`,
  :class:`RoundTrip`, :class:`Session`.
"""

from mailstudy.link.model import (BASELINE, ModelInputError, RoundTrip, Session, breakeven, predict,
                                  session_from_chunks, session_of)
from mailstudy.link.profiles import (PROFILES, Profile, ProfileError, custom, get_profile, parse_duration,
                                     parse_rate, rows)
from mailstudy.link.relay import Link, LinkError

__all__ = ["BASELINE", "PROFILES", "Link", "LinkError", "ModelInputError", "Profile", "ProfileError", "RoundTrip",
           "Session", "breakeven", "custom", "get_profile", "parse_duration", "parse_rate", "predict", "rows",
           "session_from_chunks", "session_of"]
