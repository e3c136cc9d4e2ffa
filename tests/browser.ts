/**
 * Browser tests of the annotator's page: Debian's chromium driven by playwright-core, against the
 * real app served on a loopback port, with images as real PNG files under MEDIA_LOCAL_ROOT.
 * Without chromium the tests are reported as ignored, with a warning saying so (CI installs it).
 */
import { deflateSync } from "node:zlib";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { createTestApp, type TestApp, type TestUser } from "./harness.ts";

export const CHROMIUM = "/usr/bin/chromium";

export function chromiumInstalled(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

/** Debian's Chromium, headless, quiet (no updates, sync or background requests); `args` added. */
export function launchChromium(args: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...args,
    ],
  });
}

/** True when the browser tests cannot run; says so once, visibly. */
export function noBrowser(file: string): boolean {
  if (chromiumInstalled()) return false;
  console.warn(`WARNING: ${CHROMIUM} is missing: the browser tests in ${file} are IGNORED`);
  return true;
}

// ---- PNG -----------------------------------------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** An 8-bit RGB PNG of `width` x `height`, each pixel's colour from `pixel(x, y)`. */
export function png(
  width: number,
  height: number,
  pixel: (x: number, y: number) => [number, number, number],
): Uint8Array {
  const raw = new Uint8Array(height * (1 + width * 3));
  for (let y = 0, i = 0; y < height; y++) {
    raw[i++] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      raw[i++] = r;
      raw[i++] = g;
      raw[i++] = b;
    }
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB, deflate, no filter choice, no interlace
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", new Uint8Array(deflateSync(raw))),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

/** Where each scene's objects are, in its own pixels (a prediction boxes the ball). */
export interface Scene {
  width: number;
  height: number;
  ball: { cx: number; cy: number; r: number };
  crate: { x: number; y: number; w: number; h: number };
}

/** A picture worth labelling: sky, grass, a sun, a red ball and a wooden crate. */
export function scene(
  width: number,
  height: number,
  variant = 0,
): { png: Uint8Array; scene: Scene } {
  const s = width / 800;
  const ball = { cx: (180 + variant * 40) * s, cy: 330 * s, r: 70 * s };
  const crate = { x: (470 - variant * 30) * s, y: 230 * s, w: 180 * s, h: 160 * s };
  const sun = { cx: 680 * s, cy: 90 * s, r: 45 * s };
  const horizon = height * 0.62;
  const bytes = png(width, height, (x, y) => {
    if ((x - ball.cx) ** 2 + (y - ball.cy) ** 2 <= ball.r ** 2) {
      const shade = 1 - 0.5 * Math.hypot(x - ball.cx + ball.r / 3, y - ball.cy + ball.r / 3) /
          ball.r;
      return [Math.round(150 + 100 * shade), 30, 40];
    }
    if (x >= crate.x && x < crate.x + crate.w && y >= crate.y && y < crate.y + crate.h) {
      const plank = Math.floor((y - crate.y) / (crate.h / 5)) % 2;
      const edge = x - crate.x < 6 * s || crate.x + crate.w - x < 6 * s;
      return edge ? [90, 55, 20] : plank ? [170, 120, 60] : [150, 100, 45];
    }
    if ((x - sun.cx) ** 2 + (y - sun.cy) ** 2 <= sun.r ** 2) return [255, 215, 70];
    if (y < horizon) {
      const t = y / horizon;
      return [Math.round(110 + 80 * t), Math.round(170 + 50 * t), 235];
    }
    const t = (y - horizon) / (height - horizon);
    return [Math.round(70 - 30 * t), Math.round(150 - 50 * t), Math.round(60 - 20 * t)];
  });
  return { png: bytes, scene: { width, height, ball, crate } };
}

// ---- The page, served --------------------------------------------------------------------------

export interface Served {
  h: TestApp;
  /** http://127.0.0.1:<port> */
  base: string;
  /** MEDIA_LOCAL_ROOT, a temporary directory. */
  mediaRoot: string;
  browser: Browser;
  close(): Promise<void>;
}

/** The app on a loopback port with MEDIA_LOCAL_ROOT in a temporary directory, and a browser. */
export async function servePage(config: Record<string, string> = {}): Promise<Served> {
  const mediaRoot = await Deno.makeTempDir({ prefix: "annotator-media-" });
  const h = await createTestApp({ config: { MEDIA_LOCAL_ROOT: mediaRoot, ...config } });
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    h.app.fetch,
  );
  const browser = await launchChromium();
  return {
    h,
    base: `http://127.0.0.1:${server.addr.port}`,
    mediaRoot,
    browser,
    async close() {
      await browser.close();
      await server.shutdown();
      await h.close();
      await Deno.remove(mediaRoot, { recursive: true });
    },
  };
}

export interface TestImage {
  id: string;
  external_id: string;
  scene: Scene;
}

/**
 * A dataset (labels ball, crate, sun) with one image per entry of `images`, written as PNGs under
 * the media root; each image's prediction (when asked) boxes its ball, by model "detector" at
 * confidence 0.82.
 */
export async function makeDataset(
  s: Served,
  images: { external_id: string; width: number; height: number; priority?: number }[],
  opts: {
    claim_ttl_seconds?: number;
    predict?: boolean;
    name?: string;
    /** `open` (every user works in it) unless given. */
    access?: "open" | "members";
  } = {},
): Promise<{ id: string; name: string; images: TestImage[] }> {
  const name = opts.name ?? `scenes-${crypto.randomUUID().slice(0, 8)}`;
  const dataset = await s.h.req("POST", "/api/v1/datasets", {
    name,
    labels: ["ball", "crate", "sun"],
    claim_ttl_seconds: opts.claim_ttl_seconds ?? 900,
    access: opts.access ?? "open",
  });
  if (dataset.status !== 201) throw new Error(JSON.stringify(dataset.body));
  const made: TestImage[] = [];
  const register = [];
  for (const [i, image] of images.entries()) {
    const { png, scene: sc } = scene(image.width, image.height, i);
    const path = `${s.mediaRoot}/${dataset.body.id}-${image.external_id}.png`;
    await Deno.writeFile(path, png);
    register.push({
      uri: `file://${path}`,
      external_id: image.external_id,
      width: image.width,
      height: image.height,
      priority: image.priority ?? 0,
    });
    made.push({ id: "", external_id: image.external_id, scene: sc });
  }
  const res = await s.h.req("POST", `/api/v1/datasets/${dataset.body.id}/images`, {
    images: register,
  });
  if (res.status !== 201 && res.status !== 200) throw new Error(JSON.stringify(res.body));
  res.body.images.forEach((r: { id: string }, i: number) => made[i].id = r.id);
  if (opts.predict !== false) {
    const model = await s.h.user("machine");
    const predictions = made.map((m) => ({
      image_id: m.id,
      model: { name: "detector", version: "7" },
      confidence: 0.82,
      shapes: [{
        type: "bbox",
        label: "ball",
        x: Math.round(m.scene.ball.cx - m.scene.ball.r),
        y: Math.round(m.scene.ball.cy - m.scene.ball.r),
        width: Math.round(2 * m.scene.ball.r),
        height: Math.round(2 * m.scene.ball.r),
      }],
    }));
    const p = await model.req("POST", `/api/v1/datasets/${dataset.body.id}/predictions`, {
      predictions,
    });
    if (p.status !== 200) throw new Error(JSON.stringify(p.body));
  }
  return { id: dataset.body.id, name, images: made };
}

/** What went wrong in a page: uncaught errors, console errors (CSP refusals among them). */
export function watch(page: Page): { errors: string[] } {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  return { errors };
}

/** Opens the page, signs in with the user's key and picks the dataset. */
export async function signInAndPick(
  page: Page,
  base: string,
  user: TestUser,
  datasetName: string,
  opts: { stay?: boolean } = {},
): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByLabel("API key").fill(user.apiKey);
  if (opts.stay) await page.getByLabel(/Stay signed in/).check();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByLabel("Dataset").selectOption({ label: datasetName });
}

/**
 * A new browser context (1280x800 unless `viewport` says otherwise) whose page is signed in as
 * `user` on the dataset and shows image `first` (its alt text); `errors` collects what went wrong
 * in it (watch). The caller closes `context`.
 */
export async function openAnnotator(
  s: Served,
  user: TestUser,
  datasetName: string,
  first: string,
  opts: { viewport?: { width: number; height: number } } = {},
): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await s.browser.newContext({
    viewport: opts.viewport ?? { width: 1280, height: 800 },
  });
  const page = await context.newPage();
  const { errors } = watch(page);
  await signInAndPick(page, s.base, user, datasetName);
  await page.getByRole("img", { name: first, exact: true }).waitFor();
  return { context, page, errors };
}

/** The screen position (CSS pixels, whole ones, as a mouse sits) of image pixel (x, y). */
export async function screenPoint(
  page: Page,
  alt: string,
  natural: { width: number; height: number },
  x: number,
  y: number,
): Promise<{ sx: number; sy: number; ix: number; iy: number; scale: number }> {
  const box = await page.getByRole("img", { name: alt, exact: true }).boundingBox();
  if (!box) throw new Error(`no image ${alt}`);
  const scale = box.width / natural.width;
  const sx = Math.round(box.x + x * scale);
  const sy = Math.round(box.y + y * scale);
  // Where the mouse really is, in image pixels: what the page should submit.
  return { sx, sy, ix: (sx - box.x) / scale, iy: (sy - box.y) / scale, scale };
}
