#!/usr/bin/env python3
"""A small tap for revlake's tests, speaking Singer (`tap --config C [--state S]`) or, when the
first argument is `discover` or `read`, the Airbyte protocol.

Two streams from the JSON file named by the config's `data` ({"customers": [...], "events": [...]}):
`customers` (key `id`, bookmark `updated_at`) and `events` (no key, bookmark `seq`). With a state,
only records after its bookmarks are emitted. A STATE follows every `state_every` records (default
2) and the end.

Config switches for failure tests: `fail_after` (exit 1 after that many records, with a stderr
line), `malformed_after` (print a non-JSON line after that many records), `ghost_record` (a RECORD
for a stream with no SCHEMA first), `require` (a config key that must be present, e.g. a
credential, else exit 3), `report` (a file to write the config file's path and mode to), `banner`
(print empty lines first).
"""

import json
import os
import stat
import sys


def arg(name):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return None


def load(path):
    with open(path) as f:
        return json.load(f)


AIRBYTE = len(sys.argv) > 1 and sys.argv[1] in ("discover", "read", "spec", "check")
config_path = arg("--config")
config = load(config_path)

if config.get("report"):
    mode = stat.S_IMODE(os.stat(config_path).st_mode)
    with open(config["report"], "w") as f:
        json.dump({"path": config_path, "mode": oct(mode)}, f)

if config.get("require") and config["require"] not in config:
    print(f"config lacks {config['require']}", file=sys.stderr)
    sys.exit(3)

SCHEMAS = {
    "customers": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": ["null", "string"]},
            "balance": {"type": ["null", "number"]},
            "active": {"type": ["null", "boolean"]},
            "updated_at": {"type": "string", "format": "date-time"},
            "tags": {"type": ["null", "array"], "items": {"type": "string"}},
        },
    },
    "events": {
        "type": "object",
        "properties": {
            "seq": {"type": "integer"},
            "kind": {"type": "string"},
            "at": {"type": "string", "format": "date-time"},
            "payload": {"type": ["null", "object"]},
        },
    },
}
KEYS = {"customers": ["id"], "events": []}
BOOKMARKS = {"customers": "updated_at", "events": "seq"}


def emit(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if AIRBYTE and sys.argv[1] == "discover":
    emit({"type": "LOG", "log": {"level": "INFO", "message": "discovering"}})
    emit({"type": "CATALOG", "catalog": {"streams": [
        {"name": name, "json_schema": SCHEMAS[name], "supported_sync_modes": ["full_refresh", "incremental"],
         "source_defined_cursor": True, "default_cursor_field": [BOOKMARKS[name]],
         "source_defined_primary_key": [[k] for k in KEYS[name]]}
        for name in SCHEMAS
    ]}})
    sys.exit(0)

# The state: Singer {"bookmarks": {stream: value}}; Airbyte a list of per-stream states.
bookmarks = {}
state_path = arg("--state")
if state_path:
    state = load(state_path)
    if AIRBYTE:
        for s in state:
            d = s["stream"]
            bookmarks[d["stream_descriptor"]["name"]] = d["stream_state"][BOOKMARKS[d["stream_descriptor"]["name"]]]
    else:
        bookmarks = dict(state.get("bookmarks", {}))
print(f"tap_fixture starting with bookmarks {bookmarks}", file=sys.stderr)

selected = list(SCHEMAS)
if AIRBYTE:
    catalog = load(arg("--catalog"))
    selected = [s["stream"]["name"] for s in catalog["streams"]]

if config.get("banner"):
    sys.stdout.write("\n\n")

if config.get("ghost_record"):
    emit({"type": "RECORD", "stream": "ghost", "record": {"id": 1}})

if not AIRBYTE:
    for name in selected:
        emit({"type": "SCHEMA", "stream": name, "schema": SCHEMAS[name], "key_properties": KEYS[name],
              "bookmark_properties": [BOOKMARKS[name]]})
    emit({"type": "ACTIVATE_VERSION", "stream": "customers", "version": 1})

data = load(config["data"])
pending = {name: [r for r in data.get(name, []) if name not in bookmarks or r[BOOKMARKS[name]] > bookmarks[name]]
           for name in selected}
# Interleave the streams: one record of each in turn.
order = []
while any(pending.values()):
    for name in selected:
        if pending[name]:
            order.append((name, pending[name].pop(0)))


def emit_state():
    if AIRBYTE:
        for name in selected:
            if name in bookmarks:
                emit({"type": "STATE", "state": {"type": "STREAM", "stream": {
                    "stream_descriptor": {"name": name}, "stream_state": {BOOKMARKS[name]: bookmarks[name]}}}})
    else:
        emit({"type": "STATE", "value": {"bookmarks": dict(bookmarks)}})


every = int(config.get("state_every", 2))
for n, (name, record) in enumerate(order, start=1):
    if config.get("fail_after") is not None and n > config["fail_after"]:
        print("boom: the upstream connection was lost", file=sys.stderr)
        if AIRBYTE:
            emit({"type": "TRACE", "trace": {"type": "ERROR", "emitted_at": 0,
                                              "error": {"message": "upstream connection lost"}}})
        sys.exit(1)
    if config.get("malformed_after") is not None and n > config["malformed_after"]:
        sys.stdout.write("this is not a message\n")
        sys.stdout.flush()
        emit({"type": "STATE", "value": {"bookmarks": {"customers": "9999", "events": 9999}}})
        sys.exit(0)
    if AIRBYTE:
        emit({"type": "RECORD", "record": {"stream": name, "data": record, "emitted_at": 1700000000000}})
    else:
        emit({"type": "RECORD", "stream": name, "record": record, "time_extracted": "2025-01-01T00:00:00Z"})
    bookmarks[name] = record[BOOKMARKS[name]]
    if n % every == 0:
        emit_state()
emit_state()
