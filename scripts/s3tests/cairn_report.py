"""A pytest plugin that records each s3-tests test as one JSON line: its id, markers, outcome
and, when it did not pass, the S3 error code or assertion that stopped it.

Loaded by scripts/s3-tests.sh with `-p cairn_report`; the output file is named by the
CAIRN_S3TESTS_RESULTS environment variable. summarize.py turns the file into a table.
"""
import json
import os
import re

_markers = {}
_phases = {}

_CODE = re.compile(r"An error occurred \(([A-Za-z0-9.]+)\)")


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        _markers[item.nodeid] = sorted({m.name for m in item.iter_markers()})


def _reason(report):
    """The S3 error code when there is one, else the first line of the crash message."""
    text = str(report.longrepr or "")
    code = _CODE.search(text)
    if code:
        return code.group(1)
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    message = getattr(crash, "message", None) or text
    first = message.strip().splitlines()[0] if message.strip() else "unknown"
    return first[:160]


def pytest_runtest_logreport(report):
    phases = _phases.setdefault(report.nodeid, {})
    phases[report.when] = report
    if report.when != "teardown":
        return
    setup, call = phases.get("setup"), phases.get("call")
    if setup is not None and setup.skipped:
        outcome, reason = "skipped", _reason(setup)
    elif setup is not None and setup.failed:
        outcome, reason = "error", _reason(setup)
    elif call is not None and call.failed:
        outcome, reason = "failed", _reason(call)
    elif call is not None and call.skipped:
        outcome, reason = "skipped", _reason(call)
    else:
        outcome, reason = "passed", None
    line = {
        "test": report.nodeid,
        "markers": _markers.get(report.nodeid, []),
        "outcome": outcome,
        "reason": reason,
        "teardown_error": _reason(report) if report.failed else None,
    }
    path = os.environ.get("CAIRN_S3TESTS_RESULTS")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
    del _phases[report.nodeid]
