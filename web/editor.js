/**
 * The drawing layer over one image: Annotorious (boxes, polygon editing, selection, moving,
 * resizing) plus what it lacks, written here: points, a click-by-click polygon tool that closes
 * on its first point or Enter, tags showing each shape's label and, for a prediction, its model
 * and confidence, per-label colours, and one undo history covering shapes and image labels.
 *
 * Coordinates: Annotorious works in the image's natural pixels (its SVG's viewBox is
 * naturalWidth x naturalHeight, whatever the display size). The API's are the registered
 * width/height's pixels, which are the same unless the file served is a resized copy; shapes are
 * scaled between the two, and clamped into the image when submitted.
 *
 * Styling never sets a `style` attribute (the page's Content-Security-Policy forbids inline
 * styles): Annotorious gets no `style` option, so it writes none, and colours come from a
 * constructable stylesheet keyed by each shape's `data-id`.
 */
import { createImageAnnotator } from "/app/vendor/annotorious.js";

const SVG = "http://www.w3.org/2000/svg";
/** A point is drawn as a dot this many screen pixels across (it is submitted as its centre). */
const POINT_PX = 12;
/** A click this close (screen pixels) to a polygon's first point closes it. */
const CLOSE_PX = 10;
/** Changes closer together than this are one undo step (a drag is many changes). */
const UNDO_MERGE_MS = 400;
const PALETTE = [
  "#e6194b",
  "#3cb44b",
  "#4363d8",
  "#f58231",
  "#911eb4",
  "#42d4f4",
  "#f032e6",
  "#bfef45",
  "#fabed4",
  "#dcbeff",
];

const labelBody = (id, label) => ({
  id: `${id}-label`,
  annotation: id,
  purpose: "tagging",
  value: label,
});
const labelOf = (a) => a.bodies?.find((b) => b.purpose === "tagging")?.value;
const boundsOf = (points) => ({
  minX: Math.min(...points.map((p) => p[0])),
  minY: Math.min(...points.map((p) => p[1])),
  maxX: Math.max(...points.map((p) => p[0])),
  maxY: Math.max(...points.map((p) => p[1])),
});
const rectangle = (x, y, w, h) => ({
  type: "RECTANGLE",
  geometry: { x, y, w, h, rot: 0, bounds: { minX: x, minY: y, maxX: x + w, maxY: y + h } },
});
const polygon = (points) => ({ type: "POLYGON", geometry: { points, bounds: boundsOf(points) } });
const round = (v) => Math.round(v * 100) / 100;
let shapeSeq = 0;
const clamp = (v, max) => Math.min(Math.max(v, 0), max);

/**
 * @param {object} options
 * @param {HTMLImageElement} options.img loaded (its natural size known), in the document
 * @param {{width: number|null, height: number|null}} options.image the registered size
 * @param {string[]} options.labels the dataset's labels
 * @param {object[]} options.predictions the claim's predictions (API annotations)
 * @param {() => void} options.onChange after any change of shapes, labels or selection
 */
export function createEditor({ img, image, labels, predictions, onChange }) {
  const natural = { w: img.naturalWidth, h: img.naturalHeight };
  // API pixels per natural pixel.
  const kx = (image.width ?? natural.w) / natural.w;
  const ky = (image.height ?? natural.h) / natural.h;
  const colour = (label) => PALETTE[Math.max(0, labels.indexOf(label)) % PALETTE.length];

  const anno = createImageAnnotator(img, { drawingEnabled: true, drawingMode: "drag" });
  anno.setDrawingTool("rectangle");
  const { store } = anno.state;
  const container = anno.element;
  const layer = container.querySelector("svg.a9s-annotationlayer");

  /** Per shape: what the API calls it, and for a prediction its model and confidence. */
  const kinds = new Map();
  let imageLabels = [];
  /** The label a new shape gets: the last one given to a shape, else the first. */
  let nextLabel = labels[0];
  let tool = "box";
  /** The polygon being drawn: its points (natural pixels) and the pointer's position. */
  let drawing = null;
  let pointer = null;

  const sheet = new CSSStyleSheet();
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];

  const overlay = document.createElementNS(SVG, "svg");
  overlay.setAttribute("class", "tags");
  overlay.setAttribute("viewBox", `0 0 ${natural.w} ${natural.h}`);
  overlay.setAttribute("aria-hidden", "true");
  container.appendChild(overlay);

  /** Screen pixels per natural pixel, as displayed now. */
  const scale = () => (layer.getBoundingClientRect().width || natural.w) / natural.w;

  function add(kind, selector, label, origin = null) {
    // Not crypto.randomUUID: it exists only in secure contexts, and the page may be served over
    // plain http on a private network.
    const id = `shape-${++shapeSeq}-${Math.random().toString(36).slice(2, 10)}`;
    kinds.set(id, { type: kind, origin });
    const annotation = {
      id,
      bodies: label ? [labelBody(id, label)] : [],
      target: { annotation: id, selector },
    };
    return { id, annotation };
  }

  // The claim's predictions, as editable shapes; their image-level labels are pre-selected.
  const initial = [];
  for (const p of predictions) {
    for (const label of p.labels) if (!imageLabels.includes(label)) imageLabels.push(label);
    for (const s of p.shapes) {
      const origin = { model: p.model?.name ?? "model", confidence: s.confidence ?? p.confidence };
      if (s.type === "bbox") {
        initial.push(
          add("bbox", rectangle(s.x / kx, s.y / ky, s.width / kx, s.height / ky), s.label, origin)
            .annotation,
        );
      } else if (s.type === "polygon") {
        initial.push(
          add("polygon", polygon(s.points.map(([x, y]) => [x / kx, y / ky])), s.label, origin)
            .annotation,
        );
      } else if (s.type === "point") {
        const d = POINT_PX / scale();
        initial.push(
          add("point", rectangle(s.x / kx - d / 2, s.y / ky - d / 2, d, d), s.label, origin)
            .annotation,
        );
      }
    }
  }
  anno.setAnnotations(initial, true);

  // Undo: whole snapshots (shapes and image labels), so one history covers both.
  const snapshot = () => ({
    annotations: structuredClone(store.all()),
    imageLabels: [...imageLabels],
  });
  let current = snapshot();
  const undoStack = [];
  let redoStack = [];
  let lastChange = 0;

  /** Makes the next change an undo step of its own (a click's work, not a drag's). */
  const newStep = () => {
    lastChange = 0;
  };

  function recordChange() {
    const now = performance.now();
    if (now - lastChange > UNDO_MERGE_MS || !undoStack.length) {
      undoStack.push(current);
      redoStack = [];
    }
    lastChange = now;
    current = snapshot();
  }

  function restore(state) {
    anno.cancelSelected();
    anno.setAnnotations(structuredClone(state.annotations), true);
    imageLabels = [...state.imageLabels];
    current = state;
    lastChange = 0;
    render();
  }

  store.observe((event) => {
    // A shape Annotorious drew has no label yet: it gets the current one (a change of its own,
    // merged into the same undo step).
    for (const a of event.changes.created ?? []) {
      if (!labelOf(a)) {
        queueMicrotask(() => {
          const now = store.getAnnotation(a.id);
          if (now && !labelOf(now)) {
            store.updateAnnotation({ ...now, bodies: [labelBody(a.id, nextLabel)] });
          }
        });
      }
    }
    for (const u of event.changes.updated ?? []) {
      const kind = kinds.get(u.newValue.id);
      if (kind?.origin && u.oldValue.target !== u.newValue.target) kind.edited = true;
    }
    recordChange();
    render();
  }, { origin: "LOCAL" });
  store.observe(() => render(), { origin: "REMOTE" });
  anno.on("selectionChanged", () => render());

  const selectedIds = () => anno.getSelected().map((a) => a.id);

  /** What the API calls each shape, from its Annotorious annotation. */
  function describe(a) {
    const kind = kinds.get(a.id) ??
      { type: a.target.selector.type === "POLYGON" ? "polygon" : "bbox" };
    return {
      id: a.id,
      type: kind.type,
      label: labelOf(a),
      origin: kind.origin,
      edited: kind.edited,
    };
  }

  function render() {
    const s = scale();
    const all = store.all();
    // Colours by label; predictions not yet touched are dashed; points are round.
    const rules = all.map((a) => {
      const d = describe(a);
      // As specific as Annotorious's theme rules (div[data-theme] .a9s-annotationlayer …), and later.
      const sel = `div .a9s-annotationlayer .a9s-annotation[data-id="${CSS.escape(a.id)}"]`;
      const c = colour(d.label);
      let rule =
        `${sel} .a9s-inner { stroke: ${c}; stroke-width: 2px; fill: ${c}; fill-opacity: 0.12; }`;
      if (d.origin && !d.edited) rule += ` ${sel} .a9s-inner { stroke-dasharray: 6 3; }`;
      if (d.type === "point") {
        const w = a.target.selector.geometry.w;
        rule += ` ${sel} rect { rx: ${w / 2}px; } ${sel} .a9s-inner { fill-opacity: 0.9; }`;
      }
      return rule;
    });
    sheet.replaceSync(rules.join("\n"));

    // Tags: the label, and for a prediction its model and confidence, above each shape.
    const font = 13 / s;
    const nodes = all.map((a) => {
      const d = describe(a);
      const b = a.target.selector.geometry.bounds;
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", String(b.minX));
      text.setAttribute("y", String(Math.max(font, b.minY - 4 / s)));
      text.setAttribute("font-size", String(font));
      text.setAttribute("stroke", colour(d.label));
      text.setAttribute("stroke-width", String(4 / s));
      text.textContent = tagText(d);
      return text;
    });
    if (drawing) {
      const points = pointer ? [...drawing, pointer] : drawing;
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("class", "drawing");
      line.setAttribute("points", points.map((p) => p.join(",")).join(" "));
      line.setAttribute("stroke", colour(nextLabel));
      nodes.push(line);
      const [x, y] = drawing[0];
      const first = document.createElementNS(SVG, "circle");
      first.setAttribute("class", "first-point");
      first.setAttribute("cx", String(x));
      first.setAttribute("cy", String(y));
      first.setAttribute("r", String(CLOSE_PX / s));
      nodes.push(first);
    }
    overlay.replaceChildren(...nodes);
    onChange();
  }

  // Points and polygons: drawn here, on clicks the Annotorious layer never sees (its drawing is
  // off for these tools). Pressing on the selected shape still reaches its editor, to move it.
  const toNatural = (e) => {
    const r = layer.getBoundingClientRect();
    return [
      clamp((e.clientX - r.left) / r.width * natural.w, natural.w),
      clamp((e.clientY - r.top) / r.height * natural.h, natural.h),
    ];
  };
  let down = null;
  const ours = (e) =>
    tool !== "box" && !(drawing === null && e.target.closest?.(".a9s-annotation.selected"));

  container.addEventListener("pointerdown", (e) => {
    if (!ours(e) || e.button !== 0) return;
    e.stopPropagation();
    e.preventDefault();
    layer.focus({ preventScroll: true });
    down = { x: e.clientX, y: e.clientY };
  }, true);
  container.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    pointer = toNatural(e);
    render();
  }, true);
  container.addEventListener("pointerup", (e) => {
    if (!ours(e) || !down) return;
    e.stopPropagation();
    const moved = Math.hypot(e.clientX - down.x, e.clientY - down.y);
    down = null;
    if (moved > 6) return;
    const at = toNatural(e);
    if (tool === "point") {
      const d = POINT_PX / scale();
      const { id, annotation } = add(
        "point",
        rectangle(at[0] - d / 2, at[1] - d / 2, d, d),
        nextLabel,
      );
      newStep();
      store.addAnnotation(annotation);
      anno.setSelected(id, true);
    } else if (!drawing) {
      anno.cancelSelected();
      drawing = [at];
      render();
    } else {
      const [fx, fy] = drawing[0];
      const near = Math.hypot(at[0] - fx, at[1] - fy) * scale() <= CLOSE_PX;
      if (near && drawing.length >= 3) finishPolygon();
      else {
        drawing.push(at);
        render();
      }
    }
  }, true);
  container.addEventListener("dblclick", (e) => {
    if (tool !== "polygon" || !drawing) return;
    e.stopPropagation();
    // The double click's two clicks added the same point twice.
    const [a, b] = drawing.slice(-2);
    if (drawing.length > 1 && Math.hypot(a[0] - b[0], a[1] - b[1]) < 1) drawing.pop();
    finishPolygon();
  }, true);

  function finishPolygon() {
    if (!drawing || drawing.length < 3) return false;
    const { id, annotation } = add("polygon", polygon(drawing), nextLabel);
    drawing = null;
    pointer = null;
    newStep();
    store.addAnnotation(annotation);
    anno.setSelected(id, true);
    return true;
  }

  const resize = new ResizeObserver(() => render());
  resize.observe(layer);
  render();

  return {
    tool: () => tool,
    /** "box" (drag to draw, click to select), "polygon" or "point". */
    setTool(name) {
      tool = name;
      drawing = null;
      pointer = null;
      anno.cancelSelected();
      anno.setDrawingEnabled(name === "box");
      render();
    },
    /** Whether a polygon is being drawn. */
    drawing: () => drawing !== null,
    finishPolygon,
    /** Drops the polygon being drawn's last point (Backspace); false when none is drawn. */
    dropLastPoint() {
      if (!drawing) return false;
      drawing.pop();
      if (!drawing.length) drawing = null;
      render();
      return true;
    },
    /** Stops drawing, then deselects (Escape). */
    cancel() {
      if (drawing) {
        drawing = null;
        pointer = null;
        render();
      } else anno.cancelSelected();
    },
    shapes: () => store.all().map(describe),
    selected: selectedIds,
    select(id) {
      anno.setSelected(id, true);
    },
    imageLabels: () => [...imageLabels],
    /**
     * A label key: relabels the selected shapes, or toggles the image-level label when no shape
     * is selected.
     */
    pickLabel(label) {
      const ids = selectedIds();
      newStep();
      if (ids.length) {
        nextLabel = label;
        for (const id of ids) {
          const a = store.getAnnotation(id);
          if (a) store.updateAnnotation({ ...a, bodies: [labelBody(id, label)] });
        }
        return;
      }
      imageLabels = imageLabels.includes(label)
        ? imageLabels.filter((l) => l !== label)
        : [...imageLabels, label];
      recordChange();
      render();
    },
    /** Deletes the selected shapes; false when none is selected. */
    deleteSelected() {
      const ids = selectedIds();
      if (!ids.length) return false;
      anno.cancelSelected();
      newStep();
      for (const id of ids) store.deleteAnnotation(id);
      return true;
    },
    undo() {
      if (drawing) return this.dropLastPoint();
      if (!undoStack.length) return false;
      redoStack.push(current);
      restore(undoStack.pop());
      return true;
    },
    redo() {
      if (!redoStack.length) return false;
      undoStack.push(current);
      restore(redoStack.pop());
      return true;
    },
    /** The annotation to submit: labels, and shapes in the API's pixels, inside the image. */
    toApi() {
      const W = image.width ?? natural.w * kx;
      const H = image.height ?? natural.h * ky;
      const X = (x) => round(clamp(x * kx, W));
      const Y = (y) => round(clamp(y * ky, H));
      const shapes = [];
      for (const a of store.all()) {
        const d = describe(a);
        const label = d.label ?? nextLabel;
        const g = a.target.selector.geometry;
        if (d.type === "point") {
          shapes.push({
            type: "point",
            label,
            x: X((g.bounds.minX + g.bounds.maxX) / 2),
            y: Y((g.bounds.minY + g.bounds.maxY) / 2),
          });
        } else if (d.type === "polygon") {
          shapes.push({ type: "polygon", label, points: g.points.map(([x, y]) => [X(x), Y(y)]) });
        } else {
          const x = X(g.bounds.minX);
          const y = Y(g.bounds.minY);
          const width = round(X(g.bounds.maxX) - x);
          const height = round(Y(g.bounds.maxY) - y);
          // A box dragged wholly off the image has nothing left to submit.
          if (width > 0 && height > 0) shapes.push({ type: "bbox", label, x, y, width, height });
        }
      }
      return { labels: [...imageLabels], shapes };
    },
    destroy() {
      resize.disconnect();
      document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
      anno.destroy();
    },
  };
}

/** A shape's tag: "cat", or for a prediction "cat · detector 0.82". */
export function tagText(shape) {
  const label = shape.label ?? "?";
  if (!shape.origin) return label;
  const c = shape.origin.confidence;
  return `${label} · ${shape.origin.model}${typeof c === "number" ? ` ${c.toFixed(2)}` : ""}`;
}
