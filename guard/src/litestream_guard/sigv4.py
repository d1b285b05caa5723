"""AWS Signature Version 4 for S3 requests: the one signer of this project.

The guard signs its S3 moves with it; the tests and the bench ship the same
function to lab hosts as source (which is why it imports what it uses
inside: it must stand alone). Standard library only.
"""

from __future__ import annotations


def signed(
    method: str,
    endpoint: str,
    path: str,
    params: dict,
    access_key: str,
    secret_key: str,
    *,
    region: str = "us-east-1",
    headers: dict | None = None,
    body: bytes = b"",
    now=None,
) -> tuple[str, dict]:
    """The URL and the headers of one signed request: `path` is the
    request's path before quoting (/bucket/key, path-style), `params` its
    query, `headers` any more to sign (x-amz-copy-source, range...), `now`
    an aware datetime (the current time when None)."""
    import datetime
    import hashlib
    import hmac
    import urllib.parse

    now = now or datetime.datetime.now(datetime.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    endpoint = endpoint.rstrip("/")
    quoted = urllib.parse.quote(path)
    query = urllib.parse.urlencode(sorted(params.items()), quote_via=urllib.parse.quote)
    payload = hashlib.sha256(body).hexdigest()
    out = {
        "host": urllib.parse.urlsplit(endpoint).netloc,
        "x-amz-content-sha256": payload,
        "x-amz-date": amz_date,
        **{name.lower(): str(value).strip() for name, value in (headers or {}).items()},
    }
    names = ";".join(sorted(out))
    canonical = "\n".join(
        [
            method,
            quoted,
            query,
            "".join(f"{name}:{out[name]}\n" for name in sorted(out)),
            names,
            payload,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, digest])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={names}, "
        f"Signature={signature}"
    )
    return endpoint + quoted + (f"?{query}" if query else ""), out
