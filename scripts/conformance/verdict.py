"""Judges a schemathesis run: no failure at all, apart from the listed exceptions.

The exceptions (see hooks.py) are rules the OpenAPI document cannot express, answered
422 (ST202) with these messages: `GET /v1/notifications` with `min_version` and no
`order_id`; `POST /v1/orders` listing a SKU twice, or with a payment instruction on a
zero total. Any other failure, or one of those for another reason, fails.

    python3 verdict.py REPORT.json OUTPUT.txt
"""

import json
import re
import sys

EXCEPTIONS = {
    "GET /v1/notifications": ["is required with min_version"],
    "POST /v1/orders": [
        "appears more than once; combine the quantities into one item",
        "an order whose total is zero has nothing to charge; leave out the payment instruction",
    ],
}


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
            if failure["code"] == "ST202" and operation in EXCEPTIONS:
                text = sections(output).get(operation, "")
                reasons = re.findall(r'"message":"([^"]*)"', text)
                if reasons and all(r in EXCEPTIONS[operation] for r in reasons):
                    continue
            unexpected.append(f"{failure['code']} {failure['title']}: {operation}")
    if unexpected:
        sys.exit("conformance failures:\n  " + "\n  ".join(unexpected))
    cases = report["test_cases"]["generated"]
    print(f"conformance: {cases} generated requests, no failure but the listed exceptions")


if __name__ == "__main__":
    main(*sys.argv[1:3])
