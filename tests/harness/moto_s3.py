"""Pytest plugin: a real S3 API on loopback (moto's threaded server).

Fixtures:

``s3_endpoint`` (session scope) -> ``str``
    The endpoint URL, ``http://127.0.0.1:<port>``, of one ``moto.server.ThreadedMotoServer``
    started for the test session on an ephemeral port. While it runs, the environment holds
    dummy credentials (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` = ``S3_ACCESS_KEY`` /
    ``S3_SECRET_KEY``, ``AWS_DEFAULT_REGION`` = ``S3_REGION``) so no test can reach a real
    account.

``s3_bucket`` (function scope) -> ``str``
    The name of a fresh, empty bucket on that server (path-style addressing works on it).

Typical use::

    S3MediaStore(bucket=s3_bucket, endpoint_url=s3_endpoint, region=S3_REGION,
                 addressing_style="path", access_key_id=S3_ACCESS_KEY,
                 secret_access_key=S3_SECRET_KEY)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

S3_REGION = "us-east-1"
S3_ACCESS_KEY = "testing"
S3_SECRET_KEY = "testing"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.fail(
            "moto's server is required for the S3 tests: pip install 'moto[server,s3]'",
            pytrace=False,
        )
        raise AssertionError from exc
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
        env.setenv("AWS_DEFAULT_REGION", S3_REGION)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.delenv("AWS_PROFILE", raising=False)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            if not port:
                pytest.fail("moto's server did not report the port it bound", pytrace=False)
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:20]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )
    try:
        client.create_bucket(Bucket=name)
        yield name
        # empty and drop it, so the session-wide server does not grow test after test
        listing = client.list_objects_v2(Bucket=name)
        for obj in listing.get("Contents", []):
            client.delete_object(Bucket=name, Key=obj["Key"])
        client.delete_bucket(Bucket=name)
    finally:
        client.close()
