"""E0 alone: the NDJSON backfill of the workload's 9.67 M events, timed on a copy of a data
directory that already holds the 1M customers and the event types.

    python3 bench/e0_ingest.py [--runs 3] [--keep-base] [--perf SECONDS]

The base data directory (customers imported, event types registered, server stopped so
its snapshot is written) is built once into target/bench-data/e0-base and reused; each run
copies it, starts a release server on the copy, POSTs the file to `…/events/imports`
(with curl when installed, see `e_events.upload_events`),
waits until the import reports success (durable), then times the first count after it
(E1: the engines absorbing the import). `--perf N` records the server with `perf record -g`
for N seconds from the start of the upload, `--perf-absorb N` from the first count after
it (the recordings go to target/bench-data).
Prints each run and the medians.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e_events as ev  # noqa: E402

BASE = os.path.join(ev.DATA, "e0-base")


def build_base(csv):
    if os.path.exists(os.path.join(BASE, "done")):
        return json.load(open(os.path.join(BASE, "done")))["app"]
    shutil.rmtree(BASE, ignore_errors=True)
    proc, _ = ev.start(os.path.join(BASE, "data"))
    try:
        c = ev.Client()
        app = c.request("POST", "/v1/apps", json.dumps({"name": "bench"}))["id"]
        for f in json.load(open(os.path.join(ev.DATA, "fields.json"))):
            c.request("POST", f"/v1/apps/{app}/fields", json.dumps({"name": f["name"], "type": f["type"].lower()}))
        with open(csv, "rb") as f:
            started = c.request("POST", f"/v1/apps/{app}/imports", f, headers={"Authorization": f"Bearer {ev.KEY}", "Content-Type": "text/csv"})
        ev.wait_import(c, f"/v1/apps/{app}/imports/{started['id']}")
        for t in json.load(open(os.path.join(ev.DATA, "event_types.json"))):
            props = {p: ("number" if p in ("amount", "items") else "string") for p in (t.get("properties") or [])}
            body = {"code": t["code"], "name": t["name"], "retention_days": 3650, "properties": props}
            c.request("POST", f"/v1/apps/{app}/event-types", json.dumps(body))
        c.request("POST", f"/v1/apps/{app}/count", json.dumps({"filter": ev.QUERIES["E1"]}))
    finally:
        ev.stop(proc)
    json.dump({"app": app}, open(os.path.join(BASE, "done"), "w"))
    return app


def record(pid, name, seconds):
    """Records the server's threads with perf for `seconds` into target/bench-data/`name`
    (the cpu-clock event: cycles are not counted on every machine)."""
    return subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-g", "-o", os.path.join(ev.DATA, name),
                             "-p", str(pid), "--", "sleep", str(seconds)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_run(app, ndjson, perf, absorb_perf=0):
    work = os.path.join(ev.DATA, "e0-run")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(os.path.join(BASE, "data"), os.path.join(work, "data"))
    # The copy (and the last run's deletion) written out first: the upload should not
    # wait for the disk to flush them.
    os.sync()
    proc, _ = ev.start(os.path.join(work, "data"))
    recorder = None
    try:
        c = ev.Client()
        if perf:
            recorder = record(proc.pid, "e0.perf.data", perf)
        t = time.perf_counter()
        started = ev.upload_events(c, app, ndjson)
        uploaded = time.perf_counter() - t
        report = ev.wait_import(c, f"/v1/apps/{app}/events/imports/{started['id']}")
        imported = time.perf_counter() - t
        if report["state"] != "succeeded":
            raise SystemExit(f"events import failed: {report}")
        if absorb_perf:
            recorder = record(proc.pid, "e0-absorb.perf.data", absorb_perf)
        t = time.perf_counter()
        count = c.request("POST", f"/v1/apps/{app}/count", json.dumps({"filter": ev.QUERIES["E1"]}))["count"]
        first = time.perf_counter() - t
        rss = ev.peak_rss_mb(proc.pid)
        if recorder:
            recorder.wait()
        return imported, uploaded, first, rss, report["events_stored"], count
    finally:
        ev.stop(proc, work)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--perf", type=int, default=0)
    ap.add_argument("--perf-absorb", type=int, default=0)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    csv, ndjson = ev.ensure_data()
    ev.build(args.no_build)
    app = build_base(csv)
    rows = []
    for i in range(args.runs):
        imported, uploaded, first, rss, stored, count = one_run(app, ndjson, args.perf if i == 0 else 0, args.perf_absorb if i == 0 else 0)
        load = os.getloadavg()[0]
        print(f"run {i + 1}: import {imported:.1f} s ({stored / imported / 1000:.0f} k events/s; upload {uploaded:.1f} s), "
              f"first count {first:.2f} s (E1 = {count}), peak RSS {rss} MB, load {load:.1f}", flush=True)
        rows.append((imported, first, rss))
    print(f"median: import {statistics.median(r[0] for r in rows):.1f} s, "
          f"first count {statistics.median(r[1] for r in rows):.2f} s, peak RSS {statistics.median(r[2] for r in rows)} MB")


if __name__ == "__main__":
    main()
