// TinyAct dashboard: polls the service's /v1/dashboard/* endpoints with the token given at sign-in.
// No framework and no CDN: the only library is the vendored uPlot (static/vendor, MIT).
"use strict";

const PALETTE = ["#2f6fed", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16",
  "#f97316", "#6366f1", "#14b8a6", "#a855f7", "#64748b", "#eab308", "#0ea5e9", "#d946ef"];
const state = { token: sessionStorage.getItem("tinyact-token"), hours: 24, cursor: 0, labels: [], plot: null,
  plotKey: "", timers: [], role: null };
const $ = (sel) => document.querySelector(sel);

function colour(label) {
  const i = state.labels.indexOf(label);
  if (i >= 0) return PALETTE[i % PALETTE.length];
  let h = 0;
  for (const c of label) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    throw Object.assign(new Error(body.detail || "not allowed"), { auth: true });
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function setStatus(ok, text) {
  const el = $("#status");
  el.className = "status " + (ok ? "live" : "down");
  el.textContent = text;
}

function ago(iso) {
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function cell(row, content, cls) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content); else td.textContent = content;
  if (cls) td.className = cls;
  row.append(td);
  return td;
}

function chip(label) {
  const span = document.createElement("span");
  span.className = "chip";
  span.style.background = colour(label);
  span.textContent = label;
  return span;
}

// ---- per camera -----------------------------------------------------------------------------------------
async function refreshSummary() {
  const data = await api(`/v1/dashboard/summary?hours=${state.hours}`);
  state.role = data.role;
  if (data.model) {
    state.labels = data.model.labels;
    $("#model").textContent = `model ${data.model.version} · ${data.model.labels.length} actions`;
  } else {
    $("#model").textContent = "no model loaded";
  }
  $("#export").hidden = data.role !== "admin";
  $("#cameras-window").textContent = `(clips in the last ${state.hours >= 48 ? state.hours / 24 + " d" : state.hours + " h"})`;
  const body = $("#cameras tbody");
  body.replaceChildren();
  const most = Math.max(1, ...data.cameras.map((c) => c.count));
  for (const cam of data.cameras) {
    const tr = document.createElement("tr");
    tr.dataset.camera = `${cam.device}/${cam.camera}`;
    cell(tr, `${cam.device}/${cam.camera}`);
    const count = document.createElement("span");
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(2, (80 * cam.count) / most)}px`;
    count.append(bar, document.createTextNode(String(cam.count)));
    cell(tr, count);
    cell(tr, cam.last_label ? chip(cam.last_label) : "–");
    cell(tr, cam.last_at ? ago(cam.last_at) : "–", "muted");
    body.append(tr);
  }
}

// ---- latest ---------------------------------------------------------------------------------------------
async function refreshLatest() {
  const data = await api(`/v1/dashboard/latest?since=${state.cursor}&limit=50`);
  const body = $("#latest tbody");
  const fresh = state.cursor > 0;
  for (const row of data.rows.slice().reverse()) {  // oldest first, each prepended
    const tr = document.createElement("tr");
    tr.dataset.id = row.id;
    if (fresh) tr.className = "new";
    cell(tr, new Date(row.captured_at).toLocaleString());
    cell(tr, `${row.device}/${row.camera}`);
    cell(tr, chip(row.label)).dataset.label = row.label;
    cell(tr, row.score.toFixed(3));
    cell(tr, row.top5.slice(1).map((t) => `${t.label} ${t.score.toFixed(2)}`).join(", "), "top5");
    cell(tr, row.model_version, "muted");
    body.prepend(tr);
  }
  while (body.rows.length > 50) body.deleteRow(body.rows.length - 1);
  const changed = data.cursor > state.cursor;
  state.cursor = data.cursor;
  return changed && fresh;
}

// ---- timeline (stacked bars per action) -----------------------------------------------------------------
async function refreshTimeline() {
  const data = await api(`/v1/dashboard/timeline?hours=${state.hours}&buckets=60`);
  const labels = Object.keys(data.series);
  $("#timeline-empty").hidden = labels.length > 0;
  // Stack: draw the running totals from the top down, so each smaller total paints over the bottom part of
  // the one before it and the visible slice of each bar is that action's count.
  const raw = labels.map((l) => data.series[l]);
  const totals = [];
  let acc = data.t.map(() => 0);
  for (const series of raw) {
    acc = acc.map((v, i) => v + series[i]);
    totals.push(acc);
  }
  const order = labels.map((_, i) => labels.length - 1 - i);
  const uData = [data.t, ...order.map((i) => totals[i])];
  const key = `${state.hours}|${labels.join(",")}`;
  if (state.plot && state.plotKey === key) {
    state.plot.setData(uData);
    return;
  }
  if (state.plot) state.plot.destroy();
  const el = $("#timeline");
  el.replaceChildren();
  if (!labels.length) { state.plot = null; state.plotKey = key; return; }
  const bars = uPlot.paths.bars({ size: [0.9, 40] });
  const opts = {
    width: Math.max(320, el.clientWidth),
    height: 300,
    scales: { x: { time: true } },
    axes: [{}, { label: "clips", size: 50 }],
    legend: { live: true },
    cursor: { points: { show: false } },
    series: [
      {},
      ...order.map((i) => ({
        label: labels[i],
        stroke: colour(labels[i]),
        fill: colour(labels[i]),
        paths: bars,
        points: { show: false },
        value: (u, v, si, di) => (di == null ? "–" : String(raw[i][di])),
      })),
    ],
  };
  state.plot = new uPlot(opts, uData, el);
  state.plotKey = key;
}

// ---- unusual --------------------------------------------------------------------------------------------
async function refreshUnusual() {
  const data = await api("/v1/dashboard/unusual");
  const list = $("#unusual");
  list.replaceChildren();
  if (!data.items.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "Nothing unusual.";
    list.append(li);
  }
  for (const item of data.items.slice(0, 12)) {
    const li = document.createElement("li");
    const kind = document.createElement("span");
    kind.className = `kind ${item.kind}`;
    kind.textContent = item.kind;
    li.append(kind, document.createTextNode(item.message));
    list.append(li);
  }
}

// ---- loop, sign-in, export ------------------------------------------------------------------------------
async function tick(parts) {
  try {
    for (const part of parts) await part();
    setStatus(true, `live · updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    if (error.auth) return signOut(error.message);
    setStatus(false, `offline: ${error.message}`);
  }
}

function stopTimers() {
  state.timers.forEach(clearInterval);
  state.timers = [];
}

async function start() {
  $("#login-view").hidden = true;
  $("#dashboard").hidden = false;
  $("#logout").hidden = false;
  stopTimers();
  state.cursor = 0;
  $("#latest tbody").replaceChildren();
  await tick([refreshSummary, refreshLatest, refreshTimeline, refreshUnusual]);
  state.timers.push(setInterval(async () => {
    let changed = false;
    await tick([async () => { changed = await refreshLatest(); }]);
    if (changed) await tick([refreshSummary, refreshTimeline]);
  }, 2000));
  state.timers.push(setInterval(() => tick([refreshSummary, refreshTimeline, refreshUnusual]), 15000));
}

function signOut(message) {
  stopTimers();
  sessionStorage.removeItem("tinyact-token");
  state.token = null;
  $("#dashboard").hidden = true;
  $("#logout").hidden = true;
  $("#login-view").hidden = false;
  $("#login-error").textContent = message || "";
  setStatus(false, "signed out");
}

async function exportFile(format) {
  const response = await fetch(`/v1/export?format=${format}`, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!response.ok) return setStatus(false, `export failed: ${response.status}`);
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = `tinyact-predictions.${format}`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

window.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", async (event) => {
    event.preventDefault();
    state.token = $("#token").value.trim();
    try {
      await api("/v1/dashboard/summary?hours=1");
    } catch (error) {
      $("#login-error").textContent = error.auth ? "That token is not accepted." : error.message;
      return;
    }
    sessionStorage.setItem("tinyact-token", state.token);
    $("#login-error").textContent = "";
    start();
  });
  $("#logout").addEventListener("click", () => signOut());
  $("#ranges").addEventListener("click", (event) => {
    const hours = Number(event.target.dataset.hours);
    if (!hours) return;
    state.hours = hours;
    document.querySelectorAll("#ranges button").forEach((b) => b.classList.toggle("active", b === event.target));
    tick([refreshSummary, refreshTimeline]);
  });
  $("#export").addEventListener("click", (event) => event.target.dataset.format && exportFile(event.target.dataset.format));
  window.addEventListener("resize", () => {
    if (state.plot) state.plot.setSize({ width: Math.max(320, $("#timeline").clientWidth), height: 300 });
  });
  if (state.token) start(); else signOut();
});
