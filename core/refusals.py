"""Refusals that must leave a record, written only after the refused transaction rolled back.

A `DomainError` that leaves `tenant_context` means nothing of that transaction was committed. Some refusals must
still be on record (a use beyond the credit limit publishes `credit.limit.exceeded`): the service hands the write
to `refusal_record()` and raises. The outermost `tenant_context` then rolls its transaction back and runs the
recorded writes in a transaction of their own before re-raising. When nothing raises (the caller caught the refusal
and carried on) the writes join the committing transaction, as any other write of the block would.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

Write = Callable[[], None]


@dataclass
class RefusalRecorder:
    """The refusal writes of one outermost tenant context, each with the tenant it belongs to."""

    writes: list[tuple[str, Write]] = field(default_factory=list)

    def take(self) -> list[tuple[str, Write]]:
        writes, self.writes = self.writes, []
        return writes


_recorder: contextvars.ContextVar[RefusalRecorder | None] = contextvars.ContextVar("refusals", default=None)


@contextmanager
def refusals_collected() -> Iterator[RefusalRecorder | None]:
    """The recorder of the outermost block (yielded there), or None inside a block that already has one."""
    if _recorder.get() is not None:
        yield None
        return
    recorder = RefusalRecorder()
    token = _recorder.set(recorder)
    try:
        yield recorder
    finally:
        _recorder.reset(token)


def refusal_record(*, tenant_id: str, write: Write) -> None:
    """Write `write` once the refused transaction rolled back (or with it, when the refusal is caught and the block
    commits). Outside any tenant context it runs at once: there is no transaction of a door to roll back."""
    recorder = _recorder.get()
    if recorder is None:
        write()
    else:
        recorder.writes.append((tenant_id, write))
