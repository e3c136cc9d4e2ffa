/**
 * What a request that matches no operation gets: 405 with `Allow` for a known path and another
 * method, 404 for an unknown path; both before any authentication, in the one error shape.
 */
import assert from "node:assert/strict";
import { assertError, withApp } from "./harness.ts";

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

// A known path with a method it does not answer is 405 with Allow, before authentication.

withApp("405: PUT /api/v1/me without credentials", async (h) => {
  const res = await h.anon("PUT", "/api/v1/me", { name: "x" });
  assertError(res, 405, "method_not_allowed");
  assert.equal(res.headers.get("allow"), "GET, HEAD");
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  assert.match(res.body.error.message, /PUT is not allowed on \/api\/v1\/me/);
  assert.equal(res.headers.get("www-authenticate"), null, "no authentication was asked");
});

withApp("405: a path with parameters, whatever their values", async (h) => {
  const res = await h.anon("DELETE", "/api/v1/datasets/not-an-id");
  assertError(res, 405, "method_not_allowed");
  assert.equal(res.headers.get("allow"), "GET, HEAD, PATCH");
  const many = await h.anon("OPTIONS", "/api/v1/datasets/1/images");
  assertError(many, 405, "method_not_allowed");
  assert.equal(many.headers.get("allow"), "GET, HEAD, POST");
});

withApp("405: every path of the document, with each method it does not declare", async (h) => {
  const spec = (await h.anon("GET", "/api/openapi.json")).body;
  for (const [template, item] of Object.entries(spec.paths as Record<string, object>)) {
    const declared = Object.keys(item).map((m) => m.toUpperCase());
    if (declared.includes("GET")) declared.push("HEAD");
    const allow = METHODS.filter((m) => declared.includes(m)).join(", ");
    const path = template.replace(/\{\w+\}/g, "1");
    for (const method of METHODS.filter((m) => !declared.includes(m))) {
      const res = await h.anon(method, path);
      // A HEAD answer has no body.
      if (method === "HEAD") assert.equal(res.status, 405, `${method} ${path}`);
      else assertError(res, 405, "method_not_allowed");
      assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
    }
  }
});

withApp("405: HEAD is answered wherever GET is (and is authenticated like it)", async (h) => {
  assert.equal((await h.anon("HEAD", "/healthz")).status, 200);
  assert.equal((await h.anon("HEAD", "/api/v1/me")).status, 401);
  assert.equal((await h.req("HEAD", "/api/v1/me")).status, 200);
});

withApp("an unknown path is 404 in the error shape, before authentication", async (h) => {
  for (
    const path of [
      "/api/v1/nope",
      "/api/v1/me/",
      "/api/v1/datasets/1/nope",
      "/nope",
      "/api/spec-assets/nope.js",
    ]
  ) {
    const res = await h.anon("GET", path);
    assertError(res, 404, "not_found");
    assert.equal(res.headers.get("allow"), null, path);
  }
  assertError(await h.anon("POST", "/api/v1/nope", {}), 404, "not_found");
});
