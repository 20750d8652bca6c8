"""Long requests that report progress: run the work on a thread, stream its progress."""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator


def with_progress(work: Callable[[Callable[[int], None]], dict],
                  label: str) -> Iterator[dict]:
    """Yield {label: n} as `work(progress)` reports, then the dict it returns.

    An exception in `work` is raised here, after the progress so far.
    """
    events: queue.Queue = queue.Queue()
    result: dict = {}

    def run():
        try:
            result["value"] = work(events.put)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = exc
        finally:
            events.put(None)
    worker = threading.Thread(target=run, name=f"progress-{label}", daemon=True)
    worker.start()
    while (item := events.get()) is not None:
        yield {label: item}
    worker.join()
    if "error" in result:
        raise result["error"]
    yield result["value"]


def own_copy(stream, spill_bytes: int = 8 * 1024 * 1024):
    """A copy of an uploaded file that outlives the request (a streamed answer reads it
    after the view has returned, when werkzeug has closed the upload)."""
    import shutil
    import tempfile
    copy = tempfile.SpooledTemporaryFile(max_size=spill_bytes)
    shutil.copyfileobj(stream, copy, 1 << 16)
    copy.seek(0)
    return copy
