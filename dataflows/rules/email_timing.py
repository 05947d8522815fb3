"""Email security scanners and privacy proxies, told apart by timing. Pure: no I/O.

Scanners open and click every link within seconds of delivery, and click several links
in one burst; people do neither. Signals so detected are kept out of scores and alerts and
counted on the profile by reason.
"""

from __future__ import annotations

from typing import Final

from contracts.envelope import SCANNER_BURST, SCANNER_TIMING, Envelope
from dataflows.rules.profile import Profile
from dataflows.rules.scoring import campaign_name

DELIVERED_EVENT: Final = "Email Delivered"
AT_DELIVERY_MS: Final = 30_000
BURST_WINDOW_MS: Final = 10_000
BURST_CLICKS: Final = 3
KEPT_CAMPAIGNS: Final = 10


def is_delivery(signal: Envelope) -> bool:
    """An ESP's report that a campaign email reached the inbox."""
    return signal["event"] == DELIVERED_EVENT


def record_delivery(profile: Profile, signal: Envelope) -> None:
    """Remember when each of the latest campaigns was delivered to this person."""
    profile.delivered[campaign_name(signal) or ""] = signal["ts"]
    while len(profile.delivered) > KEPT_CAMPAIGNS:
        del profile.delivered[min(profile.delivered, key=profile.delivered.__getitem__)]


def machine_reason(profile: Profile, signal: Envelope) -> str | None:
    """Why an email open or click was made by a machine (and count it), or None."""
    if signal["type"] not in ("email_open", "email_click"):
        return None
    ts = signal["ts"]
    delivered = profile.delivered.get(campaign_name(signal) or "")
    reason = None
    if delivered is not None and 0 <= ts - delivered <= AT_DELIVERY_MS:
        reason = SCANNER_TIMING
    elif signal["type"] == "email_click":
        recent = [t for t in profile.email_clicks if 0 <= ts - t <= BURST_WINDOW_MS]
        if len(recent) + 1 >= BURST_CLICKS:
            reason = SCANNER_BURST
        profile.email_clicks = [*recent[-(BURST_CLICKS - 1) :], ts]
    if reason is not None:
        profile.machine_signals[reason] = profile.machine_signals.get(reason, 0) + 1
    return reason
