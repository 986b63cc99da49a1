"""Turns the results.jsonl of scripts/s3-tests.sh into a Markdown table by feature area:
how many tests passed and failed, how many failures were NotImplemented (a feature Cairn does
not have yet, answered honestly), and the most common reasons for the rest.

    python3 scripts/s3tests/summarize.py results.jsonl
"""
import collections
import json
import sys

# s3-tests' own markers, most specific first: a test is counted under the first that it has.
MARKER_AREAS = [
    ("object_lock", "object lock"),
    ("lifecycle", "lifecycle"),
    ("lifecycle_expiration", "lifecycle"),
    ("lifecycle_transition", "lifecycle"),
    ("versioning", "versioning"),
    ("delete_marker", "versioning"),
    ("bucket_policy", "bucket policy"),
    ("user_policy", "users and policies"),
    ("iam_user", "users and policies"),
    ("iam_account", "users and policies"),
    ("iam_tenant", "users and policies"),
    ("iam_role", "users and policies"),
    ("encryption", "encryption"),
    ("sse_s3", "encryption"),
    ("bucket_encryption", "encryption"),
    ("tagging", "tagging"),
    ("checksum", "checksums"),
    ("copy", "copy"),
    ("conditional_write", "conditional writes"),
    ("s3website", "website"),
    ("bucket_logging", "bucket logging"),
    ("storage_class", "storage classes"),
    ("s3select", "S3 Select"),
    ("appendobject", "append"),
    ("object_ownership", "ACLs and ownership"),
    ("list_objects_v2", "listing"),
    ("auth_aws2", "signature v2"),
    ("auth_aws4", "auth (SigV4)"),
    ("auth_common", "auth (SigV4)"),
]

# For tests without a feature marker: words of the test name, most specific first.
NAME_AREAS = [
    ("object_lock", "object lock"),
    ("retention", "object lock"),
    ("legal_hold", "object lock"),
    ("lifecycle", "lifecycle"),
    ("versioning", "versioning"),
    ("versions", "versioning"),
    ("version", "versioning"),
    ("policy", "bucket policy"),
    ("sse", "encryption"),
    ("encryption", "encryption"),
    ("tagging", "tagging"),
    ("tags", "tagging"),
    ("cors", "CORS"),
    ("acl", "ACLs and ownership"),
    ("grant", "ACLs and ownership"),
    ("ownership", "ACLs and ownership"),
    ("post_object", "POST object (browser forms)"),
    ("multipart", "multipart"),
    ("copy", "copy"),
    ("presigned", "presigned URLs"),
    ("multi_object_delete", "delete objects"),
    ("delete_objects", "delete objects"),
    ("checksum", "checksums"),
    ("list", "listing"),
    ("range", "ranged GET"),
    ("website", "website"),
    ("logging", "bucket logging"),
    ("bucket_create", "buckets"),
    ("bucket_", "buckets"),
    ("buckets", "buckets"),
]


def area_of(result):
    markers = set(result["markers"])
    for marker, area in MARKER_AREAS:
        if marker in markers:
            return area
    if "test_headers.py" in result["test"]:
        return "headers and auth"
    name = result["test"].rsplit("::", 1)[-1]
    for word, area in NAME_AREAS:
        if word in name:
            return area
    return "objects"


def short(reason):
    """A failure reason fit for a table cell: one line, at most 70 characters, no pipes."""
    reason = " ".join(str(reason).split()).replace("|", "/")
    return reason if len(reason) <= 70 else reason[:67] + "..."


def main(path):
    areas = collections.defaultdict(lambda: collections.Counter())
    reasons = collections.defaultdict(collections.Counter)
    totals = collections.Counter()
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            result = json.loads(line)
            area = area_of(result)
            outcome = result["outcome"]
            areas[area][outcome] += 1
            totals[outcome] += 1
            if outcome in ("failed", "error"):
                if result["reason"] == "NotImplemented":
                    areas[area]["not_implemented"] += 1
                    totals["not_implemented"] += 1
                else:
                    reasons[area][result["reason"]] += 1
    print("| Area | Tests | Passed | Failed | of which NotImplemented | Most common other reasons |")
    print("|---|---:|---:|---:|---:|---|")
    for area in sorted(areas, key=lambda a: (-sum(areas[a].values()), a)):
        c = areas[area]
        failed = c["failed"] + c["error"]
        total = c["passed"] + failed + c["skipped"]
        top = "; ".join(f"{short(r)} ({n})" for r, n in reasons[area].most_common(3))
        print(f"| {area} | {total} | {c['passed']} | {failed} | {c['not_implemented']} | {top} |")
    failed = totals["failed"] + totals["error"]
    total = totals["passed"] + failed + totals["skipped"]
    print(f"| **all** | {total} | {totals['passed']} | {failed} | {totals['not_implemented']} | "
          f"skipped: {totals['skipped']} |")


if __name__ == "__main__":
    main(sys.argv[1])
