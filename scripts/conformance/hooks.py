"""Schemathesis hooks for the ledger's conformance run (scripts/conformance/run).

The rules the OpenAPI document cannot state, each in the description of what it
constrains; the server answers 422 to a request that breaks one. Such requests are not
generated (the coverage phase does not run hooks: verdict.py accepts exactly these
refusals there). They are the listed exceptions, and the only ones:

- `GET /v1/notifications`: `min_version` (read-your-writes) needs `order_id`;
- `POST /v1/orders`: an order lists each SKU once;
- `POST /v1/orders`: a payment instruction needs something to pay (a total above zero).
"""

import schemathesis


@schemathesis.hook
def filter_query(ctx, query):
    return not (query and "min_version" in query and "order_id" not in query)


@schemathesis.hook
def filter_body(ctx, body):
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return True
    items = [item for item in body["items"] if isinstance(item, dict)]
    skus = [item.get("sku") for item in items]
    if len(skus) != len(set(skus)):
        return False
    total = sum(
        item.get("quantity", 0) * item.get("unit_price_minor", 0)
        for item in items
        if isinstance(item.get("quantity"), (int, float))
        and isinstance(item.get("unit_price_minor"), (int, float))
    )
    return not (body.get("payment") is not None and total == 0)
