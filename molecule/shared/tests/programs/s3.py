"""List (and optionally delete) the keys under a prefix of an S3 bucket
(ListObjectsV2, DeleteObject; SigV4), or make one signed request.

Run on an app host by the tests:
  python3 -c "$(cat s3.py)" ENV_FILE ENDPOINT BUCKET PREFIX [DELETE_REGEX]
prints the keys found; with DELETE_REGEX, deletes those whose key matches it
(and prints them).
  python3 -c "$(cat s3.py)" request ENV_FILE ENDPOINT METHOD PATH [QUERY_JSON [BODY]]
prints {"status": ..., "code": ..., "body": ...} as JSON, whatever the answer.
Signs with the credentials in ENV_FILE (a host's own 0600 Litestream
environment file, or one written by a test); HTTPS is checked against the
host's trust store. Standard library only.
"""

import datetime
import hashlib
import hmac
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

args = sys.argv[1:]
mode = args.pop(0) if args[0] == "request" else "list"
env_path, endpoint = args[0], args[1]
with open(env_path) as env_file:
    env = dict(re.findall(r"^(\w+)='(.*)'$", env_file.read(), re.M))
key, secret = env["LITESTREAM_ACCESS_KEY_ID"], env["LITESTREAM_SECRET_ACCESS_KEY"]
region = "us-east-1"


def s3(method: str, path: str, params: dict, body: bytes = b"") -> tuple[int, bytes]:
    now = datetime.datetime.now(datetime.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    query = urllib.parse.urlencode(sorted(params.items()), quote_via=urllib.parse.quote)
    payload = hashlib.sha256(body).hexdigest()
    headers = {
        "host": urllib.parse.urlsplit(endpoint).netloc,
        "x-amz-content-sha256": payload,
        "x-amz-date": amz_date,
    }
    signed = ";".join(sorted(headers))
    canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in sorted(headers))
    quoted = urllib.parse.quote(path)
    canonical = "\n".join([method, quoted, query, canonical_headers, signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, digest])
    signing_key = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    url = f"{endpoint}{quoted}" + (f"?{query}" if query else "")
    request = urllib.request.Request(url, data=body or None, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


if mode == "request":
    method, path = args[2], args[3]
    params = json.loads(args[4]) if len(args) > 4 else {}
    body = args[5].encode() if len(args) > 5 else b""
    try:
        status, data = s3(method, path, params, body)
        answer = {"status": status, "body": data.decode()}
    except urllib.error.HTTPError as error:
        answer = {"status": error.code, "body": error.read().decode()}
    found = re.search(r"<Code>([^<]+)</Code>", answer["body"])
    answer["code"] = found.group(1) if found else ""
    print(json.dumps(answer))
    sys.exit(0)

bucket, prefix = args[2], args[3]
delete = re.compile(args[4]) if len(args) > 4 else None
listing = s3("GET", "/" + bucket, {"list-type": "2", "prefix": prefix})[1].decode()
keys = re.findall(r"<Key>([^<]+)</Key>", listing)
if delete:
    keys = [k for k in keys if delete.search(k)]
    for k in keys:
        s3("DELETE", f"/{bucket}/{k}", {})
print("\n".join(keys))
