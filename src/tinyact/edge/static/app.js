// TinyAct edge page: polls /api/status and /api/history (cookie set at sign-in); no framework, no CDN.
// Live views are snapshots re-fetched when the agent writes a new one: an MJPEG <img> per camera would hold
// one of the browser's 6 connections per host each, and with 6+ cameras the page's own polling would starve.
"use strict";

const REFRESH_MS = 2000;
const state = { seen: new Set(), timer: null, first: true };
const $ = (sel) => document.querySelector(sel);

async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  if (response.status === 401) throw Object.assign(new Error("not signed in"), { auth: true });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function cell(row, content, cls) {
  const td = el("td", cls);
  if (content instanceof Node) td.append(content); else td.textContent = content ?? "";
  row.append(td);
  return td;
}

function stateText(up) {
  return up === true ? "up" : up === false ? "down" : "–";
}

// ---- camera grid --------------------------------------------------------------------------------------
function cameraCard(cam) {
  let card = document.querySelector(`.cam[data-camera="${CSS.escape(cam.camera_id)}"]`);
  if (!card) {
    card = el("div", "cam");
    card.dataset.camera = cam.camera_id;
    const view = el("div", "view");
    view.append(el("span", "badge"), el("span", "noimg", "waiting for a snapshot"));
    const caption = el("div", "caption");
    const left = el("div");
    left.append(el("div", "name", cam.camera_id), el("div", "action"));
    caption.append(left, el("div", "when"));
    card.append(view, caption, el("div", "err"));
    $("#cameras").append(card);
  }
  return card;
}

function renderCamera(cam) {
  const card = cameraCard(cam);
  card.classList.toggle("down", cam.up === false);
  const badge = card.querySelector(".badge");
  badge.className = "badge " + stateText(cam.up);
  badge.textContent = stateText(cam.up);
  card.querySelector(".action").textContent = cam.label ? `${cam.label} (${Math.round((cam.score || 0) * 100)} %)` : "no result yet";
  card.querySelector(".when").textContent = cam.captured_at ? clock(cam.captured_at) : "";
  card.querySelector(".when").title = cam.captured_at || "";
  const err = card.querySelector(".err");
  err.textContent = cam.error || "";
  err.hidden = !cam.error;
  const view = card.querySelector(".view");
  let img = view.querySelector("img");
  if (cam.snapshot_at) {
    const src = `/snapshots/${encodeURIComponent(cam.camera_id)}.jpg?t=${cam.snapshot_at}`;
    if (!img) {
      img = el("img");
      img.alt = `camera ${cam.camera_id}`;
      view.querySelector(".noimg")?.remove();
      view.prepend(img);
    }
    if (img.dataset.src !== src) { img.dataset.src = src; img.src = src; }
  }
}

function renderCameraTable(cameras) {
  const body = $("#camtable tbody");
  body.replaceChildren();
  for (const cam of cameras) {
    const row = el("tr");
    row.dataset.camera = cam.camera_id;
    cell(row, cam.camera_id);
    cell(row, stateText(cam.up), cam.up === false ? "state-down" : cam.up ? "state-up" : "");
    cell(row, cam.label || "");
    cell(row, cam.score != null ? cam.score.toFixed(2) : "");
    cell(row, ago(cam.captured_at));
    body.append(row);
  }
}

// ---- counters -----------------------------------------------------------------------------------------
const COUNTER_ORDER = ["captured", "delivered", "pending", "held", "dropped", "results"];

function renderCounters(counts, agent) {
  const body = $("#counters tbody");
  body.replaceChildren();
  const add = (key, value) => {
    const row = el("tr");
    row.dataset.key = key;
    cell(row, key.replaceAll("_", " "));
    cell(row, typeof value === "number" && !Number.isInteger(value) ? value.toFixed(1) : String(value));
    body.append(row);
  };
  const keys = COUNTER_ORDER.filter((k) => k in counts).concat(Object.keys(counts).filter((k) => !COUNTER_ORDER.includes(k)));
  for (const key of keys) add(key, counts[key]);
  for (const [key, value] of Object.entries(agent)) {
    if (value !== null && value !== "" && !(key in counts)) add(key, value);
  }
  const pending = counts.pending ?? 0;
  const held = counts.held ? ` (${counts.held} held)` : "";
  $("#outbox").textContent = `outbox: ${pending} pending${held} · ${counts.delivered ?? 0} delivered · ${counts.dropped ?? 0} dropped`;
  $("#device").textContent = agent.device_id || agent.device || "";
}

// ---- encoder mismatch ---------------------------------------------------------------------------------
function renderMismatch(mismatch) {
  const box = $("#mismatch");
  box.hidden = !mismatch;
  if (!mismatch) return;
  const cloud = mismatch.cloud_encoder_hash ? `the cloud's classifier ${mismatch.cloud_model_version || ""} expects encoder ${mismatch.cloud_encoder_hash}` : "the cloud's classifier expects another encoder";
  const edge = mismatch.edge_encoder_hash ? `this device runs encoder ${mismatch.edge_encoder_hash}` : "";
  const next = mismatch.next_check_in_s != null ? `; next check of the cloud's model in ${Math.round(mismatch.next_check_in_s)} s` : "";
  $("#mismatch-what").textContent = `${mismatch.held} clip(s) held since ${clock(mismatch.since)}: ${[cloud, edge].filter(Boolean).join(", ")}${next}.`;
  $("#mismatch-detail").textContent = mismatch.detail || "";
  $("#mismatch-fix").textContent = mismatch.fix || "";
}

// ---- history ------------------------------------------------------------------------------------------
function renderHistory(items) {
  const body = $("#history tbody");
  const rows = [];
  for (const item of items) {
    const row = el("tr");
    row.dataset.id = item.clip_id;
    if (!state.first && !state.seen.has(item.clip_id)) row.className = "new";
    state.seen.add(item.clip_id);
    cell(row, clock(item.captured_at)).title = item.captured_at || "";
    cell(row, item.camera_id);
    cell(row, item.label || "");
    cell(row, item.score != null ? Number(item.score).toFixed(2) : "");
    cell(row, el("span", `pill ${item.state || ""}`, item.state || ""));
    cell(row, el("code", "id", String(item.clip_id).slice(0, 8)));
    rows.push(row);
  }
  body.replaceChildren(...rows);
  state.first = false;
}

// ---- loop -----------------------------------------------------------------------------------------------
async function refresh() {
  try {
    const [status, history] = await Promise.all([api("/api/status"), api("/api/history?limit=50")]);
    const cameras = status.cameras;
    $("#cameras-count").textContent = `(${cameras.filter((c) => c.up !== false).length} of ${cameras.length} up)`;
    $("#cameras-empty").hidden = cameras.length > 0;
    for (const cam of cameras) renderCamera(cam);
    renderCameraTable(cameras);
    renderCounters(status.counts || {}, status.agent || {});
    renderMismatch(status.encoder_mismatch);
    renderHistory(history.items);
    const el_ = $("#status");
    el_.className = "status live";
    el_.textContent = `live · ${clock(status.now)}`;
  } catch (error) {
    if (error.auth) { showLogin(); return; }
    const el_ = $("#status");
    el_.className = "status down";
    el_.textContent = `agent not answering (${error.message})`;
  }
}

function showLogin() {
  clearInterval(state.timer);
  state.timer = null;
  $("#edge").hidden = true;
  $("#logout").hidden = true;
  $("#login-view").hidden = false;
}

function showEdge() {
  $("#login-view").hidden = true;
  $("#edge").hidden = false;
  $("#logout").hidden = false;
  refresh();
  if (!state.timer) state.timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch("/api/login", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: $("#token").value }),
    });
    if (!response.ok) { $("#login-error").textContent = "token not accepted"; return; }
    $("#login-error").textContent = "";
    $("#token").value = "";
    showEdge();
  });
  $("#logout").addEventListener("click", async () => {
    await fetch("/api/logout", { method: "POST", credentials: "same-origin" });
    $("#cameras").replaceChildren();
    showLogin();
  });
  api("/api/status").then(showEdge, (error) => (error.auth ? showLogin() : showEdge()));
});
