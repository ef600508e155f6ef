// The face editor page: plain JavaScript over the service's JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
const FEATURED = 8; // sliders shown before "All 40 attributes"
const state = { latentId: null, photo: null, box: null, attributes: [], defaultStrength: 1, max: 5,
                editSeq: 0, inFlight: false, pending: false, faceBlobUrl: null };

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
  if (message) el.scrollIntoView({ block: "nearest" });
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new Error("The service cannot be reached. Check your connection and try again.");
  }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    const friendly = { 413: "The photo is too large. ", 415: "That file is not an image. ", 429: "The service is busy. ", 503: "The service is not available right now. " };
    throw new Error((friendly[response.status] || "") + (typeof detail === "string" ? detail : JSON.stringify(detail)));
  }
  return response;
}

function drawPhoto(file, box) {
  const img = new Image();
  img.onload = () => {
    const canvas = $("photo");
    const scale = Math.min(512 / img.width, 512 / img.height, 1);
    canvas.width = Math.round(img.width * scale);
    canvas.height = Math.round(img.height * scale);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    if (box) {
      ctx.strokeStyle = "#f5a623";
      ctx.lineWidth = 3;
      ctx.strokeRect(box[0] * scale, box[1] * scale, box[2] * scale, box[3] * scale);
    }
    URL.revokeObjectURL(img.src);
  };
  img.src = URL.createObjectURL(file);
}

async function encode(file) {
  const body = new FormData();
  body.append("file", file);
  const data = await (await api("/encode", { method: "POST", body })).json();
  return data;
}

async function useFile(file) {
  showError("");
  if (!file) return;
  $("busy").textContent = "(finding the face…)";
  try {
    const data = await encode(file);
    state.latentId = data.latent_id;
    state.photo = file;
    drawPhoto(file, data.face_box);
    showFace(data.aligned, data.reconstruction);
    $("download-photo").disabled = false;
  } catch (e) {
    showError(e.message);
  } finally {
    $("busy").textContent = "";
  }
}

function showFace(aligned, reconstruction) {
  $("aligned").src = aligned;
  $("recon").src = reconstruction;
  $("preview").src = reconstruction;
  for (const id of ["face-section", "edit-section", "morph-section"]) $(id).hidden = false;
  resetSliders(false);
  $("job-result").hidden = $("job-caption").hidden = true;
  updatePreview();
}

function buildSliders() {
  for (const [i, attr] of state.attributes.entries()) {
    const wrap = document.createElement("div");
    wrap.className = "slider";
    const id = `s-${attr.name}`;
    wrap.innerHTML = `<label for="${id}" title="${attr.description}">${attr.name.replaceAll("_", " ")}</label>
      <input id="${id}" type="range" min="${-state.max}" max="${state.max}" step="0.1" value="0" data-attribute="${attr.name}" aria-describedby="${id}-d">
      <output id="${id}-o" for="${id}">0</output><span id="${id}-d" hidden>${attr.description}</span>`;
    const input = wrap.querySelector("input");
    input.addEventListener("input", () => { $(`${id}-o`).textContent = Number(input.value).toFixed(1); schedulePreview(); });
    (i < FEATURED ? $("sliders") : $("more-sliders")).appendChild(wrap);
  }
}

function currentEdits() {
  return [...document.querySelectorAll("input[data-attribute]")]
    .filter((s) => Number(s.value) !== 0)
    .map((s) => ({ attribute: s.dataset.attribute, strength: Number(s.value) }));
}

function editParams(extra = {}) {
  const params = new URLSearchParams({ latent_id: state.latentId, ...extra });
  for (const e of currentEdits()) { params.append("attribute", e.attribute); params.append("strength", e.strength); }
  return params;
}

// Live preview: at most one request in flight; moves made meanwhile collapse into one more.
let timer = null;
function schedulePreview() {
  clearTimeout(timer);
  timer = setTimeout(updatePreview, 60);
}

async function updatePreview() {
  if (!state.latentId) return;
  if (state.inFlight) { state.pending = true; return; }
  state.inFlight = true;
  $("busy").textContent = "(updating…)";
  try {
    const blob = await (await api("/edit?" + editParams({ paste: "false" }), { method: "POST" })).blob();
    if (state.faceBlobUrl) URL.revokeObjectURL(state.faceBlobUrl);
    state.faceBlobUrl = URL.createObjectURL(blob);
    $("preview").src = state.faceBlobUrl;
    $("download-face").href = state.faceBlobUrl;
    showError("");
  } catch (e) {
    showError(e.message);
  } finally {
    state.inFlight = false;
    $("busy").textContent = "";
    if (state.pending) { state.pending = false; updatePreview(); }
  }
}

function resetSliders(update = true) {
  for (const s of document.querySelectorAll("input[data-attribute]")) {
    s.value = 0;
    $(`${s.id}-o`).textContent = "0";
  }
  if (update) updatePreview();
}

async function downloadPhoto() {
  try {
    const blob = await (await api("/edit?" + editParams({ paste: "true" }), { method: "POST" })).blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = blob.type === "image/jpeg" ? "edited-photo.jpg" : "edited-photo.png";
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (e) {
    showError(e.message);
  }
}

async function runOptimized() {
  const button = $("optimize");
  button.disabled = true;
  $("job-progress").hidden = false;
  $("job-progress").value = 0;
  try {
    const job = await (await api("/edits/optimized", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ latent_id: state.latentId, edits: currentEdits(), steps: 100 }),
    })).json();
    for (;;) {
      const status = await (await api(job.status_url)).json();
      $("job-progress").value = status.progress;
      $("job-status").textContent = `${status.status} ${Math.round(status.progress * 100)}%`;
      if (status.status === "failed") throw new Error("The optimised edit failed: " + status.error);
      if (status.status === "succeeded") break;
      await new Promise((r) => setTimeout(r, 300));
    }
    const blob = await (await api(job.result_url)).blob();
    $("job-result").src = URL.createObjectURL(blob);
    $("job-result").hidden = $("job-caption").hidden = false;
  } catch (e) {
    showError(e.message);
    $("job-status").textContent = "";
  } finally {
    button.disabled = false;
  }
}

async function morph(file) {
  showError("");
  if (!file || !state.latentId) return;
  try {
    const other = await encode(file);
    const q = new URLSearchParams({ from: state.latentId, to: other.latent_id, steps: 16 });
    const frames = (await (await api("/interpolate?" + q + "&format=json")).json()).frames;
    const gif = await (await api("/interpolate?" + q + "&format=gif")).blob();
    $("morph-gif").src = URL.createObjectURL(gif);
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
        state.latentId = f.latent_id;
        state.photo = null;
        drawPhoto(dataUrlToBlob(f.image), null);
        $("download-photo").disabled = true; // a generated face has no photo to paste into
        showFace(f.image, f.image);
      });
      box.appendChild(b);
    }
  } catch (e) {
    showError(e.message);
  }
}

function dataUrlToBlob(url) {
  const bytes = atob(url.split(",")[1]);
  return new Blob([Uint8Array.from(bytes, (c) => c.charCodeAt(0))], { type: "image/png" });
}

async function init() {
  $("file").addEventListener("change", (e) => useFile(e.target.files[0]));
  $("file2").addEventListener("change", (e) => morph(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); useFile(e.dataTransfer.files[0]); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
  $("more").addEventListener("click", showGenerated);
  $("reset").addEventListener("click", () => resetSliders());
  $("download-photo").addEventListener("click", downloadPhoto);
  $("optimize").addEventListener("click", runOptimized);
  try {
    const info = await (await api("/attributes")).json();
    const order = info.attributes; // served most useful first
    state.attributes = order;
    state.defaultStrength = info.default_strength;
    state.max = info.max_strength;
    buildSliders();
  } catch (e) {
    showError(e.message);
  }
}

init();
