#!/usr/bin/env python3
"""The numpy peer of `revlake simulate --bench`: the same chain, simulated the same way, vectorized.

Input: a JSON file written by the benchmark (`peer_input` in src/simulate/bench.rs):
  cdf        rows of cumulative transition probabilities per stage code (+1 virtual "open" state)
  quantiles  21 time-in-stage quantiles (0 %, 5 %, ..., 100 %) per stage code
  kind       per code: -1 open stage, 0 closed_lost, 1 closed_won, 2 stuck/open
  start, age the deals' current stage codes and days already spent there
  runs, seed, max_steps

Like the Rust engine it advances batches of deals x runs step by step in structure-of-arrays state
(stage codes, elapsed days, an active index list), draws the time in stage by inverse CDF with
linear interpolation between quantiles (conditional on the days already spent at the first step),
the next stage from the cumulative row, and summarizes each deal: p_win, mean days to close and
their 2.5/97.5 percentiles. Random numbers come from numpy's PCG64 (not the same numbers as revlake,
the same distribution).

Output: one JSON line: seconds, steps (deal-steps simulated), peak_rss_kib, mean_p_win, mean_days,
numpy version.

    python3 benches/simulate_numpy.py workload.json [--batch-lanes N]
"""

import json
import resource
import sys
import time

import numpy as np

Q = 21


def main() -> None:
    path = sys.argv[1]
    batch_lanes = 1 << 20
    if "--batch-lanes" in sys.argv:
        batch_lanes = int(sys.argv[sys.argv.index("--batch-lanes") + 1])
    with open(path) as f:
        cfg = json.load(f)
    cdf = np.asarray(cfg["cdf"], dtype=np.float32)
    quant = np.asarray(cfg["quantiles"], dtype=np.float32)
    kind = np.asarray(cfg["kind"], dtype=np.int8)
    start = np.asarray(cfg["start"], dtype=np.int64)
    age = np.asarray(cfg["age"], dtype=np.float32)
    runs = int(cfg["runs"])
    max_steps = int(cfg["max_steps"])
    rng = np.random.default_rng(int(cfg["seed"]))
    n_deals = start.shape[0]

    started = time.perf_counter()
    steps_total = 0
    p_win = np.empty(n_deals)
    mean_days = np.empty(n_deals)
    days_lo = np.empty(n_deals)
    days_hi = np.empty(n_deals)
    per_batch = max(1, batch_lanes // runs)
    for b0 in range(0, n_deals, per_batch):
        deals = np.arange(b0, min(b0 + per_batch, n_deals))
        lanes = deals.size * runs
        stage = np.repeat(start[deals], runs)
        lane_age = np.repeat(age[deals], runs)
        elapsed = np.zeros(lanes, dtype=np.float32)
        out_kind = np.full(lanes, 2, dtype=np.int8)
        active = np.arange(lanes)
        step = 0
        while active.size and step < max_steps:
            n = active.size
            s = stage[active]
            u1 = rng.random(n, dtype=np.float32)
            u2 = rng.random(n, dtype=np.float32)
            qs = quant[s]
            rows = np.arange(n)
            if step == 0:
                # Conditional on the days already spent: u' = F(age) + u (1 - F(age)).
                a = lane_age[active]
                pos = np.clip((qs <= a[:, None]).sum(1) - 1, 0, Q - 2)
                q0 = qs[rows, pos]
                width = qs[rows, pos + 1] - q0
                frac = np.where(width > 0, (a - q0) / np.where(width > 0, width, 1), 0)
                lo = np.where(a <= qs[:, 0], 0.0, np.where(a >= qs[:, -1], 1.0, (pos + np.clip(frac, 0, 1)) / (Q - 1)))
                lo = lo.astype(np.float32)
                u = lo + u1 * (1 - lo)
                x = u * (Q - 1)
                i = np.minimum(x.astype(np.int64), Q - 2)
                f = x - i
                dur = qs[rows, i] + f * (qs[rows, i + 1] - qs[rows, i]) - a
                tail = u1 * (qs[:, -1] - qs[:, -2])
                dur = np.where(lo < 1, np.maximum(dur, 0), tail)
            else:
                x = u1 * (Q - 1)
                i = np.minimum(x.astype(np.int64), Q - 2)
                f = x - i
                dur = qs[rows, i] + f * (qs[rows, i + 1] - qs[rows, i])
            elapsed[active] += dur
            nxt = (cdf[s] <= u2[:, None]).sum(1)
            k = kind[nxt]
            done = k >= 0
            out_kind[active[done]] = k[done]
            stage[active] = nxt
            active = active[~done]
            steps_total += n
            step += 1
        won = (out_kind == 1).reshape(deals.size, runs)
        closed = (out_kind != 2).reshape(deals.size, runs)
        days = elapsed.reshape(deals.size, runs)
        p_win[deals] = won.mean(axis=1)
        if closed.all():
            mean_days[deals] = days.mean(axis=1)
            lo_hi = np.percentile(days, [2.5, 97.5], axis=1)
        else:
            masked = np.where(closed, days, np.nan)
            mean_days[deals] = np.nanmean(masked, axis=1)
            lo_hi = np.nanpercentile(masked, [2.5, 97.5], axis=1)
        days_lo[deals] = lo_hi[0]
        days_hi[deals] = lo_hi[1]
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "steps": int(steps_total),
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "mean_p_win": float(p_win.mean()) if n_deals else 0.0,
                "mean_days": float(np.nanmean(mean_days)) if n_deals else 0.0,
                "numpy": np.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
