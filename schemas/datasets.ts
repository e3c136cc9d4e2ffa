/** Datasets: a named set of images, its label vocabulary and its annotation rules. */
import { z } from "@hono/zod-openapi";
import { ACCESS } from "../sql/datasets/queries.ts";
import type * as q from "../sql/datasets/queries.ts";
import { Id, Name, Text, Timestamp } from "./common.ts";
import { RoleSchema } from "./users.ts";

/** A dataset's label list: distinct, non-blank, 1 to 1,000 of them. */
const Labels = z.array(Name(200)).min(1, "must contain at least 1 label").max(
  1000,
  "must contain at most 1000 labels",
).superRefine((labels, ctx) => {
  const seen = new Set<string>();
  labels.forEach((label, i) => {
    if (seen.has(label)) {
      ctx.addIssue({ code: "custom", path: [i], message: `duplicate label "${label}"` });
    }
    seen.add(label);
  });
}).openapi({ uniqueItems: true, example: ["cat", "dog"] });

const AnnotationsPerImage = z.number().int().min(1).max(10).openapi({
  description: "How many different annotators label each image",
});
const ClaimTtl = z.number().int().min(30).max(86400).openapi({
  description: "Lease length, in seconds, of a claim on an image",
});
const ReviewRate = z.number().min(0).max(1).openapi({
  description: "The share of images that go to review when they get their " +
    "annotations_per_image-th human annotation: 0 none, 1 every one, 0.1 a tenth. Each image is " +
    "chosen by a hash of its id and the dataset's, so the same images are chosen every time. A " +
    "change applies to images completed after it",
  example: 0.1,
});

export const Access = z.enum(ACCESS).openapi("Access", {
  description: "Who may see the dataset besides admins: `members`, only its members (added by " +
    "an admin: addDatasetMember); `open`, every user. For anyone else the dataset and " +
    "everything in it answer 404, as if they did not exist.",
});

export const Dataset = z.object({
  id: Id,
  name: z.string(),
  description: z.string().nullable(),
  labels: z.array(z.string()),
  annotations_per_image: z.number().int(),
  claim_ttl_seconds: z.number().int(),
  access: Access,
  review_rate: z.number(),
  created_at: Timestamp,
}).openapi("Dataset");

export const DatasetSummary = Dataset.extend({ image_count: z.number().int() }).openapi(
  "DatasetSummary",
);

export const CreateDataset = z.strictObject({
  name: Name(200),
  description: Text(10_000).nullable().optional(),
  labels: Labels,
  annotations_per_image: AnnotationsPerImage.default(1),
  claim_ttl_seconds: ClaimTtl.default(900),
  access: Access.default("members"),
  review_rate: ReviewRate.default(0),
}).openapi("CreateDataset");

export const UpdateDataset = z.strictObject({
  description: Text(10_000).nullable().optional(),
  labels: Labels.optional().openapi({
    description: "The full new label list. Labels are append-only: the current list must " +
      "be its prefix, in the same order, with new labels after it. A label's position is its " +
      "COCO category id (position + 1) in exports, so ids never change.",
  }),
  annotations_per_image: AnnotationsPerImage.optional(),
  claim_ttl_seconds: ClaimTtl.optional(),
  access: Access.optional().openapi({
    description: "Turning a dataset to `members` ends the live claims of those who are not " +
      "members at once (their end reason is `revoked`).",
  }),
  review_rate: ReviewRate.optional(),
}).refine((b) => Object.keys(b).length > 0, "give at least one field to change").openapi(
  "UpdateDataset",
  { minProperties: 1 },
);

export const DatasetStats = z.object({
  images: z.number().int(),
  pending: z.number().int(),
  in_progress: z.number().int().openapi({
    description: "Images whose remaining slots are all under live claims",
  }),
  done: z.number().int().openapi({
    description: "Images with annotations_per_image human ones, not selected for review",
  }),
  in_review: z.number().int().openapi({ description: "Images waiting for a reviewer" }),
  accepted: z.number().int().openapi({ description: "Images a reviewer accepted or fixed" }),
  rejected: z.number().int().openapi({
    description: "Images a reviewer sent back that wait for their rework (counted in pending " +
      "or in_progress too)",
  }),
  human_annotations: z.number().int(),
  machine_annotations: z.number().int(),
  active_claims: z.number().int().openapi({ description: "Live (unexpired) claims" }),
  annotators: z.array(z.object({
    user_id: Id,
    annotations: z.number().int().openapi({
      description: "Human annotations (an amended one counts once)",
    }),
    accepted: z.number().int(),
    rejected: z.number().int(),
    acceptance_rate: z.number().nullable().openapi({
      description: "accepted / (accepted + rejected); null before any of theirs was reviewed",
    }),
  })).openapi({ description: "Per annotator, most annotations first" }),
  reviewers: z.array(z.object({
    user_id: Id,
    reviews: z.number().int(),
    accepted: z.number().int(),
    fixed: z.number().int(),
    rejected: z.number().int(),
  })).openapi({ description: "Completed reviews per reviewer, by decision, most first" }),
}).openapi("DatasetStats");

export const DatasetMember = z.object({
  user_id: Id,
  name: z.string(),
  role: RoleSchema,
  added_at: Timestamp,
}).openapi("DatasetMember");

export function datasetJson(d: q.Dataset): z.infer<typeof Dataset> {
  return {
    id: d.id,
    name: d.name,
    description: d.description,
    labels: d.labels,
    annotations_per_image: d.annotations_per_image,
    claim_ttl_seconds: d.claim_ttl_seconds,
    access: d.access,
    review_rate: d.review_rate,
    created_at: d.created_at.toISOString(),
  };
}

export function datasetMemberJson(m: q.DatasetMember): z.infer<typeof DatasetMember> {
  return {
    user_id: m.user_id,
    name: m.name,
    role: m.role,
    added_at: m.added_at.toISOString(),
  };
}
