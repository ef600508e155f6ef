// The face editor page: plain JavaScript over the service's JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
const FEATURED = 8; // sliders shown before "All attributes"
const state = {
  file: null, latentId: null, fromPhoto: false, faces: [], face: 0, aligned: null,
  attributes: [], max: 5, history: [{}], at: 0, latent: true,
  inFlight: false, pending: false, result: null, resultIsJob: false, busyCount: 0, photo: null,
};

// --- plumbing ------------------------------------------------------------------------------

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
  if (message) el.scrollIntoView({ block: "nearest" });
}

async function api(path, options = {}) {
  let response;
  for (let attempt = 0; ; attempt++) {
    try {
      response = await fetch(path, options);
    } catch (e) {
      throw new Error("The service cannot be reached. Check your connection and try again.");
    }
    // Over this browser's share (429) or too many photos in flight (503): the answer says when to
    // come back; a short wait is taken here, twice at most, instead of showing an error.
    const wait = Number(response.headers.get("Retry-After"));
    if (!(response.status === 429 || response.status === 503) || !(wait > 0 && wait <= 10) || attempt >= 2) break;
    await new Promise((r) => setTimeout(r, wait * 1000));
  }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    const friendly = { 413: "The photo is too large. ", 415: "That file is not an image. ", 429: "The service is busy. ", 503: "The service is not available right now. " };
    if (typeof detail !== "string") detail = detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    throw new Error((friendly[response.status] || "") + detail);
  }
  return response;
}

// Progress on every wait: a bar and words appear when a wait passes half a second.
async function busy(text, work) {
  state.busyCount += 1;
  const timer = setTimeout(() => { $("busy").hidden = false; $("busy-text").textContent = text; }, 500);
  try {
    return await work();
  } finally {
    clearTimeout(timer);
    state.busyCount -= 1;
    if (!state.busyCount) { $("busy").hidden = true; $("busy-text").textContent = ""; }
  }
}

function setImage(img, blobOrUrl) {
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = typeof blobOrUrl === "string" ? blobOrUrl : URL.createObjectURL(blobOrUrl);
}

async function pollJob(job, bar, status) {
  bar.hidden = false;
  bar.value = 0;
  for (;;) {
    const s = await (await api(job.status_url)).json();
    bar.value = s.progress;
    status.textContent = s.status === "queued" ? "waiting for a free worker…" : `${Math.round(s.progress * 100)}%`;
    if (s.status === "failed") throw new Error("That did not work: " + s.error);
    if (s.status === "succeeded") break;
    await new Promise((r) => setTimeout(r, 300));
  }
  const blob = await (await api(job.result_url)).blob();
  status.textContent = "done";
  return blob;
}

// --- choosing a photo and a face -------------------------------------------------------------

function clearEditor() {
  state.latentId = null;
  state.result = null;
  state.faces = [];
  $("editor").hidden = $("morph-section").hidden = true;
  $("face-picker").hidden = true;
  $("faces-found").textContent = "";
}

async function useFile(file, face = 0) {
  showError("");
  if (!file) return;
  if (face === 0) clearEditor(); // a new photo: nothing of the last one stays on screen
  $("notice").hidden = true;
  try {
    const body = new FormData();
    body.append("file", file);
    const data = await busy("finding and encoding the face…", async () =>
      (await api(`/encode?face=${face}`, { method: "POST", body })).json());
    state.file = file;
    state.fromPhoto = true;
    state.photo = await createImageBitmap(file).catch(() => null); // upright, as the service sees it
    state.faces = data.faces;
    state.face = face;
    setImage($("original"), file);
    openEditor(data.latent_id, data.aligned);
    drawFaces();
  } catch (e) {
    clearEditor();
    showError(e.message);
  }
}

function openEditor(latentId, aligned) {
  state.latentId = latentId;
  state.aligned = aligned;
  state.history = [{}];
  state.at = 0;
  applySliders({});
  $("editor").hidden = false;
  $("morph-section").hidden = !state.latent;
  setImage($("result"), $("original").src);
  state.result = null;
  state.resultIsJob = false;
  loadBrushFace();
  updateHistoryButtons();
  updatePreview();
}

function drawFaces() {
  const n = state.faces.length;
  $("faces-found").textContent = n > 1 ? `${n} faces found: click one to edit it.` : n === 1 ? "1 face found." : "";
  const img = $("original");
  const draw = () => {
    const canvas = $("faces");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.lineWidth = Math.max(2, img.naturalWidth / 250);
    if (n < 2) { buildFacePicker(img); return; } // one face: nothing to choose, nothing drawn over it
    state.faces.forEach(([x, y, w, h], i) => {
      ctx.strokeStyle = i === state.face ? "#f5a623" : "rgba(255,255,255,0.85)";
      ctx.strokeRect(x, y, w, h);
    });
    buildFacePicker(img);
  };
  if (img.complete && img.naturalWidth) draw(); else img.onload = draw;
}

function buildFacePicker(img) {
  const picker = $("face-picker");
  picker.replaceChildren();
  picker.hidden = state.faces.length < 2;
  state.faces.forEach(([x, y, w, h], i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.setAttribute("aria-label", `edit face ${i + 1} of ${state.faces.length}`);
    b.setAttribute("aria-pressed", String(i === state.face));
    const c = document.createElement("canvas");
    c.width = c.height = 72;
    c.getContext("2d").drawImage(img, x, y, w, h, 0, 0, 72, 72);
    b.appendChild(c);
    b.addEventListener("click", () => useFile(state.file, i));
    picker.appendChild(b);
  });
}

function faceAt(event) {
  const canvas = $("faces");
  const r = canvas.getBoundingClientRect();
  const img = $("original");
  // the image is drawn with object-fit: contain inside the frame
  const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
  const ox = (r.width - img.naturalWidth * scale) / 2, oy = (r.height - img.naturalHeight * scale) / 2;
  const px = (event.clientX - r.left - ox) / scale, py = (event.clientY - r.top - oy) / scale;
  return state.faces.findIndex(([x, y, w, h]) => px >= x && px <= x + w && py >= y && py <= y + h);
}

// --- sliders, preview, undo ------------------------------------------------------------------

function addSlider(attr, container) {
  const wrap = document.createElement("div");
  wrap.className = "slider";
  const id = `s-${attr.name}`;
  const label = attr.label || attr.name.replaceAll("_", " ");
  wrap.innerHTML = `<label for="${id}" title="${attr.description}">${label}</label>
    <input id="${id}" type="range" min="${-state.max}" max="${state.max}" step="0.1" value="0" data-attribute="${attr.name}" aria-describedby="${id}-d">
    <output id="${id}-o" for="${id}">0</output><span id="${id}-d" hidden>${attr.description}</span>`;
  const input = wrap.querySelector("input");
  input.addEventListener("input", () => { $(`${id}-o`).textContent = Number(input.value).toFixed(1); schedulePreview(); });
  input.addEventListener("change", pushHistory);
  container.appendChild(wrap);
}

function sliderValues() {
  const values = {};
  for (const s of document.querySelectorAll("input[data-attribute]")) {
    if (Number(s.value) !== 0) values[s.dataset.attribute] = Number(s.value);
  }
  return values;
}

function applySliders(values) {
  for (const s of document.querySelectorAll("input[data-attribute]")) {
    s.value = values[s.dataset.attribute] || 0;
    $(`${s.id}-o`).textContent = Number(s.value).toFixed(1);
  }
}

function pushHistory() {
  const now = sliderValues();
  if (JSON.stringify(now) === JSON.stringify(state.history[state.at])) return;
  state.history = state.history.slice(0, state.at + 1);
  state.history.push(now);
  state.at += 1;
  updateHistoryButtons();
}

function moveHistory(step) {
  state.at = Math.min(Math.max(state.at + step, 0), state.history.length - 1);
  applySliders(state.history[state.at]);
  updateHistoryButtons();
  updatePreview();
}

function updateHistoryButtons() {
  $("undo").disabled = state.at === 0;
  $("redo").disabled = state.at === state.history.length - 1;
}

function editParams() {
  const params = new URLSearchParams({ latent_id: state.latentId, paste: String(state.fromPhoto) });
  for (const [attribute, strength] of Object.entries(sliderValues())) {
    params.append("attribute", attribute);
    params.append("strength", strength);
  }
  return params;
}

let timer = null;
function schedulePreview() {
  clearTimeout(timer);
  timer = setTimeout(updatePreview, 40);
}

// At most one preview request in flight; moves made meanwhile collapse into one more.
async function updatePreview() {
  if (!state.latentId) return;
  if (state.inFlight) { state.pending = true; return; }
  state.inFlight = true;
  const latentId = state.latentId;
  try {
    const blob = await busy("updating…", previewBlob);
    if (latentId === state.latentId) { state.result = blob; state.resultIsJob = false; setImage($("result"), blob); }
    showError("");
  } catch (e) {
    showError(e.message);
  } finally {
    state.inFlight = false;
    if (state.pending) { state.pending = false; updatePreview(); }
  }
}

// A slider preview of a photo asks only for the rectangle the edit touched and draws it over the
// photo the page already has: a small answer, quick to make. The download asks for the exact photo.
async function previewBlob() {
  const params = editParams();
  const photo = state.photo;
  if (!state.fromPhoto || !photo) return (await api("/edit?" + params, { method: "POST" })).blob();
  params.set("tile", "true");
  const response = await api("/edit?" + params, { method: "POST" });
  const [w, h] = response.headers.get("X-Photo-Size").split(",").map(Number);
  const [x0, y0, x1, y1] = response.headers.get("X-Tile-Box").split(",").map(Number);
  const tile = await createImageBitmap(await response.blob());
  if (w !== photo.width || h !== photo.height) { // the service scaled a huge photo: ask for all of it
    params.delete("tile");
    return (await api("/edit?" + params, { method: "POST" })).blob();
  }
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(photo, 0, 0);
  ctx.clearRect(x0, y0, x1 - x0, y1 - y0); // the tile carries its own transparency
  ctx.drawImage(tile, x0, y0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function download() {
  let blob = state.result;
  if (!blob) return;
  if (!state.resultIsJob) {
    try {
      blob = await busy("preparing the photo…", async () => (await api("/edit?" + editParams(), { method: "POST" })).blob());
    } catch (e) { showError(e.message); return; }
  }
  const ext = { "image/jpeg": "jpg", "image/webp": "webp" }[blob.type] || "png";
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `edited-photo.${ext}`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// Deletes the photo from the service (and the jobs made from it), and from this page.
async function forget() {
  const id = state.latentId;
  if (!id) return;
  let response = null;
  try {
    response = await busy("deleting your photo…", () => fetch(`/latents/${encodeURIComponent(id)}`, { method: "DELETE" }));
  } catch (e) { /* unreachable: said below */ }
  if (!response || !(response.ok || response.status === 404)) { // 404: already gone (it expired)
    showError("Your photo could not be deleted right now. Try again in a moment.");
    return;
  }
  clearEditor();
  state.file = null;
  state.photo = null;
  $("file").value = "";
  for (const img of [$("original"), $("result")]) { setImage(img, ""); img.removeAttribute("src"); }
  showError("");
  $("notice").textContent = "Your photo was deleted from the service.";
  $("notice").hidden = false;
}

function compare(on) {
  $("compare").setAttribute("aria-pressed", String(on));
  $("original").hidden = !on;
  $("result").hidden = on;
}

// --- refine, brush, custom sliders ---------------------------------------------------------------

async function runJob(body, bar, status, button) {
  button.disabled = true;
  try {
    const job = await (await api("/edits/optimized", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    })).json();
    const blob = await pollJob(job, bar, status);
    state.result = blob;
    state.resultIsJob = true;
    setImage($("result"), blob);
  } catch (e) {
    showError(e.message);
    status.textContent = "";
  } finally {
    button.disabled = false;
  }
}

function builtinEdits() {
  return Object.entries(sliderValues())
    .filter(([a]) => !a.startsWith("custom-"))
    .map(([attribute, strength]) => ({ attribute, strength }));
}

const strokes = document.createElement("canvas");
strokes.width = strokes.height = 256;

function loadBrushFace() {
  strokes.getContext("2d").clearRect(0, 0, 256, 256);
  $("brush-apply").disabled = true;
  redrawBrush();
}

function redrawBrush() {
  const ctx = $("brush").getContext("2d");
  const face = new Image();
  face.onload = () => { ctx.imageSmoothingEnabled = true; ctx.drawImage(face, 0, 0, 256, 256); ctx.drawImage(strokes, 0, 0); };
  if (state.aligned) face.src = state.aligned;
}

function paint(event) {
  const canvas = $("brush");
  const r = canvas.getBoundingClientRect();
  const x = ((event.clientX - r.left) / r.width) * 256, y = ((event.clientY - r.top) / r.height) * 256;
  const ctx = strokes.getContext("2d");
  ctx.fillStyle = $("brush-colour").value;
  ctx.beginPath();
  ctx.arc(x, y, Number($("brush-size").value) / 2, 0, 2 * Math.PI);
  ctx.fill();
  $("brush-apply").disabled = false;
  redrawBrush();
}

function brushImages() {
  const mask = document.createElement("canvas");
  mask.width = mask.height = 256;
  const m = mask.getContext("2d");
  m.fillStyle = "#000";
  m.fillRect(0, 0, 256, 256);
  m.globalCompositeOperation = "source-over";
  const painted = strokes.getContext("2d").getImageData(0, 0, 256, 256);
  const out = m.getImageData(0, 0, 256, 256);
  for (let i = 3; i < painted.data.length; i += 4) {
    if (painted.data[i] > 0) out.data[i - 3] = out.data[i - 2] = out.data[i - 1] = 255;
  }
  m.putImageData(out, 0, 0);
  return { strokes: strokes.toDataURL("image/png"), mask: mask.toDataURL("image/png") };
}

async function makeCustom() {
  const w = $("custom-with").files, wo = $("custom-without").files;
  const body = new FormData();
  for (const f of w) body.append("with", f);
  for (const f of wo) body.append("without", f);
  const name = $("custom-name").value.trim() || "my look";
  $("custom-status").textContent = "";
  try {
    const made = await busy("learning your slider…", async () =>
      (await api(`/attributes/custom?name=${encodeURIComponent(name)}`, { method: "POST", body })).json());
    const attr = { name: made.id, label: name, description: `your own slider, from ${made.faces_with} + ${made.faces_without} photos` };
    addSlider(attr, $("sliders"));
    $("sliders").prepend($("sliders").lastChild);
    $("custom-status").textContent = `"${name}" is ready: it is the first slider.`;
  } catch (e) {
    showError(e.message);
  }
}

// --- morph and generated faces ---------------------------------------------------------------------

async function morph(file) {
  showError("");
  if (!file || !state.latentId) return;
  try {
    const body = new FormData();
    body.append("file", file);
    const other = await busy("encoding the second face…", async () => (await api("/encode", { method: "POST", body })).json());
    const q = new URLSearchParams({ from: state.latentId, to: other.latent_id, steps: 16 });
    const frames = (await (await api("/interpolate?" + q + "&format=json")).json()).frames;
    setImage($("morph-gif"), await (await api("/interpolate?" + q + "&format=gif")).blob());
    const t = $("morph-t");
    t.max = frames.length - 1;
    t.value = 0;
    $("morph-frame").src = frames[0];
    t.oninput = () => { $("morph-frame").src = frames[Number(t.value)]; };
    $("morph").hidden = false;
  } catch (e) {
    showError(e.message);
  }
}

async function showGenerated() {
  try {
    const seed = Math.floor(Math.random() * 1e6);
    const faces = (await (await api(`/generate?n=6&seed=${seed}&format=json`)).json()).faces;
    const box = $("generated");
    box.replaceChildren();
    for (const [i, f] of faces.entries()) {
      const b = document.createElement("button");
      b.type = "button";
      b.innerHTML = `<img src="${f.image}" alt="generated face ${i + 1}">`;
      b.addEventListener("click", () => {
        clearEditor();
        state.fromPhoto = false;
        state.faces = [];
        $("original").src = f.image;
        drawFaces();
        openEditor(f.latent_id, f.image);
      });
      box.appendChild(b);
    }
  } catch (e) {
    showError(e.message);
  }
}

// --- wiring --------------------------------------------------------------------------------------

async function init() {
  $("file").addEventListener("change", (e) => useFile(e.target.files[0]));
  $("file2").addEventListener("change", (e) => morph(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); useFile(e.dataTransfer.files[0]); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
  $("more").addEventListener("click", showGenerated);
  $("faces").addEventListener("click", (e) => { const i = faceAt(e); if (i >= 0 && i !== state.face) useFile(state.file, i); });
  $("undo").addEventListener("click", () => moveHistory(-1));
  $("redo").addEventListener("click", () => moveHistory(1));
  $("reset").addEventListener("click", () => { applySliders({}); pushHistory(); updatePreview(); });
  $("download").addEventListener("click", download);
  $("forget").addEventListener("click", forget);
  const cmp = $("compare");
  for (const [ev, on] of [["pointerdown", true], ["pointerup", false], ["pointerleave", false]]) cmp.addEventListener(ev, () => compare(on));
  cmp.addEventListener("keydown", (e) => { if (e.key === " " || e.key === "Enter") { e.preventDefault(); compare(true); } });
  cmp.addEventListener("keyup", () => compare(false));
  $("optimize").addEventListener("click", () =>
    runJob({ latent_id: state.latentId, edits: builtinEdits(), steps: 100 }, $("job-progress"), $("job-status"), $("optimize")));
  const brush = $("brush");
  let painting = false;
  brush.addEventListener("pointerdown", (e) => { painting = true; brush.setPointerCapture(e.pointerId); paint(e); });
  brush.addEventListener("pointermove", (e) => { if (painting) paint(e); });
  brush.addEventListener("pointerup", () => { painting = false; });
  $("brush-clear").addEventListener("click", loadBrushFace);
  $("brush-apply").addEventListener("click", () =>
    runJob({ latent_id: state.latentId, edits: builtinEdits(), steps: 150, lambda2: 0.001, ...brushImages() },
      $("brush-progress"), $("brush-status"), $("brush-apply")));
  $("custom-make").addEventListener("click", makeCustom);
  try {
    const info = await (await api("/attributes")).json();
    state.attributes = info.attributes; // served most useful first
    state.max = info.max_strength;
    state.latent = info.latent;
    // The image-to-image editor has no latent space: no morph, invented faces or custom slider
    for (const el of [$("more").parentElement, $("generated"), $("custom-panel")]) {
      el.hidden = !info.latent;
    }
    state.attributes.forEach((a, i) => addSlider(a, i < FEATURED ? $("sliders") : $("more-sliders")));
  } catch (e) {
    showError(e.message);
  }
}

init();
