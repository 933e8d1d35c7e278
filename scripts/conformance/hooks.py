"""Schemathesis hooks for the ledger's conformance run (scripts/conformance/run).

The one rule the OpenAPI document cannot state: `as_of` and `at_position` name two
different cuts and may not be given together (the server answers 422, as each
parameter's description says). Cases with both are not generated; that is the listed
exception, and the only one.
"""

import schemathesis


@schemathesis.hook
def filter_query(ctx, query):
    return not (query and "as_of" in query and "at_position" in query)
