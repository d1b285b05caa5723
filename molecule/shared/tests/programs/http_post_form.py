"""POST a form (field=value pairs) to one URL from a test host, following no
redirect; print {"status", "location", "body"} as JSON (status 0 when nothing
answered).

    python3 -c "$(cat http_post_form.py)" URL FIELD=VALUE...
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


url, fields = sys.argv[1], dict(pair.split("=", 1) for pair in sys.argv[2:])
request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode())
opener = urllib.request.build_opener(NoRedirect)
try:
    with opener.open(request, timeout=10) as response:
        answer = {"status": response.status, "location": "", "body": response.read().decode()}
except urllib.error.HTTPError as error:
    answer = {
        "status": error.code,
        "location": error.headers.get("Location", ""),
        "body": error.read().decode(),
    }
except OSError as error:
    answer = {"status": 0, "location": "", "body": str(error)}
print(json.dumps(answer))
