#!/usr/bin/env python3
"""Abusive sync requests against ingest-api, for `make bench` (deploy/bench.sh). Standard library only.

  abuse.py URL DEVICE TOKEN [--bombs N] [--floods N] [--limit BYTES] [--timeout S] [--json OUT]

Sends, each on a connection of its own and with a valid device token for DEVICE:
  - N gzip bombs (default 10): a gzip body of about 1 MB that inflates to 1 GiB of zeros, far over
    the body limit (INGEST_MAX_BODY_BYTES, default 2 MiB); the answer expected is 413;
  - N violation floods (default 10): {"heart_rate":[{},{},...]} just under the limit uncompressed
    (about 700,000 empty samples, each one or more violations), sent gzipped (a few KB); the
    answer expected is 422, with a bounded list of violations.
Prints one line per request (status, milliseconds from the first byte sent to the last byte of the
answer read, size of the answer) and writes them as JSON to OUT. A request that gets no answer
within --timeout seconds (default 60) is recorded with status null; after one, the rest of its
kind are skipped (recorded as skipped), so that a server that hangs does not hold the benchmark.
"""
import argparse
import gzip
import http.client
import json
import sys
import time
import urllib.parse
import zlib

MIB = 1024 * 1024


def gzip_bomb(inflated_bytes=1024 * MIB):
    """A gzip member of `inflated_bytes` zeros, compressed as far as deflate goes (about 1:1030),
    built in 1 MiB steps so that the zeros are never all in memory."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip header and trailer
    chunk = bytes(MIB)
    parts = [comp.compress(chunk) for _ in range(inflated_bytes // MIB)]
    parts.append(comp.flush())
    return b"".join(parts)


def violation_flood(limit):
    """{"heart_rate":[{},{},...,{}]} as long as fits under `limit` bytes, gzipped; and its length."""
    head, tail = b'{"heart_rate":[', b"{}]}"
    n = (limit - 1 - len(head) - len(tail)) // 3
    raw = head + b"{}," * n + tail
    assert len(raw) < limit
    return gzip.compress(raw, 9), len(raw)


def send(url, device, token, body, timeout):
    parts = urllib.parse.urlsplit(url)
    path = f"{parts.path.rstrip('/')}/v1/devices/{urllib.parse.quote(device, safe='')}/syncs"
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request("POST", path, body=body, headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        })
        res = conn.getresponse()
        size = 0
        head = b""
        while True:
            chunk = res.read(64 * 1024)
            if not chunk:
                break
            if len(head) < 300:
                head += chunk[:300 - len(head)]
            size += len(chunk)
        return {"status": res.status, "ms": round((time.monotonic() - started) * 1000, 1), "response_bytes": size,
                "response_start": head.decode(errors="replace")}
    except (OSError, http.client.HTTPException) as e:
        return {"status": None, "ms": round((time.monotonic() - started) * 1000, 1), "error": f"{type(e).__name__}: {e}"}
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("device")
    ap.add_argument("token")
    ap.add_argument("--bombs", type=int, default=10)
    ap.add_argument("--floods", type=int, default=10)
    ap.add_argument("--limit", type=int, default=2 * MIB, help="ingest-api's INGEST_MAX_BODY_BYTES")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--json")
    args = ap.parse_args()

    bomb = gzip_bomb()
    flood, flood_raw = violation_flood(args.limit)
    kinds = [
        ("gzip bomb", args.bombs, bomb, 413, {"body_bytes": len(bomb), "inflated_bytes": 1024 * MIB}),
        ("violation flood", args.floods, flood, 422, {"body_bytes": len(flood), "inflated_bytes": flood_raw}),
    ]
    out = {"url": args.url, "timeout_s": args.timeout, "kinds": []}
    for name, count, body, expected, sizes in kinds:
        print(f"abuse: {count} × {name}: {sizes['body_bytes']:,} bytes on the wire, {sizes['inflated_bytes']:,} inflated; "
              f"expecting {expected}", file=sys.stderr)
        results, hung = [], False
        for i in range(count):
            if hung:
                results.append({"status": None, "skipped": True})
                continue
            r = send(args.url, args.device, args.token, body, args.timeout)
            results.append(r)
            what = r["status"] if r["status"] is not None else r.get("error")
            print(f"abuse: {name} {i + 1}: {what} in {r['ms']:.1f} ms, answer {r.get('response_bytes', 0):,} bytes", file=sys.stderr)
            hung = r["status"] is None and "timed out" in r.get("error", "")
        answered = [r for r in results if r.get("status") is not None]
        times = sorted(r["ms"] for r in answered)
        out["kinds"].append({
            "kind": name, "expected_status": expected, **sizes,
            "sent": sum(1 for r in results if not r.get("skipped")),
            "statuses": {str(s): sum(1 for r in results if r.get("status") == s) for s in sorted({r["status"] for r in answered})},
            "unanswered": sum(1 for r in results if r.get("status") is None and not r.get("skipped")),
            "skipped": sum(1 for r in results if r.get("skipped")),
            "all_expected": len(answered) == count and all(r["status"] == expected for r in answered),
            "ms_max": times[-1] if times else None,
            "ms_median": times[len(times) // 2] if times else None,
            "max_response_bytes": max((r.get("response_bytes", 0) for r in answered), default=None),
            "requests": results,
        })
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
