"""The DuckDB peer of `revlake bench models` (src/cli/bench_models.rs embeds this file).

    python3 scripts/duckdb_models.py run SPEC.json      # build every model, timed
    python3 scripts/duckdb_models.py check SPEC.json    # fingerprints of both engines' outputs
    python3 scripts/duckdb_models.py udfs SPEC.json     # the UDF macros on sample calls

SPEC.json is written by the Rust side: the DuckDB settings, the UDF macros (SQL), the raw
tables (live Parquet files of each Delta table, declared columns), the seeds (CSV files) and the
models, already translated to DuckDB's dialect, in dependency order. Each mode prints one JSON
line on stdout; errors go to stderr with a non-zero exit (a failing model is named).

Python UDFs (registered here, used only where a macro cannot match revlake's UDF):
  _jaro_winkler_py  strsim's Jaro-Winkler by characters (the macro `jaro_winkler` calls it):
                    DuckDB's jaro_winkler_similarity compares bytes, scores two empty strings 0
                    and differs in the last bit on some ASCII pairs.
  stripe_mrr        a JSON walk over a Stripe subscription's items with per-item fallbacks.
"""

import json
import math
import sys
import time

import duckdb


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def lit(s):
    return "'" + str(s).replace("'", "''") + "'"


def files_list(files):
    return "[" + ", ".join(lit(f) for f in files) + "]"


# --- Python UDFs -------------------------------------------------------------------------------


def _jaro(a, b):
    """strsim 0.11 generic_jaro, by characters (src/sql/udf/jaro_winkler.rs)."""
    al, bl = len(a), len(b)
    if al == 0 and bl == 0:
        return 1.0
    if al == 0 or bl == 0:
        return 0.0
    rng = max(al, bl) // 2
    rng = rng - 1 if rng > 0 else 0
    af = [False] * al
    bf = [False] * bl
    m = 0
    for i, ca in enumerate(a):
        lo = i - rng if i > rng else 0
        hi = min(bl, i + rng + 1)
        for j in range(lo, hi):
            if not bf[j] and b[j] == ca:
                af[i] = bf[j] = True
                m += 1
                break
    if m == 0:
        return 0.0
    t = 0
    k = 0
    for i, ca in enumerate(a):
        if af[i]:
            while not bf[k]:
                k += 1
            if ca != b[k]:
                t += 1
            k += 1
    t //= 2
    return ((m / al) + (m / bl) + ((m - t) / m)) / 3.0


def jaro_winkler_py(a, b):
    s = _jaro(a, b)
    if s > 0.7:
        p = 0
        for x, y in zip(a[:4], b):
            if x != y:
                break
            p += 1
        return s + 0.1 * p * (1.0 - s)
    return s


ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                "vnd", "vuv", "xaf", "xof", "xpf"}


def _ascii_lower(s):
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in s)


def _minor(currency):
    return 1.0 if _ascii_lower(currency.strip()) in ZERO_DECIMAL else 100.0


def _num(v):
    """serde_json's Value::as_f64: numbers only."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _no_constants(name):
    raise ValueError(name)


def _months(interval, count):
    per = {"day": 12.0 / 365.0, "week": 12.0 / 52.0, "month": 1.0, "year": 12.0}.get(interval)
    if per is None or not count > 0.0:
        return None
    return count * per


def stripe_mrr_py(items, currency):
    """src/sql/udf/json_get.rs stripe_mrr."""
    if items is None:
        return None
    try:
        value = json.loads(items, parse_constant=_no_constants)
    except ValueError:
        return None
    lst = value.get("data", value) if isinstance(value, dict) else value
    if not isinstance(lst, list):
        return None
    minor = _minor(currency if currency is not None else "usd")
    total = 0.0
    for item in lst:
        if not isinstance(item, dict):
            continue
        q = _num(item.get("quantity"))
        quantity = 1.0 if q is None else q
        if "price" in item:
            price = item["price"]
            if not isinstance(price, dict):
                continue
            recurring = price.get("recurring")
            if not isinstance(recurring, dict):
                continue
            amount = _num(price.get("unit_amount"))
            if amount is None:
                d = price.get("unit_amount_decimal")
                if isinstance(d, str) and d == d.strip() and "_" not in d:
                    try:
                        amount = float(d)
                    except ValueError:
                        amount = None
            interval = recurring.get("interval")
            count = _num(recurring.get("interval_count"))
        elif "plan" in item:
            plan = item["plan"]
            if not isinstance(plan, dict):
                continue
            amount = _num(plan.get("amount"))
            interval = plan.get("interval")
            count = _num(plan.get("interval_count"))
        else:
            continue
        m = _months(interval, 1.0 if count is None else count) if isinstance(interval, str) else None
        if amount is None or m is None:
            continue
        total += amount * quantity / m / minor
    return total


def register_python_udfs(con):
    from duckdb.sqltypes import DOUBLE, VARCHAR

    con.create_function("_jaro_winkler_py", jaro_winkler_py, [VARCHAR, VARCHAR], DOUBLE)
    con.create_function("stripe_mrr", stripe_mrr_py, [VARCHAR, VARCHAR], DOUBLE,
                        null_handling="special")


# --- the session ------------------------------------------------------------------------------


def open_session(spec):
    con = duckdb.connect()
    for s in spec["settings"]:
        con.execute(s)
    register_python_udfs(con)
    con.execute(spec["macros"])
    return con


def setup_inputs(con, spec):
    for schema in spec["schemas"]:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for t in spec["tables"]:
        name, declared = t["name"], t["columns"]
        if t["files"]:
            src = f"read_parquet({files_list(t['files'])}, hive_partitioning = {str(t['hive']).lower()}, hive_types_autocast = false, union_by_name = true)"
            have = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
            extra = [f"CAST(NULL AS VARCHAR) AS \"{c}\"" for c in declared if c not in have]
            cols = ", ".join(["*"] + extra)
            con.execute(f"CREATE VIEW {name} AS SELECT {cols} FROM {src}")
        else:
            cols = ", ".join(
                f"CAST(NULL AS {'TIMESTAMPTZ' if c == '_synced_at' else 'VARCHAR'}) AS \"{c}\""
                for c in declared)
            con.execute(f"CREATE VIEW {name} AS SELECT {cols} WHERE false")
    for s in spec["seeds"]:
        con.execute(f"CREATE TABLE {s['name']} AS SELECT * FROM read_csv({lit(s['path'])}, header = true)")


def run(spec):
    t0 = time.perf_counter()
    con = open_session(spec)
    setup_inputs(con, spec)
    models = []
    for m in spec["models"]:
        t = time.perf_counter()
        try:
            if m["view"]:
                con.execute(f"CREATE VIEW {m['name']} AS {m['sql']}")
                rows = None
            else:
                con.execute(f"CREATE TABLE {m['name']} AS {m['sql']}")
                con.execute(f"COPY {m['name']} TO {lit(m['out'])} (FORMAT PARQUET)")
                rows = con.execute(f"SELECT count(*) FROM {m['name']}").fetchall()[0][0]
        except duckdb.Error as e:
            sys.stderr.write(f"model {m['name']}: {str(e).splitlines()[0]}\n")
            sys.exit(3)
        models.append({"name": m["name"], "seconds": time.perf_counter() - t, "rows": rows})
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(),
                      "version": duckdb.__version__, "models": models}))


# --- the agreement check ---------------------------------------------------------------------


NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
           "UINTEGER", "UBIGINT")
FLOATS = ("FLOAT", "DOUBLE", "REAL")


def fingerprint(con, src, key):
    """Order-independent aggregates of every column of `src` (a FROM clause)."""
    cols = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    exprs = ["count(*)"]
    kinds = []
    if key:
        parts = " || chr(31) || ".join(f"coalesce(CAST(\"{k}\" AS VARCHAR), '')" for k in key)
        exprs.append(f"count(DISTINCT {parts})")
    for name, ty, *_ in cols:
        c = f'"{name}"'
        ty = ty.upper()
        if ty in FLOATS or ty.startswith("DECIMAL"):
            kinds.append((name, "float"))
            exprs.append(f"count({c})")
            exprs.append(f"sum(CAST({c} AS DOUBLE))")
        else:
            if ty in NUMERIC:
                norm = f"CAST(CAST({c} AS BIGINT) AS VARCHAR)"
            elif ty.startswith("TIMESTAMP") or ty == "DATE":
                norm = f"CAST(CAST({c} AS TIMESTAMP) AS VARCHAR)"
            else:
                norm = f"CAST({c} AS VARCHAR)"
            kinds.append((name, "exact"))
            exprs.append(f"count({c})")
            exprs.append(f"CAST(sum(CAST(hash({norm}) AS HUGEINT)) AS VARCHAR)")
    row = con.execute(f"SELECT {', '.join(exprs)} FROM {src}").fetchall()[0]
    out = {"rows": row[0], "keys": row[1] if key else None, "columns": {}}
    i = 2 if key else 1
    for name, kind in kinds:
        value = row[i + 1]
        if kind == "float" and value is not None and not math.isfinite(value):
            value = str(value)
        out["columns"][name] = {"kind": kind, "count": row[i], "value": value}
        i += 2
    return out


def check(spec):
    con = duckdb.connect()
    for s in spec["settings"]:
        con.execute(s)
    result = []
    for m in spec["models"]:
        r = m["revlake_files"]
        duck_src = f"read_parquet({lit(m['out'])})"
        # A model with no rows may leave no files: an empty relation of DuckDB's columns.
        revlake_src = (f"read_parquet({files_list(r)}, hive_partitioning = {str(m['hive']).lower()}, hive_types_autocast = false, union_by_name = true)"
                       if r else f"(SELECT * FROM {duck_src} WHERE false)")
        result.append({"name": m["name"],
                       "revlake": fingerprint(con, revlake_src, m["key"]),
                       "duckdb": fingerprint(con, duck_src, m["key"])})
    print(json.dumps({"models": result}))


# --- the UDF sample check --------------------------------------------------------------------


def udfs(spec):
    con = open_session(spec)
    out = []
    for case in spec["cases"]:
        args = ", ".join("NULL" if a is None else lit(a) for a in case["args"])
        try:
            value = con.execute(f"SELECT {case['call']}({args})").fetchall()[0][0]
        except duckdb.Error as e:
            value = {"error": str(e).splitlines()[0]}
        if isinstance(value, float):
            # exact: JSON readers need not round-trip a double's last bit
            value = {"float": repr(value)}
        out.append(value)
    print(json.dumps({"results": out}))


def main():
    mode, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        spec = json.load(f)
    {"run": run, "check": check, "udfs": udfs}[mode](spec)


if __name__ == "__main__":
    main()
