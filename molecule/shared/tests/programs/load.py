"""A steady load from a test host: THREADS workers, about RATE requests/s in
all, until OUT.stop appears or SECONDS pass. Writes what it saw to OUT (JSON:
requests answered and failed, the highest count acknowledged, the first
errors).

    python3 -c "$(cat load.py)" RATE THREADS SECONDS OUT URL
"""

import json
import os
import sys
import threading
import time
import urllib.request

rate, threads, seconds = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
out, url = sys.argv[4], sys.argv[5]
stop_file = out + ".stop"
deadline = time.monotonic() + seconds
lock = threading.Lock()
seen = {"ok": 0, "failed": 0, "max_ack": 0, "errors": []}


def worker() -> None:
    gap = threads / rate
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                count = int(response.read().decode().split()[5])
            with lock:
                seen["ok"] += 1
                seen["max_ack"] = max(seen["max_ack"], count)
        except (OSError, ValueError, IndexError) as error:
            with lock:
                seen["failed"] += 1
                if len(seen["errors"]) < 5:
                    seen["errors"].append(str(error))
        time.sleep(max(0.0, gap - (time.monotonic() - started)))


pool = [threading.Thread(target=worker) for _ in range(threads)]
for thread in pool:
    thread.start()
for thread in pool:
    thread.join()
with open(out + ".tmp", "w") as result:
    json.dump(seen, result)
os.replace(out + ".tmp", out)
