"""GET one URL from a test host; print {"status", "body"} as JSON, whatever
the answer (status 0 when nothing answered).

    python3 -c "$(cat http_get.py)" URL
"""

import json
import sys
import urllib.error
import urllib.request

url = sys.argv[1]
try:
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = {"status": response.status, "body": response.read().decode()}
except urllib.error.HTTPError as error:
    answer = {"status": error.code, "body": error.read().decode()}
except OSError as error:
    answer = {"status": 0, "body": str(error)}
print(json.dumps(answer))
