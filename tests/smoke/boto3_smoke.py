"""boto3 with default settings (CRC checksums on) against a running Cairn."""
import hashlib
import os
import sys
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=endpoint)
bucket = "boto3-smoke"
s3.create_bucket(Bucket=bucket)

small = b"hello from boto3"
big = os.urandom(3 * 1024 * 1024 + 7)
s3.put_object(Bucket=bucket, Key="small.txt", Body=small, ContentType="text/plain", Metadata={"k": "v"})
s3.put_object(Bucket=bucket, Key="dir/big.bin", Body=big)

got = s3.get_object(Bucket=bucket, Key="small.txt")
assert got["Body"].read() == small
assert got["ContentType"] == "text/plain", got["ContentType"]
assert got["Metadata"] == {"k": "v"}, got["Metadata"]
assert got["ETag"] == '"%s"' % hashlib.md5(small).hexdigest()
assert s3.get_object(Bucket=bucket, Key="dir/big.bin")["Body"].read() == big
part = s3.get_object(Bucket=bucket, Key="dir/big.bin", Range="bytes=1048570-1048580")["Body"].read()
assert part == big[1048570:1048581]

listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
assert [o["Key"] for o in listed.get("Contents", [])] == ["small.txt"], listed
assert [p["Prefix"] for p in listed.get("CommonPrefixes", [])] == ["dir/"], listed

# boto3 sends the attribute list as one comma-separated header.
attrs = s3.get_object_attributes(Bucket=bucket, Key="dir/big.bin",
                                 ObjectAttributes=["ETag", "ObjectSize", "StorageClass"])
assert attrs["ObjectSize"] == len(big) and attrs["StorageClass"] == "STANDARD", attrs
# This one ETag is bare in S3's answer, the object's ETag without its quotes.
head_etag = s3.head_object(Bucket=bucket, Key="dir/big.bin")["ETag"]
assert attrs["ETag"] == head_etag.strip('"') and not attrs["ETag"].startswith('"'), (attrs, head_etag)

# A v1 listing with encoding-type=url (boto3 asks for it) hands an odd prefix back as sent.
s3.put_object(Bucket=bucket, Key="line\nbreak", Body=b"x")
v1 = s3.list_objects(Bucket=bucket, Prefix="line\n")
assert v1["Prefix"] == "line\n" and [o["Key"] for o in v1["Contents"]] == ["line\nbreak"], v1
s3.delete_object(Bucket=bucket, Key="line\nbreak")

# ListBuckets pages with max-buckets and a continuation token.
for extra in ("boto3-smoke-a", "boto3-smoke-b"):
    s3.create_bucket(Bucket=extra)
names, token = [], None
while True:
    page = s3.list_buckets(MaxBuckets=1, Prefix="boto3-smoke", **({"ContinuationToken": token} if token else {}))
    assert len(page["Buckets"]) <= 1, page
    names += [b["Name"] for b in page["Buckets"]]
    token = page.get("ContinuationToken")
    if not token:
        break
assert names == ["boto3-smoke", "boto3-smoke-a", "boto3-smoke-b"], names
for extra in ("boto3-smoke-a", "boto3-smoke-b"):
    s3.delete_bucket(Bucket=extra)

# Presigned GETs: honoured within a week, refused (400 AuthorizationQueryParametersError)
# when signed for longer, as AWS does.
# (boto3 presigns with SigV2 unless told otherwise; SigV2 URLs carry an absolute expiry.)
v4 = boto3.client("s3", endpoint_url=endpoint, config=Config(signature_version="s3v4"))
url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "small.txt"}, ExpiresIn=600)
assert urllib.request.urlopen(url).read() == small
url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "small.txt"}, ExpiresIn=600)
assert urllib.request.urlopen(url).read() == small, "a SigV2 presigned URL works too"
url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "small.txt"}, ExpiresIn=609901)
try:
    urllib.request.urlopen(url)
    raise AssertionError("a presigned URL valid for more than a week was honoured")
except urllib.error.HTTPError as e:
    assert e.code == 400 and b"AuthorizationQueryParametersError" in e.read(), e

try:
    s3.get_object(Bucket=bucket, Key="missing")
    raise AssertionError("missing key returned data")
except ClientError as e:
    assert e.response["Error"]["Code"] == "NoSuchKey", e.response
    # The error names the request id its x-amz-request-id header carries.
    meta = e.response["ResponseMetadata"]
    assert meta["RequestId"] and meta["RequestId"] == meta["HTTPHeaders"]["x-amz-request-id"], meta
try:
    urllib.request.urlopen(endpoint + "/" + bucket + "/small.txt")  # unsigned
    raise AssertionError("an anonymous GET was served")
except urllib.error.HTTPError as e:
    body, rid = e.read().decode(), e.headers["x-amz-request-id"]
    assert e.code == 403 and rid and "<RequestId>%s</RequestId>" % rid in body, (e.code, rid, body)

# A bucket policy opens GetObject to anonymous requests (and nothing else) until deleted.
import json
public = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
          "Action": "s3:GetObject", "Resource": "arn:aws:s3:::%s/small.txt" % bucket}]}
s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public))
assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == public
assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
assert urllib.request.urlopen(endpoint + "/" + bucket + "/small.txt").read() == small
try:
    urllib.request.urlopen(endpoint + "/" + bucket + "/dir/big.bin")
    raise AssertionError("an anonymous GET outside the policy was served")
except urllib.error.HTTPError as e:
    assert e.code == 403, e.code
try:
    urllib.request.urlopen(urllib.request.Request(endpoint + "/" + bucket + "/evil", data=b"x", method="PUT"))
    raise AssertionError("an anonymous PUT was accepted")
except urllib.error.HTTPError as e:
    assert e.code == 403, e.code
s3.delete_bucket_policy(Bucket=bucket)
try:
    s3.get_bucket_policy(Bucket=bucket)
    raise AssertionError("a deleted bucket policy was returned")
except ClientError as e:
    assert e.response["Error"]["Code"] == "NoSuchBucketPolicy", e.response
try:
    urllib.request.urlopen(endpoint + "/" + bucket + "/small.txt")
    raise AssertionError("the bucket is still public after DeleteBucketPolicy")
except urllib.error.HTTPError as e:
    assert e.code == 403, e.code

# Server-side copy (metadata kept, then replaced), tagging, batch delete.
copied = s3.copy_object(Bucket=bucket, Key="copy/big.bin", CopySource={"Bucket": bucket, "Key": "dir/big.bin"})
assert copied["CopyObjectResult"]["ETag"] == '"%s"' % hashlib.md5(big).hexdigest(), copied
assert s3.get_object(Bucket=bucket, Key="copy/big.bin")["Body"].read() == big
s3.copy_object(Bucket=bucket, Key="small.txt", CopySource=bucket + "/small.txt",
               MetadataDirective="REPLACE", ContentType="text/csv", Tagging="a=1&b=2",
               TaggingDirective="REPLACE")
head = s3.head_object(Bucket=bucket, Key="small.txt")
assert head["ContentType"] == "text/csv" and head["Metadata"] == {}, head
tags = s3.get_object_tagging(Bucket=bucket, Key="small.txt")["TagSet"]
assert sorted((t["Key"], t["Value"]) for t in tags) == [("a", "1"), ("b", "2")], tags
s3.put_object_tagging(Bucket=bucket, Key="small.txt", Tagging={"TagSet": [{"Key": "c", "Value": "3"}]})
assert s3.get_object(Bucket=bucket, Key="small.txt")["TagCount"] == 1
s3.delete_object_tagging(Bucket=bucket, Key="small.txt")
assert s3.get_object_tagging(Bucket=bucket, Key="small.txt")["TagSet"] == []

deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
    {"Key": "small.txt"}, {"Key": "dir/big.bin"}, {"Key": "copy/big.bin"}, {"Key": "never-existed"}]})
assert sorted(d["Key"] for d in deleted["Deleted"]) == ["copy/big.bin", "dir/big.bin", "never-existed", "small.txt"], deleted
assert not deleted.get("Errors"), deleted
assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
s3.delete_bucket(Bucket=bucket)

# Object Lock and lifecycle with boto3's defaults (it sends CRC32 checksums, no Content-MD5,
# on these XML requests).
import datetime
worm = "boto3-smoke-worm"
s3.create_bucket(Bucket=worm, ObjectLockEnabledForBucket=True)
assert s3.get_bucket_versioning(Bucket=worm)["Status"] == "Enabled"
s3.put_object_lock_configuration(Bucket=worm, ObjectLockConfiguration={
    "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
version = s3.put_object(Bucket=worm, Key="kept", Body=b"worm")["VersionId"]
head = s3.head_object(Bucket=worm, Key="kept")
assert head["ObjectLockMode"] == "GOVERNANCE", head
assert head["ObjectLockRetainUntilDate"] > datetime.datetime.now(datetime.timezone.utc), head
try:
    s3.delete_object(Bucket=worm, Key="kept", VersionId=version)
    raise AssertionError("a version under retention was deleted")
except ClientError as e:
    assert e.response["Error"]["Code"] == "AccessDenied", e.response
s3.put_object_legal_hold(Bucket=worm, Key="kept", VersionId=version, LegalHold={"Status": "ON"})
assert s3.get_object_legal_hold(Bucket=worm, Key="kept", VersionId=version)["LegalHold"]["Status"] == "ON"
s3.put_object_legal_hold(Bucket=worm, Key="kept", VersionId=version, LegalHold={"Status": "OFF"})
s3.put_bucket_lifecycle_configuration(Bucket=worm, LifecycleConfiguration={"Rules": [
    {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 7}}]})
rules = s3.get_bucket_lifecycle_configuration(Bucket=worm)["Rules"]
assert [r["ID"] for r in rules] == ["tmp"], rules
expiring = s3.put_object(Bucket=worm, Key="tmp/x", Body=b"x")
assert 'rule-id="tmp"' in expiring["Expiration"], expiring
s3.delete_bucket_lifecycle(Bucket=worm)
s3.delete_object(Bucket=worm, Key="kept", VersionId=version, BypassGovernanceRetention=True)
for v in s3.list_object_versions(Bucket=worm).get("Versions", []):
    s3.delete_object(Bucket=worm, Key=v["Key"], VersionId=v["VersionId"], BypassGovernanceRetention=True)
s3.delete_bucket(Bucket=worm)
print("boto3 smoke: ok")
