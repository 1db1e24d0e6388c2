"""DuckDB anchor for W1: load the long CSV and pivot it into a typed wide table (the
SQL of WORKLOAD.md), into a fresh on-disk database; wall time per round and the median."""
import os, statistics, sys, tempfile, time

import duckdb

csv, rounds = sys.argv[1], int(sys.argv[2])
spec = [("email", "VARCHAR"), ("first_name", "VARCHAR"), ("last_name", "VARCHAR"), ("city", "VARCHAR"),
        ("country", "VARCHAR"), ("gender", "VARCHAR"), ("tier", "VARCHAR"), ("age", "DOUBLE"),
        ("lifetime_value", "DOUBLE"), ("orders", "DOUBLE"), ("birthdate", "TIMESTAMP"),
        ("signup_at", "TIMESTAMPTZ"), ("last_purchase_at", "TIMESTAMPTZ")]
cols = ", ".join(f"CAST(max(fieldValue) FILTER (WHERE fieldName = '{n}') AS {t}) AS {n}" for n, t in spec)
times = []
for r in range(rounds):
    with tempfile.TemporaryDirectory() as d:
        con = duckdb.connect(os.path.join(d, "c.duckdb"), config={"threads": 2})
        t = time.perf_counter()
        con.execute(f"CREATE TABLE c AS SELECT customerId, {cols} FROM read_csv('{csv}', header=true, all_varchar=true) GROUP BY customerId")
        con.execute("CHECKPOINT")
        times.append(time.perf_counter() - t)
        con.close()
    print(f"DuckDB round {r + 1}: {times[-1]:.2f} s")
print(f"DuckDB W1 import: median {statistics.median(times):.2f} s over {rounds} rounds")
