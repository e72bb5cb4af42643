#!/usr/bin/env python3
"""Hostile clients against `exitwise serve` (not part of `make test`: it runs for a minute).

While a well-behaved client sends one request after another, the server is given:
  1. IDLE connections that connect and send nothing,
  2. TRICKLE clients (slowloris) that send a request's headers one byte a second, and
     clients that send headers and then trickle the body,
  3. a burst of 10x the queue's size of requests at once.
The well-behaved client must be answered throughout (200; 429 only while the burst fills the
queue); the burst's answers are only 200 or
429; no answer is a 5xx; trickling clients are cut off by the header timeout (headers) or
answered 408 (body); the server's resident memory stays bounded. Prints the figures.

Usage: tests/load/hostile.py [--idle 1000] [--trickle 20] [--queue 4] [--max-connections N]
Environment: EXITWISE_BIN (default target/release/exitwise), EXITWISE_HOSTILE_PORT (18190).
"""

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

REVIEW = "A warm, funny film with a great cast. The plot drags a little, but the ending is moving."


def resident_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def post(url: str, body: dict, timeout: float = 60) -> tuple[int, float]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--trickle", type=int, default=20)
    parser.add_argument("--queue", type=int, default=4)
    parser.add_argument("--header-timeout", type=float, default=2.0)
    parser.add_argument("--max-connections", type=int, default=0,
                        help="the server's cap [default: idle + 200]")
    arguments = parser.parse_args()
    # This script holds the idle connections itself: as many descriptors as allowed.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    binary = os.environ.get("EXITWISE_BIN", "target/release/exitwise")
    port = int(os.environ.get("EXITWISE_HOSTILE_PORT", "18190"))
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--queue", str(arguments.queue),
         "--header-timeout-s", str(arguments.header_timeout), "--request-timeout-s", "5",
         "--max-connections", str(arguments.max_connections or arguments.idle + 200)],
        stderr=subprocess.PIPE, text=True)
    failures = []
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        rss_ready = resident_mb(server.pid)

        # The well-behaved client, all along.
        polite = []
        stop = threading.Event()

        def well_behaved():
            # A well-behaved client honours Retry-After (1 s) when told 429.
            while not stop.is_set():
                polite.append(post(f"{url}/v1/classify", {"text": REVIEW, "policy": "full"}))
                if polite[-1][0] == 429:
                    time.sleep(1)

        polite_thread = threading.Thread(target=well_behaved)
        polite_thread.start()

        # 1. Idle connections.
        idle = []
        for _ in range(arguments.idle):
            sock = socket.create_connection(("127.0.0.1", port))
            idle.append(sock)
        rss_idle = resident_mb(server.pid)

        # 2. Trickling clients: headers one byte a second, or a body that never ends.
        cut_off, body_answers = [], []

        def trickle_headers():
            sock = socket.create_connection(("127.0.0.1", port))
            request = b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            started = time.perf_counter()
            try:
                for byte in request:
                    sock.sendall(bytes([byte]))
                    time.sleep(1.0)
                cut_off.append(None)
            except OSError:
                cut_off.append(time.perf_counter() - started)

        def trickle_body():
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100000\r\n\r\n{\"text\": \"")
            sock.settimeout(30)
            answer = b""
            try:
                for _ in range(30):
                    sock.sendall(b"a")
                    time.sleep(0.5)
                    sock.setblocking(False)
                    try:
                        answer += sock.recv(4096)
                    except BlockingIOError:
                        pass
                    sock.setblocking(True)
                    if answer:
                        break
            except OSError:
                pass
            body_answers.append(answer.split(b"\r\n", 1)[0].decode(errors="replace"))

        tricklers = [threading.Thread(target=trickle_headers) for _ in range(arguments.trickle)]
        tricklers += [threading.Thread(target=trickle_body) for _ in range(arguments.trickle // 4)]
        for thread in tricklers:
            thread.start()

        # 3. A burst of ten times the queue.
        burst = []

        def one():
            burst.append(post(f"{url}/v1/classify", {"text": REVIEW, "policy": "full"}))

        burst_threads = [threading.Thread(target=one) for _ in range(10 * arguments.queue)]
        for thread in burst_threads:
            thread.start()
        for thread in burst_threads + tricklers:
            thread.join()
        rss_peak = resident_mb(server.pid)
        stop.set()
        polite_thread.join()
        for sock in idle:
            sock.close()
        time.sleep(arguments.header_timeout + 1)
        rss_after = resident_mb(server.pid)

        statuses = {}
        for status, _ in burst:
            statuses[status] = statuses.get(status, 0) + 1
        polite_statuses = {}
        for status, _ in polite:
            polite_statuses[status] = polite_statuses.get(status, 0) + 1
        slowest = max(seconds for _, seconds in polite)
        print(f"max connections {arguments.max_connections or arguments.idle + 200}; "
              f"idle connections: {arguments.idle}; header tricklers: {arguments.trickle}; "
              f"body tricklers: {arguments.trickle // 4}; burst: {10 * arguments.queue} "
              f"(queue {arguments.queue}); header timeout {arguments.header_timeout} s")
        print(f"well-behaved client: {len(polite)} requests, statuses {polite_statuses}, "
              f"slowest {slowest:.2f} s")
        print(f"burst statuses: {statuses}")
        cut = [seconds for seconds in cut_off if seconds is not None]
        print(f"header tricklers cut off: {len(cut)} of {len(cut_off)}"
              + (f", after {min(cut):.1f}-{max(cut):.1f} s" if cut else ""))
        print(f"body tricklers answered: {body_answers}")
        print(f"resident memory: ready {rss_ready:.0f} MB, with the idle connections "
              f"{rss_idle:.0f} MB, at the end of the burst {rss_peak:.0f} MB, after {rss_after:.0f} MB")

        # While the burst fills the queue, the well-behaved client may be told 429 too (it is
        # one more request over the queue); it must never wait unanswered or see a 5xx.
        if (not set(polite_statuses) <= {200, 429} or polite[-1][0] != 200
                or polite_statuses.get(200, 0) < len(polite) / 2):
            failures.append("the well-behaved client was not answered 200 (429 at most in the burst)")
        if any(status >= 500 for status in statuses) or not set(statuses) <= {200, 429}:
            failures.append("the burst got answers other than 200 and 429")
        if 429 not in statuses:
            failures.append("the burst got no 429: the queue did not refuse the excess")
        if len(cut) != len(cut_off):
            failures.append("a header trickler was not cut off")
        if not all(answer.startswith("HTTP/1.1 408") for answer in body_answers):
            failures.append("a body trickler was not answered 408")
    finally:
        server.terminate()
        server.wait(timeout=60)
    if server.returncode != 0:
        failures.append(f"serve exited {server.returncode} after SIGTERM")
    for failure in failures:
        print(f"FAIL: {failure}")
    print("PASS" if not failures else "")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
