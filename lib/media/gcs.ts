/**
 * gs://bucket/key: a V4-signed GET against Cloud Storage's XML API with an HMAC key
 * (GCS_HMAC_ACCESS_KEY_ID, GCS_HMAC_SECRET). Cloud Storage accepts the AWS4-HMAC-SHA256 algorithm
 * with HMAC keys for interoperability with S3 tools, so the URL is made by the same SDK presigner
 * as s3:// (lib/media/s3.ts): path-style on storage.googleapis.com, region `auto`, service `s3`.
 * Google publishes no test vector for HMAC-signed URLs (its worked example is GOOG4-RSA-SHA256
 * with a service account's RSA key), so the signature is checked against AWS's published vector,
 * which is the same algorithm (tests/media_signing_test.ts).
 */
import { GCS_XML_API } from "./index.ts";
import { ObjectSigner } from "./s3.ts";

export function createGcsSigner(
  keys: { accessKeyId: string; secret: string },
  now?: () => number,
): ObjectSigner {
  const credentials = { accessKeyId: keys.accessKeyId, secretAccessKey: keys.secret };
  return new ObjectSigner({
    scheme: "gs",
    region: "auto",
    endpoint: GCS_XML_API,
    forcePathStyle: true,
    credentials: () => Promise.resolve(credentials),
    now,
  });
}
