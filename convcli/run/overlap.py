"""Two steps of one job at once: rows handed from the thread computing them to the one writing them.

The streamed command fills its output pixels chunk by chunk (:func:`convcli.streaming.stream_stage`)
while the PNG writer compresses the rows already final on another thread
(:func:`convcli.io.encode.encode_image` with ``ready=``). :class:`RowProgress` is the count
of final rows between them; :class:`Background` runs the writer and hands back its result
or its exception.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Abandoned(Exception):
    """The rows a waiter wanted will never come: the step producing them failed."""


class RowProgress:
    """How many leading rows are final; :meth:`wait` blocks until enough are, or the producer failed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._rows = 0
        self._failed = False

    def publish(self, rows: int) -> None:
        with self._cond:
            self._rows = max(self._rows, rows)
            self._cond.notify_all()

    def fail(self) -> None:
        """The producer stopped: every waiter (now or later) raises :class:`Abandoned`."""
        with self._cond:
            self._failed = True
            self._cond.notify_all()

    def wait(self, rows: int) -> None:
        with self._cond:
            while self._rows < rows and not self._failed:
                self._cond.wait()
            if self._rows < rows:
                raise Abandoned


class Background(Generic[T]):
    """``fn()`` on a thread of its own, started at once; :meth:`result` joins it."""

    def __init__(self, fn: Callable[[], T], name: str) -> None:
        self._fn = fn
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that calls result()
            self._error = exc

    def result(self) -> T:
        """``fn``'s return value, or its exception raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

