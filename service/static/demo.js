"use strict";
/*
 * The demo page: an image goes to POST /segment?format=rle; the COCO RLE answer is decoded here
 * into class ids and drawn in the model card's colours over the image. The mask shown is exactly
 * the API's: the overlay canvas holds one opaque palette colour per pixel (opacity is CSS only),
 * and carries data-width, data-height and data-classes for anyone who wants to check it.
 * The PNG download asks the API for format=png with the same image and options. The other views
 * are the API's own images, fetched when chosen: format=uncertainty (entropy map) and
 * format=overlay (blended at the opacity slider's alpha, class outlines drawn).
 */

const NO_CLASS = 255;

const ui = {
  body: document.body,
  dropZone: document.getElementById("drop-zone"),
  fileInput: document.getElementById("file-input"),
  modelSelect: document.getElementById("model-select"),
  modelInfo: document.getElementById("model-info"),
  crfToggle: document.getElementById("crf-toggle"),
  opacitySlider: document.getElementById("opacity-slider"),
  opacityValue: document.getElementById("opacity-value"),
  apiKey: document.getElementById("api-key"),
  downloadPng: document.getElementById("download-png"),
  downloadRle: document.getElementById("download-rle"),
  status: document.getElementById("status"),
  frame: document.getElementById("stage-frame"),
  empty: document.getElementById("stage-empty"),
  image: document.getElementById("source-image"),
  overlay: document.getElementById("overlay"),
  viewImage: document.getElementById("view-image"),
  legend: document.getElementById("legend"),
  timing: document.getElementById("timing"),
};

const state = {
  models: new Map(), // name -> entry of GET /v1/models
  cards: new Map(), // name -> model card (GET /v1/models/{name})
  file: null,
  imageUrl: null,
  result: null, // {file, model, crf, text, document} of the last answer shown
  viewUrl: null, // object URL of the uncertainty map or server overlay on show
  generation: 0, // a newer request makes older answers stale
};

class ApiError extends Error {
  constructor(status, code, message) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
  }
}

/* ---------- talking to the API ---------- */

async function apiFetch(path, init = {}) {
  const headers = new Headers(init.headers || {});
  const key = ui.apiKey.value.trim();
  if (key) headers.set("X-API-Key", key);
  const response = await fetch(path, { ...init, headers });
  if (response.ok) return response;
  let code = "http_error";
  let message = response.statusText;
  try {
    const body = await response.json();
    ({ code, message } = body.error);
  } catch (_) {
    /* not the service's JSON error: keep the status text */
  }
  if (response.status === 401) ui.apiKey.focus();
  throw new ApiError(response.status, code, message);
}

function segmentRequest(format, extra = {}) {
  const form = new FormData();
  form.append("image", state.file, state.file.name);
  const query = new URLSearchParams({
    model: ui.modelSelect.value,
    format,
    crf: String(ui.crfToggle.checked),
    ...extra,
  });
  return apiFetch(`/segment?${query}`, { method: "POST", body: form });
}

/* ---------- COCO compressed RLE (pycocotools' rleFrString, column-major) ---------- */

function rleCounts(text) {
  const counts = [];
  let position = 0;
  while (position < text.length) {
    let value = 0;
    let scale = 1;
    let more = true;
    while (more) {
      const group = text.charCodeAt(position++) - 48;
      value += (group & 0x1f) * scale; // arithmetic, not shifts: JS shifts wrap at 32 bits
      scale *= 32;
      more = (group & 0x20) !== 0;
      if (!more && (group & 0x10)) value -= scale; // sign bit of the last group
    }
    if (counts.length > 2) value += counts[counts.length - 2];
    counts.push(value);
  }
  return counts;
}

/** Row-major class ids from an RLE answer; pixels no class claims stay NO_CLASS. */
function decodeMask(answer) {
  const { width, height } = answer;
  const ids = new Uint8Array(width * height).fill(NO_CLASS);
  for (const entry of answer.classes) {
    let position = 0;
    rleCounts(entry.rle.counts).forEach((count, index) => {
      if (index % 2 === 1) {
        for (let p = position; p < position + count; p++) {
          ids[(p % height) * width + Math.floor(p / height)] = entry.id;
        }
      }
      position += count;
    });
  }
  return ids;
}

/* ---------- drawing ---------- */

function drawOverlay(ids, width, height, classes) {
  const colours = new Uint8Array(256 * 4); // NO_CLASS and unknown ids stay transparent
  for (const cls of classes) colours.set([...cls.color, 255], cls.id * 4);
  ui.overlay.width = width;
  ui.overlay.height = height;
  const context = ui.overlay.getContext("2d");
  const pixels = context.createImageData(width, height);
  const rgba = new Uint32Array(colours.buffer); // one RGBA pixel per element, same byte order as the canvas
  const out = new Uint32Array(pixels.data.buffer);
  for (let i = 0; i < ids.length; i++) out[i] = rgba[ids[i]];
  context.putImageData(pixels, 0, 0);
  ui.overlay.dataset.width = String(width);
  ui.overlay.dataset.height = String(height);
}

function renderLegend(classes, areas, totalPixels) {
  ui.legend.replaceChildren(
    ...classes.map((cls) => {
      const item = document.createElement("li");
      item.dataset.classId = String(cls.id);
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = `rgb(${cls.color.join(",")})`;
      const name = document.createElement("span");
      name.className = "class-name";
      name.textContent = cls.name;
      const share = document.createElement("span");
      share.className = "share";
      const area = areas.get(cls.id);
      share.textContent = area === undefined ? "–" : `${((100 * area) / totalPixels).toFixed(1)} %`;
      if (area === undefined && areas.size) item.classList.add("absent");
      item.append(swatch, name, share);
      return item;
    }),
  );
}

/** "decode;dur=1.2, queue;dur=0.1" -> [["decode", 1.2], ["queue", 0.1]] */
function parseServerTiming(header) {
  return (header || "")
    .split(",")
    .map((part) => part.trim().split(";"))
    .filter((fields) => fields[0])
    .map(([name, ...params]) => {
      const duration = params.map((p) => p.trim()).find((p) => p.startsWith("dur="));
      return [name, duration ? Number(duration.slice(4)) : 0];
    });
}

function renderTiming(stages, roundTripMs) {
  const rows = [...stages, ["round trip (browser)", roundTripMs]];
  const longest = Math.max(...rows.map(([, ms]) => ms), 1);
  ui.timing.replaceChildren(
    ...rows.map(([name, ms]) => {
      const item = document.createElement("li");
      item.dataset.stage = name;
      const label = document.createElement("span");
      label.textContent = name;
      const value = document.createElement("span");
      value.className = "ms";
      value.textContent = `${ms.toFixed(1)} ms`;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${(100 * ms) / longest}%`;
      item.append(label, value, bar);
      return item;
    }),
  );
}

function setStatus(text, pageState) {
  ui.status.textContent = text;
  ui.status.classList.toggle("error", pageState === "error");
  if (pageState) ui.body.dataset.state = pageState;
}

/* ---------- the flow ---------- */

async function loadCard(name) {
  if (!state.cards.has(name)) {
    const detail = await (await apiFetch(`/v1/models/${encodeURIComponent(name)}`)).json();
    state.cards.set(name, detail.card);
  }
  return state.cards.get(name);
}

async function loadModels() {
  setStatus("Loading the models…", "loading");
  const listing = await (await apiFetch("/v1/models")).json();
  state.models = new Map(listing.models.map((entry) => [entry.name, entry]));
  ui.modelSelect.replaceChildren(
    ...listing.models.map((entry) => {
      const option = new Option(`${entry.name}${entry.status === "ready" ? "" : ` (${entry.status})`}`, entry.name);
      option.disabled = entry.status !== "ready";
      return option;
    }),
  );
  ui.modelSelect.value = listing.default;
  ui.modelSelect.disabled = false;
  await modelChanged();
}

async function modelChanged() {
  const entry = state.models.get(ui.modelSelect.value);
  ui.modelInfo.textContent = entry
    ? `${entry.description || entry.name} · ${entry.backend || "no backend"} ${entry.precision || ""} · ` +
      `input ${(entry.input_size || []).join("×")}`
    : "";
  const card = await loadCard(ui.modelSelect.value);
  renderLegend(card.classes, new Map(), 1);
  if (state.file) await segment();
  else setStatus("Drop an image to segment it.", "idle");
}

function showImage(file) {
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.imageUrl = URL.createObjectURL(file);
  ui.frame.classList.remove("mask-only");
  const loaded = new Promise((resolve) => {
    ui.image.onload = () => resolve(true);
    ui.image.onerror = () => resolve(false); // e.g. TIFF: the browser cannot show it, the service can segment it
  });
  ui.image.src = state.imageUrl;
  ui.frame.hidden = false;
  ui.empty.hidden = true;
  return loaded;
}

let imageShown = Promise.resolve(false);

async function fileChosen(file) {
  if (!file) return;
  state.file = file;
  imageShown = showImage(file);
  await segment();
}

async function segment() {
  const generation = ++state.generation;
  const model = ui.modelSelect.value;
  const crf = ui.crfToggle.checked;
  const file = state.file;
  ui.downloadPng.disabled = ui.downloadRle.disabled = true;
  setStatus(`Segmenting ${file.name} with ${model}${crf ? " + CRF" : ""}…`, "busy");
  const started = performance.now();
  try {
    const response = await segmentRequest("rle");
    const text = await response.text();
    const roundTripMs = performance.now() - started;
    if (generation !== state.generation) return; // a newer request is on its way
    const answer = JSON.parse(text);
    const card = await loadCard(model);
    const displayable = await imageShown;
    ui.frame.classList.toggle("mask-only", !displayable);
    if (displayable && (ui.image.naturalWidth !== answer.width || ui.image.naturalHeight !== answer.height)) {
      throw new Error(
        `the mask is ${answer.width}×${answer.height} but the browser shows the image at ` +
          `${ui.image.naturalWidth}×${ui.image.naturalHeight}`,
      );
    }
    drawOverlay(decodeMask(answer), answer.width, answer.height, card.classes);
    ui.overlay.dataset.classes = answer.classes.map((entry) => entry.id).join(",");
    renderLegend(card.classes, new Map(answer.classes.map((e) => [e.id, e.area])), answer.width * answer.height);
    renderTiming(parseServerTiming(response.headers.get("Server-Timing")), roundTripMs);
    state.result = { file, model, crf, text, answer };
    ui.downloadPng.disabled = ui.downloadRle.disabled = false;
    const backend = response.headers.get("X-Backend");
    setStatus(`${answer.width}×${answer.height} · ${answer.model} on ${backend} · ${roundTripMs.toFixed(0)} ms`, "ready");
    await showView();
  } catch (error) {
    if (generation === state.generation) setStatus(error.message, "error");
  }
}

/* ---------- the API's own views: uncertainty map, server-rendered overlay ---------- */

function chosenView() {
  return document.querySelector('input[name="view"]:checked').value;
}

async function showView() {
  const view = chosenView();
  ui.overlay.hidden = view !== "mask";
  ui.viewImage.hidden = true;
  ui.viewImage.dataset.view = "";
  if (view === "mask" || !state.result) return;
  const generation = state.generation;
  const status = ui.status.textContent;
  setStatus(`Fetching the ${view} view…`, "busy");
  try {
    const extra = view === "overlay" ? { alpha: String(ui.opacitySlider.value / 100) } : {};
    const blob = await (await segmentRequest(view, extra)).blob();
    if (generation !== state.generation || view !== chosenView()) return;
    if (state.viewUrl) URL.revokeObjectURL(state.viewUrl);
    state.viewUrl = URL.createObjectURL(blob);
    await new Promise((resolve, reject) => {
      ui.viewImage.onload = resolve;
      ui.viewImage.onerror = () => reject(new Error(`the ${view} image could not be shown`));
      ui.viewImage.src = state.viewUrl;
    });
    ui.viewImage.hidden = false;
    ui.viewImage.dataset.view = view;
    setStatus(status, "ready");
  } catch (error) {
    if (generation === state.generation) setStatus(error.message, "error");
  }
}

/* ---------- downloads ---------- */

function saveBlob(blob, filename) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

function downloadName(extension) {
  const { file, model, crf } = state.result;
  const stem = file.name.replace(/\.[^.]*$/, "");
  return `${stem}.${model}${crf ? ".crf" : ""}.mask.${extension}`;
}

ui.downloadRle.addEventListener("click", () => {
  saveBlob(new Blob([state.result.text], { type: "application/json" }), downloadName("json"));
});

ui.downloadPng.addEventListener("click", async () => {
  ui.downloadPng.disabled = true;
  try {
    const response = await segmentRequest("png");
    saveBlob(await response.blob(), downloadName("png"));
  } catch (error) {
    setStatus(error.message, "error");
  } finally {
    ui.downloadPng.disabled = false;
  }
});

/* ---------- wiring ---------- */

ui.fileInput.addEventListener("change", () => fileChosen(ui.fileInput.files[0]));
ui.modelSelect.addEventListener("change", () => modelChanged().catch((error) => setStatus(error.message, "error")));
ui.crfToggle.addEventListener("change", () => state.file && segment());
for (const radio of document.querySelectorAll('input[name="view"]')) {
  radio.addEventListener("change", () => showView());
}
ui.opacitySlider.addEventListener("change", () => chosenView() === "overlay" && showView());
ui.opacitySlider.addEventListener("input", () => {
  ui.overlay.style.opacity = String(ui.opacitySlider.value / 100);
  ui.opacityValue.textContent = `${ui.opacitySlider.value} %`;
});
ui.opacitySlider.dispatchEvent(new Event("input"));
ui.apiKey.addEventListener("change", () => {
  state.cards.clear();
  loadModels().catch((error) => setStatus(error.message, "error"));
});

for (const name of ["dragenter", "dragover"]) {
  ui.dropZone.addEventListener(name, (event) => {
    event.preventDefault();
    ui.dropZone.classList.add("dragging");
  });
}
for (const name of ["dragleave", "drop"]) {
  ui.dropZone.addEventListener(name, () => ui.dropZone.classList.remove("dragging"));
}
ui.dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  fileChosen(event.dataTransfer.files[0]);
});

loadModels().catch((error) => setStatus(error.message, "error"));
