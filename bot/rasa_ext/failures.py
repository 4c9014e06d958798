"""Why a turn was not taken: raised inside Rasa, caught by our channel only (bot/rasa_ext/channel.py).

They derive from BaseException so that they pass the ``except Exception`` with which Rasa logs and
carries on (around an action, in its fail-safe tracker store): the turn stops before the tracker is
saved, our channel answers 503, and the gateway keeps the message and replays it.
"""

from __future__ import annotations


class TurnNotTaken(BaseException):
    """The turn must not be saved as taken."""


class ActionServerFailed(TurnNotTaken):
    """The call to the action server for the predicted action failed (down, restarting, an error)."""


class TrackerStoreUnavailable(TurnNotTaken):
    """The tracker store could not read or write the conversation (Redis down, a key it cannot open)."""
