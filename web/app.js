/**
 * The annotator's page: sign in with an API key, pick a dataset, and label its images one after
 * the other. One claim at a time: the next image is claimed by the submit itself
 * (createAnnotation with `next`), never ahead of it. The lease is renewed at half its remaining
 * time while the page is open; a lease lost anyway is said in words, with an offer to claim again.
 */
import { ApiError, createApi, session } from "./api.js";
import { createEditor, tagText } from "./editor.js";

const $ = (id) => document.getElementById(id);
const DATASET_KEY = "annotator.dataset";
const TOOLS = { b: "box", p: "polygon", o: "point" };

const el = {
  signIn: $("sign-in"),
  signInForm: $("sign-in-form"),
  signInReason: $("sign-in-reason"),
  signInError: $("sign-in-error"),
  apiKey: $("api-key"),
  stay: $("stay-signed-in"),
  who: $("who"),
  signOut: $("sign-out"),
  dataset: $("dataset"),
  progress: $("progress"),
  stage: $("stage"),
  canvas: $("canvas"),
  placeholder: $("placeholder"),
  done: $("done"),
  doneStats: $("done-stats"),
  checkAgain: $("check-again"),
  lost: $("lost"),
  lostText: $("lost-text"),
  claimAgain: $("claim-again"),
  tools: [...document.querySelectorAll("[data-tool]")],
  labels: $("labels"),
  labelsHint: $("labels-hint"),
  shapes: $("shapes"),
  submit: $("submit"),
  skip: $("skip"),
  lease: $("lease"),
  status: $("status"),
  alert: $("alert"),
  retry: $("retry"),
  confirmEmpty: $("confirm-empty"),
};

const state = {
  /** Datasets by id. */
  datasets: new Map(),
  /** The dataset being worked on. */
  dataset: null,
  /** The ClaimedImage on screen (null when none). */
  claimed: null,
  editor: null,
  /** A claim, submit or skip in flight: the keys that start another wait. */
  busy: false,
  submitted: 0,
  renewTimer: 0,
  tokenTimer: 0,
  /** Kept in memory (never stored) only when the person asked to stay signed in. */
  apiKey: null,
  /** Waiting for the sign-in dialog. */
  signInWaiters: [],
};

const api = createApi({
  onUnauthorized: () =>
    signIn("Your session has ended. Sign in again to carry on: what you drew is kept."),
});

// ---- Messages -----------------------------------------------------------------------------

function say(text) {
  el.status.textContent = text;
}

/** Shows a problem in words; `retry`, when given, is offered as a "Try again" button. */
function warn(text, retry = null) {
  el.alert.textContent = text;
  el.alert.hidden = !text;
  el.retry.hidden = !retry;
  el.retry.onclick = retry && (() => {
    warn("");
    retry();
  });
}

function describeError(e) {
  if (e instanceof ApiError && e.code === "forbidden") {
    return "Your user may not do this: annotating needs an annotator's (or an admin's) API key.";
  }
  return e instanceof ApiError ? e.message : String(e?.message ?? e);
}

// ---- Signing in ----------------------------------------------------------------------------

/** Shows the sign-in dialog (over whatever is on screen) and resolves once signed in. */
function signIn(reason = "") {
  clearTimeout(state.tokenTimer);
  el.signInReason.textContent = reason;
  el.signInReason.hidden = !reason;
  el.signInError.textContent = "";
  if (!el.signIn.open) el.signIn.showModal();
  el.apiKey.focus();
  return new Promise((resolve) => state.signInWaiters.push(resolve));
}

el.signIn.addEventListener("cancel", (e) => e.preventDefault());

el.signInForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = el.apiKey.value.trim();
  if (!key) {
    el.signInError.textContent = "Enter your API key.";
    return;
  }
  el.signInError.textContent = "";
  try {
    await exchange(key);
  } catch (err) {
    el.signInError.textContent = err instanceof ApiError && err.status === 401
      ? "That API key was not accepted: check it, or ask an admin for a new one."
      : describeError(err);
    return;
  }
  state.apiKey = el.stay.checked ? key : null;
  el.apiKey.value = "";
  el.signIn.close();
  for (const resolve of state.signInWaiters.splice(0)) resolve();
});

/** Exchanges the key for a token and, with "stay signed in", plans the next exchange. */
async function exchange(key) {
  const token = await api.createToken(key);
  session.set(token.access_token, token.expires_in);
  planTokenRenewal(token.expires_in * 1000);
}

/** Exchanges the kept key again at 80% of the token's life (only with "stay signed in"). */
function planTokenRenewal(lifeMs) {
  clearTimeout(state.tokenTimer);
  state.tokenTimer = setTimeout(async () => {
    if (!state.apiKey) return;
    try {
      await exchange(state.apiKey);
    } catch {
      // A refused key (rotated, disabled) or an outage: the next request's 401 asks the person.
    }
  }, Math.max(5_000, lifeMs * 0.8));
}

el.signOut.addEventListener("click", async () => {
  stopRenewal();
  if (state.claimed) {
    await api.release(state.claimed.claim.id).catch(() => {});
  }
  session.clear();
  sessionStorage.removeItem(DATASET_KEY);
  location.reload();
});

// ---- Datasets ------------------------------------------------------------------------------

async function loadDatasets() {
  const items = await api.datasets();
  state.datasets = new Map(items.map((d) => [d.id, d]));
  const options = [new Option(items.length ? "Choose a dataset…" : "No datasets yet", "")];
  for (const d of items) options.push(new Option(d.name, d.id));
  el.dataset.replaceChildren(...options);
  el.dataset.disabled = false;
}

el.dataset.addEventListener("change", () => chooseDataset(el.dataset.value));

async function chooseDataset(id) {
  const dataset = state.datasets.get(id);
  if (state.claimed && state.claimed.claim.dataset_id !== id) {
    // Switching datasets gives the image back at once rather than letting its lease run out.
    stopRenewal();
    await api.release(state.claimed.claim.id).catch(() => {});
    clearImage();
  }
  state.dataset = dataset ?? null;
  if (!dataset) {
    sessionStorage.removeItem(DATASET_KEY);
    return;
  }
  sessionStorage.setItem(DATASET_KEY, id);
  renderLabelButtons();
  refreshProgress();
  await claimNext();
}

async function refreshProgress() {
  if (!state.dataset) return;
  try {
    const s = await api.stats(state.dataset.id);
    el.progress.textContent = `${s.done} of ${s.images} images done, ${s.pending} to do` +
      (state.submitted ? ` · ${state.submitted} by you in this session` : "");
    return s;
  } catch {
    return null;
  }
}

// ---- Claiming and showing images ---------------------------------------------------------------

async function claimNext() {
  if (!state.dataset) return;
  await work("Claiming the next image…", async () => {
    const claimed = await api.claim(state.dataset.id);
    if (claimed) await show(claimed);
    else await allDone();
  }, claimNext);
}

/**
 * Runs one step that waits on the server, while the keys and buttons that would start another
 * wait; a failure is said in words, with `retry` offered when given.
 */
async function work(text, fn, retry = null) {
  if (state.busy) return;
  state.busy = true;
  renderPanel();
  say(text);
  try {
    await fn();
    say("");
  } catch (e) {
    say("");
    // Only an outage is worth the same request again; a refusal needs a change first.
    const outage = !(e instanceof ApiError) || e.status === 0 || e.status >= 500;
    if (!handleClaimError(e)) warn(describeError(e), outage ? retry : null);
  } finally {
    state.busy = false;
    renderPanel();
  }
}

function clearImage() {
  stopRenewal();
  state.editor?.destroy();
  state.editor = null;
  state.claimed = null;
  el.canvas.replaceChildren();
  el.lease.textContent = "";
  renderPanel();
}

async function show(claimed) {
  clearImage();
  warn("");
  el.done.hidden = true;
  el.lost.hidden = true;
  el.placeholder.hidden = true;
  state.claimed = claimed;
  planRenewal(claimed.claim.expires_at);
  if (!claimed.media) {
    warn(`This image cannot be shown: ${claimed.media_unavailable}. Skip it with S.`);
    renderPanel();
    return;
  }
  const img = new Image();
  img.alt = claimed.image.external_id ?? claimed.image.id;
  img.src = claimed.media.url;
  img.draggable = false;
  try {
    await img.decode();
  } catch {
    warn("The image could not be loaded. Skip it with S, or reload the page to try again.");
    renderPanel();
    return;
  }
  if (state.claimed !== claimed) return;
  el.canvas.replaceChildren(img);
  fit(img);
  state.editor = createEditor({
    img,
    image: claimed.image,
    labels: state.dataset.labels,
    predictions: claimed.predictions,
    onChange: renderPanel,
  });
  state.editor.setTool(currentTool);
  el.stage.focus({ preventScroll: true });
  renderPanel();
}

/** The image at the largest size that fits the stage, up or down. */
function fit(img) {
  const box = el.stage.getBoundingClientRect();
  const pad = 16;
  const scale = Math.min(
    (box.width - 2 * pad) / img.naturalWidth,
    (box.height - 2 * pad) / img.naturalHeight,
  );
  img.style.width = `${Math.floor(img.naturalWidth * scale)}px`;
  img.style.height = `${Math.floor(img.naturalHeight * scale)}px`;
}

addEventListener("resize", () => {
  const img = el.canvas.querySelector("img");
  if (img) fit(img);
});

async function allDone() {
  clearImage();
  el.placeholder.hidden = true;
  el.lost.hidden = true;
  el.done.hidden = false;
  el.doneStats.textContent = "";
  const s = await refreshProgress();
  if (s) {
    el.doneStats.textContent = `Nothing is left for you in “${state.dataset.name}”. ` +
      `${s.images} image${
        s.images === 1 ? "" : "s"
      }: ${s.done} done, ${s.in_progress} in progress, ${s.pending} pending. ` +
      `${s.human_annotations} human annotations in all; ${state.submitted} by you in this session.`;
  } else {
    el.doneStats.textContent = `Nothing is left for you in “${state.dataset.name}”.`;
  }
  el.checkAgain.focus();
}

el.checkAgain.addEventListener("click", () => claimNext());
el.claimAgain.addEventListener("click", () => claimNext());

/**
 * The claim's refusals that mean it is gone (expired and taken, completed, released): said in
 * words, with the offer to claim again; nothing of the old image stays on screen. True when
 * `e` was one of them.
 */
function handleClaimError(e) {
  if (!(e instanceof ApiError) || e.status !== 409 || !e.code.startsWith("claim_")) return false;
  const reasons = {
    claim_expired: "Your lease on this image ran out and another annotator has it now, so what " +
      "you drew on it could not be saved.",
    claim_released: "This image was given back (released), so what you drew on it could not be " +
      "saved.",
    claim_completed: "This image has already been submitted.",
    claim_revoked: "You may no longer work on this dataset's images.",
  };
  clearImage();
  el.lostText.textContent = reasons[e.code] ?? e.message;
  el.lost.hidden = false;
  el.claimAgain.focus();
  return true;
}

// ---- Keeping the lease -----------------------------------------------------------------------

function stopRenewal() {
  clearTimeout(state.renewTimer);
  state.renewTimer = 0;
}

/** Renews the lease at half its remaining time, by the server's clock. */
function planRenewal(expiresAt) {
  stopRenewal();
  const until = Date.parse(expiresAt);
  const remaining = until - api.serverNow();
  el.lease.textContent = `Lease until ${
    new Date(until - api.serverNow() + Date.now()).toLocaleTimeString()
  }`;
  state.renewTimer = setTimeout(renewLease, Math.max(1_000, remaining / 2));
}

async function renewLease() {
  const claimed = state.claimed;
  if (!claimed) return;
  try {
    const renewed = await api.renew(claimed.claim.id);
    if (state.claimed !== claimed) return;
    claimed.claim.expires_at = renewed.expires_at;
    planRenewal(renewed.expires_at);
  } catch (e) {
    if (state.claimed !== claimed) return;
    if (handleClaimError(e)) return;
    // An outage: try again soon; the lease may well outlive it.
    state.renewTimer = setTimeout(renewLease, 5_000);
  }
}

// ---- Submitting and skipping -------------------------------------------------------------------

function confirmEmpty() {
  return new Promise((resolve) => {
    el.confirmEmpty.returnValue = "";
    el.confirmEmpty.showModal();
    el.confirmEmpty.addEventListener(
      "close",
      () => resolve(el.confirmEmpty.returnValue === "empty"),
      {
        once: true,
      },
    );
  });
}

async function submit() {
  const claimed = state.claimed;
  if (!claimed || !state.editor || state.busy) return;
  if (state.editor.drawing()) state.editor.finishPolygon();
  const { labels, shapes } = state.editor.toApi();
  // Nothing marked is said explicitly, after asking: the API refuses an annotation with neither
  // labels nor shapes unless it says `"empty": true`.
  const empty = !labels.length && !shapes.length;
  if (empty && !(await confirmEmpty())) return;
  // The next claim, when the submit's own could not be made: after the submit's step ends.
  let claimAfter = false;
  await work("Submitting…", async () => {
    let answer;
    try {
      const body = empty
        ? { claim_id: claimed.claim.id, empty: true }
        : { claim_id: claimed.claim.id, labels, shapes };
      answer = await api.submit(claimed.image.id, body);
    } catch (e) {
      // A submit repeated after a lost answer (a 503 retried): the first one landed.
      if (!(e instanceof ApiError && e.code === "claim_completed")) throw e;
      answer = { next: null, next_error: { message: e.message } };
    }
    state.submitted++;
    if (answer.next) return await show(answer.next);
    if (!answer.next_error) return await allDone();
    // Saved, but no claim came with it (the server was busy): claim on its own.
    clearImage();
    claimAfter = true;
  }, submit);
  if (claimAfter) await claimNext();
}

async function skip() {
  const claimed = state.claimed;
  if (!claimed || state.busy) return;
  await work("Skipping…", async () => {
    try {
      await api.release(claimed.claim.id, { skip: true });
    } catch (e) {
      // Already gone (expired and taken, released): there is nothing to give back.
      if (!(e instanceof ApiError && e.status === 409)) throw e;
    }
    clearImage();
    const next = await api.claim(state.dataset.id);
    if (next) await show(next);
    else await allDone();
  }, () => state.claimed ? skip() : claimNext());
}

el.submit.addEventListener("click", () => submit());
el.skip.addEventListener("click", () => skip());

// ---- The side panel ----------------------------------------------------------------------------

let currentTool = "box";

function setTool(name) {
  currentTool = name;
  state.editor?.setTool(name);
  renderPanel();
}

for (const button of el.tools) {
  button.addEventListener("click", () => setTool(button.dataset.tool));
}

function renderLabelButtons() {
  const buttons = state.dataset.labels.map((label, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "label";
    b.dataset.label = label;
    b.setAttribute("aria-label", label);
    b.setAttribute("aria-pressed", "false");
    if (i < 9) b.setAttribute("aria-keyshortcuts", String(i + 1));
    const key = document.createElement("kbd");
    key.textContent = i < 9 ? String(i + 1) : "";
    key.setAttribute("aria-hidden", "true");
    const name = document.createElement("span");
    name.textContent = label;
    b.append(key, name);
    b.addEventListener("click", () => state.editor?.pickLabel(label));
    return b;
  });
  el.labels.replaceChildren(...buttons);
}

function renderPanel() {
  const editor = state.editor;
  const working = Boolean(state.claimed) && !state.busy;
  el.submit.disabled = !working || !editor;
  el.skip.disabled = !working;
  for (const b of el.tools) b.setAttribute("aria-pressed", String(b.dataset.tool === currentTool));
  const selected = editor?.selected() ?? [];
  const shapes = editor?.shapes() ?? [];
  const selectedLabels = new Set(shapes.filter((s) => selected.includes(s.id)).map((s) => s.label));
  const imageLabels = new Set(editor?.imageLabels() ?? []);
  el.labelsHint.textContent = selected.length
    ? "Label of the selected shape (keys 1–9)"
    : "Labels of the whole image: click or press 1–9 to toggle";
  for (const b of el.labels.querySelectorAll("button")) {
    const label = b.dataset.label;
    b.disabled = !editor;
    b.setAttribute(
      "aria-pressed",
      String(selected.length ? selectedLabels.has(label) : imageLabels.has(label)),
    );
  }
  const kinds = { bbox: "Box", polygon: "Polygon", point: "Point" };
  el.shapes.replaceChildren(...shapes.map((s) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `${kinds[s.type]}: ${tagText(s)}`;
    b.setAttribute("aria-pressed", String(selected.includes(s.id)));
    b.addEventListener("click", () => editor.select(s.id));
    li.append(b);
    return li;
  }));
}

// ---- The keyboard ------------------------------------------------------------------------------

const typing = (target) =>
  target instanceof HTMLInputElement || target instanceof HTMLSelectElement ||
  target instanceof HTMLTextAreaElement;

// On window, in the capture phase: before Annotorious's own Ctrl+Z on the document, which this
// page replaces with one history for shapes and image labels.
addEventListener("keydown", (e) => {
  if (el.signIn.open || el.confirmEmpty.open) return;
  const editor = state.editor;
  if (e.ctrlKey || e.metaKey) {
    const key = e.key.toLowerCase();
    if (key === "z" || key === "y") {
      e.preventDefault();
      e.stopPropagation();
      if (key === "y" || e.shiftKey) editor?.redo();
      else editor?.undo();
    } else if (e.key === "Enter") {
      e.preventDefault();
      submit();
    }
    return;
  }
  if (e.altKey || typing(e.target)) return;
  // Enter and Space on a focused button press the button.
  if ((e.key === "Enter" || e.key === " ") && e.target instanceof HTMLButtonElement) return;
  const key = e.key.toLowerCase();
  if (/^[1-9]$/.test(key) && state.dataset) {
    const label = state.dataset.labels[Number(key) - 1];
    if (label && editor) {
      e.preventDefault();
      editor.pickLabel(label);
    }
  } else if (key in TOOLS) {
    e.preventDefault();
    setTool(TOOLS[key]);
  } else if (key === "s") {
    e.preventDefault();
    skip();
  } else if (e.key === "Enter" && editor?.drawing()) {
    e.preventDefault();
    editor.finishPolygon();
  } else if (e.key === "Escape" && editor) {
    editor.cancel();
  } else if ((e.key === "Delete" || e.key === "Backspace") && editor) {
    // A polygon's selected corners are Annotorious's to delete.
    if (document.querySelector(".a9s-handle-selected")) return;
    e.preventDefault();
    if (!editor.dropLastPoint()) editor.deleteSelected();
  }
}, { capture: true });

// ---- Start -------------------------------------------------------------------------------------

async function start() {
  if (!session.get()) await signIn();
  else planTokenRenewal(Math.max(0, session.get().expiresAt - Date.now()));
  const me = await api.me();
  el.who.textContent = `${me.name} (${me.role})`;
  el.signOut.hidden = false;
  await loadDatasets();
  const remembered = sessionStorage.getItem(DATASET_KEY);
  if (remembered && state.datasets.has(remembered)) {
    el.dataset.value = remembered;
    await chooseDataset(remembered);
  } else {
    el.placeholder.textContent = "Choose a dataset to start.";
    el.dataset.focus();
  }
}

start().catch((e) => warn(describeError(e)));
