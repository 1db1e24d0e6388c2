"""PostgreSQL mode against the raw PostgreSQL anchor and the embedded store, in one run, on
the 1M-customer workload (../shared/bench/WORKLOAD.md):

  (a) the anchor: the long CSV loaded into a plain table with COPY (psql's \\copy, so the
      file travels through a client as Unico's upload does), pivoted into a typed table
      keyed on the customerId, then Q1-Q8 as SQL (median of 7 after a warm-up);
  (b) `unico serve --database postgres://...` importing the same CSV through the HTTP API
      (fields created first; until the import reports success), then Q1-Q7 through
      `POST /count` and Q8 as the list `GET .../customers?filter=`;
  (c) the same on the embedded store (a fresh data directory); the two servers' queries
      are timed in alternating rounds, so both see the same load;
  (d) durable single-field PATCH (and reads of one customer) over HTTP with wrk, as
      bench/w3_point_ops.sh measures them (10 000 customers, 32 connections, 2 threads,
      rounds of 3 s, median), in both modes;
  (e) two servers on one database: the delay from a PATCH acknowledged by server A to its
      visibility in a count on server B (B polled back to back), p50 and p99.

    python3 bench/pg_mode.py [--pg postgres://postgres@127.0.0.1:5432] [--rounds 7]
        [--csv target/bench-data/customers_long.csv] [--bin target/release/unico]

Needs psql, a PostgreSQL reachable as an administrator (a database is created for each part
and dropped at the end) and wrk for (d) (skipped without it). Standard library only.
Prints a markdown table.
"""
import argparse, http.client, json, os, re, shutil, statistics, subprocess, tempfile, time, urllib.parse

KEY = "bench-admin-key-0123456789"
QUERIES = {
    "Q1": 'country = "ES" and age between 25 and 34',
    "Q2": 'tier in ("gold", "platinum") and last_purchase_at before 90d ago',
    "Q3": 'city = "Madrid" or (lifetime_value > 5000 and orders >= 10)',
    "Q4": "birthdate anniversary",
    "Q5": 'email ends_with "@gmail.com" and not gender = "F"',
    "Q6": 'first_name contains "an"',
    "Q7": "last_purchase_at not_exists",
}
# "Today" is 2026-11-28 for the anchor, as in WORKLOAD.md; Unico uses its clock (the counts
# of Q2 and Q4 then differ by day, the timings do not).
SQL = {
    "Q1": "country = 'ES' AND age BETWEEN 25 AND 34",
    "Q2": "tier IN ('gold','platinum') AND last_purchase_at < TIMESTAMPTZ '2026-11-28 00:00:00+00' - INTERVAL '90 days'",
    "Q3": "city = 'Madrid' OR (lifetime_value > 5000 AND orders >= 10)",
    "Q4": "extract(month FROM birthdate) = 11 AND extract(day FROM birthdate) = 28",
    "Q5": "email LIKE '%@gmail.com' AND (gender IS NULL OR gender <> 'F')",
    "Q6": "first_name ILIKE '%an%'",
    "Q7": "last_purchase_at IS NULL",
}
TYPES = {"string": "text", "number": "double precision", "datetime": "timestamptz"}


def psql(url, script, value=False):
    """Runs `script` in psql; its output (with `value`, bare values: one per line)."""
    flags = ["-t", "-A"] if value else []
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *flags, url], input=script, text=True,
                         capture_output=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"psql failed: {out.stderr}")
    return out.stdout


def db_url(base, name):
    return base.rstrip("/") + "/" + name


class Server:
    """One `unico serve` process and a keep-alive connection to it."""

    def __init__(self, binary, port, work, database=None, name="server"):
        self.port, self.name = port, name
        self.data = os.path.join(work, f"data-{port}")
        args = [binary, "serve", "--data", self.data, "--addr", f"127.0.0.1:{port}"]
        if database:
            args += ["--database", database]
        env = dict(os.environ, UNICO_ADMIN_KEY=KEY, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.log = open(os.path.join(work, f"log-{port}"), "w")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.conn = None
        for _ in range(200):
            try:
                self.request("GET", "/health")
                return
            except (OSError, http.client.HTTPException):
                self.conn = None
                time.sleep(0.05)
        raise SystemExit(f"{name} did not start; see {self.log.name}")

    def request(self, method, path, body=None, headers=None, ok=(200, 201, 202, 204)):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        h.update(headers or {})
        self.conn.request(method, path, body=body, headers=h)
        response = self.conn.getresponse()
        data = response.read()
        if response.status not in ok:
            raise SystemExit(f"{self.name}: {method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def peak_rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM"):
                    return int(line.split()[1]) // 1024
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def median_ms(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def anchor(pg, csv, fields, runs):
    """(a): COPY + pivot into a typed table, then the queries; times from psql's \\timing."""
    url = db_url(pg, "unico_bench_anchor")
    psql(db_url(pg, "postgres"), "DROP DATABASE IF EXISTS unico_bench_anchor; CREATE DATABASE unico_bench_anchor;")
    cols = []
    for f in fields:
        typ = "date" if f.get("format") == "date" else TYPES[f["type"].lower()]
        cols.append(f"CAST(max(field_value) FILTER (WHERE field_name = '{f['name']}') AS {typ}) AS {f['name']}")
    load = f"""
        CREATE TABLE long (customer_id text, field_name text, field_value text);
        \\copy long FROM '{os.path.abspath(csv)}' WITH (FORMAT csv, HEADER true)
        CREATE TABLE c AS SELECT customer_id COLLATE "C" AS customer_id, {", ".join(cols)}
            FROM long GROUP BY customer_id;
        ALTER TABLE c ADD PRIMARY KEY (customer_id);
        DROP TABLE long;
        CHECKPOINT;
    """
    t = time.perf_counter()
    psql(url, load)
    load_s = time.perf_counter() - t
    out = {}
    script = ["\\timing on"]
    for q, where in SQL.items():
        script += [f"SELECT '{q}', count(*) FROM c WHERE {where};"] * (runs + 1)
    script += [f"SELECT 'Q8', min(customer_id) FROM (SELECT customer_id FROM c WHERE {SQL['Q1']} "
               "ORDER BY customer_id LIMIT 50) first;"] * (runs + 1)
    text = psql(url, "\n".join(script) + "\n")
    results = re.findall(r"^\s*(Q\d)\s*\|\s*(\S+)\s*$", text, re.M)
    times = [float(x) for x in re.findall(r"^Time: ([\d.]+) ms", text, re.M)]
    for i in range(0, len(results), runs + 1):
        q, answer = results[i]
        out[q] = (statistics.median(times[i + 1:i + runs + 1]), answer)
    size = psql(url, "SELECT pg_total_relation_size('c') / 1048576;", value=True).strip()
    return load_s, out, size


def create_schema(server, fields, name="bench"):
    app = server.request("POST", "/v1/apps", json.dumps({"name": name}))["id"]
    for f in fields:
        server.request("POST", f"/v1/apps/{app}/fields", json.dumps({"name": f["name"], "type": f["type"].lower()}))
    return app


def import_csv(server, app, csv):
    """Uploads the CSV and waits until the import reports success; answers (seconds to
    success, seconds until the first count answers after it, the first count's answer)."""
    size = os.path.getsize(csv)
    t = time.perf_counter()
    with open(csv, "rb") as f:
        started = server.request("POST", f"/v1/apps/{app}/imports", f,
                                 {"Content-Type": "text/csv", "Content-Length": str(size)})
    import_id = started.get("id", 1) if isinstance(started, dict) else 1
    while True:
        status = server.request("GET", f"/v1/apps/{app}/imports/{import_id}")
        state = status.get("state") or status.get("import", {}).get("state")
        if state != "running":
            break
        time.sleep(0.05)
    done = time.perf_counter() - t
    if state != "succeeded":
        raise SystemExit(f"{server.name}: import ended {state}: {json.dumps(status)[:500]}")
    # The first count waits for the engine to rebuild the application after the bulk import;
    # past the server's bound it answers 503 (retry later), and is asked again.
    t = time.perf_counter()
    while "count" not in server.request("POST", f"/v1/apps/{app}/count", json.dumps({"filter": QUERIES["Q7"]}),
                                        ok=(200, 503)):
        if time.perf_counter() - t > 600:
            raise SystemExit(f"{server.name}: no count within 600 s of the import's end")
        time.sleep(0.1)
    first = time.perf_counter() - t
    return done, first


def queries(servers, apps, runs):
    """(b) and (c): each server's Q1-Q8, in alternating rounds; medians."""
    samples = {s.name: {q: [] for q in list(QUERIES) + ["Q8"]} for s in servers}
    answers = {s.name: {} for s in servers}
    q8 = "/customers?" + urllib.parse.urlencode({"filter": QUERIES["Q1"], "limit": 50})
    for s, app in zip(servers, apps):  # warm-up, and the answers
        for q, text in QUERIES.items():
            answers[s.name][q] = s.request("POST", f"/v1/apps/{app}/count", json.dumps({"filter": text}))["count"]
        answers[s.name]["Q8"] = s.request("GET", f"/v1/apps/{app}{q8}")["customers"][0]["customerId"]
    for _ in range(runs):
        for s, app in zip(servers, apps):
            for q, text in QUERIES.items():
                body = json.dumps({"filter": text})
                t = time.perf_counter()
                s.request("POST", f"/v1/apps/{app}/count", body)
                samples[s.name][q].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            s.request("GET", f"/v1/apps/{app}{q8}")
            samples[s.name]["Q8"].append((time.perf_counter() - t) * 1000)
    return {n: {q: statistics.median(v) for q, v in by_q.items()} for n, by_q in samples.items()}, answers


def point_ops(server, work, rounds):
    """(d): as bench/w3_point_ops.sh: 10 000 customers in an application of their own, wrk
    with 2 threads and 32 connections, rounds of 3 s; median requests/s of GET and PATCH."""
    if not shutil.which("wrk"):
        return None
    app = server.request("POST", "/v1/apps", json.dumps({"name": "points"}))["id"]
    server.request("POST", f"/v1/apps/{app}/fields", json.dumps({"name": "visits", "type": "number"}))
    batch = [{"customerId": "c%07d" % i, "fields": {"visits": i}} for i in range(10000)]
    server.request("POST", f"/v1/apps/{app}/customers/batch", json.dumps(batch))
    out = {}
    for op in ("GET", "PATCH"):
        script = os.path.join(work, f"{op}-{server.port}.lua")
        with open(script, "w") as f:
            f.write(f"""counter = 0
request = function()
  counter = counter + 1
  local id = string.format("c%07d", (counter * 7919 + math.random(0, 9999)) % 10000)
  if "{op}" == "GET" then
    return wrk.format("GET", "/v1/apps/{app}/customers/" .. id, {{["Authorization"] = "Bearer {KEY}"}})
  end
  return wrk.format("PATCH", "/v1/apps/{app}/customers/" .. id,
    {{["Authorization"] = "Bearer {KEY}", ["Content-Type"] = "application/json"}},
    '{{"fields":{{"visits":' .. counter .. '}}}}')
end
""")
        rates = []
        for _ in range(rounds):
            res = subprocess.run(["wrk", "-t2", "-c32", "-d3s", "-s", script, f"http://127.0.0.1:{server.port}"],
                                 capture_output=True, text=True, check=True).stdout
            if "Non-2xx" in res:
                raise SystemExit(f"{server.name} {op}: error responses\n{res}")
            rates.append(float(re.search(r"Requests/sec:\s+([\d.]+)", res).group(1)))
        out[op] = (statistics.median(rates), rates)
    return out


def visibility(a, b, samples):
    """(e): a PATCH acknowledged by A, then B's count of it polled back to back until it
    includes the write; answers the delays in ms."""
    app = a.request("POST", "/v1/apps", json.dumps({"name": "visibility"}))["id"]
    a.request("POST", f"/v1/apps/{app}/fields", json.dumps({"name": "marker", "type": "number"}))
    a.request("POST", f"/v1/apps/{app}/customers/batch", json.dumps([{"customerId": "probe", "fields": {"marker": -1}}]))
    b.request("POST", f"/v1/apps/{app}/count", json.dumps({"filter": "marker = -1"}))  # B builds its engine
    delays = []
    for i in range(samples):
        a.request("PATCH", f"/v1/apps/{app}/customers/probe", json.dumps({"fields": {"marker": i}}))
        t = time.perf_counter()
        body = json.dumps({"filter": f"marker = {i}"})
        while b.request("POST", f"/v1/apps/{app}/count", body)["count"] != 1:
            if time.perf_counter() - t > 10:
                raise SystemExit("B did not see A's write within 10 s")
        delays.append((time.perf_counter() - t) * 1000)
    return delays


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="administrative URL, no database")
    ap.add_argument("--csv", default="target/bench-data/customers_long.csv")
    ap.add_argument("--bin", help="a release unico binary (default: build one)")
    ap.add_argument("--rounds", type=int, default=7, help="query rounds per server (median)")
    ap.add_argument("--wrk-rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=300, help="visibility samples for (e)")
    ap.add_argument("--port", type=int, default=18400)
    ap.add_argument("--keep", action="store_true", help="keep the servers' logs and data directories")
    ap.add_argument("--parts", default="abcde", help="which parts to run (b alone: the PostgreSQL-mode import)")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    if not os.path.exists(args.csv):
        os.makedirs(os.path.dirname(args.csv), exist_ok=True)
        subprocess.run(["python3", "../shared/bench/gen_customers.py", "--customers", "1000000", "--format", "long",
                        "--out", args.csv], check=True)
    fields = json.load(open(os.path.join(os.path.dirname(args.csv), "fields.json")))
    binary = args.bin
    if not binary:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "unico"], check=True)
        binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "unico")
    rows = sum(1 for _ in open(args.csv, "rb")) - 1
    parts = set(args.parts)
    work = tempfile.mkdtemp(prefix="unico-pg-mode.")
    admin = db_url(args.pg, "postgres")
    bench_db = "unico_bench_pg"
    servers, loaded, imports, points = [], [], {}, {}
    anchor_load, anchor_q, anchor_mb, pg_mb, delays = None, {}, "", "", []
    try:
        if "a" in parts:
            print(f"(a) anchor: COPY + pivot of {rows:,} rows ...", flush=True)
            anchor_load, anchor_q, anchor_mb = anchor(args.pg, args.csv, fields, args.rounds)
            print(f"    {anchor_load:.2f} s", flush=True)
        pg = None
        if parts & set("bde"):
            psql(admin, f"DROP DATABASE IF EXISTS {bench_db}; CREATE DATABASE {bench_db};")
            pg = Server(binary, args.port, work, db_url(args.pg, bench_db), "PostgreSQL mode")
            servers.append(pg)
        if "b" in parts:
            app = create_schema(pg, fields)
            print("(b) PostgreSQL mode: import ...", flush=True)
            imports[pg.name] = import_csv(pg, app, args.csv)
            print("    %.2f s, first count after it %.2f s" % imports[pg.name], flush=True)
            loaded.append((pg, app))
            pg_mb = psql(db_url(args.pg, bench_db), "SELECT pg_total_relation_size('customers') / 1048576;",
                         value=True).strip()
        em = None
        if parts & set("c"):
            em = Server(binary, args.port + 1, work, None, "embedded")
            servers.append(em)
            app = create_schema(em, fields)
            print("(c) embedded: import ...", flush=True)
            imports[em.name] = import_csv(em, app, args.csv)
            print("    %.2f s, first count after it %.2f s" % imports[em.name], flush=True)
            loaded.append((em, app))
        medians, answers = {}, {}
        if loaded:
            print("queries, alternating rounds ...", flush=True)
            medians, answers = queries([s for s, _ in loaded], [a for _, a in loaded], args.rounds)
        rss = {s.name: s.peak_rss_mb() for s in servers}
        if "d" in parts:
            print("(d) point operations (wrk) ...", flush=True)
            for server in (pg, em):
                if server:
                    points[server.name] = point_ops(server, work, args.wrk_rounds)
        if em:
            em.stop()
            servers.remove(em)
        if "e" in parts:
            print("(e) two servers on one database ...", flush=True)
            b = Server(binary, args.port + 2, work, db_url(args.pg, bench_db), "PostgreSQL mode, server B")
            servers.append(b)
            delays = visibility(pg, b, args.samples)

        def cell(value, fmt):
            return "" if value is None else fmt.format(value)

        def ratio(p, e):
            return "" if p is None or e is None else f"{p / e:.2f}"

        P, E = "PostgreSQL mode", "embedded"
        print()
        print(f"PostgreSQL mode against the raw PostgreSQL anchor and the embedded store, one run, "
              f"{rows:,} long rows; medians of {args.rounds} (ms unless said)")
        print()
        print("| | raw PostgreSQL (anchor) | Unico, PostgreSQL mode | Unico, embedded | PG mode / embedded |")
        print("| --- | ---: | ---: | ---: | ---: |")
        pi, ei = imports.get(P, (None, None)), imports.get(E, (None, None))
        print(f"| W1 import (s) | {cell(anchor_load, '{:.2f} (COPY + pivot)')} | {cell(pi[0], '{:.2f}')} "
              f"| {cell(ei[0], '{:.2f}')} | {ratio(pi[0], ei[0])} |")
        print(f"| first count after the import (s) | | {cell(pi[1], '{:.2f}')} | {cell(ei[1], '{:.2f}')} | |")
        print(f"| customers table on disk (MB) | {anchor_mb} | {pg_mb} | | |")
        for q in list(QUERIES) + ["Q8"]:
            a = anchor_q.get(q, (None, None))[0]
            p, e = medians.get(P, {}).get(q), medians.get(E, {}).get(q)
            print(f"| {q} | {cell(a, '{:.2f}')} | {cell(p, '{:.2f}')} | {cell(e, '{:.2f}')} | {ratio(p, e)} |")
        for op, label in (("PATCH", "durable single-field PATCH (req/s)"), ("GET", "read one customer (req/s)")):
            p = (points.get(P) or {}).get(op, (None,))[0]
            e = (points.get(E) or {}).get(op, (None,))[0]
            if p is not None or e is not None:
                print(f"| {label} | | {cell(p, '{:,.0f}')} | {cell(e, '{:,.0f}')} | {ratio(p, e)} |")
        if delays:
            print(f"| commit on A to count on B, p50 / p99 (ms) | | {pct(delays, 50):.2f} / {pct(delays, 99):.2f} | | |")
        print(f"| server peak RSS (MB) | | {rss.get(P, '')} | {rss.get(E, '')} | |")
        print()
        if answers:
            print("answers (anchor / PG mode / embedded): " + "; ".join(
                f"{q} {anchor_q.get(q, ('', '-'))[1]} / {answers.get(P, {}).get(q, '-')} / {answers.get(E, {}).get(q, '-')}"
                for q in list(QUERIES) + ["Q8"]))
        if "d" in parts:
            if all(points.values()):
                print("wrk rounds (req/s): " + "; ".join(
                    f"{name} {op} {[round(r) for r in by_op[op][1]]}" for name, by_op in points.items() for op in by_op))
            else:
                print("(d) skipped: wrk is not installed (apt-get install wrk)")
        if delays:
            print(f"visibility: {len(delays)} samples, min {min(delays):.2f} ms, max {max(delays):.2f} ms")
    finally:
        for s in servers:
            s.stop()
        if args.keep:
            print(f"logs and data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        psql(admin, f"DROP DATABASE IF EXISTS {bench_db} WITH (FORCE); "
                    "DROP DATABASE IF EXISTS unico_bench_anchor WITH (FORCE);")


if __name__ == "__main__":
    main()
