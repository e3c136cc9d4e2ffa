/**
 * The annotator's page over time: the lease kept alive while the page is open, a lease lost
 * anyway, a token that stops working mid-image, and the token renewed for a person who asked to
 * stay signed in. A real browser against the real app (tests/browser.ts).
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { rawOne, setClaimExpiry, type TestApp } from "./harness.ts";
import {
  makeDataset,
  noBrowser,
  openAnnotator,
  screenPoint,
  servePage,
  signInAndPick,
} from "./browser.ts";

const ignore = noBrowser("tests/annotator_lease_test.ts");

/** The user's active claim, as the database holds it. */
function activeClaim(h: TestApp, userId: string) {
  return rawOne<{ claim_id: string; image_id: string; expires_at: Date }>(
    h.db,
    `SELECT claim_id::text, image_id::text, expires_at FROM current_claims
     WHERE user_id = $1 AND active`,
    [userId],
  );
}

/** Drags a box from image pixel (x1, y1) to (x2, y2). */
async function drawBox(
  page: Page,
  alt: string,
  natural: { width: number; height: number },
  [x1, y1, x2, y2]: number[],
) {
  const from = await screenPoint(page, alt, natural, x1, y1);
  const to = await screenPoint(page, alt, natural, x2, y2);
  await page.mouse.move(from.sx, from.sy);
  await page.mouse.down();
  await page.mouse.move(to.sx, to.sy, { steps: 8 });
  await page.mouse.up();
}

Deno.test({
  name: "the lease is renewed at half its TTL while the page stays open",
  ignore,
  async fn() {
    const s = await servePage();
    try {
      // 30 s, the shortest lease a dataset may have: renewed after about 15 s.
      const ds = await makeDataset(s, [{ external_id: "kept", width: 800, height: 500 }], {
        claim_ttl_seconds: 30,
      });
      const annotator = await s.h.user("annotator");
      const { context, page, errors } = await openAnnotator(s, annotator, ds.name, "kept");
      const before = await activeClaim(s.h, annotator.id);
      assert.ok(before);
      const claimedAt = Date.now();

      const renewed = await page.waitForResponse((r) => r.url().endsWith("/renew"), {
        timeout: 25_000,
      });
      const waited = Date.now() - claimedAt;
      assert.equal(renewed.status(), 200);
      assert.ok(waited > 12_000 && waited < 20_000, `renewed after ${waited} ms`);
      const after = await activeClaim(s.h, annotator.id);
      assert.equal(after?.claim_id, before.claim_id);
      assert.ok(
        after!.expires_at.getTime() - before.expires_at.getTime() > 10_000,
        `the lease moved from ${before.expires_at.toISOString()} to ${
          after!.expires_at.toISOString()
        }`,
      );
      assert.deepEqual(errors, []);
      await context.close();
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "a lease lost meanwhile is said in words, with an offer to claim again",
  ignore,
  async fn() {
    const s = await servePage();
    try {
      const ds = await makeDataset(s, [
        { external_id: "lost", width: 800, height: 500, priority: 1 },
        { external_id: "next", width: 800, height: 500 },
      ]);
      const [lost] = ds.images;
      const annotator = await s.h.user("annotator");
      const other = await s.h.user("annotator");
      const { context, page, errors } = await openAnnotator(s, annotator, ds.name, "lost");
      await drawBox(page, "lost", lost.scene, [400, 200, 600, 400]);

      // The lease runs out while the person works, and someone else takes the image.
      const claim = await activeClaim(s.h, annotator.id);
      assert.equal(await setClaimExpiry(s.h.db, claim!.claim_id, -60_000), 1);
      const taken = await other.req("POST", `/api/v1/datasets/${ds.id}/claims`);
      assert.equal(taken.body.image.id, lost.id);

      await page.keyboard.press("Control+Enter");
      const alert = page.getByRole("alert").filter({ hasText: "Lease lost" });
      await alert.waitFor();
      assert.match(await alert.innerText(), /lease on this image ran out.*could not be saved/s);
      // Nothing stale stays: no image, no shapes.
      assert.equal(await page.getByRole("img", { name: "lost", exact: true }).count(), 0);
      assert.equal(await page.locator("#shapes li").count(), 0);

      await page.getByRole("button", { name: "Claim again" }).click();
      await page.getByRole("img", { name: "next", exact: true }).waitFor();
      assert.equal(await alert.isVisible(), false);
      const list = await s.h.req("GET", `/api/v1/images/${lost.id}/annotations?source=human`);
      assert.deepEqual(list.body.items, []);
      assert.deepEqual(
        errors.filter((e) => !e.includes("status of 409")),
        [],
        "only the refused submit failed",
      );
      await context.close();
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "a 401 brings the sign-in back, keeps the shapes, and the submit then goes through",
  ignore,
  async fn() {
    const s = await servePage();
    try {
      const ds = await makeDataset(s, [{ external_id: "kept", width: 800, height: 500 }], {
        predict: false,
      });
      const [image] = ds.images;
      const annotator = await s.h.user("annotator");
      const { context, page, errors } = await openAnnotator(s, annotator, ds.name, "kept");
      await drawBox(page, "kept", image.scene, [100, 100, 300, 250]);
      await page.getByRole("button", { name: "Box: ball" }).waitFor();

      // The token stops working (as an expired or revoked one does).
      await page.evaluate(
        `sessionStorage.setItem("annotator.token", JSON.stringify({ token: "expired", expiresAt: Date.now() + 3600000 }))`,
      );
      await page.getByRole("button", { name: "Submit" }).click();
      const dialog = page.getByRole("dialog", { name: "Sign in" });
      await dialog.waitFor();
      assert.match(await dialog.innerText(), /what you drew is kept/);
      assert.equal(await page.locator("#shapes li").count(), 1);

      await page.getByLabel("API key").fill(annotator.apiKey);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "All done" }).waitFor();
      const list = await s.h.req("GET", `/api/v1/images/${image.id}/annotations?source=human`);
      assert.equal(list.body.items.length, 1);
      assert.equal(list.body.items[0].shapes[0].type, "bbox");
      assert.deepEqual(
        errors.filter((e) => !e.includes("status of 401")),
        [],
        "only the refused token failed",
      );
      await context.close();
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "the key is exchanged again before the token expires only for 'stay signed in'",
  ignore,
  async fn() {
    const s = await servePage({ AUTH_TOKEN_TTL_SECONDS: "600" });
    try {
      const ds = await makeDataset(s, [{ external_id: "a", width: 800, height: 500 }]);
      const annotator = await s.h.user("annotator");
      for (const stay of [true, false]) {
        const context = await s.browser.newContext({ viewport: { width: 1280, height: 800 } });
        const page = await context.newPage();
        // The page's timers on a clock the test moves (the server's clock is not moved).
        await page.clock.install();
        const exchanges: number[] = [];
        page.on("response", (r) => {
          if (r.url().endsWith("/api/v1/auth/token")) exchanges.push(r.status());
        });
        await signInAndPick(page, s.base, annotator, ds.name, { stay });
        await page.getByRole("img", { name: "a", exact: true }).waitFor();
        assert.deepEqual(exchanges, [200]);
        // 80% of the token's 600 s, and more.
        await page.clock.runFor(500_000);
        if (stay) {
          const deadline = Date.now() + 10_000;
          while (exchanges.length < 2 && Date.now() < deadline) await page.waitForTimeout(50);
          assert.deepEqual(exchanges, [200, 200]);
        } else {
          await page.waitForTimeout(500);
          assert.deepEqual(exchanges, [200], "no key kept, none exchanged");
        }
        await context.close();
      }
    } finally {
      await s.close();
    }
  },
});
