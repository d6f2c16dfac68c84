"""Demo: an analytics report built in steps."""

import time

import jobd

STEPS = ["load orders", "join contacts", "aggregate", "render", "store"]


@jobd.task("reports.build_daily", cache_ttl=300)
def build_daily(ctx, kind: str = "sales", step_seconds: float = 1.0) -> dict:
    for index, step in enumerate(STEPS, start=1):
        time.sleep(step_seconds)
        ctx.progress(index, len(STEPS), f"{kind}: {step}")
    return {"kind": kind, "rows": 1234}
