"""`POST …/events` alone: the workload's first N events (default 1 M) in batches of 1 000
from four client threads (bodies encoded beforehand), durable on each answer, into a fresh
application with the workload's event types, on a fresh release server.

    python3 bench/e_http_ingest.py [--runs 3] [--events 1000000] [--perf SECONDS]

The customers are not imported first: the events name customers the application does not
hold yet, so each customer's first event creates it (as in `bench/e_events.py`, whose
E0 HTTP line this is). After each run, the first count waits for the engines to hold
every acknowledged event; its time is printed beside the rate. `--perf N` records the
server with `perf record -g` for N seconds from the first request of the first run
(`PERF_DWARF=1`: with DWARF call graphs, for a build without frame pointers).
Prints each run and the medians.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e_events as ev  # noqa: E402


def one_run(events, perf):
    work = os.path.join(ev.DATA, "e-http-run")
    shutil.rmtree(work, ignore_errors=True)
    os.sync()
    proc, _ = ev.start(os.path.join(work, "data"))
    recorder = None
    try:
        c = ev.Client()
        app = c.request("POST", "/v1/apps", json.dumps({"name": "ingest"}))["id"]
        types = json.load(open(os.path.join(ev.DATA, "event_types.json")))
        for t in types:
            c.request("POST", f"/v1/apps/{app}/event-types", json.dumps({"code": t["code"], "retention_days": 3650}))
        if perf:
            out = os.path.join(ev.DATA, "e-http.perf.data")
            graph = ["--call-graph", "dwarf,16384", "-F", "499"] if os.environ.get("PERF_DWARF") else ["-g"]
            recorder = subprocess.Popen(["perf", "record", *graph, "-o", out, "-p", str(proc.pid), "--", "sleep", str(perf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rate, client_cpu = ev.http_ingest(app, types, os.path.join(ev.DATA, "events.ndjson"), events)
        t = time.perf_counter()
        count = c.request("POST", f"/v1/apps/{app}/count", json.dumps({"filter": "did purchase ever"}))["count"]
        first = time.perf_counter() - t
        if recorder:
            recorder.wait()
        return rate, first, count, ev.peak_rss_mb(proc.pid), client_cpu
    finally:
        ev.stop(proc, work)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--perf", type=int, default=0)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    ev.ensure_data()
    ev.build(args.no_build)
    rows = []
    for i in range(args.runs):
        rate, first, count, rss, client_cpu = one_run(args.events, args.perf if i == 0 else 0)
        print(f"run {i + 1}: {rate / 1000:.0f} k events/s (the clients used {client_cpu:.2f} of a core), then the first count {first * 1000:.0f} ms "
              f"(did purchase ever = {count}), peak RSS {rss} MB, load {os.getloadavg()[0]:.1f}", flush=True)
        rows.append((rate, first))
    print(f"median: {statistics.median(r[0] for r in rows) / 1000:.0f} k events/s, "
          f"first count {statistics.median(r[1] for r in rows) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
