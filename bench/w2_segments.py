"""W2: the segment counts Q1–Q8 of WORKLOAD.md through Unico's HTTP API (one keep-alive
connection, median of 7 after a warm-up with Python's http.client, and the median of 2 s of
back-to-back requests with wrk, a C client, when installed), and the same queries on DuckDB and Polars over the
same CSV in the same run, for ratios against the best anchor.

    python3 bench/w2_segments.py --server http://127.0.0.1:18282 --key KEY --app 1 \\
        --csv target/bench-data/customers_long.csv [--no-anchor]

The server must hold the benchmark data (bench/w1_import.sh --keep leaves it running).
"""
import argparse, http.client, json, os, re, shutil, statistics, subprocess, tempfile, time, urllib.parse

QUERIES = {
    "Q1": 'country = "ES" and age between 25 and 34',
    "Q2": 'tier in ("gold", "platinum") and last_purchase_at before 90d ago',
    "Q3": 'city = "Madrid" or (lifetime_value > 5000 and orders >= 10)',
    "Q4": "birthdate anniversary",
    "Q5": 'email ends_with "@gmail.com" and not gender = "F"',
    "Q6": 'first_name contains "an"',
    "Q7": "last_purchase_at not_exists",
}
SQL = {
    "Q1": "country = 'ES' AND age BETWEEN 25 AND 34",
    "Q2": "tier IN ('gold','platinum') AND last_purchase_at < TIMESTAMPTZ '2026-11-28 00:00:00+00' - INTERVAL 90 DAY",
    "Q3": "city = 'Madrid' OR (lifetime_value > 5000 AND orders >= 10)",
    "Q4": "month(birthdate) = 11 AND day(birthdate) = 28",
    "Q5": "email LIKE '%@gmail.com' AND (gender IS NULL OR gender <> 'F')",
    "Q6": "lower(first_name) LIKE '%an%'",
    "Q7": "last_purchase_at IS NULL",
}


def wrk_median_ms(server, key, method, path, body=None, seconds=2):
    """The median latency of `seconds` of back-to-back requests on one keep-alive
    connection, measured by wrk (a C client, so the client's own overhead is microseconds
    where Python's http.client adds about 0.05 ms to every round trip)."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    with script:
        script.write(f'wrk.method = "{method}"\n')
        if body is not None:
            script.write(f"wrk.body = [==[{body}]==]\n")
        script.write('wrk.headers["Content-Type"] = "application/json"\n')
        script.write(f'wrk.headers["Authorization"] = "Bearer {key}"\n')
    try:
        out = subprocess.run(["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", "-s", script.name, server + path],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    if "Non-2xx" in out:
        raise SystemExit(f"wrk {method} {path}: error responses\n{out}")
    value, unit = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def median_ms(fn, runs=7):
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="http://127.0.0.1:18282")
    ap.add_argument("--key", required=True)
    ap.add_argument("--app", default="1")
    ap.add_argument("--csv")
    ap.add_argument("--no-anchor", action="store_true")
    ap.add_argument("--wrk-seconds", type=float, default=2, help="per query; 0 skips the wrk column")
    args = ap.parse_args()
    url = urllib.parse.urlparse(args.server)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}

    def request(method, path, body=None):
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise SystemExit(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data)

    base = f"/v1/apps/{args.app}"
    t = time.perf_counter()
    request("POST", f"{base}/count", json.dumps({"filter": QUERIES["Q7"]}))
    first = (time.perf_counter() - t) * 1000
    unico = {}
    for q, text in QUERIES.items():
        body = json.dumps({"filter": text})
        count = request("POST", f"{base}/count", body)["count"]
        unico[q] = (median_ms(lambda: request("POST", f"{base}/count", body)), count)
    # The floor of any request on this connection: what the count route adds is Q7 − this.
    health = median_ms(lambda: request("GET", "/health"), runs=51)
    q7_many = median_ms(lambda: request("POST", f"{base}/count", json.dumps({"filter": QUERIES["Q7"]})), runs=51)
    q8 = "/customers?" + urllib.parse.urlencode({"filter": QUERIES["Q1"], "limit": 50})
    first_q8 = request("GET", base + q8)["customers"][0]["customerId"]
    unico["Q8"] = (median_ms(lambda: request("GET", base + q8)), first_q8)
    # The same requests timed by a C client (wrk), when installed.
    fast = {}
    if args.wrk_seconds > 0 and shutil.which("wrk"):
        secs = int(max(1, args.wrk_seconds))
        for q, text in QUERIES.items():
            fast[q] = wrk_median_ms(args.server, args.key, "POST", f"{base}/count", json.dumps({"filter": text}), secs)
        fast["Q8"] = wrk_median_ms(args.server, args.key, "GET", base + q8, None, secs)
        fast["health"] = wrk_median_ms(args.server, args.key, "GET", "/health", None, secs)

    anchor = {}
    if not args.no_anchor and args.csv:
        import duckdb

        spec = [("email", "VARCHAR"), ("first_name", "VARCHAR"), ("last_name", "VARCHAR"), ("city", "VARCHAR"),
                ("country", "VARCHAR"), ("gender", "VARCHAR"), ("tier", "VARCHAR"), ("age", "DOUBLE"),
                ("lifetime_value", "DOUBLE"), ("orders", "DOUBLE"), ("birthdate", "DATE"),
                ("signup_at", "TIMESTAMPTZ"), ("last_purchase_at", "TIMESTAMPTZ")]
        cols = ", ".join(f"CAST(max(fieldValue) FILTER (WHERE fieldName = '{n}') AS {t}) AS {n}" for n, t in spec)
        db = duckdb.connect(config={"threads": 2})
        db.execute(f"CREATE TABLE c AS SELECT customerId, {cols} FROM read_csv('{args.csv}', header=true, all_varchar=true) GROUP BY customerId")
        for q, where in SQL.items():
            sql = f"SELECT count(*) FROM c WHERE {where}"
            anchor[q] = (median_ms(lambda: db.execute(sql).fetchone()), db.execute(sql).fetchone()[0])
        sql8 = f"SELECT customerId FROM c WHERE {SQL['Q1']} ORDER BY customerId LIMIT 50"
        anchor["Q8"] = (median_ms(lambda: db.execute(sql8).fetchall()), db.execute(sql8).fetchall()[0][0])

    polars = {}
    if not args.no_anchor and args.csv:
        import datetime
        import polars as pl

        long = pl.read_csv(args.csv, infer_schema=False)
        wide = long.pivot(on="fieldName", index="customerId", values="fieldValue", aggregate_function="first")
        wide = wide.with_columns(
            [pl.col(c).cast(pl.Float64) for c in ("age", "lifetime_value", "orders")]
            + [pl.col("birthdate").str.to_date("%Y-%m-%d")]
            + [pl.col(c).str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC") for c in ("signup_at", "last_purchase_at")]
        )
        cutoff = datetime.datetime(2026, 11, 28, tzinfo=datetime.timezone.utc) - datetime.timedelta(days=90)
        exprs = {
            "Q1": (pl.col("country") == "ES") & pl.col("age").is_between(25, 34),
            "Q2": pl.col("tier").is_in(["gold", "platinum"]) & (pl.col("last_purchase_at") < cutoff),
            "Q3": (pl.col("city") == "Madrid") | ((pl.col("lifetime_value") > 5000) & (pl.col("orders") >= 10)),
            "Q4": (pl.col("birthdate").dt.month() == 11) & (pl.col("birthdate").dt.day() == 28),
            "Q5": pl.col("email").str.ends_with("@gmail.com") & (pl.col("gender").is_null() | (pl.col("gender") != "F")),
            "Q6": pl.col("first_name").str.to_lowercase().str.contains("an", literal=True),
            "Q7": pl.col("last_purchase_at").is_null(),
        }
        lazy = wide.lazy()
        for q, e in exprs.items():
            run = lambda e=e: lazy.filter(e).select(pl.len()).collect().item()
            polars[q] = (median_ms(run), run())
        run8 = lambda: lazy.filter(exprs["Q1"]).select("customerId").sort("customerId").head(50).collect()
        polars["Q8"] = (median_ms(run8), run8()["customerId"][0])

    print(f"first count after start (engine build included): {first:.0f} ms")
    print(f"round trip, median of 51: GET /health {health:.3f} ms, Q7 count {q7_many:.3f} ms")
    if fast:
        print(f"wrk round trip, median: GET /health {fast['health']:.3f} ms")
    nan = float("nan")
    print(f"{'query':<6} {'Unico py':>9} {'Unico wrk':>10} {'DuckDB ms':>10} {'Polars ms':>10} {'py/best':>8} {'wrk/best':>9}"
          "  counts (Unico / DuckDB / Polars)")
    for q in unico:
        u_ms, u_count = unico[q]
        w_ms = fast.get(q, nan)
        d_ms, d_count = anchor.get(q, (nan, "-"))
        p_ms, p_count = polars.get(q, (nan, "-"))
        best = min(d_ms, p_ms)
        print(f"{q:<6} {u_ms:>9.2f} {w_ms:>10.3f} {d_ms:>10.2f} {p_ms:>10.2f} {u_ms / best:>8.2f} {w_ms / best:>9.2f}"
              f"  {u_count} / {d_count} / {p_count}")


if __name__ == "__main__":
    main()
