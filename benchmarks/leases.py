"""Four runs of a fake target over two leased devices: wall time, and that no two overlapped.

Each run is its own process (as several pytest processes, worktrees or xdist workers would
be): it leases a device from the shared folder, runs the target with the lease's
CUDA_VISIBLE_DEVICES, and releases it. Ideal wall time: two rounds of the target.

    python benchmarks/leases.py [--runs 4] [--devices 2] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = """
import json, os, sys, time
start = time.time()
time.sleep(float(sys.argv[2]))
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"device": os.environ["CUDA_VISIBLE_DEVICES"], "start": start, "end": time.time()}) + "\\n")
"""

RUN = """
import os, subprocess, sys, time
from pathlib import Path
from pytest_autoresearch.leases import Leases
folder, devices, target, record, seconds = sys.argv[1:6]
with Leases(Path(folder), devices.split(",")).acquire(poll_s=0.1) as lease:
    subprocess.run([sys.executable, target, record, seconds], env={**os.environ, **lease.env}, check=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4, help="concurrent runs (default: 4)")
    parser.add_argument("--devices", type=int, default=2, help="fake devices (default: 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="target duration in s (default: 10)")
    args = parser.parse_args()
    devices = ",".join(str(i) for i in range(args.devices))
    with tempfile.TemporaryDirectory(prefix="ar-leases-") as tmp:
        target, record = Path(tmp) / "target.py", Path(tmp) / "record.jsonl"
        target.write_text(TARGET)
        start = time.time()
        procs = [
            subprocess.Popen([sys.executable, "-c", RUN, str(Path(tmp) / "devices"), devices, str(target), str(record),
                              str(args.seconds)])
            for _ in range(args.runs)
        ]
        codes = [p.wait() for p in procs]
        wall = time.time() - start
        spans = [json.loads(line) for line in record.read_text().splitlines()]
    overlaps = 0
    for device in devices.split(","):
        held = sorted((s["start"], s["end"]) for s in spans if s["device"] == device)
        overlaps += sum(1 for (_, end), (begin, _) in zip(held, held[1:]) if begin < end)
    rounds = -(-args.runs // args.devices)
    ideal = rounds * args.seconds
    print(f"runs {args.runs}, devices {args.devices}, target {args.seconds:g} s, exit codes {codes}")
    print(f"wall {wall:.2f} s (ideal {ideal:g} s, added {wall - ideal:.2f} s); overlapping runs on one device: {overlaps}")
    for s in sorted(spans, key=lambda s: s["start"]):
        print(f"  device {s['device']}: {s['start'] - start:6.2f} s -> {s['end'] - start:6.2f} s")
    if overlaps or any(codes) or len(spans) != args.runs:
        sys.exit(1)


if __name__ == "__main__":
    main()
