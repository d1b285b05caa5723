"""The signer against the worked example of AWS's S3 SigV4 documentation
(GET /test.txt with a Range header), and as the tests and bench ship it."""

from __future__ import annotations

import datetime as dt
import inspect

from litestream_guard.sigv4 import signed

EXAMPLE_KEY = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105 - AWS example
EXAMPLE_TIME = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)


def test_the_documented_get_object_example():
    url, headers = signed(
        "GET",
        "https://examplebucket.s3.amazonaws.com",
        "/test.txt",
        {},
        EXAMPLE_KEY,
        EXAMPLE_SECRET,
        headers={"Range": "bytes=0-9"},
        now=EXAMPLE_TIME,
    )
    assert url == "https://examplebucket.s3.amazonaws.com/test.txt"
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_the_query_is_sorted_and_quoted_in_the_url_as_signed():
    url, headers = signed(
        "GET",
        "https://store.example:8333/",
        "/bucket",
        {"prefix": "a b/", "list-type": "2"},
        "k",
        "s",
        now=EXAMPLE_TIME,
    )
    assert url == "https://store.example:8333/bucket?list-type=2&prefix=a%20b%2F"
    assert headers["host"] == "store.example:8333"


def test_it_stands_alone_when_shipped_as_source():
    namespace: dict = {}
    exec(inspect.getsource(signed), namespace)  # noqa: S102 - as the bench ships it
    assert namespace["signed"]("GET", "https://h", "/b", {}, "k", "s", now=EXAMPLE_TIME) == (
        signed("GET", "https://h", "/b", {}, "k", "s", now=EXAMPLE_TIME)
    )
