// The web page's logic: upload (or pick an example), POST /v1/interpret, render the result.
"use strict";

const SUPER_NAMES = {
  NORM: "Normal ECG",
  MI: "Myocardial infarction",
  STTC: "ST/T change",
  CD: "Conduction disturbance",
  HYP: "Hypertrophy",
};
const MEASURES = {
  hr: ["Heart rate", "bpm"], pr: ["PR interval", "ms"], qrs: ["QRS duration", "ms"],
  qt: ["QT interval", "ms"], qtc: ["QTc", "ms"], axis: ["Axis", "°"],
};
const THRESHOLD = 0.5;
const $ = (id) => document.getElementById(id);
let lastResult = null;
let authRequired = false;

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.appendChild(c);
  return node;
}

function pct(p) { return (100 * p).toFixed(1) + " %"; }

function bar(p) {
  const fill = el("i");
  fill.style.width = Math.max(0, Math.min(100, 100 * p)).toFixed(1) + "%";
  return el("div", { class: "bar" }, [fill]);
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function checkHealth() {
  try {
    const r = await fetch("/health");
    const h = await r.json();
    $("model-name").textContent = "model: " + h.model;
    $("status-dot").className = "dot ok";
    authRequired = h.auth_required;
    $("model-warning").textContent = h.warning ? "Warning: " + h.warning : "";
    $("model-warning").hidden = !h.warning;
    $("token-row").hidden = !authRequired;
  } catch (e) {
    $("model-name").textContent = "server unreachable";
    $("status-dot").className = "dot bad";
  }
}

async function loadExamples() {
  try {
    const r = await fetch("/v1/examples");
    const { examples } = await r.json();
    const list = $("example-list");
    for (const ex of examples) {
      const label = ex.title || ex.name.replace(/\.png$/, "").replace(/[-_]/g, " ");
      const b = el("button", { class: "example-btn", type: "button", text: label, "data-name": ex.name });
      b.addEventListener("click", async () => {
        const blob = await (await fetch(ex.url)).blob();
        interpret(new File([blob], ex.name, { type: "image/png" }));
      });
      list.appendChild(b);
    }
    $("examples").hidden = examples.length === 0;
  } catch (e) { /* examples are optional */ }
}

async function interpret(file) {
  showError("");
  $("placeholder").hidden = true;
  $("output").hidden = true;
  $("busy").hidden = false;
  $("preview").hidden = false;
  $("preview-img").src = URL.createObjectURL(file);
  $("preview-caption").textContent = `${file.name} · ${(file.size / 1024).toFixed(0)} KB`;
  const form = new FormData();
  form.append("image", file, file.name);
  const headers = {};
  const token = $("token").value.trim();
  if (token) headers["Authorization"] = "Bearer " + token;
  try {
    const r = await fetch("/v1/interpret", { method: "POST", body: form, headers });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      if (r.status === 401) $("token-row").hidden = false;
      const msg = (body.error && body.error.message) || `request failed (HTTP ${r.status})`;
      throw new Error(msg);
    }
    lastResult = body;
    render(body);
  } catch (e) {
    showError(e.message);
    $("placeholder").hidden = false;
  } finally {
    $("busy").hidden = true;
  }
}

function render(res) {
  // A section the model was not fine-tuned for is not asked; the server says why.
  const skipped = res.skipped || {};
  const note = (section) => el("p", { class: "muted skipped", text: skipped[section] });
  $("report").textContent = skipped.report || res.report || "(the model returned an empty report)";
  $("report").classList.toggle("muted", Boolean(skipped.report));

  const sc = $("superclasses");
  sc.replaceChildren();
  if (skipped.superclasses) sc.appendChild(note("superclasses"));
  for (const [code, p] of Object.entries(res.superclasses)) {
    const label = el("div", { class: "bar-label" }, [
      el("b", { text: SUPER_NAMES[code] || code }), el("span", { text: ` (${code})` }),
    ]);
    sc.appendChild(el("div", { class: "bar-row" + (p >= THRESHOLD ? " hit" : "") }, [
      label, bar(p), el("div", { class: "pct", text: pct(p) }),
    ]));
  }

  const showAll = $("show-all").checked;
  const rows = res.statements.filter((s) => showAll || s.probability >= THRESHOLD);
  const tbody = $("statements");
  tbody.replaceChildren();
  for (const s of rows) {
    const cell = el("div", { class: "prob-cell" }, [bar(s.probability), el("span", { class: "pct", text: pct(s.probability) })]);
    tbody.appendChild(el("tr", { class: s.probability >= THRESHOLD ? "hit" : "" }, [
      el("td", { class: "code", text: s.code }),
      el("td", { text: s.description }),
      el("td", {}, [cell]),
    ]));
  }
  $("show-all").parentElement.hidden = Boolean(skipped.statements);
  $("no-statements").textContent = skipped.statements || "No statement reaches 50 %.";
  $("no-statements").hidden = rows.length > 0;

  const ms = $("measurements");
  ms.replaceChildren();
  const entries = Object.entries(res.measurements || {});
  if (skipped.measurements) ms.appendChild(note("measurements"));
  else if (entries.length === 0) ms.appendChild(el("p", { class: "muted", text: "The model gave no usable measurement." }));
  for (const [k, v] of entries) {
    const [name, unit] = MEASURES[k] || [k, ""];
    ms.appendChild(el("div", { class: "measure" }, [
      el("div", { class: "k", text: name }),
      el("div", {}, [el("span", { class: "v", text: String(Math.round(v)) }), el("span", { class: "u", text: unit })]),
    ]));
  }

  const t = res.timings || {};
  $("meta").textContent = `Model ${res.model} · ${t.total_ms != null ? t.total_ms + " ms model time" : ""}` +
    (t.batch_size > 1 ? ` · batched with ${t.batch_size - 1} other request(s)` : "");
  $("output").hidden = false;
}

function setup() {
  const input = $("file-input");
  input.addEventListener("change", () => { if (input.files.length) interpret(input.files[0]); });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) interpret(e.dataTransfer.files[0]);
  });
  $("show-all").addEventListener("change", () => { if (lastResult) render(lastResult); });
  checkHealth();
  loadExamples();
}

document.addEventListener("DOMContentLoaded", setup);
