"""Demo: a mailing that sends a campaign in batches, reports progress and checkpoints.

If the worker or the master dies mid-campaign, the retry resumes from the
last checkpoint instead of mailing everyone again.
"""

import time

import jobd


@jobd.task("mailing.send_campaign", timeout=600)
def send_campaign(ctx, campaign_id: int, contacts: int = 5000, batch: int = 250, pause: float = 0.2) -> dict:
    sent = (ctx.last_checkpoint or {}).get("sent", 0)
    if sent:
        ctx.logger.info("campaign %s: resuming after %s contacts", campaign_id, sent)
    while sent < contacts:
        if ctx.cancelled:
            ctx.logger.warning("campaign %s cancelled at %s/%s", campaign_id, sent, contacts)
            return {"campaign_id": campaign_id, "sent": sent, "cancelled": True}
        time.sleep(pause)  # stands in for talking to the mail provider
        sent = min(contacts, sent + batch)
        ctx.checkpoint({"sent": sent})
        ctx.progress(sent, contacts, f"campaign {campaign_id}: {sent}/{contacts} sent")
    return {"campaign_id": campaign_id, "sent": sent}


@jobd.task("mailing.cleanup_bounces")
def cleanup_bounces(ctx) -> int:
    ctx.progress(1, 1, "bounces cleaned")
    return 0
