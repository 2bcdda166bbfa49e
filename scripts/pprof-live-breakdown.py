#!/usr/bin/env python3
"""Group a CPU profile of weir's live path by stage.

usage: scripts/pprof-live-breakdown.py PROFILE [BINARY]

PROFILE is a CPU profile, from BenchmarkLiveRTMPPublishers
(WEIR_BENCH_LIVE_CPUPROFILE) or from `weir serve --pprof-listen`
(/debug/pprof/profile). The script reads its stacks with
`go tool pprof -traces` and charges each sample to the stage of the
innermost frame that names one (so the allocations, copies and syscalls a
stage causes count as that stage's). Samples with no such frame are the
runtime's own work: garbage collection, the scheduler, the network poller.
"""
import re
import subprocess
import sys

# (stage, pattern) in priority order within one frame; frames are tried
# from the leaf up.
STAGES = [
    ("metrics", r"prometheus/client_golang|internal/live\.\(\*metrics\)|internal/bus\.\(\*metrics"),
    ("segment hashing and writes", r"internal/objstore|crypto/sha256|internal/live\.putSegment|internal/live\.\(\*segmentWriter"),
    ("playlists", r"hls-m3u8|internal/live\.\(\*window\)|internal/live\.putPlaylist|playlist"),
    ("metadata store", r"internal/metastore|modernc\.org/sqlite|database/sql"),
    ("RTMP read and remux", r"gortmplib|internal/ingest/push|mediacommon/v2/pkg/formats/mpegts|go-astits"),
    ("framing and MD5", r"crypto/md5|internal/ingest\.|weir/protocol\."),
    ("broker append and fetch", r"franz-go/pkg/kfake|internal/bus\.\(\*compatConn|kmsg\.\(\*FetchResponse\)\.AppendTo|kmsg\.\(\*ProduceRequest\)\.ReadFrom|internal/bus\.\(\*Broker\)|internal/bus\.\(\*broker|internal/bus\.\(\*diskLog|internal/bus\.\(\*partition"),
    ("produce", r"internal/bus\.\(\*Client\)\.Produce|kgo\.\(\*sink|kgo\.\(\*recBuf|kgo\.\(\*producer|kgo\.\(\*Client\)\.Produce|kgo\.\(\*produceRequest|kgo\.seqRecBatch|kgo\.\(\*recBatch"),
    ("consumer", r"internal/bus\.\(\*consumer|internal/bus\.\(\*Client\)\.Consume|internal/bus\.consume|kgo\.\(\*source|kgo\.\(\*cursor|kgo\.\(\*consumer|kgo\.\(\*groupConsumer|kgo\.\(\*Client\)\.PollRecords|kgo\.\(\*Client\)\.PollFetches|kgo\.\(\*Fetch|kgo\.\(\*fetch|kgo\.ProcessFetch|kgo\.\(\*Client\)\.PollRecords"),
    ("demux and graph", r"weir/graph|weir/engine|internal/live\.|mediacommon"),
    ("bus client connections and requests", r"franz-go|internal/bus\."),
    ("compression", r"snappy|klauspost/compress|compress/"),
    ("garbage collection", r"runtime\.gcBgMarkWorker|runtime\.gcDrain|runtime\.bgsweep|runtime\.bgscavenge"),
    ("scheduler and netpoll", r"runtime\.mcall|runtime\.schedule|runtime\.findRunnable|runtime\.netpoll|runtime\.sysmon|runtime\.mstart"),
]
COMPILED = [(s, re.compile(p)) for s, p in STAGES]


def parse_value(v):
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "mins": 60.0, "hrs": 3600.0}
    m = re.match(r"([\d.]+)(\w+|µs)$", v)
    if not m:
        return 0.0
    return float(m.group(1)) * units.get(m.group(2), 0.0)


def traces(args):
    out = subprocess.run(["go", "tool", "pprof", "-traces"] + args, check=True,
                         capture_output=True, text=True).stdout
    stack, value = [], 0.0
    for line in out.splitlines():
        if line.startswith("-----------+"):
            if stack:
                yield value, stack
            stack, value = [], 0.0
            continue
        m = re.match(r"^\s*([\d.]+(?:ns|us|µs|ms|s|mins|hrs))\s+(\S.*)$", line)
        if m:
            value = parse_value(m.group(1))
            stack.append(m.group(2).strip())
        elif line.strip() and stack is not None and line.startswith(" "):
            stack.append(line.strip())
    if stack:
        yield value, stack


def stage_of(stack):
    for frame in stack:  # leaf first
        for stage, pat in COMPILED:
            if pat.search(frame):
                return stage
    return "other runtime"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    totals, total = {}, 0.0
    for value, stack in traces(sys.argv[1:]):
        s = stage_of(stack)
        totals[s] = totals.get(s, 0.0) + value
        total += value
    if total == 0:
        sys.exit("no samples")
    print(f"| stage | CPU s | share |\n|---|---|---|")
    for s, v in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {s} | {v:.2f} | {100 * v / total:.1f} % |")
    print(f"| total | {total:.2f} | 100 % |")


if __name__ == "__main__":
    main()
