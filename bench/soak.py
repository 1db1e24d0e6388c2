"""Soak: a mixed workload against a running server for a fixed time (10 minutes by default)
on whatever it holds (the 1M-customer benchmark data for the README's figures):

    KEEP=1 bench/w1_import.sh 1        # leaves the server running with the data, prints its pid
    python3 bench/soak.py --server http://127.0.0.1:18282 --key KEY --app 1 --pid PID \\
        --csv target/bench-data/customers_long.csv

Each worker is one keep-alive connection doing one kind of operation back to back:
reads of one customer, durable single-field PATCHes, batch upserts of new customers,
counts (Q1–Q7 in turn), filtered list pages, the console's pages (a signed-in session),
and every few minutes a CSV import (large enough to be logged as one entry of customer
ids), waited for until it succeeds. Batches and imports rewrite a bounded set of the
soak's own customers, so the data stops growing after the first minutes. The server's RSS is sampled every
10 s. At the end the customers the soak created are counted through `POST /count` and
compared with what it wrote, and one Markdown table is printed: operations, errors,
p50/p99 per operation, and the RSS series. Any error, or a count that disagrees, makes the
exit status 1.
"""
import argparse
import csv
import http.client
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse

QUERIES = [
    'country = "ES" and age between 25 and 34',
    'tier in ("gold", "platinum") and last_purchase_at before 90d ago',
    'city = "Madrid" or (lifetime_value > 5000 and orders >= 10)',
    "birthdate anniversary",
    'email ends_with "@gmail.com" and not gender = "F"',
    'first_name contains "an"',
    "last_purchase_at not_exists",
]
CONSOLE_PAGES = ["customers", "insights", "segments", "fields", "interactions", "customer"]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.times = {}
        self.errors = {}
        self.first_error = {}

    def add(self, op, ms, ok, detail=""):
        with self.lock:
            self.times.setdefault(op, []).append(ms)
            if not ok:
                self.errors[op] = self.errors.get(op, 0) + 1
                self.first_error.setdefault(op, detail)


def connect(url):
    return http.client.HTTPConnection(url.hostname, url.port, timeout=120)


def customer_ids(path, n):
    """The first `n` distinct customerIds of the long CSV."""
    ids, seen = [], set()
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            if row[0] not in seen:
                seen.add(row[0])
                ids.append(row[0])
                if len(ids) >= n:
                    break
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="http://127.0.0.1:18282")
    ap.add_argument("--key", required=True)
    ap.add_argument("--app", default="1")
    ap.add_argument("--pid", type=int, required=True, help="the server's process id (for RSS)")
    ap.add_argument("--csv", required=True, help="the long CSV the data came from (customerIds)")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--import-every", type=float, default=180, help="seconds between imports")
    ap.add_argument("--import-customers", type=int, default=15000)
    args = ap.parse_args()
    url = urllib.parse.urlparse(args.server)
    app = args.app
    api = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    ids = customer_ids(args.csv, 200_000)
    stats = Stats()
    deadline = time.monotonic() + args.minutes * 60
    tag = f"soak{int(time.time())}"
    # The batches and imports rewrite a bounded set of customers (batch numbers modulo
    # BATCH_SETS, imports alternating two sets), so the data stops growing and RSS can
    # be flat; what was acknowledged is kept to check the engine's count at the end.
    batch_sets, import_sets = 100, 2
    acknowledged = {"batch": set(), "import": set()}
    created_lock = threading.Lock()

    def timed(conn, op, method, path, body=None, headers=None, ok=(200,)):
        t = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers or api)
            response = conn.getresponse()
            data = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as e:
            stats.add(op, (time.perf_counter() - t) * 1000, False, repr(e))
            conn.close()
            return None, b""
        good = status in ok
        stats.add(op, (time.perf_counter() - t) * 1000, good, f"{status} {data[:200]!r}")
        return status, data

    def reads():
        conn = connect(url)
        while time.monotonic() < deadline:
            cid = urllib.parse.quote(random.choice(ids), safe="")
            timed(conn, "GET customer", "GET", f"/v1/apps/{app}/customers/{cid}")

    def patches():
        conn = connect(url)
        while time.monotonic() < deadline:
            cid = urllib.parse.quote(random.choice(ids), safe="")
            body = json.dumps({"fields": {"orders": random.randint(0, 40)}})
            timed(conn, "PATCH customer", "PATCH", f"/v1/apps/{app}/customers/{cid}", body)

    def batches():
        conn = connect(url)
        n = 0
        while time.monotonic() < deadline:
            items = [
                {"customerId": f"{tag}-b{n % batch_sets}-{i}", "fields": {"country": "ES", "orders": (n + i) % 7}}
                for i in range(100)
            ]
            status, _ = timed(conn, "POST batch (100)", "POST", f"/v1/apps/{app}/customers/batch", json.dumps(items))
            if status == 200:
                with created_lock:
                    acknowledged["batch"].add(n % batch_sets)
            n += 1
            time.sleep(0.2)

    def counts():
        conn = connect(url)
        i = 0
        while time.monotonic() < deadline:
            body = json.dumps({"filter": QUERIES[i % len(QUERIES)]})
            timed(conn, "POST count", "POST", f"/v1/apps/{app}/count", body)
            i += 1

    def lists():
        conn = connect(url)
        while time.monotonic() < deadline:
            q = urllib.parse.urlencode({"filter": random.choice(QUERIES), "limit": 50})
            timed(conn, "GET list page", "GET", f"/v1/apps/{app}/customers?{q}")
            time.sleep(0.05)

    def console():
        conn = connect(url)
        conn.request(
            "POST", "/console/sign-in", urllib.parse.urlencode({"key": args.key}),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = conn.getresponse()
        response.read()
        cookie = next(v.split(";")[0] for k, v in response.getheaders() if k.lower() == "set-cookie")
        session = {"Cookie": cookie}
        i = 0
        while time.monotonic() < deadline:
            page = CONSOLE_PAGES[i % len(CONSOLE_PAGES)]
            if page == "customer":
                page = "customers/" + urllib.parse.quote(random.choice(ids), safe="")
            timed(conn, "console page", "GET", f"/console/apps/{app}/{page}", headers=session)
            i += 1
            time.sleep(0.1)

    def imports():
        conn = connect(url)
        n = 0
        next_at = time.monotonic() + 30
        while time.monotonic() < deadline:
            if time.monotonic() < next_at:
                time.sleep(0.5)
                continue
            lines = ["customerId,fieldName,fieldValue"]
            for i in range(args.import_customers):
                cid = f"{tag}-i{n % import_sets}-{i}"
                lines.append(f"{cid},country,PT")
                lines.append(f"{cid},orders,{(n + i) % 11}")
            body = ("\n".join(lines) + "\n").encode()
            t = time.perf_counter()
            status, data = timed(
                conn, "POST import (upload)", "POST", f"/v1/apps/{app}/imports", body,
                {"Authorization": api["Authorization"], "Content-Type": "text/csv"}, ok=(202,),
            )
            if status == 202:
                job = json.loads(data)["id"]
                while True:
                    s, d = timed(conn, "GET import status", "GET", f"/v1/apps/{app}/imports/{job}")
                    state = json.loads(d).get("state") if s == 200 else "unknown"
                    if state != "running":
                        break
                    time.sleep(0.2)
                good = state == "succeeded"
                stats.add("import, until it succeeded", (time.perf_counter() - t) * 1000, good, state)
                if good:
                    with created_lock:
                        acknowledged["import"].add(n % import_sets)
            n += 1
            next_at = time.monotonic() + args.import_every

    rss = []

    def sample():
        start = time.monotonic()
        while time.monotonic() < deadline + 1:
            try:
                with open(f"/proc/{args.pid}/status") as f:
                    kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
                rss.append((round(time.monotonic() - start), kb // 1024))
            except (OSError, StopIteration):
                rss.append((round(time.monotonic() - start), -1))
            time.sleep(10)

    workers = [reads, reads, patches, batches, counts, lists, console, imports, sample]
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Exactness: the customers the soak created, counted by the engine, against what the
    # server acknowledged.
    conn = connect(url)
    status, data = timed(
        conn, "POST count", "POST", f"/v1/apps/{app}/count",
        json.dumps({"filter": f'customerId starts_with "{tag}-"'}),
    )
    counted = json.loads(data)["count"] if status == 200 else None
    expected = len(acknowledged["batch"]) * 100 + len(acknowledged["import"]) * args.import_customers

    print(f"| operation | count | errors | p50 ms | p99 ms |\n| --- | --- | --- | --- | --- |")
    failed = False
    for op, times in sorted(stats.times.items()):
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        errors = stats.errors.get(op, 0)
        failed |= errors > 0
        print(f"| {op} | {len(times)} | {errors} | {statistics.median(times):.2f} | {p99:.2f} |")
    for op, detail in stats.first_error.items():
        print(f"first error of {op}: {detail}")
    print(f"\nsoak customers counted {counted}, acknowledged {expected}")
    failed |= counted != expected
    print("RSS (s: MB): " + ", ".join(f"{s}: {mb}" for s, mb in rss))
    steady = [mb for s, mb in rss if s >= 60]
    if len(steady) >= 6:
        third = len(steady) // 3
        print(f"RSS after the first minute: first third max {max(steady[:third])} MB, "
              f"last third max {max(steady[-third:])} MB")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
