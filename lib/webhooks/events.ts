/**
 * The webhook event types a webhook may subscribe to: the one list. createWebhook and
 * updateWebhook accept these names (schemas/webhooks.ts builds its enum from it), the spec and
 * docs/api.md describe them from it, and the statements that make each change write its event
 * (the file named beside it) for the webhooks subscribed, through webhook_subscribers().
 *
 * Adding an event type: add it here, and in the statement that makes the change a CTE that
 * inserts its webhook_deliveries rows for `webhook_subscribers('<type>', <dataset id>)` (copy
 * the event and event_queued CTEs of sql/reviews/submit_review.sql). Nothing else changes: the table
 * takes any type, and the workers send whatever it holds (the review.* events came that way).
 */
export const EVENT_TYPES = {
  "annotation.created": "a human or machine annotation was recorded " +
    "(sql/annotations/create_*.sql, create_predictions.sql): the annotation and its image",
  "image.completed": "a submit gave an image its annotations_per_image-th human annotation and " +
    "the dataset's review_rate did not send it to review " +
    "(sql/annotations/create_human_annotation*.sql), or a reviewer accepted or fixed it " +
    "(sql/reviews/submit_review.sql): the image and its annotators",
  "dataset.completed": "that submit left no image of the dataset to annotate " +
    "(sql/annotations/create_human_annotation*.sql)",
  "claim.expired": "a claim was found expired and ended: by the claim that took its slot, or " +
    "else by its holder's next claim (sql/claims/claim_next_image*.sql): the claim",
  "review.accepted":
    "a reviewer accepted an image's annotations (sql/reviews/submit_review.sql): " +
    "the review (decision, reviewer, comment, the annotators judged) and the image",
  "review.fixed": "a reviewer replaced an image's annotations with their own " +
    "(sql/reviews/submit_review.sql): the review, with the fix's annotation id, and the image",
  "review.rejected": "a reviewer rejected an image's annotations and sent it back for rework " +
    "(sql/reviews/submit_review.sql): the review, with its comment, and the image",
} as const;

export type EventType = keyof typeof EVENT_TYPES;
export const EVENT_TYPE_NAMES = Object.keys(EVENT_TYPES) as [EventType, ...EventType[]];

/** Sent by pingWebhook only; never subscribed to. */
export const PING_EVENT = "webhook.ping";

/** The webhook-id header and the API's event ids: `evt_<decimal id>`. */
export function eventIdText(id: string): string {
  return `evt_${id}`;
}

/** The decimal id of an `evt_…` id, or null when it is not one. */
export function parseEventId(text: string): string | null {
  return /^evt_([1-9][0-9]{0,17})$/.exec(text)?.[1] ?? null;
}
