"""Batches prepared in a background thread while the device runs the previous ones.

The loop waits for each member's outputs (they go to the cache on the host), so with batches
made in the main thread the device idles while the next batch is stacked. A thread overlaps the
two without worker processes, whose batches cross in shared memory and cost a copy and a page
fault per page on the way (about 2,000 ImageNet-sized samples/s on an H100 machine, measured).
torch's copies and the wait for the device release the GIL, so the two threads run together.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_END = object()  # the producer has no more batches


class BackgroundBatches(Iterable[T]):
    """Iterates ``batches`` in a daemon thread, at most ``prefetch`` batches ahead. An error in
    the thread is raised where the batch it stopped would have been; a consumer that stops early
    (an error, Ctrl-C, SIGTERM) stops the thread before it goes on."""

    def __init__(self, batches: Iterable[T], prefetch: int = 2):
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        self.batches = batches
        self.prefetch = prefetch

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[T]:
        ready: queue.Queue = queue.Queue(self.prefetch)
        stop = threading.Event()

        def offer(item) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for batch in self.batches:
                    if not offer((batch, None)):
                        return
            except BaseException as err:  # handed to the consumer, raised there
                offer((None, err))
                return
            offer((_END, None))

        thread = threading.Thread(target=produce, name="committee-batches", daemon=True)
        thread.start()
        try:
            while True:
                batch, err = ready.get()
                if err is not None:
                    raise err
                if batch is _END:
                    return
                yield batch
        finally:
            stop.set()
            thread.join()
