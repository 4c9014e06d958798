"""Keep what a server loaded at start out of the garbage collector's full passes.

A full (oldest-generation) collection walks every object alive: in a Rasa server, with its model and
libraries loaded, half a million of them, 250-380 ms during which no turn on that process moves;
under load such a pass came about once a quarter-minute per process and made the slowest turns. Objects made at
start live as long as the process, so after start-up they are frozen (``gc.freeze``): full passes
then walk only what came later. Called once each server listens (Rasa: after its model loaded).
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    gc.collect()  # what start-up left as garbage goes now, not frozen with the rest
    gc.freeze()
