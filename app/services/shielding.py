"""Bounded shields for writes that must survive cancellation (DESIGN idiom 9)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from storage import StorageUnavailable

# Bounds a save only when it must outlive a cancellation; under heavy load a single SQLite
# writer may queue writes for many seconds, which must not lose a reply.
SAVE_GRACE_SECONDS = 60.0


@contextmanager
def shielded_save() -> Iterator[None]:
    """A bounded, shielded scope for writes that must survive cancellation.

    If the bound runs out, the write did not happen: that is reported as `StorageUnavailable`,
    never passed over in silence.
    """
    with trio.move_on_after(SAVE_GRACE_SECONDS, shield=True) as scope:
        yield
    if scope.cancelled_caught:
        raise StorageUnavailable("the database did not complete a save in time")
