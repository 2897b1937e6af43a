"""The timer the PyTorch side of the benchmarks shares (bench/torch_*.py): median of 5 batches
of ~0.2 s after a warm-up call, the same rule as bench/bench.c's time_it for Kiln."""
import statistics
import time


def time_it(fn, sync=None):
    """Seconds per call: median of 5 batches of ~0.2 s after a warm-up call. `sync`, when given,
    waits for queued work (a GPU's) and is called after the warm-up, the sizing call and each
    batch, so a batch's calls queue back to back as Kiln's do."""
    wait = sync if sync is not None else (lambda: None)
    fn()
    wait()
    t0 = time.perf_counter()
    fn()
    wait()
    once = time.perf_counter() - t0
    reps = 1 if once > 0.2 else int(0.2 / max(once, 1e-6)) + 1
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        wait()
        samples.append((time.perf_counter() - t0) / reps)
    return statistics.median(samples)
