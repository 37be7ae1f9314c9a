"""Quiet hours: a notification that arrives inside the user's quiet period waits for its end.

The period is in the user's IANA time zone and may wrap past midnight (22:00 -> 07:00). Its
start is inside, its end is not. Critical notifications (a payment receipt) ignore it; they
never ignore an opt-out, which the fan-out has already turned into SUPPRESSED.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from notifications.models import NotificationRequested, QuietHours


def quiet_period_end(quiet: QuietHours, now: datetime) -> datetime | None:
    """The moment the quiet period containing ``now`` ends, or None when ``now`` is outside
    it. Aware ``now`` in, aware result out (in the user's zone)."""
    if quiet.start == quiet.end:
        return None
    from zoneinfo import ZoneInfo  # on first use: most requests have no quiet hours

    zone = ZoneInfo(quiet.timezone)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside = quiet.start <= clock < quiet.end
        end_day = local.date()
    else:  # wraps past midnight
        inside = clock >= quiet.start or clock < quiet.end
        end_day = local.date() + timedelta(days=1) if clock >= quiet.start else local.date()
    if not inside:
        return None
    end = datetime.combine(end_day, quiet.end, tzinfo=zone)
    # A wall-clock end inside a DST gap can map to an instant before ``now``; never go back.
    return max(end, now + timedelta(seconds=1))


class QuietHoursPolicy:
    """Stage of the sender: when must this notification wait until, if at all?"""

    def deferral(self, request: NotificationRequested, now: datetime) -> datetime | None:
        if request.critical or request.quiet_hours is None:
            return None
        return quiet_period_end(request.quiet_hours, now)
