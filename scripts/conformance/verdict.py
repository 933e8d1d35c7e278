"""Judges a schemathesis run: no failure at all, apart from the listed exception.

The exception (see hooks.py): `GET /v1/notifications` with `min_version` and no
`order_id`, answered 422 "is required with min_version" (ST202), which the OpenAPI
document cannot express. Any other failure, or that one for another reason, fails.

    python3 verdict.py REPORT.json OUTPUT.txt
"""

import json
import re
import sys

EXCEPTION_OPERATION = "GET /v1/notifications"
EXCEPTION_MESSAGE = "is required with min_version"


def sections(output):
    """The failure sections of the text output, by operation."""
    found = {}
    for match in re.finditer(r"^_+ (\S+ \S+) _+$(.*?)(?=^_+ |^=+ )", output, re.M | re.S):
        found[match.group(1)] = match.group(2)
    return found


def main(report_path, output_path):
    report = json.load(open(report_path, encoding="utf-8"))
    output = open(output_path, encoding="utf-8").read()
    if not report.get("complete"):
        sys.exit(f"the run did not complete: {report.get('stop_reason')}")
    if report.get("errors"):
        sys.exit(f"the run had errors: {report['errors']}")
    unexpected = []
    for failure in report.get("failures", []):
        for operation in failure["operations"]:
            if failure["code"] == "ST202" and operation == EXCEPTION_OPERATION:
                text = sections(output).get(operation, "")
                reasons = re.findall(r'"message":"([^"]*)"', text)
                if reasons and all(r == EXCEPTION_MESSAGE for r in reasons):
                    continue
            unexpected.append(f"{failure['code']} {failure['title']}: {operation}")
    if unexpected:
        sys.exit("conformance failures:\n  " + "\n  ".join(unexpected))
    cases = report["test_cases"]["generated"]
    print(f"conformance: {cases} generated requests, no failure but the listed exception")


if __name__ == "__main__":
    main(*sys.argv[1:3])
