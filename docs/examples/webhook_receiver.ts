/**
 * A webhook receiver: verifies each event's signature with the npm `standardwebhooks` package
 * and does its work once per `webhook-id` (delivery is at least once).
 * `WEBHOOK_SECRET=whsec_… deno run --allow-net --allow-env docs/examples/webhook_receiver.ts`
 * (tests/webhook_delivery_test.ts runs it against real deliveries).
 */
// A script of its own, run outside this project (no deno.json): the version is pinned here.
// deno-lint-ignore no-import-prefix
import { Webhook } from "npm:standardwebhooks@1.3.0";

const hook = new Webhook(Deno.env.get("WEBHOOK_SECRET")!);
const done = new Set<string>(); // keep the ids durably in a real receiver

Deno.serve({ port: Number(Deno.env.get("PORT") ?? 9000) }, async (req) => {
  const body = await req.text(); // the raw body: parsing it first breaks the signature
  try {
    hook.verify(body, Object.fromEntries(req.headers)); // refuses forgeries and replays
  } catch {
    return new Response("bad signature", { status: 401 });
  }
  const id = req.headers.get("webhook-id")!;
  if (!done.has(id)) {
    done.add(id);
    console.log(id, body); // the work: here, print the event
  }
  return new Response(null, { status: 204 });
});
