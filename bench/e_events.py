"""E0–E7: interactions on the workload's data (1M customers, 9.67 M events), Unico against
DuckDB and Polars in the same run.

    python3 bench/e_events.py [--rounds 7] [--no-anchor] [--http-events 1000000]

Data (generated once into target/bench-data unless present):
    ../shared/bench/gen_customers.py --customers 1000000 --format long
    ../shared/bench/gen_events.py --customers-csv … --out events.ndjson

What it measures, on a fresh release server over a fresh data directory:
- E0: the NDJSON backfill (`POST …/events/imports`, uploaded by curl when installed,
  durable, until it reports success), then the first count after it, and separately
  `POST …/events` in batches of 1 000 from four client threads (bodies encoded beforehand,
  so the client's JSON encoding is not timed).
- E1–E6 through `POST …/count` on one keep-alive connection (median of `--rounds` after a
  warm-up), E7 the timeline's first page of a busy customer.
- The server's peak RSS, and a cold start: the server restarted, time to the first E1.
- Anchors: DuckDB loads the NDJSON into a typed table (amount extracted), once into a
  database file with a checkpoint (durable, as the backfill is) and once in memory, and
  answers E1–E6 on the latter;
  Polars answers them on in-memory frames; each the median of `--rounds`.
The anchors need `pip install duckdb polars pyarrow` (this script uses them when importable).
"""
import argparse, datetime, http.client, json, os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "target", "bench-data")
KEY = "bench-admin-key-0123456789"
PORT = int(os.environ.get("PORT", "18383"))

QUERIES = {
    "E1": "did purchase at_least 3 times within_last 90d",
    "E2": "did email_open within_last 30d and did_not purchase within_last 30d",
    "E3": 'country = "ES" and sum amount of purchase within_last 365d > 500',
    "E4": "did add_to_cart within_last 7d and did_not purchase within_last 7d",
    "E5": "last app_open before 30d ago",
    "E6": "did purchase on pos where amount > 100 within_last 180d",
}


def sql(now):
    n = f"TIMESTAMPTZ '{now.isoformat()}'"
    w = lambda days: f"ts >= {n} - INTERVAL {days} DAY AND ts <= {n}"
    return {
        "E1": f"SELECT count(*) FROM (SELECT customerId FROM ev WHERE type='purchase' AND {w(90)} GROUP BY customerId HAVING count(*) >= 3)",
        "E2": f"SELECT count(*) FROM (SELECT customerId FROM ev WHERE type='email_open' AND {w(30)} EXCEPT SELECT customerId FROM ev WHERE type='purchase' AND {w(30)})",
        "E3": f"SELECT count(*) FROM (SELECT customerId FROM ev JOIN c USING (customerId) WHERE c.country='ES' AND type='purchase' AND {w(365)} GROUP BY customerId HAVING sum(amount) > 500)",
        "E4": f"SELECT count(*) FROM (SELECT customerId FROM ev WHERE type='add_to_cart' AND {w(7)} EXCEPT SELECT customerId FROM ev WHERE type='purchase' AND {w(7)})",
        "E5": f"SELECT count(*) FROM (SELECT customerId FROM ev WHERE type='app_open' GROUP BY customerId HAVING max(ts) < {n} - INTERVAL 30 DAY)",
        "E6": f"SELECT count(DISTINCT customerId) FROM ev WHERE type='purchase' AND channel='pos' AND amount > 100 AND {w(180)}",
    }


def median_ms(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


class Client:
    def __init__(self):
        self.conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600, blocksize=1 << 20)
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def request(self, method, path, body=None, headers=None, ok=(200, 201, 202)):
        self.conn.request(method, path, body=body, headers=headers or self.headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status == 503 and path.endswith("/count"):
            # The engines are still absorbing a large write: ask again (timed by the caller).
            time.sleep(0.1)
            return self.request(method, path, body, headers, ok)
        if r.status not in ok:
            raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
        return json.loads(data) if data else None


def ensure_data():
    csv = os.path.join(DATA, "customers_long.csv")
    ndjson = os.path.join(DATA, "events.ndjson")
    os.makedirs(DATA, exist_ok=True)
    gen = os.path.join(ROOT, "..", "shared", "bench")
    if not os.path.exists(csv):
        subprocess.run([sys.executable, os.path.join(gen, "gen_customers.py"), "--customers", "1000000", "--format", "long", "--out", csv], check=True)
    if not os.path.exists(ndjson):
        subprocess.run([sys.executable, os.path.join(gen, "gen_events.py"), "--customers-csv", csv, "--out", ndjson], check=True)
    return csv, ndjson


def start(data_dir):
    binary = os.environ.get("UNICO_BIN") or os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "unico")
    env = dict(os.environ, UNICO_ADMIN_KEY=KEY, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    log = open(os.path.join(DATA, "server.log"), "a")
    proc = subprocess.Popen([binary, "serve", "--data", data_dir, "--addr", f"127.0.0.1:{PORT}"], env=env, stdout=log, stderr=log)
    started = time.perf_counter()
    while True:
        try:
            http.client.HTTPConnection("127.0.0.1", PORT, timeout=1).request("GET", "/health")
            break
        except OSError:
            time.sleep(0.01)
    return proc, started


def stop(proc, work=None):
    """Stops a server started by `start` (gracefully: it writes its snapshots) and removes
    its working directory."""
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)
    if work:
        subprocess.run(["rm", "-rf", work])


def build(skip=False):
    """Builds the release binary the benches start, unless told not to."""
    if not skip:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "unico"], cwd=ROOT, check=True)


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) // 1024
    return 0


def upload_events(c, app, ndjson):
    """Starts the backfill of `ndjson`; answers the started import. The file goes up with
    curl when it is installed (streamed, with its length, as `unico events import` sends
    it): Python's own sending, even in 1 MiB blocks, took more than twice as long (3-4 s
    against 1.3-1.4 s for the 1.7 GB) and made the client what the upload measured."""
    url = f"http://127.0.0.1:{PORT}/v1/apps/{app}/events/imports"
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/x-ndjson"}
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-sS", "--fail-with-body", "-X", "POST", "-H", "Expect:", "-T", ndjson]
                             + [a for k, v in headers.items() for a in ("-H", f"{k}: {v}")] + [url],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"the upload failed: {out.stderr} {out.stdout}")
        return json.loads(out.stdout)
    with open(ndjson, "rb") as f:
        return c.request("POST", f"/v1/apps/{app}/events/imports", f, headers=headers)


def wait_import(c, path):
    while True:
        r = c.request("GET", path)
        if r["state"] != "running":
            return r
        time.sleep(0.05)


def http_ingest(app, types, ndjson, events):
    """POSTs `events` lines of the file in batches of 1 000 from four threads; events/s."""
    bodies = []
    with open(ndjson, "rb") as f:
        batch = []
        for i, line in enumerate(f):
            if i >= events:
                break
            batch.append(line.strip())
            if len(batch) == 1000:
                bodies.append(b'{"events":[' + b",".join(batch) + b"]}")
                batch = []
        if batch:
            bodies.append(b'{"events":[' + b",".join(batch) + b"]}")
    lock = threading.Lock()
    queue = list(reversed(bodies))

    def worker():
        c = Client()
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            # The answer's totals come last; reading them there spares the client (which
            # shares the server's two cores) decoding a thousand results per request.
            c.conn.request("POST", f"/v1/apps/{app}/events", body=body, headers=c.headers)
            r = c.conn.getresponse()
            data = r.read()
            if r.status != 200 or not data.endswith(b',"errors":0}'):
                raise SystemExit(f"ingest errors: {r.status} {data[:300]!r} … {data[-100:]!r}")

    t, cpu = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=worker) for _ in range(int(os.environ.get("CLIENTS", "4")))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    took = time.perf_counter() - t
    # Events per second, and the share of a core the clients used meanwhile.
    return sum(b.count(b'"event_id"') for b in bodies) / took, (time.process_time() - cpu) / took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--no-anchor", action="store_true")
    ap.add_argument("--http-events", type=int, default=1_000_000)
    args = ap.parse_args()
    csv, ndjson = ensure_data()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "unico"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="unico-events-")
    data_dir = os.path.join(work, "data")
    proc, _ = start(data_dir)
    results = {}
    asked_at = None
    try:
        c = Client()
        app = c.request("POST", "/v1/apps", json.dumps({"name": "bench"}))["id"]
        for f in json.load(open(os.path.join(DATA, "fields.json"))):
            c.request("POST", f"/v1/apps/{app}/fields", json.dumps({"name": f["name"], "type": f["type"].lower()}))
        with open(csv, "rb") as f:
            started = c.request("POST", f"/v1/apps/{app}/imports", f, headers={"Authorization": f"Bearer {KEY}", "Content-Type": "text/csv"})
        wait_import(c, f"/v1/apps/{app}/imports/{started['id']}")
        types = json.load(open(os.path.join(DATA, "event_types.json")))
        for t in types:
            props = {p: ("number" if p in ("amount", "items") else "string") for p in (t.get("properties") or [])}
            body = {"code": t["code"], "name": t["name"], "retention_days": 3650, "properties": props}
            c.request("POST", f"/v1/apps/{app}/event-types", json.dumps(body))
        # E0: the backfill, durable, until it reports success.
        t = time.perf_counter()
        started = upload_events(c, app, ndjson)
        report = wait_import(c, f"/v1/apps/{app}/events/imports/{started['id']}")
        results["E0 import s"] = time.perf_counter() - t
        print(f"E0 import: {results['E0 import s']:.1f} s, peak RSS {peak_rss_mb(proc.pid)} MB", flush=True)
        if report["state"] != "succeeded":
            raise SystemExit(f"events import failed: {report}")
        results["E0 events"] = report["events_stored"]
        t = time.perf_counter()
        c.request("POST", f"/v1/apps/{app}/count", json.dumps({"filter": QUERIES["E1"]}))
        results["first count after import ms"] = (time.perf_counter() - t) * 1000
        print(f"first count after the import: {results['first count after import ms']:.0f} ms, peak RSS {peak_rss_mb(proc.pid)} MB", flush=True)
        unico = {}
        # The anchors answer as of this instant, so that every count can be compared.
        asked_at = datetime.datetime.now(datetime.timezone.utc)
        for q, text in QUERIES.items():
            body = json.dumps({"filter": text})
            count = c.request("POST", f"/v1/apps/{app}/count", body)["count"]
            unico[q] = (median_ms(lambda: c.request("POST", f"/v1/apps/{app}/count", body), args.rounds), count)
        busy = "c000000017"
        with open(ndjson) as f:
            seen = {}
            for i, line in enumerate(f):
                if i > 200_000:
                    break
                cid = json.loads(line)["customerId"]
                seen[cid] = seen.get(cid, 0) + 1
            busy = max(seen, key=seen.get)
        path = f"/v1/apps/{app}/customers/{busy}/events?limit=50"
        unico["E7"] = (median_ms(lambda: c.request("GET", path), args.rounds), busy)
        results["peak RSS MB (after import and queries)"] = peak_rss_mb(proc.pid)
        # HTTP ingestion into a second application.
        other = c.request("POST", "/v1/apps", json.dumps({"name": "ingest"}))["id"]
        for t in types:
            c.request("POST", f"/v1/apps/{other}/event-types", json.dumps({"code": t["code"], "retention_days": 3650}))
        results["E0 HTTP events/s"], results["E0 HTTP clients' share of a core"] = http_ingest(other, types, ndjson, args.http_events)
        results["peak RSS MB"] = peak_rss_mb(proc.pid)
        # Cold start: a graceful stop writes the snapshots; time to the first E1.
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
        proc, started_at = start(data_dir)
        c = Client()
        c.request("POST", f"/v1/apps/{app}/count", json.dumps({"filter": QUERIES["E1"]}))
        results["cold start to first E1 ms"] = (time.perf_counter() - started_at) * 1000
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
        disk = subprocess.run(["du", "-sm", data_dir], capture_output=True, text=True).stdout.split()[0]
        results["on disk MB"] = disk
        subprocess.run(["rm", "-rf", work])

    print()
    for k, v in results.items():
        print(f"{k:<40} {v:,.1f}" if isinstance(v, float) else f"{k:<40} {v}")
    for q in list(QUERIES) + ["E7"]:
        print(f"Unico {q}: {unico[q][0]:.2f} ms ({unico[q][1]})", flush=True)
    now = asked_at
    anchors = {}
    if not args.no_anchor:
        try:
            import duckdb
            import polars as pl
        except ImportError:
            print("duckdb/polars not installed: no anchors", file=sys.stderr)
        else:
            load = f"""CREATE TABLE ev AS SELECT customerId, type, channel, CAST(timestamp AS TIMESTAMPTZ) AS ts,
                CAST(properties.amount AS DOUBLE) AS amount
                FROM read_json('{ndjson}', format='newline_delimited',
                  columns={{event_id:'VARCHAR', customerId:'VARCHAR', type:'VARCHAR', channel:'VARCHAR', device_id:'VARCHAR',
                           timestamp:'VARCHAR', properties:'STRUCT(amount DOUBLE)'}})"""
            # Durable, like Unico's backfill: the same load into a database file, checkpointed.
            with tempfile.TemporaryDirectory(dir=DATA) as d:
                disk = duckdb.connect(os.path.join(d, "ev.duckdb"), config={"threads": 2})
                t = time.perf_counter()
                disk.execute(load)
                disk.execute("CHECKPOINT")
                anchors["DuckDB load durable s"] = time.perf_counter() - t
                disk.close()
            db = duckdb.connect(config={"threads": 2})
            t = time.perf_counter()
            db.execute(load)
            anchors["DuckDB load s"] = time.perf_counter() - t
            db.execute(f"""CREATE TABLE c AS SELECT customerId, fieldValue AS country FROM read_csv('{csv}', header=true, all_varchar=true)
                WHERE fieldName = 'country'""")
            queries = sql(now)
            print(f"DuckDB load: {anchors['DuckDB load s']:.2f} s", flush=True)
            for q, text in queries.items():
                anchors[("duckdb", q)] = (median_ms(lambda: db.execute(text).fetchall(), args.rounds), db.execute(text).fetchall()[0][0])
                print(f"DuckDB {q}: {anchors[('duckdb', q)][0]:.1f} ms ({anchors[('duckdb', q)][1]})", flush=True)
            ev = db.cursor().sql("SELECT customerId, type, channel, ts, amount FROM ev").pl()
            ev = ev.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
            cu = db.cursor().sql("SELECT customerId, country FROM c").pl()
            db.close()
            n = now
            inw = lambda days: (pl.col("ts") >= n - datetime.timedelta(days=days)) & (pl.col("ts") <= n)
            ids = lambda t, days: ev.lazy().filter((pl.col("type") == t) & inw(days)).select("customerId").unique()
            polars_q = {
                "E1": lambda: ev.lazy().filter((pl.col("type") == "purchase") & inw(90)).group_by("customerId").len().filter(pl.col("len") >= 3).select(pl.len()).collect().item(),
                "E2": lambda: ids("email_open", 30).join(ids("purchase", 30), on="customerId", how="anti").select(pl.len()).collect().item(),
                "E3": lambda: ev.lazy().filter((pl.col("type") == "purchase") & inw(365)).join(cu.lazy().filter(pl.col("country") == "ES"), on="customerId").group_by("customerId").agg(pl.col("amount").sum()).filter(pl.col("amount") > 500).select(pl.len()).collect().item(),
                "E4": lambda: ids("add_to_cart", 7).join(ids("purchase", 7), on="customerId", how="anti").select(pl.len()).collect().item(),
                "E5": lambda: ev.lazy().filter(pl.col("type") == "app_open").group_by("customerId").agg(pl.col("ts").max()).filter(pl.col("ts") < n - datetime.timedelta(days=30)).select(pl.len()).collect().item(),
                "E6": lambda: ev.lazy().filter((pl.col("type") == "purchase") & (pl.col("channel") == "pos") & (pl.col("amount") > 100) & inw(180)).select(pl.col("customerId").n_unique()).collect().item(),
            }
            for q, fn in polars_q.items():
                anchors[("polars", q)] = (median_ms(fn, args.rounds), fn())
                print(f"Polars {q}: {anchors[('polars', q)][0]:.1f} ms ({anchors[('polars', q)][1]})", flush=True)

    print()
    if "DuckDB load s" in anchors:
        print(f"{'DuckDB load NDJSON s (in memory)':<40} {anchors['DuckDB load s']:.2f}")
        print(f"{'DuckDB load NDJSON s (file, checkpoint)':<40} {anchors['DuckDB load durable s']:.2f}")
    print()
    print("| query | Unico (ms) | DuckDB (ms) | Polars (ms) | Unico / best | counts (Unico / DuckDB / Polars) |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for q in QUERIES:
        u, uc = unico[q]
        d, dc = anchors.get(("duckdb", q), (float("nan"), "-"))
        p, pc = anchors.get(("polars", q), (float("nan"), "-"))
        best = min(x for x in (d, p) if x == x) if (d == d or p == p) else float("nan")
        print(f"| {q} `{QUERIES[q]}` | {u:.2f} | {d:.1f} | {p:.1f} | {u / best:.3f} | {uc} / {dc} / {pc} |")
    print(f"| E7 timeline first page ({unico['E7'][1]}) | {unico['E7'][0]:.2f} | | | | |")


if __name__ == "__main__":
    main()
