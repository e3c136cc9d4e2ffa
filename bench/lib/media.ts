/** --media (bench/main.ts, experiments/profile_server.ts): S3 presigning on in the server. */
import { call, createAnnotators, createDataset, expectStatus } from "../../testkit/api.ts";

/**
 * --media: S3 presigning on, with AWS's documented example keys (a presign is local work: no
 * request reaches AWS, and a real key would sign the same way).
 */
export const MEDIA_ENV = {
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
  AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};

/**
 * Checks that a claim answer carries a presigned URL for an s3:// image (the bench's images are
 * s3:// URIs, bench/lib/rows.ts), on a one-image dataset of its own: what it found, or throws.
 */
export async function probeMedia(base: string, admin: string): Promise<string> {
  const datasetId = await createDataset(base, admin, "bench-media-probe");
  expectStatus(
    await call(base, admin, "POST", `/api/v1/datasets/${datasetId}/images`, {
      images: [{ uri: "s3://bench-bucket/probe/1.jpg", external_id: "probe-1" }],
    }),
    200,
  );
  const [token] = await createAnnotators(base, admin, 1, "bench-media-probe");
  const claim = expectStatus(
    await call(base, token, "POST", `/api/v1/datasets/${datasetId}/claims`),
    201,
  );
  const url: string | undefined = claim.body.media?.url;
  if (!url?.includes("X-Amz-Signature=")) {
    throw new Error(
      `--media: the claim answer has no presigned URL: ${JSON.stringify(claim.body)}`,
    );
  }
  return `s3:// presigned in every claim answer (${new URL(url).host}, ` +
    `valid until ${claim.body.media.expires_at})`;
}
