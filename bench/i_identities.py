"""I1–I4: identities and merges on the workload's data (1M customers, 9.67 M events, ~1.5
identities per customer), over HTTP against a fresh release server.

    python3 bench/i_identities.py [--events N] [--link-customers N] [--lookups 2000]
                                  [--pairs 9] [--erasures 9] [--ingest-events 200000]
                                  [--rounds 3] [--link-threads 32] [--no-build]

Data (generated once into target/bench-data unless present, as bench/e_events.py does):
    ../shared/bench/gen_customers.py --customers 1000000 --format long
    ../shared/bench/gen_events.py --customers-csv … --out events.ndjson

Setup, on a fresh data directory (each phase timed and printed):
- the 13 fields, the long CSV (`POST …/imports`), the event types, the NDJSON backfill
  (`POST …/events/imports`; `--events N` imports only its first N lines), then one count
  so that the segment engine has absorbed it before anything is measured;
- identities: an `email` for every customer (its `email` field, else its customerId when
  that is an email, else `<customerId>@bench.invalid`) and a `device_id` for every other
  customer in CSV order (the first `device_id` of its generated events, else `dev-<customerId>`;
  a device already taken by another customer is replaced by a synthetic one), linked through
  `POST …/customers/{id}/identities` from `--link-threads` keep-alive connections: wall time
  and links/s. `--link-customers N` links the first N customers of the CSV only.

Measurements (client-side wall time, Python `http.client` over keep-alive):
- I1 lookup: `GET …/identities/{kind}/{value}` of `--lookups` random linked identities
  (emails and devices in proportion) on one connection after 200 warm-up lookups;
  median and p99 (target < 1 ms).
- I2 merge: `--pairs` pairs of fresh customers (two fields and an email each), each given
  1 000 events through `POST …/events`; `POST …/customers/{a}/merge {"from": b}` timed;
  median (target < 50 ms). Checked afterwards: the survivor's timeline holds 2 000 events
  (paged with `limit=1000`, and `summary=true`), and `from` finds the survivor (alias).
- I3 device vs customerId ingest: `--ingest-events` events (default 200 000) addressed by
  `"identity": {"kind": "device_id", …}` of linked devices, against the same number addressed
  by the same customers' customerIds, in batches of 1 000 (bodies encoded beforehand) on 2
  connections; `--rounds` rounds of each, interleaved; events/s medians and the ratio
  (target device ≥ 0.8 × customerId). Every event lands on a known customer (checked: no
  customer is created).
- I4 erase: `--erasures` fresh customers with 5 events, an email and a device each;
  `DELETE …/customers/{id}?erase=true` timed; median (target < 50 ms). The segment engine
  applies an erasure in place and rewrites its snapshot (no rebuild): after each, the time
  until `POST …/count` answers again is measured too and reported.
Every server started is stopped (SIGTERM) at the end, and its data directory removed.
"""
import argparse, http.client, json, math, os, random, signal, statistics, subprocess, sys, tempfile, threading, time
from urllib.parse import quote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "target", "bench-data")
KEY = "bench-admin-key-0123456789"
PORT = int(os.environ.get("PORT", "18384"))
PROBE = "did purchase at_least 3 times within_last 90d"


class Client:
    def __init__(self):
        self.conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=900)
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def raw(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or self.headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def request(self, method, path, body=None, headers=None, ok=(200, 201, 202, 204)):
        status, data = self.raw(method, path, body, headers)
        if status not in ok:
            raise SystemExit(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data) if data else None


def cid_path(customer_id):
    return quote(customer_id, safe="@")


def pct(values, p):
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


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
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "unico")
    env = dict(os.environ, UNICO_ADMIN_KEY=KEY, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    log = open(os.path.join(DATA, "server-identities.log"), "a")
    proc = subprocess.Popen([binary, "serve", "--data", data_dir, "--addr", f"127.0.0.1:{PORT}"], env=env, stdout=log, stderr=log)
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}); see {log.name}")
        try:
            http.client.HTTPConnection("127.0.0.1", PORT, timeout=1).request("GET", "/health")
            return proc
        except OSError:
            time.sleep(0.01)


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) // 1024
    return 0


def wait_import(c, path):
    while True:
        r = c.request("GET", path)
        if r["state"] != "running":
            return r
        time.sleep(0.05)


def settle(c, app):
    """One count, asked again while the engines answer 503 (absorbing or rebuilding): s."""
    t = time.perf_counter()
    body = json.dumps({"filter": PROBE})
    while True:
        status, data = c.raw("POST", f"/v1/apps/{app}/count", body)
        if status == 200:
            return time.perf_counter() - t, json.loads(data)["count"]
        if status != 503:
            raise SystemExit(f"count: {status} {data[:300]!r}")
        time.sleep(0.05)


def read_customers(csv, limit):
    """customerIds in CSV order (the first `limit`) and their email field."""
    order, emails = [], {}
    with open(csv, encoding="utf-8") as f:
        next(f)
        last = None
        for line in f:
            cid, name, value = line.rstrip("\n").split(",", 2)
            if cid != last:
                if limit and len(order) >= limit:
                    break
                order.append(cid)
                last = cid
            if name == "email":
                emails[cid] = value.strip('"')
    return order, emails


def first_devices(ndjson, max_lines):
    """customerId -> the device_id of its first event that has one (string search, no JSON)."""
    found = {}
    with open(ndjson, "rb") as f:
        for i, line in enumerate(f):
            if max_lines and i >= max_lines:
                break
            k = line.find(b'"device_id":"')
            if k < 0:
                continue
            c = line.find(b'"customerId":"') + 14
            cid = line[c:line.index(b'"', c)].decode()
            if cid not in found:
                found[cid] = line[k + 13:line.index(b'"', k + 13)].decode()
    return found


def plan_identities(order, emails, devices):
    links = []  # (customerId, kind, value)
    taken = set()
    for i, cid in enumerate(order):
        email = emails.get(cid) or (cid if "@" in cid else f"{cid}@bench.invalid")
        links.append((cid, "email", email))
        if i % 2 == 0:
            d = devices.get(cid)
            if d is None or d in taken:
                d = f"dev-{cid}"
            taken.add(d)
            links.append((cid, "device_id", d))
    return links


def link_all(app, links, threads):
    """POSTs every link from `threads` connections; answers (seconds, statuses, linked list)."""
    statuses, ok_links, lock = {}, [], threading.Lock()
    done = [0, 100_000]
    t0 = time.perf_counter()

    def worker(part):
        c = Client()
        local_status, local_ok = {}, []
        for n, (cid, kind, value) in enumerate(part):
            status, data = c.raw("POST", f"/v1/apps/{app}/customers/{cid_path(cid)}/identities",
                                 json.dumps({"kind": kind, "value": value}))
            local_status[status] = local_status.get(status, 0) + 1
            if status in (200, 201):
                local_ok.append((cid, kind, value))
            elif local_status[status] <= 3:
                print(f"  link {cid} {kind} {value}: {status} {data[:200]!r}", flush=True)
            if n % 5000 == 4999:
                with lock:
                    done[0] += 5000
                    if done[0] >= done[1]:
                        done[1] += 100_000
                        el = time.perf_counter() - t0
                        print(f"  linked ~{done[0]:,} in {el:.0f} s ({done[0] / el:,.0f}/s)", flush=True)
        with lock:
            for k, v in local_status.items():
                statuses[k] = statuses.get(k, 0) + v
            ok_links.extend(local_ok)

    ths = [threading.Thread(target=worker, args=(links[i::threads],)) for i in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return time.perf_counter() - t0, statuses, ok_links


def events_body(events):
    return json.dumps({"events": events}, separators=(",", ":")).encode()


def post_bodies(app, bodies, connections):
    """POSTs the bodies from `connections` threads; answers (events/s, stored, created)."""
    lock = threading.Lock()
    queue = list(reversed(bodies))
    totals = {"stored": 0, "created": 0, "errors": 0, "events": 0}

    def worker():
        c = Client()
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            r = c.request("POST", f"/v1/apps/{app}/events", body)
            created = sum(1 for x in r["results"] if x.get("customer_created"))
            with lock:
                totals["stored"] += r["stored"]
                totals["errors"] += r["errors"]
                totals["created"] += created
                totals["events"] += len(r["results"])
            if r["errors"]:
                bad = [x for x in r["results"] if x["status"] == "error"][:2]
                raise SystemExit(f"ingest errors: {bad}")

    t = time.perf_counter()
    ths = [threading.Thread(target=worker) for _ in range(connections)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return totals["events"] / (time.perf_counter() - t), totals


def templates(ndjson, n):
    """The first n generated events without their addressing (type, channel, time, properties)."""
    out = []
    with open(ndjson, encoding="utf-8") as f:
        for line in f:
            e = json.loads(line)
            out.append({k: e[k] for k in ("type", "channel", "timestamp", "properties") if k in e})
            if len(out) >= n:
                break
    return out


def count_timeline(c, app, cid):
    """The customer's events counted by paging the timeline, and its summary's count."""
    n, cursor, summary = 0, None, None
    while True:
        path = f"/v1/apps/{app}/customers/{cid_path(cid)}/events?limit=1000"
        path += f"&cursor={quote(cursor)}" if cursor else "&summary=true"
        r = c.request("GET", path)
        if summary is None:
            summary = r["summary"]["events"]
        n += len(r["events"])
        cursor = r.get("next_cursor")
        if not cursor:
            return n, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=0, help="import only the first N events (0: all)")
    ap.add_argument("--link-customers", type=int, default=0, help="link identities to the first N customers only (0: all)")
    ap.add_argument("--link-threads", type=int, default=32)
    ap.add_argument("--lookups", type=int, default=2000)
    ap.add_argument("--pairs", type=int, default=9)
    ap.add_argument("--erasures", type=int, default=9)
    ap.add_argument("--ingest-events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    csv, ndjson = ensure_data()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "unico"], cwd=ROOT, check=True)
    if args.events:
        part = os.path.join(DATA, f"events_first_{args.events}.ndjson")
        if not os.path.exists(part):
            with open(ndjson, "rb") as src, open(part, "wb") as dst:
                for i, line in enumerate(src):
                    if i >= args.events:
                        break
                    dst.write(line)
        ndjson_in = part
    else:
        ndjson_in = ndjson
    phases, results = {}, {}
    work = tempfile.mkdtemp(prefix="unico-identities-")
    data_dir = os.path.join(work, "data")
    proc = start(data_dir)
    rng = random.Random(42)
    try:
        c = Client()
        app = c.request("POST", "/v1/apps", json.dumps({"name": "bench"}))["id"]
        for f in json.load(open(os.path.join(DATA, "fields.json"))):
            c.request("POST", f"/v1/apps/{app}/fields", json.dumps({"name": f["name"], "type": f["type"].lower()}))
        t = time.perf_counter()
        with open(csv, "rb") as f:
            started = c.request("POST", f"/v1/apps/{app}/imports", f, headers={"Authorization": f"Bearer {KEY}", "Content-Type": "text/csv"})
        report = wait_import(c, f"/v1/apps/{app}/imports/{started['id']}")
        phases["import customers s"] = time.perf_counter() - t
        print(f"customers imported: {phases['import customers s']:.1f} s ({report['state']})", flush=True)
        types = json.load(open(os.path.join(DATA, "event_types.json")))
        for ty in types:
            props = {p: ("number" if p in ("amount", "items") else "string") for p in (ty.get("properties") or [])}
            body = {"code": ty["code"], "name": ty["name"], "retention_days": 3650, "properties": props}
            c.request("POST", f"/v1/apps/{app}/event-types", json.dumps(body))
        t = time.perf_counter()
        with open(ndjson_in, "rb") as f:
            started = c.request("POST", f"/v1/apps/{app}/events/imports", f,
                                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/x-ndjson"})
        report = wait_import(c, f"/v1/apps/{app}/events/imports/{started['id']}")
        if report["state"] != "succeeded":
            raise SystemExit(f"events import failed: {report}")
        phases["import events s"] = time.perf_counter() - t
        results["events imported"] = report["events_stored"]
        print(f"events imported: {report['events_stored']:,} in {phases['import events s']:.1f} s", flush=True)
        phases["engines absorb (first count) s"], _ = settle(c, app)
        print(f"first count: {phases['engines absorb (first count) s']:.1f} s, peak RSS {peak_rss_mb(proc.pid)} MB", flush=True)

        # Identities: an email for every customer, a device for every other one.
        t = time.perf_counter()
        order, emails = read_customers(csv, args.link_customers)
        devices = first_devices(ndjson_in, 0)
        links = plan_identities(order, emails, devices)
        phases["plan identities (client) s"] = time.perf_counter() - t
        results["customers linked to"] = len(order)
        results["devices from the generated events"] = sum(1 for cid, k, v in links if k == "device_id" and not v.startswith("dev-"))
        print(f"planned {len(links):,} links for {len(order):,} customers in {phases['plan identities (client) s']:.1f} s", flush=True)
        secs, statuses, linked = link_all(app, links, args.link_threads)
        phases["link identities s"] = secs
        results["identities linked"] = len(linked)
        results["link statuses"] = statuses
        results["links/s"] = len(links) / secs
        results["identities per customer (of the app's customers)"] = len(linked) / 1_000_000
        print(f"linked {len(linked):,} identities in {secs:.1f} s ({len(links) / secs:,.0f}/s), statuses {statuses}", flush=True)
        settle(c, app)

        # I1: lookups on one keep-alive connection.
        t = time.perf_counter()
        sample = [linked[rng.randrange(len(linked))] for _ in range(args.lookups + 200)]
        times = []
        for i, (cid, kind, value) in enumerate(sample):
            s = time.perf_counter()
            r = c.request("GET", f"/v1/apps/{app}/identities/{kind}/{quote(value, safe='')}")
            e = time.perf_counter() - s
            if r["customerId"] != cid:
                raise SystemExit(f"lookup {kind} {value}: {r['customerId']}, expected {cid}")
            if i >= 200:
                times.append(e * 1000)
        phases["I1 lookups s"] = time.perf_counter() - t
        results["I1 lookup median ms"] = statistics.median(times)
        results["I1 lookup p99 ms"] = pct(times, 99)
        results["I1 lookup max ms"] = max(times)
        results["I1 lookups"] = len(times)
        print(f"I1 lookup: median {results['I1 lookup median ms']:.3f} ms, p99 {results['I1 lookup p99 ms']:.3f} ms over {len(times)}", flush=True)

        # I2: merges of two customers of 1 000 events each.
        t = time.perf_counter()
        tpl = templates(ndjson, 2000)
        merge_ms, moved = [], []
        for p in range(args.pairs):
            a, b = f"bench-merge-{p}-a", f"bench-merge-{p}-b"
            for side, cid in (("a", a), ("b", b)):
                c.request("POST", f"/v1/apps/{app}/customers", json.dumps(
                    {"customerId": cid, "fields": {"country": "ES", "tier": "gold" if side == "a" else "silver",
                                                   **({"age": 30} if side == "b" else {})}}))
                c.request("POST", f"/v1/apps/{app}/customers/{cid}/identities",
                          json.dumps({"kind": "email", "value": f"{cid}@merge.invalid"}))
                evs = [dict(e, customerId=cid, event_id=f"m{p}{side}-{i}") for i, e in enumerate(tpl[:1000] if side == "a" else tpl[1000:2000])]
                r = c.request("POST", f"/v1/apps/{app}/events", events_body(evs))
                assert r["stored"] == 1000, r["stored"]
            settle(c, app)
            s = time.perf_counter()
            r = c.request("POST", f"/v1/apps/{app}/customers/{a}/merge", json.dumps({"from": b}))
            merge_ms.append((time.perf_counter() - s) * 1000)
            moved.append(r["merge"]["events_moved"])
            n, summary = count_timeline(c, app, a)
            alias = c.request("GET", f"/v1/apps/{app}/customers/{b}")["customerId"]
            if n != 2000 or summary != 2000 or alias != a:
                raise SystemExit(f"merge {b} into {a}: timeline {n}, summary {summary}, alias finds {alias}")
            print(f"  merge {p}: {merge_ms[-1]:.1f} ms, {moved[-1]} events moved; survivor holds {n} (summary {summary})", flush=True)
        phases["I2 merges (incl. setup) s"] = time.perf_counter() - t
        results["I2 merge median ms"] = statistics.median(merge_ms)
        results["I2 merge all ms"] = [round(x, 1) for x in merge_ms]
        _, cnt = settle(c, app)
        print(f"I2 merge: median {results['I2 merge median ms']:.1f} ms over {len(merge_ms)}", flush=True)

        # I3: events by device against events by customerId.
        t = time.perf_counter()
        holders = [(cid, v) for cid, k, v in linked if k == "device_id"]
        rng.shuffle(holders)
        tpl = templates(ndjson, args.ingest_events)
        bodies = {}
        for r_ in range(args.rounds):
            for variant in ("customerId", "device_id"):
                out, batch = [], []
                for i in range(args.ingest_events):
                    cid, dev = holders[(r_ * args.ingest_events + i) % len(holders)]
                    e = dict(tpl[i % len(tpl)], event_id=f"i{r_}{variant[0]}-{i}")
                    if variant == "customerId":
                        e["customerId"] = cid
                    else:
                        e["identity"] = {"kind": "device_id", "value": dev}
                    batch.append(e)
                    if len(batch) == 1000:
                        out.append(events_body(batch))
                        batch = []
                if batch:
                    out.append(events_body(batch))
                bodies[(r_, variant)] = out
        phases["I3 encode bodies (client) s"] = time.perf_counter() - t
        t = time.perf_counter()
        rates = {"customerId": [], "device_id": []}
        for r_ in range(args.rounds):
            order_ = ("customerId", "device_id") if r_ % 2 == 0 else ("device_id", "customerId")
            for variant in order_:
                settle(c, app)
                rate, totals = post_bodies(app, bodies.pop((r_, variant)), 2)
                if totals["created"] or totals["stored"] != args.ingest_events:
                    raise SystemExit(f"{variant}: {totals} (expected every event stored on a known customer)")
                rates[variant].append(rate)
                print(f"  round {r_} {variant}: {rate:,.0f} events/s", flush=True)
        phases["I3 ingest rounds s"] = time.perf_counter() - t
        results["I3 customerId events/s (median)"] = statistics.median(rates["customerId"])
        results["I3 device_id events/s (median)"] = statistics.median(rates["device_id"])
        results["I3 rounds customerId"] = [round(x) for x in rates["customerId"]]
        results["I3 rounds device_id"] = [round(x) for x in rates["device_id"]]
        results["I3 ratio device / customerId"] = results["I3 device_id events/s (median)"] / results["I3 customerId events/s (median)"]
        print(f"I3: customerId {results['I3 customerId events/s (median)']:,.0f}/s, device {results['I3 device_id events/s (median)']:,.0f}/s, "
              f"ratio {results['I3 ratio device / customerId']:.3f}", flush=True)
        settle(c, app)

        # I4: erasures.
        t = time.perf_counter()
        tpl = templates(ndjson, 5)
        erase_ms, unavailable = [], []
        for p in range(args.erasures):
            cid = f"bench-erase-{p}"
            c.request("POST", f"/v1/apps/{app}/customers", json.dumps({"customerId": cid, "fields": {"country": "FR", "tier": "bronze"}}))
            c.request("POST", f"/v1/apps/{app}/customers/{cid}/identities", json.dumps({"kind": "email", "value": f"{cid}@erase.invalid"}))
            c.request("POST", f"/v1/apps/{app}/customers/{cid}/identities", json.dumps({"kind": "device_id", "value": f"erase-dev-{p}"}))
            c.request("POST", f"/v1/apps/{app}/events", events_body([dict(e, customerId=cid) for e in tpl]))
            settle(c, app)
            s = time.perf_counter()
            c.request("DELETE", f"/v1/apps/{app}/customers/{cid}?erase=true")
            erase_ms.append((time.perf_counter() - s) * 1000)
            status, _ = c.raw("GET", f"/v1/apps/{app}/identities/device_id/erase-dev-{p}")
            if status != 404:
                raise SystemExit(f"the erased customer's device still finds someone ({status})")
            gone, _ = settle(c, app)
            unavailable.append(gone)
            print(f"  erase {p}: {erase_ms[-1]:.1f} ms; then counts answered after {gone:.1f} s", flush=True)
        phases["I4 erasures (incl. setup and waits) s"] = time.perf_counter() - t
        results["I4 erase median ms"] = statistics.median(erase_ms)
        results["I4 erase all ms"] = [round(x, 1) for x in erase_ms]
        results["I4 first count after an erase s (median)"] = statistics.median(unavailable)
        results["peak RSS MB"] = peak_rss_mb(proc.pid)
        print(f"I4 erase: median {results['I4 erase median ms']:.1f} ms over {len(erase_ms)}", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        disk = subprocess.run(["du", "-sm", data_dir], capture_output=True, text=True).stdout.split()
        results["on disk MB"] = disk[0] if disk else "?"
        subprocess.run(["rm", "-rf", work])

    print()
    for k, v in list(phases.items()) + list(results.items()):
        print(f"{k:<50} {v:,.3f}" if isinstance(v, float) else f"{k:<50} {v}")


if __name__ == "__main__":
    main()
