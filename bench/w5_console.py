"""W5: how fast the console's pages answer, measured at the client over one keep-alive
connection (median of 7 after a warm-up), on whatever the server holds — the 1M-customer
benchmark data for the README's figures:

    KEEP=1 bench/w1_import.sh 1        # leaves the server running with the data
    python3 bench/w5_console.py --server http://127.0.0.1:18282 --key KEY --app 1

Signs in like a browser (the session cookie), saves the segment Q1 if the application has
none, then times every page a marketer opens. Prints one Markdown table.
"""
import argparse, http.client, json, statistics, time, urllib.parse

Q1 = 'country = "ES" and age between 25 and 34'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="http://127.0.0.1:18282")
    ap.add_argument("--key", required=True)
    ap.add_argument("--app", default="1")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    url = urllib.parse.urlparse(args.server)
    conn = http.client.HTTPConnection(url.hostname, url.port)

    def call(method, path, body=None, headers=None):
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()

    api = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    status, headers, _ = call(
        "POST", "/console/sign-in", urllib.parse.urlencode({"key": args.key}),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    cookie = next(v.split(";")[0] for k, v in headers if k.lower() == "set-cookie")
    session = {"Cookie": cookie}

    app = args.app
    status, _, body = call("GET", f"/v1/apps/{app}/segments", headers=api)
    segments = json.loads(body)["segments"]
    if not segments:
        status, _, body = call("POST", f"/v1/apps/{app}/segments",
                               json.dumps({"name": "Spain 25-34", "filter": Q1}), api)
        segment = json.loads(body)["id"]
    else:
        segment = segments[0]["id"]
    status, _, body = call("GET", f"/v1/apps/{app}/customers?limit=1", headers=api)
    first = json.loads(body)["customers"][0]["customerId"]
    q = urllib.parse.quote
    pages = [
        ("Customers (first page)", f"/console/apps/{app}/customers"),
        ("Customers filtered by Q1", f"/console/apps/{app}/customers?filter={q(Q1)}"),
        ("Customers, search by customerId", f"/console/apps/{app}/customers?q={q(first[:3])}"),
        ("Live count of Q1", f"/console/apps/{app}/count?filter={q(Q1)}"),
        ("Customer detail", f"/console/apps/{app}/customers/{q(first, safe='')}"),
        ("Customer fields", f"/console/apps/{app}/fields"),
        ("Segments", f"/console/apps/{app}/segments"),
        ("Segment page (members + charts)", f"/console/apps/{app}/segments/{segment}"),
        ("Insights (charts of every field)", f"/console/apps/{app}/insights"),
    ]
    print("| page | median (ms) | bytes |")
    print("| --- | ---: | ---: |")
    for name, path in pages:
        def fetch():
            status, _, body = call("GET", path, headers=session)
            if status != 200:
                raise SystemExit(f"GET {path}: {status} {body[:300]!r}")
            return len(body)

        size = fetch()
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            fetch()
            times.append((time.perf_counter() - t) * 1000)
        print(f"| {name} | {statistics.median(times):.1f} | {size:,} |")


if __name__ == "__main__":
    main()
