"""List (and optionally delete) the keys under a prefix of an S3 bucket
(ListObjectsV2, DeleteObject; SigV4), or make one signed request.

Run on an app host by the tests:
  python3 -c "$(cat s3.py)" ENV_FILE ENDPOINT BUCKET PREFIX [DELETE_REGEX]
prints the keys found; with DELETE_REGEX, deletes those whose key matches it
(and prints them).
  python3 -c "$(cat s3.py)" damage ENV_FILE ENDPOINT BUCKET PREFIX REGEX HOW
rewrites the objects whose key matches REGEX as a faulty store would:
HOW "truncate" cuts their last 64 bytes, "flip" inverts a byte in their
middle; prints their keys.
  python3 -c "$(cat s3.py)" request ENV_FILE ENDPOINT METHOD PATH [QUERY_JSON [BODY]]
prints {"status": ..., "code": ..., "body": ...} as JSON, whatever the answer.
Signs with the credentials in ENV_FILE (a host's own 0600 Litestream
environment file, or one written by a test); HTTPS is checked against the
host's trust store. Standard library only; signed with the guard's SigV4
signer, which the tests put before this text.
"""

import html
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

from sigv4 import signed  # the guard's signer (programs/__init__.py)

args = sys.argv[1:]
mode = args.pop(0) if args[0] in ("request", "damage") else "list"
env_path, endpoint = args[0], args[1]
with open(env_path) as env_file:
    env = dict(re.findall(r"^(\w+)='(.*)'$", env_file.read(), re.M))
key, secret = env["LITESTREAM_ACCESS_KEY_ID"], env["LITESTREAM_SECRET_ACCESS_KEY"]


def s3(method: str, path: str, params: dict, body: bytes = b"") -> tuple[int, bytes]:
    url, headers = signed(method, endpoint, path, params, key, secret, body=body)
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
delete = re.compile(args[4]) if len(args) > 4 and mode == "list" else None
# Every key: a listing gives 1000 at most, the rest through its continuation token.
keys: list = []
query = {"list-type": "2", "prefix": prefix}
while True:
    listing = s3("GET", "/" + bucket, query)[1].decode()
    keys += re.findall(r"<Key>([^<]+)</Key>", listing)
    token = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", listing)
    if "<IsTruncated>true</IsTruncated>" not in listing or not token:
        break
    query = {**query, "continuation-token": html.unescape(token.group(1))}
if mode == "damage":
    keys = [k for k in keys if re.search(args[4], k)]
    for k in keys:
        data = bytearray(s3("GET", f"/{bucket}/{k}", {})[1])
        if args[5] == "truncate":
            del data[-64:]
        else:
            data[len(data) // 2] ^= 0xFF
        s3("PUT", f"/{bucket}/{k}", {}, bytes(data))
if delete:
    keys = [k for k in keys if delete.search(k)]
    for k in keys:
        s3("DELETE", f"/{bucket}/{k}", {})
print("\n".join(keys))
