/**
 * What `media` adds to a claim: µs of CPU per URL for each scheme, as the claim path makes them
 * (lib/media `link`, static keys: no network), and the SDK's `getSignedUrl` for comparison.
 *
 *   deno run -A bench/experiments/media_signing.ts [--n 20000]
 */
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { createMedia, type Media } from "../../lib/media/index.ts";
import { parseConfig } from "../../lib/runtime/config.ts";
import { flag } from "../lib/args.ts";

const n = flag("--n", 20_000);
const keys = { AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE", AWS_SECRET_ACCESS_KEY: "x".repeat(40) };
const root = await Deno.makeTempDir();
const config = parseConfig({
  APP_ENV: "test",
  DATABASE_URL: "postgres://unused/unused",
  AUTH_JWT_SECRET: "bench-secret-bench-secret-bench-secret-0123",
  AWS_REGION: "eu-west-1",
  GCS_HMAC_ACCESS_KEY_ID: "GOOGBENCH",
  GCS_HMAC_SECRET: "y".repeat(40),
  MEDIA_LOCAL_ROOT: root,
  ...keys,
});
const media: Media = createMedia(config);
const until = () => new Date(Date.now() + 900_000);

/** µs per call over `n` calls, after n/10 warm-up calls; the best of three rounds. */
async function measure(name: string, fn: (i: number) => unknown): Promise<void> {
  for (let i = 0; i < n / 10; i++) await fn(i);
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    for (let i = 0; i < n; i++) await fn(i);
    best = Math.min(best, ((performance.now() - start) * 1000) / n);
  }
  console.log(`${name.padEnd(44)} ${best.toFixed(1).padStart(7)} µs per URL`);
}

const path = (i: number) => `bench/frames/${String(i).padStart(8, "0")}.jpg`;
await measure(
  "s3:// presigned (lib/media, per claim)",
  (i) => media.link(`s3://bench-bucket/${path(i)}`, until(), "http://x"),
);
await measure(
  "gs:// signed (lib/media)",
  (i) => media.link(`gs://bench-bucket/${path(i)}`, until(), "http://x"),
);
await measure(
  "file:// URL token (lib/media)",
  (i) => media.link(`file://${root}/${path(i)}`, until(), "http://x"),
);
await measure(
  "https:// as is (lib/media)",
  (i) => media.link(`https://cdn.example.com/${path(i)}`, until(), "http://x"),
);
const client = new S3Client({
  region: "eu-west-1",
  credentials: { accessKeyId: keys.AWS_ACCESS_KEY_ID, secretAccessKey: keys.AWS_SECRET_ACCESS_KEY },
});
await measure(
  "s3:// with the SDK's getSignedUrl (not used)",
  (i) =>
    getSignedUrl(client, new GetObjectCommand({ Bucket: "bench-bucket", Key: path(i) }), {
      expiresIn: 900,
    }),
);
await Deno.remove(root);
