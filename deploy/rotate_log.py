#!/usr/bin/env python3
"""Copies standard input to FILE, size-capped and rotated: once FILE would pass --max-bytes it
becomes FILE.1 (FILE.1 becomes FILE.2, and so on; the oldest past --keep is deleted) and a new
FILE is started. So one process's log never takes more than (keep + 1) * max-bytes on disk.

    some-service 2>&1 | rotate_log.py LOG --max-bytes 10000000 --keep 3

It exits when its input ends (the process writing it exited), never earlier: Ctrl-C and SIGTERM
are ignored, so a service that drains after Ctrl-C keeps a reader for its last lines instead of
dying of SIGPIPE. Lines are kept whole unless a single line is longer than --max-bytes.
Standard library only (deploy/ runs on a fresh machine).
"""

import argparse
import os
import signal
import sys


def rotate(path, keep):
    """FILE -> FILE.1 -> ... -> FILE.keep; the oldest is dropped."""
    if keep == 0:
        os.unlink(path)
        return
    oldest = f"{path}.{keep}"
    if os.path.exists(oldest):
        os.unlink(oldest)
    for n in range(keep - 1, 0, -1):
        if os.path.exists(f"{path}.{n}"):
            os.replace(f"{path}.{n}", f"{path}.{n + 1}")
    os.replace(path, f"{path}.1")


def copy(source, path, max_bytes, keep):
    out = open(path, "ab")
    size = out.tell()
    for line in source:
        # A line longer than the cap alone is cut into cap-sized pieces.
        while line:
            piece, line = line[:max_bytes], line[max_bytes:]
            if size > 0 and size + len(piece) > max_bytes:
                out.close()
                rotate(path, keep)
                out = open(path, "ab")
                size = 0
            out.write(piece)
            size += len(piece)
        # Flushed per line: the log is read while the service runs (tail -F, a failing check).
        out.flush()
    out.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--max-bytes", type=int, default=10_000_000, help="cap of one file (default 10 MB)")
    parser.add_argument("--keep", type=int, default=3, help="rotated files kept besides FILE (default 3)")
    args = parser.parse_args()
    if args.max_bytes < 1 or args.keep < 0:
        parser.error("--max-bytes must be at least 1 and --keep at least 0")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        copy(sys.stdin.buffer, args.file, args.max_bytes, args.keep)
    except OSError as e:
        # The service must not block on a full pipe because its log cannot be written: say why
        # once, then keep reading and dropping until its output ends.
        print(f"rotate_log.py: writing {args.file}: {e}; dropping the rest of this log", file=sys.stderr)
        for _ in sys.stdin.buffer:
            pass


if __name__ == "__main__":
    main()
