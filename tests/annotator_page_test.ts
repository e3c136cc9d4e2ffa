/**
 * The annotator's page in a real browser, driven as a person would: by the labels and names on
 * its controls, the mouse on the image and the keyboard. What it submits is read back through the
 * API, in the image's own pixels.
 */
import assert from "node:assert/strict";
import {
  makeDataset,
  noBrowser,
  openAnnotator,
  screenPoint,
  servePage,
  signInAndPick,
  watch,
} from "./browser.ts";

const ignore = noBrowser("tests/annotator_page_test.ts");

interface Shape {
  type: string;
  label: string;
  x?: number;
  y?: number;
  width?: number;
  height?: number;
  points?: [number, number][];
}

const near = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= 2, `${what}: ${actual}, expected ${expected} ± 2`);

Deno.test({
  name: "a box drawn with the mouse on a scaled image is submitted in image pixels",
  ignore,
  async fn() {
    const s = await servePage();
    try {
      const ds = await makeDataset(s, [{ external_id: "scene-1", width: 1600, height: 1000 }], {
        name: "Backyard",
      });
      const [image] = ds.images;
      const annotator = await s.h.user("annotator", "alice");
      const context = await s.browser.newContext({ viewport: { width: 1280, height: 800 } });
      const external: string[] = [];
      await context.route("**/*", (route) => {
        const url = new URL(route.request().url());
        if (url.hostname === "127.0.0.1") return route.continue();
        external.push(url.href);
        return route.abort();
      });
      const page = await context.newPage();
      const { errors } = watch(page);

      const res = await page.goto(`${s.base}/`);
      assert.equal(res?.status(), 200);
      assert.match(res!.headers()["content-security-policy"], /script-src 'self'/);
      assert.equal(res!.headers()["x-frame-options"], "DENY");
      await signInAndPick(page, s.base, annotator, ds.name);

      const img = page.getByRole("img", { name: "scene-1", exact: true });
      await img.waitFor();
      // The prediction is drawn, as a shape with its model and confidence visible.
      await page.locator(".a9s-annotationlayer .a9s-annotation[data-id]").first().waitFor();
      await page.locator(".tags text", { hasText: "ball · detector 0.82" }).waitFor();
      await page.getByRole("button", { name: "Box: ball · detector 0.82" }).waitFor();

      const from = await screenPoint(page, "scene-1", image.scene, 930, 450);
      const to = await screenPoint(page, "scene-1", image.scene, 1330, 800);
      assert.ok(Math.abs(from.scale - 1) > 0.2, `displayed at scale ${from.scale}`);
      await page.mouse.move(from.sx, from.sy);
      await page.mouse.down();
      await page.mouse.move(to.sx, to.sy, { steps: 12 });
      await page.mouse.up();
      await page.keyboard.press("2");
      await page.getByRole("button", { name: "Box: crate" }).waitFor();

      await Deno.mkdir(".data", { recursive: true });
      await page.screenshot({ path: ".data/annotator.png" });

      await page.keyboard.press("Control+Enter");
      await page.getByRole("heading", { name: "All done" }).waitFor();
      await page.getByText(/1 image: 1 done, 0 in progress, 0 pending/).waitFor();

      const list = await s.h.req("GET", `/api/v1/images/${image.id}/annotations?source=human`);
      assert.equal(list.status, 200);
      assert.equal(list.body.items.length, 1);
      const annotation = list.body.items[0];
      assert.equal(annotation.source, "human");
      assert.equal(annotation.author_id, annotator.id);
      const shapes = annotation.shapes as Shape[];
      assert.equal(shapes.length, 2, JSON.stringify(shapes));
      const drawn = shapes.find((sh) => sh.label === "crate")!;
      assert.equal(drawn.type, "bbox");
      near(drawn.x!, from.ix, "x");
      near(drawn.y!, from.iy, "y");
      near(drawn.width!, to.ix - from.ix, "width");
      near(drawn.height!, to.iy - from.iy, "height");
      // The prediction, accepted as it was.
      const ball = image.scene.ball;
      const predicted = shapes.find((sh) => sh.label === "ball")!;
      assert.deepEqual(predicted, {
        type: "bbox",
        label: "ball",
        x: Math.round(ball.cx - ball.r),
        y: Math.round(ball.cy - ball.r),
        width: Math.round(2 * ball.r),
        height: Math.round(2 * ball.r),
      });

      // The token is in sessionStorage, never localStorage.
      const stored = await page.evaluate(`[sessionStorage.length, localStorage.length]`);
      assert.deepEqual(stored, [2, 0]);
      assert.deepEqual(external, []);
      assert.deepEqual(errors, []);
      await context.close();
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "a polygon, a point and an image label, undo and delete, submitted in image pixels",
  ignore,
  async fn() {
    const s = await servePage();
    try {
      // Smaller than the screen: shown enlarged.
      const ds = await makeDataset(s, [{ external_id: "small", width: 400, height: 250 }], {
        predict: false,
      });
      const [image] = ds.images;
      const annotator = await s.h.user("annotator");
      const { context, page, errors } = await openAnnotator(s, annotator, ds.name, "small", {
        viewport: { width: 1920, height: 1080 },
      });
      const at = (x: number, y: number) => screenPoint(page, "small", image.scene, x, y);

      // A polygon round the crate: three clicks and Enter.
      await page.keyboard.press("p");
      assert.equal(
        await page.getByRole("button", { name: "Polygon" }).getAttribute("aria-pressed"),
        "true",
      );
      const { x, y, w, h } = image.scene.crate;
      const corners = [await at(x, y), await at(x + w, y), await at(x + w / 2, y + h)];
      assert.ok(corners[0].scale > 1.5, `displayed at scale ${corners[0].scale}`);
      for (const c of corners) await page.mouse.click(c.sx, c.sy);
      await page.keyboard.press("Enter");
      await page.keyboard.press("2");
      await page.getByRole("button", { name: "Polygon: crate" }).waitFor();

      // A second polygon, closed by clicking its first point, then undone.
      const other = [await at(20, 20), await at(80, 20), await at(50, 60)];
      for (const c of [...other, other[0]]) await page.mouse.click(c.sx, c.sy);
      assert.equal(await page.getByRole("button", { name: /^Polygon:/ }).count(), 2);
      await page.keyboard.press("Control+z");
      assert.equal(await page.getByRole("button", { name: /^Polygon:/ }).count(), 1);

      // A point on the ball's centre, labelled ball; another one, deleted.
      const { cx, cy } = image.scene.ball;
      await page.keyboard.press("o");
      const centre = await at(cx, cy);
      await page.mouse.click(centre.sx, centre.sy);
      await page.keyboard.press("1");
      await page.getByRole("button", { name: "Point: ball" }).waitFor();
      const stray = await at(350, 30);
      await page.mouse.click(stray.sx, stray.sy);
      assert.equal(await page.getByRole("button", { name: /^Point:/ }).count(), 2);
      await page.keyboard.press("Delete");
      assert.equal(await page.getByRole("button", { name: /^Point:/ }).count(), 1);

      // With nothing selected, a label key is the whole image's label.
      await page.keyboard.press("Escape");
      await page.keyboard.press("3");
      assert.equal(
        await page.getByRole("button", { name: "sun", exact: true }).getAttribute("aria-pressed"),
        "true",
      );

      await page.getByRole("button", { name: "Submit" }).click();
      await page.getByRole("heading", { name: "All done" }).waitFor();

      const list = await s.h.req("GET", `/api/v1/images/${image.id}/annotations?source=human`);
      const [annotation] = list.body.items;
      assert.deepEqual(annotation.labels, ["sun"]);
      const shapes = annotation.shapes as Shape[];
      assert.deepEqual(shapes.map((sh) => `${sh.type}:${sh.label}`).sort(), [
        "point:ball",
        "polygon:crate",
      ]);
      const poly = shapes.find((sh) => sh.type === "polygon")!;
      assert.equal(poly.points!.length, 3);
      poly.points!.forEach(([px, py], i) => {
        near(px, corners[i].ix, `polygon point ${i} x`);
        near(py, corners[i].iy, `polygon point ${i} y`);
      });
      const point = shapes.find((sh) => sh.type === "point")!;
      near(point.x!, centre.ix, "point x");
      near(point.y!, centre.iy, "point y");
      assert.deepEqual(errors, []);
      await context.close();
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "Skip gives the image back: claimable by others, never offered to the skipper again",
  ignore,
  async fn() {
    const s = await servePage();
    try {
      const ds = await makeDataset(s, [
        { external_id: "first", width: 800, height: 500, priority: 1 },
        { external_id: "second", width: 800, height: 500 },
      ], { predict: false });
      const [first, second] = ds.images;
      const annotator = await s.h.user("annotator");
      const other = await s.h.user("annotator");
      const { context, page, errors } = await openAnnotator(s, annotator, ds.name, "first");

      await page.keyboard.press("s");
      await page.getByRole("img", { name: "second", exact: true }).waitFor();
      // Someone else gets the skipped image (the highest priority), and gives it back.
      const claimed = await other.req("POST", `/api/v1/datasets/${ds.id}/claims`);
      assert.equal(claimed.status, 201);
      assert.equal(claimed.body.image.id, first.id);
      assert.equal(
        (await other.req("DELETE", `/api/v1/claims/${claimed.body.claim.id}`)).status,
        204,
      );

      // The skipper submits the second image empty, after saying so; the first is claimable
      // but not for them: all done.
      await page.getByRole("button", { name: "Submit" }).click();
      await page.getByRole("dialog", { name: "Nothing marked" }).waitFor();
      await page.getByRole("button", { name: "Submit as empty" }).click();
      await page.getByRole("heading", { name: "All done" }).waitFor();
      await page.getByText(/2 images: 1 done, 0 in progress, 1 pending/).waitFor();
      const list = await s.h.req("GET", `/api/v1/images/${second.id}/annotations?source=human`);
      assert.equal(list.body.items.length, 1);
      // Checking again gives nothing either, while the other annotator still may.
      await page.getByRole("button", { name: "Check again" }).click();
      await page.getByRole("heading", { name: "All done" }).waitFor();
      const again = await other.req("POST", `/api/v1/datasets/${ds.id}/claims`);
      assert.equal(again.body.image.id, first.id);
      assert.deepEqual(errors, []);
      await context.close();
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "a server out of reach is said in words, and Try again claims once it is back",
  ignore,
  async fn() {
    const s = await servePage();
    try {
      const ds = await makeDataset(s, [{ external_id: "back", width: 800, height: 500 }]);
      const annotator = await s.h.user("annotator");
      const context = await s.browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      const { errors } = watch(page);
      // The claim cannot reach the server (the connection fails, as when it is down).
      await page.route("**/api/v1/datasets/*/claims", (route) => route.abort("connectionrefused"));
      await signInAndPick(page, s.base, annotator, ds.name);
      const alert = page.getByRole("alert").filter({ hasText: "could not be reached" });
      await alert.waitFor();
      await page.unroute("**/api/v1/datasets/*/claims");
      await page.getByRole("button", { name: "Try again" }).click();
      await page.getByRole("img", { name: "back", exact: true }).waitFor();
      assert.equal(await alert.isVisible(), false);
      assert.deepEqual(errors.filter((e) => !e.includes("ERR_CONNECTION_REFUSED")), []);
      await context.close();
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "the Dataset list holds the datasets the person may open, and no other team's",
  ignore,
  async fn() {
    const s = await servePage();
    try {
      const annotator = await s.h.user("annotator");
      const ours = await makeDataset(s, [{ external_id: "ours", width: 400, height: 250 }], {
        access: "members",
        predict: false,
      });
      const open = await makeDataset(s, [{ external_id: "open", width: 400, height: 250 }], {
        predict: false,
      });
      const theirs = await makeDataset(s, [{ external_id: "theirs", width: 400, height: 250 }], {
        access: "members",
        predict: false,
      });
      const added = await s.h.req("PUT", `/api/v1/datasets/${ours.id}/members/${annotator.id}`);
      assert.equal(added.status, 204);
      const { context, page, errors } = await openAnnotator(s, annotator, ours.name, "ours");
      const names = await page.getByLabel("Dataset").locator("option").allTextContents();
      assert.deepEqual(names.filter((n) => !n.endsWith("…")).sort(), [ours.name, open.name].sort());
      assert.ok(!names.includes(theirs.name));
      assert.deepEqual(errors, []);
      await context.close();
    } finally {
      await s.close();
    }
  },
});
