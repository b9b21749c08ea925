#!/usr/bin/env python3
"""Directly-follows counts of an event log by pm4py, as JSON on stdout.

    python3 scripts/pm4py_dfg.py LOG.csv|LOG.xes|LOG.xes.gz [--case C --activity A --timestamp T]

CSV logs (as `revlake export-eventlog --format csv` writes them: case_id, activity, timestamp)
are read with pandas and formatted by pm4py.format_dataframe; XES logs with pm4py.read_xes.
Prints {"pm4py": version, "events": N, "dfg": [[from, to, count], ...] sorted, "start": {...},
"end": {...}}: the cross-check of revlake's marts.dfg (tests/it/mining.rs).
"""
import argparse
import json
import os
import sys
import warnings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--case", default="case_id")
    parser.add_argument("--activity", default="activity")
    parser.add_argument("--timestamp", default="timestamp")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    # pm4py prints a banner on import; keep stdout for the JSON.
    stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        import pandas as pd
        import pm4py

        name = args.log.lower()
        if name.endswith(".xes") or name.endswith(".xes.gz"):
            log = pm4py.read_xes(args.log)
            events = len(log)
            dfg, start, end = pm4py.discover_dfg(log)
        else:
            df = pd.read_csv(args.log, dtype={args.case: str, args.activity: str})
            df[args.timestamp] = pd.to_datetime(df[args.timestamp], utc=True, format="ISO8601")
            df = pm4py.format_dataframe(
                df,
                case_id=args.case,
                activity_key=args.activity,
                timestamp_key=args.timestamp,
            )
            events = len(df)
            dfg, start, end = pm4py.discover_dfg(df)
        version = pm4py.__version__
    finally:
        sys.stdout = stdout
    out = {
        "pm4py": version,
        "events": events,
        "dfg": sorted([a, b, int(n)] for (a, b), n in dfg.items()),
        "start": {k: int(v) for k, v in sorted(start.items())},
        "end": {k: int(v) for k, v in sorted(end.items())},
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
