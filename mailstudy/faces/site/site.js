// The static explorer: start Pyodide from files loaded as <script>s (a page opened from disk may not fetch), put
// mailstudy's sources into its file system, and show what mailstudy.faces.static_site.page_json returns.
"use strict";
const $ = (sel) => document.querySelector(sel);
const COLOURS = { up: "#1f5fa8", down: "#2e7d32", fail: "#d9480f", tls: "#6d6d6d" };
let py = null;
let shown = null;

function bytesOf(b64) {
  const s = atob(b64);
  const a = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
  return a;
}

// Pyodide asks for these files by name; a file:// page may not fetch them, so they are answered from memory.
const realFetch = window.fetch.bind(window);
window.fetch = async (url, opts) => {
  const name = String(url).split("/").pop();
  const b64 = window.MS_RUNTIME.files[name];
  if (b64 === undefined) return realFetch(url, opts);
  const type = name.endsWith(".wasm") ? "application/wasm" : name.endsWith(".json") ? "application/json"
    : "application/zip";
  return new Response(bytesOf(b64), { headers: { "Content-Type": type } });
};

function busy(text) { $(".ms-busy").textContent = text ? "⏳ " + text : ""; }

function clearViews() {
  shown = null;
  for (const sel of [".ms-status", ".ms-warnings", ".ms-exchanges", ".ms-exchange-text", ".ms-ladder"]) {
    $(sel).innerHTML = "";
  }
  $(".ms-session").innerHTML = "";
  $(".ms-exchange").innerHTML = "";
}

function ladderSvg(s) {
  const rowH = 34, left = 110, width = 760, top = 40;
  const xs = { client: left, server: left + width };
  const n = s.flights.length;
  const h = top + rowH * n + 30;
  const esc = (t) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  let out = `<svg xmlns="http://www.w3.org/2000/svg" class="ms-ladder-svg" width="${left + width + 160}" height="${h}"
    font-family="monospace" font-size="12"><defs>`;
  for (const [k, c] of Object.entries(COLOURS)) {
    out += `<marker id="a-${k}" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">
      <path d="M0,0 L10,4 L0,8 z" fill="${c}"/></marker>`;
  }
  out += `</defs><text x="${xs.client}" y="16" text-anchor="middle" font-weight="bold">client ${esc(s.client)}</text>
    <text x="${xs.server}" y="16" text-anchor="middle" font-weight="bold">server ${esc(s.server)}</text>
    <line x1="${xs.client}" y1="24" x2="${xs.client}" y2="${h - 10}" stroke="#444" stroke-width="1.6"/>
    <line x1="${xs.server}" y1="24" x2="${xs.server}" y2="${h - 10}" stroke="#444" stroke-width="1.6"/>`;
  s.flights.forEach((f, i) => {
    const y = top + rowH * i, y2 = y + rowH * 0.55;
    const [x1, x2] = f.up ? [xs.client, xs.server] : [xs.server, xs.client];
    const c = COLOURS[f.colour] || "#333";
    out += `<text x="${left - 10}" y="${y + 4}" text-anchor="end" font-size="11">${f.t_ms.toFixed(3)} ms</text>
      <line class="ms-arrow" x1="${x1}" y1="${y}" x2="${x2}" y2="${y2}" stroke="${c}" stroke-width="1.4"
        marker-end="url(#a-${f.colour})"/>
      <text x="${(xs.client + xs.server) / 2}" y="${(y + y2) / 2 - 3}" text-anchor="middle" fill="${c}"
        paint-order="stroke" stroke="white" stroke-width="4">${esc(f.text)}</text>`;
  });
  return out + "</svg>";
}

function showSession(i) {
  const s = shown.sessions[i];
  $(".ms-warnings").innerHTML = s.warnings;
  $(".ms-exchanges").innerHTML = s.table;
  $(".ms-exchange").innerHTML = s.choices.map(([label, idx]) => `<option value="${idx}">${label
    .replace(/&/g, "&amp;").replace(/</g, "&lt;")}</option>`).join("");
  $(".ms-exchange-text").innerHTML = s.choices.length ? "<i>click an exchange on the left</i>" : "";
  $(".ms-ladder").innerHTML = ladderSvg(s);
}

async function open(name, bytes) {
  $(".ms-error").textContent = "";
  busy("reading " + name + "…");
  await new Promise((r) => setTimeout(r, 0)); // let the busy line paint before Python works
  try {
    py.globals.set("ms_name", name);
    py.globals.set("ms_data", bytes);
    const result = JSON.parse(py.runPython(
      "from mailstudy.faces.static_site import page_json\npage_json(ms_name, ms_data.to_py())"));
    if (result.error) {
      clearViews();
      $(".ms-capture").value = "";
      $(".ms-error").textContent = "⚠ " + result.error;
      return;
    }
    shown = result;
    $(".ms-status").innerHTML = `<b>${result.name}</b>: ${result.sessions.length} mail session(s), `
      + `${result.packets.toLocaleString("en")} packets`;
    $(".ms-session").innerHTML = result.sessions.map((s, i) => `<option value="${i}">${s.label
      .replace(/&/g, "&amp;").replace(/</g, "&lt;")}</option>`).join("");
    $(".ms-session").value = String(result.busiest);
    showSession(result.busiest);
  } catch (e) {
    clearViews();
    $(".ms-error").textContent = "⚠ " + String(e).split("\n").filter(Boolean).pop();
  } finally {
    busy("");
  }
}

async function start() {
  for (const name of Object.keys(window.MS_CAPTURES)) {
    $(".ms-capture").insertAdjacentHTML("beforeend", `<option value="${name}">${name}</option>`);
  }
  const asm = await import(URL.createObjectURL(new Blob([window.MS_RUNTIME.asm], { type: "text/javascript" })));
  py = await loadPyodide({ indexURL: "./", createPyodideModule: asm.default });
  for (const [path, source] of Object.entries(window.MS_MODULES)) {
    py.FS.mkdirTree("/home/pyodide/" + path.split("/").slice(0, -1).join("/"));
    py.FS.writeFile("/home/pyodide/" + path, source);
  }
  py.runPython("import sys; sys.path.insert(0, '/home/pyodide')");
  busy("");
  document.body.dataset.ready = "yes";
}

$(".ms-capture").addEventListener("change", (ev) => {
  const name = ev.target.value;
  if (name) open(name, bytesOf(window.MS_CAPTURES[name]));
});
$(".ms-upload").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  $(".ms-capture").value = "";
  await open(file.name, new Uint8Array(await file.arrayBuffer()));
  ev.target.value = ""; // the same file chosen again is read again
});
$(".ms-session").addEventListener("change", (ev) => showSession(Number(ev.target.value)));
$(".ms-exchange").addEventListener("change", (ev) => {
  const s = shown.sessions[Number($(".ms-session").value)];
  $(".ms-exchange-text").innerHTML = s.texts[ev.target.value] || "<i>(not kept in this page)</i>";
});
start().catch((e) => { busy(""); $(".ms-error").textContent = "⚠ Python did not start in this page: " + e; });
