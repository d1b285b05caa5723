"""N GETs of one URL at the same time from a test host; print the bodies as
a JSON list.

    python3 -c "$(cat concurrent_visits.py)" N URL
"""

import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

n, url = int(sys.argv[1]), sys.argv[2]


def get(_: int) -> str:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read().decode()


with ThreadPoolExecutor(max_workers=n) as pool:
    print(json.dumps(list(pool.map(get, range(n)))))
