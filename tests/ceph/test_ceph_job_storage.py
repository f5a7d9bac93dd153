"""JobStorage against a real Ceph RGW (microceph): bucket, per-job upload credential enforced by
RGW (prefix, other user, tampering, expiry), listing, presigned GETs, logs, results, HTTPS."""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import uuid

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from gpulab.hub.jobs.storage import JobStorage, credential_lifetime, s3_client_config

pytestmark = pytest.mark.ceph
JOB = "train-aaaaaa"
OTHER_JOB = "train-bbbbbb"


@pytest.fixture(scope="module")
def storage(ceph_s3):
    st = JobStorage(
        endpoint_url=ceph_s3.endpoint,
        access_key=ceph_s3.alice_key,
        secret_key=ceph_s3.alice_secret,
        bucket=f"jobs-{uuid.uuid4().hex[:10]}",
    )
    st.ensure_bucket()
    return st


def post(cred: dict, key: str, data: bytes = b"data", *, verify=True) -> httpx.Response:
    return httpx.post(
        cred["url"], data={**cred["fields"], "key": key}, files={"file": ("f", data)}, verify=verify
    )


def test_bucket_is_created_once(storage):
    storage.ensure_bucket()
    storage.ensure_bucket()
    assert (
        storage.client.head_bucket(Bucket=storage.bucket)["ResponseMetadata"]["HTTPStatusCode"]
        == 200
    )


def test_round_trip_through_the_upload_credential(storage):
    cred = storage.upload_credential("alice", JOB, credential_lifetime(3600))
    assert cred["prefix"] == f"alice/{JOB}/"
    assert "ALICE" not in json.dumps(cred).replace(cred["fields"]["x-amz-credential"], "")
    for key, data in [
        ("outputs/model.pt", b"weights" * 100),
        ("outputs/sub dir/é.txt", "été".encode()),
        ("log.txt", b"line 1\nline 2\n"),
        ("result.json", json.dumps({"exit_code": 0, "upload": "ok"}).encode()),
    ]:
        r = post(cred, cred["prefix"] + key, data)
        assert r.status_code == 204, r.text
    files = storage.list_outputs("alice", JOB)
    assert [f.path for f in files] == [
        "log.txt",
        "outputs/model.pt",
        "outputs/sub dir/é.txt",
        "result.json",
    ]
    assert files[1].size == 700 and files[1].key == f"alice/{JOB}/outputs/model.pt"
    assert storage.list_outputs("alice", JOB, page_size=1) == files  # pagination
    assert storage.read_log("alice", JOB) == b"line 1\nline 2\n"
    assert storage.read_log("alice", JOB, offset=7) == b"line 2\n"
    assert storage.read_log("alice", JOB, offset=7, limit=4) == b"line"
    assert storage.read_log("alice", JOB, offset=1000) == b""
    assert storage.result("alice", JOB) == {"exit_code": 0, "upload": "ok"}
    assert (
        storage.read_log("alice", OTHER_JOB) is None and storage.result("alice", OTHER_JOB) is None
    )
    assert storage.list_outputs("bob", JOB) == []


def test_the_secret_key_never_leaves_the_gateway(storage, ceph_s3):
    cred = storage.upload_credential("alice", JOB, 600)
    text = json.dumps(cred)
    assert ceph_s3.alice_secret not in text
    policy = json.loads(base64.b64decode(cred["fields"]["policy"]))
    assert ["starts-with", "$key", f"alice/{JOB}/"] in policy["conditions"]
    assert {"bucket": storage.bucket} in policy["conditions"]
    assert "ceph_s3" not in repr(storage) and ceph_s3.alice_secret not in repr(storage)


@pytest.mark.parametrize(
    "key",
    [
        f"alice/{OTHER_JOB}/outputs/x",  # another job of the same user
        f"bob/{JOB}/outputs/x",  # another user
        f"alice/{JOB}x/outputs/x",  # a prefix trick
        "alice/x",
        "outside.txt",
    ],
)
def test_the_credential_is_refused_outside_its_prefix(storage, key):
    cred = storage.upload_credential("alice", JOB, 600)
    r = post(cred, key)
    assert r.status_code == 403, r.text
    with pytest.raises(ClientError):
        storage.client.head_object(Bucket=storage.bucket, Key=key)


def test_tampered_and_expired_credentials_are_refused(storage):
    cred = storage.upload_credential("alice", JOB, 600)
    key = cred["prefix"] + "outputs/t.txt"
    forged = dict(cred["fields"])
    policy = json.loads(base64.b64decode(forged["policy"]))
    policy["conditions"] = [
        c for c in policy["conditions"] if not (isinstance(c, list) and c[0] == "starts-with")
    ]
    forged["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    assert post({**cred, "fields": forged}, "bob/anything").status_code == 403
    sig = cred["fields"]["x-amz-signature"]
    bad_sig = dict(cred["fields"], **{"x-amz-signature": ("0" if sig[0] != "0" else "1") + sig[1:]})
    assert post({**cred, "fields": bad_sig}, key).status_code == 403
    other_bucket = {**cred, "url": cred["url"].rsplit("/", 1)[0] + "/another-bucket-x"}
    assert post(other_bucket, key).status_code in (403, 404)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    expired = storage.upload_credential("alice", JOB, 3600, now=past)
    r = post(expired, key)
    assert r.status_code == 403 and "xpired" in r.text
    # signed long ago but still valid: a job that uploads at the end of a long run
    old = storage.upload_credential(
        "alice", JOB, 3 * 86400, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    )
    assert post(old, key).status_code == 204


def test_size_limit_is_enforced(ceph_s3):
    st = JobStorage(
        endpoint_url=ceph_s3.endpoint,
        access_key=ceph_s3.alice_key,
        secret_key=ceph_s3.alice_secret,
        bucket=f"jobs-small-{uuid.uuid4().hex[:8]}",
        max_upload_bytes=10,
    )
    st.ensure_bucket()
    cred = st.upload_credential("alice", JOB, 600)
    assert post(cred, cred["prefix"] + "ok", b"x" * 10).status_code == 204
    assert post(cred, cred["prefix"] + "big", b"x" * 11).status_code in (400, 403)


def test_presigned_get_works_and_is_confined(storage):
    cred = storage.upload_credential("alice", JOB, 600)
    assert post(cred, cred["prefix"] + "outputs/get.txt", b"hello").status_code == 204
    url = storage.presigned_get("alice", JOB, "outputs/get.txt", expires_in=60)
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == b"hello"
    assert "attachment" in r.headers.get("content-disposition", "")
    assert storage.presigned_get("alice", JOB, "outputs/missing.txt") is None
    for bad in [
        "../" + OTHER_JOB + "/log.txt",
        "/etc/passwd",
        "",
        "outputs/../../bob",
        "a\x00b",
        ".",
    ]:
        with pytest.raises(ValueError):
            storage.presigned_get("alice", JOB, bad)
    with pytest.raises(ValueError):
        storage.presigned_get("alice", "../bob", "x")


def test_tampered_presigned_urls_are_refused(storage):
    cred = storage.upload_credential("alice", JOB, 600)
    post(cred, cred["prefix"] + "outputs/a.txt", b"a")
    post(cred, cred["prefix"] + "outputs/b.txt", b"b")
    url = storage.presigned_get("alice", JOB, "outputs/a.txt")
    assert httpx.get(url.replace("outputs/a.txt", "outputs/b.txt")).status_code == 403
    assert httpx.get(url.replace("X-Amz-Expires=300", "X-Amz-Expires=999999")).status_code == 403
    sig_at = url.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    flipped = url[:sig_at] + ("0" if url[sig_at] != "0" else "1") + url[sig_at + 1 :]
    assert httpx.get(flipped).status_code == 403
    assert httpx.get(url.split("?")[0]).status_code == 403  # anonymous


def test_another_rgw_user_cannot_read_the_bucket(storage, ceph_s3):
    bob = boto3.client(
        "s3",
        endpoint_url=ceph_s3.endpoint,
        aws_access_key_id=ceph_s3.bob_key,
        aws_secret_access_key=ceph_s3.bob_secret,
        region_name="default",
        config=s3_client_config(),
    )
    with pytest.raises(ClientError):
        bob.list_objects_v2(Bucket=storage.bucket)
    with pytest.raises(ClientError):
        bob.get_object(Bucket=storage.bucket, Key=f"alice/{JOB}/log.txt")


def test_delete_job(storage):
    cred = storage.upload_credential("alice", "gone-cccccc", 600)
    for i in range(3):
        assert post(cred, cred["prefix"] + f"outputs/{i}").status_code == 204
    assert storage.delete_job("alice", "gone-cccccc") == 3
    assert storage.list_outputs("alice", "gone-cccccc") == []


def test_everything_over_https(ceph_s3):
    st = JobStorage(
        endpoint_url=ceph_s3.tls_endpoint,
        access_key=ceph_s3.alice_key,
        secret_key=ceph_s3.alice_secret,
        bucket=f"jobs-tls-{uuid.uuid4().hex[:8]}",
        ca_bundle=ceph_s3.ca_bundle,
    )
    st.ensure_bucket()
    tls = ssl.create_default_context(cafile=ceph_s3.ca_bundle)
    cred = st.upload_credential("alice", JOB, 600)
    assert cred["url"].startswith("https://") and "BEGIN CERTIFICATE" in cred["ca_bundle"]
    assert (
        post(cred, cred["prefix"] + "outputs/m.bin", b"m" * 100_000, verify=tls).status_code == 204
    )
    assert post(cred, "bob/x", verify=tls).status_code == 403
    # boto3 PutObject over HTTPS (the checksum pitfall) works with the shared client config
    st.client.put_object(Bucket=st.bucket, Key=f"alice/{JOB}/log.txt", Body=b"tls log")
    assert st.read_log("alice", JOB) == b"tls log"
    [log, model] = st.list_outputs("alice", JOB)
    assert (log.path, model.path, model.size) == ("log.txt", "outputs/m.bin", 100_000)
    r = httpx.get(st.presigned_get("alice", JOB, "outputs/m.bin"), verify=tls)
    assert r.status_code == 200 and len(r.content) == 100_000
