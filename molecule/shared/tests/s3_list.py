"""List the keys under a prefix of an S3 bucket (ListObjectsV2, SigV4).

Run on an app host by the tests: python3 -c "$(cat s3_list.py)" ENDPOINT
BUCKET PREFIX. Signs with the host's own Litestream credentials, read from
its 0600 environment file; standard library only.
"""

import datetime
import hashlib
import hmac
import re
import sys
import urllib.parse
import urllib.request

endpoint, bucket, prefix = sys.argv[1:4]
with open("/etc/litestream/litestream.env") as env_file:
    env = dict(re.findall(r"^(\w+)='(.*)'$", env_file.read(), re.M))
key, secret = env["LITESTREAM_ACCESS_KEY_ID"], env["LITESTREAM_SECRET_ACCESS_KEY"]

region = "us-east-1"
now = datetime.datetime.now(datetime.UTC)
amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
params = sorted({"list-type": "2", "prefix": prefix}.items())
query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
payload = hashlib.sha256(b"").hexdigest()
headers = {
    "host": urllib.parse.urlsplit(endpoint).netloc,
    "x-amz-content-sha256": payload,
    "x-amz-date": amz_date,
}
signed = ";".join(sorted(headers))
canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in sorted(headers))
canonical = "\n".join(["GET", "/" + bucket, query, canonical_headers, signed, payload])
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
request = urllib.request.Request(f"{endpoint}/{bucket}?{query}", headers=headers)
with urllib.request.urlopen(request, timeout=30) as response:
    print("\n".join(re.findall(r"<Key>([^<]+)</Key>", response.read().decode())))
