// The upload page. Plain DOM, no build step. It shows what the device screen shows, in the
// same words: the result in words, the calibrated bars (flagged classes in amber), the
// operating-point sentence, quality warnings, the model and the research-use notice.
"use strict";
const $ = (id) => document.getElementById(id);
let tokenRequired = false;
// The page's language's words, put in the page by the server (serve/words.rs). Records are in
// English: in English their own sentences are shown, otherwise the table's for their label,
// flags and warning codes (a record the table does not know keeps its own words).
const W = JSON.parse($("lang-words").textContent);

function flagKey(flags) {
  return flags.every((f) => W.order.includes(f)) ? W.order.filter((l) => flags.includes(l)).join("+") : null;
}

function resultWords(rec) {
  const flags = rec.decision ? rec.decision.flags : [];
  const key = flagKey(flags);
  const words = W.records || key === null ? undefined : W.results[rec.label + "|" + key];
  return words || rec.result || W.result;
}

function summaryWords(d) {
  const key = flagKey(d.flags);
  return (W.records || key === null ? undefined : W.summaries[key]) || d.summary;
}

function warningWords(w) {
  return (W.records ? undefined : W.quality[w.code]) || w.message;
}

function authHeaders() {
  const t = $("token").value.trim();
  if (t) sessionStorage.setItem("cxr-token", t);
  return tokenRequired && t ? { Authorization: "Bearer " + t } : {};
}

async function health() {
  try {
    const r = await fetch("/api/health");
    const h = await r.json();
    tokenRequired = !!h.token_required;
    if (tokenRequired) {
      $("tokenrow").style.display = "inline";
      $("token").value = sessionStorage.getItem("cxr-token") || "";
    }
    if (h.case_code && h.case_code !== "off") {
      $("caserow").style.display = "inline";
      $("case_code").required = h.case_code === "required";
    }
    if (h.status !== "ok") $("status").textContent = W.model_down + " " + h.status;
  } catch (e) {
    $("status").textContent = W.no_answer + " " + e;
  }
}

function text(el, s) { el.textContent = s == null ? "" : String(s); }

async function showPicture(img, url) {
  img.removeAttribute("src");
  if (!url) return;
  const r = await fetch(url, { headers: authHeaders() });
  if (r.ok) img.src = URL.createObjectURL(await r.blob());
}

function render(rec) {
  // Decided once, by the analysis, which adds this warning (record.rs: Record::not_chest).
  const notChest = !rec.error &&
    (rec.quality || []).some((w) => w.code === "not_chest_xray");
  $("result").style.display = "flex";
  const title = $("title");
  title.className = rec.error || notChest ? "amber" : "";
  text(title, rec.error ? W.bad_image : resultWords(rec));
  const bars = $("bars");
  bars.replaceChildren();
  const flags = rec.decision ? rec.decision.flags : [];
  for (const [label, p] of Object.entries(rec.probs || {})) {
    const row = document.createElement("div");
    row.className = "bar" + (flags.includes(label) ? " flagged" : "");
    const name = document.createElement("span");
    text(name, W.labels[label] || label);
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = (100 * p).toFixed(1) + "%";
    track.appendChild(fill);
    const pct = document.createElement("span");
    text(pct, (100 * p).toFixed(0) + "%");
    row.append(name, track, pct);
    bars.appendChild(row);
  }
  text($("summary"), rec.error ? rec.error : (rec.decision ? summaryWords(rec.decision) : ""));
  const warnings = $("warnings");
  warnings.replaceChildren();
  for (const w of rec.quality || []) {
    if (w.code === "not_chest_xray" && !rec.error) continue;
    const li = document.createElement("li");
    text(li, "! " + warningWords(w));
    warnings.appendChild(li);
  }
  // A site profile's name is shown: its operating points, not the model's, set the flags.
  const site = rec.model && rec.model.profile && rec.model.profile.sha256 ?
    ` - site profile ${rec.model.profile.name}` : "";
  text($("footer"), rec.model ?
    `${rec.model.name} v${rec.model.version} ${rec.model.variant}${site} - ${Math.round(rec.elapsed_ms)} ms` : "");
  text($("notice"), W.records ? rec.notice : W.notice);
  const id = (rec.path || "").startsWith("upload:") ? rec.path.slice(7) : null;
  showPicture($("heatmap"), rec.heatmap);
  showPicture($("film"), rec.heatmap && id ? `/api/results/${encodeURIComponent(id)}/film.png` : null);
}

async function upload(ev) {
  ev.preventDefault();
  const file = $("file").files[0];
  if (!file) { text($("status"), W.pick_first); return; }
  const form = new FormData();
  form.append("input", $("input").value);
  const code = $("case_code").value.trim();
  if (code) form.append("case_code", code);
  form.append("file", file);
  text($("status"), W.analysing);
  $("go").disabled = true;
  try {
    // X-Requested-With: no cross-site form can send it, so the server takes only this page's POSTs.
    const headers = { ...authHeaders(), "X-Requested-With": "cxr-edge" };
    const r = await fetch("/api/classify", { method: "POST", body: form, headers });
    const body = await r.json().catch(() => ({ error: `the device answered ${r.status}` }));
    if (r.status === 200 || r.status === 422) {
      render(body);
      $("case_code").value = "";
      text($("status"), r.status === 200 ? W.done : W.not_analysed);
    } else {
      const wait = r.headers.get("Retry-After");
      text($("status"), body.error + (wait ? ` (${W.retry_in} ${wait} s)` : ""));
    }
  } catch (e) {
    text($("status"), W.upload_failed + " " + e);
  } finally {
    $("go").disabled = false;
  }
}

const formEl = $("upload");
formEl.addEventListener("submit", upload);
formEl.addEventListener("dragover", (e) => { e.preventDefault(); formEl.classList.add("drag"); });
formEl.addEventListener("dragleave", () => formEl.classList.remove("drag"));
formEl.addEventListener("drop", (e) => {
  e.preventDefault();
  formEl.classList.remove("drag");
  if (e.dataTransfer.files.length) $("file").files = e.dataTransfer.files;
});
health();
