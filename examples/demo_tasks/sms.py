"""Demo: an SMS gateway call that sometimes fails, retried with backoff."""

import random

import jobd


@jobd.task("sms.send")
def send(ctx, to: str, text: str, failure_rate: float = 0.0) -> dict:
    if random.random() < failure_rate:
        raise ConnectionError("SMS gateway timed out")
    ctx.logger.info("SMS to %s: %s", to, text)
    return {"to": to, "chars": len(text)}
