"""W4: cold start. Starts `unico serve` on an existing data directory (e.g. the one
bench/w1_import.sh KEEP=1 leaves) and times, at the client, from the process start to the
first answer of Q1 through HTTP; stops it with SIGTERM (a graceful stop, which saves the
segment engine snapshots) and repeats.

    python3 bench/w4_cold_start.py --bin target/release/unico --data DATA_DIR \\
        --key ADMIN_KEY [--app 1] [--port 18383] [--rounds 5]

The first round may rebuild the engine from a store scan (no current snapshot yet); the
median is over the rounds after it.
"""
import argparse, http.client, json, os, signal, statistics, subprocess, time

Q1 = 'country = "ES" and age between 25 and 34'


def first_answer(port, key, app, started, timeout=120):
    body = json.dumps({"filter": Q1})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    while time.perf_counter() - started < timeout:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            conn.request("POST", f"/v1/apps/{app}/count", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status == 200:
                return (time.perf_counter() - started) * 1000, json.loads(data)["count"]
        except OSError:
            pass
        time.sleep(0.002)
    raise SystemExit("no answer")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/unico")
    ap.add_argument("--data", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--app", default="1")
    ap.add_argument("--port", type=int, default=18383)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    env = dict(os.environ, UNICO_ADMIN_KEY=args.key, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    times = []
    for round in range(args.rounds):
        started = time.perf_counter()
        server = subprocess.Popen(
            [args.bin, "serve", "--data", args.data, "--addr", f"127.0.0.1:{args.port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            ms, count = first_answer(args.port, args.key, args.app, started)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait()
        print(f"round {round + 1}: first Q1 answer {ms:.0f} ms after the start (count {count})")
        times.append(ms)
    rest = times[1:] or times
    print(f"W4 cold start to the first Q1 answer: median {statistics.median(rest):.0f} ms over {len(rest)} rounds")


if __name__ == "__main__":
    main()
