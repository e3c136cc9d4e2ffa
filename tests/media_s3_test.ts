/**
 * s3:// end to end against a real S3-compatible server on localhost (s3rver): objects uploaded
 * with the AWS SDK, registered as s3:// images, claimed, and fetched from `media.url` with plain
 * fetch and no header; getImageMedia's redirect followed the same way. s3rver serves bytes but
 * does not check presigned signatures: tests/media_signing_test.ts checks those against vectors.
 */
import assert from "node:assert/strict";
import S3rver from "s3rver";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { createTestApp } from "./harness.ts";

Deno.test("s3:// images: a claim's media.url fetches the object's bytes with no header", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3rver-" });
  const s3 = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: "pics" }],
  });
  const { port } = await s3.run();
  const endpoint = `http://127.0.0.1:${port}`;
  // s3rver's own keys.
  const keys = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" };
  const client = new S3Client({
    region: "us-east-1",
    endpoint,
    forcePathStyle: true,
    credentials: {
      accessKeyId: keys.AWS_ACCESS_KEY_ID,
      secretAccessKey: keys.AWS_SECRET_ACCESS_KEY,
    },
  });
  const objects = new Map<string, Uint8Array>();
  for (const key of ["pets/cat(1)=é.jpg", "pets/dog+2.png", "deep/a/b/c.webp"]) {
    const bytes = crypto.getRandomValues(new Uint8Array(1000 + objects.size * 777));
    objects.set(key, bytes);
    await client.send(new PutObjectCommand({ Bucket: "pics", Key: key, Body: bytes }));
  }
  client.destroy();

  const h = await createTestApp({
    config: {
      AWS_REGION: "us-east-1",
      AWS_ENDPOINT_URL_S3: endpoint,
      S3_FORCE_PATH_STYLE: "true",
      ...keys,
    },
  });
  try {
    const ds = await h.req("POST", "/api/v1/datasets", {
      name: "s3-e2e",
      labels: ["cat"],
      access: "open",
    });
    const keysInOrder = [...objects.keys()];
    const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
      images: keysInOrder.map((key, i) => ({
        uri: `s3://pics/${key}`,
        external_id: key,
        priority: keysInOrder.length - i,
      })),
    });
    assert.equal(reg.status, 200);

    const annotator = await h.user("annotator");
    for (const key of keysInOrder) {
      const claim = await annotator.req("POST", `/api/v1/datasets/${ds.body.id}/claims`);
      assert.equal(claim.status, 201, JSON.stringify(claim.body));
      assert.equal(claim.body.image.uri, `s3://pics/${key}`);
      const { url, expires_at } = claim.body.media;
      assert.ok(url.startsWith(`${endpoint}/pics/`), url);
      assert.ok(Date.parse(expires_at) > Date.parse(claim.body.claim.expires_at));
      const res = await fetch(url);
      assert.equal(res.status, 200, `${key}: ${await res.clone().text()}`);
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), objects.get(key), key);

      // getImageMedia: a redirect to a fresh presigned URL, followed by plain fetch.
      const redirect = await annotator.req("GET", `/api/v1/images/${claim.body.image.id}/media`);
      assert.equal(redirect.status, 302);
      const again = await fetch(redirect.headers.get("location")!);
      assert.deepEqual(new Uint8Array(await again.arrayBuffer()), objects.get(key));

      const release = await annotator.req("DELETE", `/api/v1/claims/${claim.body.claim.id}`);
      assert.equal(release.status, 204);
      // Out of the queue, so the next claim takes the next object.
      assert.equal((await h.req("DELETE", `/api/v1/images/${claim.body.image.id}`)).status, 204);
    }

    // A key that does not exist: a URL all the same (registration is not checked against the
    // store), which the store answers 404.
    const missing = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
      images: [{ uri: "s3://pics/none.jpg" }],
    });
    const claim = await annotator.req("POST", `/api/v1/datasets/${ds.body.id}/claims`);
    assert.equal(claim.body.image.id, missing.body.images[0].id);
    const res = await fetch(claim.body.media.url);
    assert.equal(res.status, 404);
    await res.body?.cancel();
  } finally {
    await h.close();
    await s3.close();
    await Deno.remove(dir, { recursive: true });
  }
});
