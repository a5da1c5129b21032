// The taskzoo page: lists the served tasks (GET /v1/tasks), builds the picked task's input and
// options, posts to /v1/{task}/predict and draws the answer. Server data only ever reaches the
// document through textContent, attributes and canvas calls, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { tasks: [], task: null, file: null, fileUrl: null };
const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080",
                 "#f032e6", "#9a6324", "#800000", "#000075"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function hash(text) {
  let h = 0;
  for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h;
}

const colourOf = (label) => PALETTE[hash(label) % PALETTE.length];
const percent = (score) => `${(100 * Number(score)).toFixed(1)}%`;

// ---------------------------------------------------------------- errors and status
function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  $("result").dataset.state = "error";
  $("result").hidden = true;  // an earlier answer would read as this request's
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function errorText(body, status) {
  if (body && typeof body === "object" && body.error) {
    return `${status}: ${typeof body.error === "string" ? body.error : JSON.stringify(body.error)}`;
  }
  return `${status}: ${typeof body === "string" ? body.slice(0, 300) : JSON.stringify(body)}`;
}

async function readBody(res) {
  const text = await res.text();
  try { return JSON.parse(text); } catch { return text; }
}

// ---------------------------------------------------------------- the task picker
async function boot() {
  try {
    const res = await fetch("/v1/tasks");
    const body = await readBody(res);
    if (!res.ok) throw new Error(errorText(body, res.status));
    state.tasks = Array.isArray(body) ? body : [];
  } catch (err) {
    showError(`Could not list the served tasks: ${err.message}`);
    return;
  }
  const select = $("task");
  select.textContent = "";
  for (const t of state.tasks) {
    select.append(el("option", { value: t.task, text: t.hf_task ? `${t.task} (${t.hf_task})` : t.task }));
  }
  const wanted = new URLSearchParams(location.search).get("task");
  if (wanted && state.tasks.some((t) => t.task === wanted)) select.value = wanted;
  select.disabled = state.tasks.length === 0;
  $("run").disabled = state.tasks.length === 0;
  select.addEventListener("change", pick);
  $("form").addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
  pick();
  document.body.dataset.ready = "true";
}

function pick() {
  state.task = state.tasks.find((t) => t.task === $("task").value) || null;
  clearError();
  const result = $("result");
  result.hidden = true;
  result.textContent = "";
  result.dataset.state = "idle";
  setFile(null);
  if (!state.task) return;
  $("task-desc").textContent = state.task.description || "";
  const inputs = $("inputs");
  inputs.textContent = "";
  inputs.append(...inputFields(state.task.input));
  buildOptions(state.task.options || []);
}

function field(label, control, hint) {
  return el("div", { class: "field" }, el("label", { for: control.id, text: label }), control,
            hint ? el("p", { class: "hint", text: hint }) : null);
}

function inputFields(kind) {
  if (kind === "text") {
    return [field("Text", el("textarea", { id: "text", rows: 4, required: true,
                                           placeholder: "a gripping, beautifully acted film" }))];
  }
  if (kind === "text-pair") {
    return [field("Question", el("input", { id: "question", type: "text", required: true })),
            field("Context", el("textarea", { id: "context", rows: 6, required: true }))];
  }
  if (kind === "question-candidates") {
    return [field("Question", el("input", { id: "question", type: "text", required: true })),
            field("Candidate answers", el("textarea", { id: "candidates", rows: 6, required: true }),
                  "one sentence a line; they are ranked")];
  }
  if (kind === "image" || kind === "video") {
    const file = el("input", { id: "file", type: "file", accept: `${kind}/*`, required: true });
    file.addEventListener("change", () => setFile(file.files[0] || null));
    const preview = kind === "image" ? el("img", { id: "preview", alt: "the chosen image", hidden: true })
                                     : el("video", { id: "preview", controls: true, muted: true, hidden: true });
    return [field(kind === "image" ? "Image" : "Video", file), preview];
  }
  if (kind === "none") return [el("p", { class: "hint", text: "This task takes no input." })];
  const noun = kind === "observation" ? "Observation (a JSON array)" : "Input (JSON)";
  return [field(noun, el("textarea", { id: "json", rows: 4, class: "mono", required: true,
                                       placeholder: kind === "observation" ? "[0.01, -0.02, 0.03, 0.04]" : "" }))];
}

function setFile(file) {
  if (state.fileUrl) URL.revokeObjectURL(state.fileUrl);
  state.file = file;
  state.fileUrl = file ? URL.createObjectURL(file) : null;
  const preview = $("preview");
  if (!preview) return;
  preview.hidden = !file;
  if (file) preview.src = state.fileUrl; else preview.removeAttribute("src");
}

// ---------------------------------------------------------------- options
function optionControl(opt) {
  const id = `opt-${opt.name}`;
  const attrs = { id, name: opt.name, title: opt.help || null, dataset: { option: opt.name, type: opt.type } };
  if (opt.type === "bool") return el("input", { ...attrs, type: "checkbox", checked: opt.default === true });
  if (opt.choices && opt.choices.length) {
    const select = el("select", attrs);
    for (const c of opt.choices) select.append(el("option", { value: c, text: c }));
    if (opt.default !== null && opt.default !== undefined) select.value = String(opt.default);
    return select;
  }
  if (opt.type === "int" || opt.type === "float") {
    return el("input", { ...attrs, type: "number", min: opt.low ?? null, max: opt.high ?? null,
                         step: opt.type === "int" ? 1 : "any", value: opt.default ?? null });
  }
  return el("input", { ...attrs, type: "text", value: opt.default ?? null });
}

function buildOptions(options) {
  const list = $("option-list");
  list.textContent = "";
  for (const opt of options) {
    const control = optionControl(opt);
    const label = el("label", { for: control.id, text: opt.name.replace(/_/g, " ") });
    const row = el("div", { class: control.type === "checkbox" ? "option check" : "option" },
                   label, control, opt.help ? el("span", { class: "hint", text: opt.help }) : null);
    list.append(row);
  }
  $("options").hidden = options.length === 0;
}

function parameters() {
  const out = {};
  for (const opt of state.task.options || []) {
    const control = $(`opt-${opt.name}`);
    if (!control) continue;
    if (control.type === "checkbox") {
      if (control.checked !== (opt.default === true)) out[opt.name] = control.checked;
    } else if (control.value !== "") {
      const value = opt.type === "int" || opt.type === "float" ? Number(control.value) : control.value;
      if (value !== opt.default) out[opt.name] = value;
    }
  }
  return out;
}

// ---------------------------------------------------------------- the request
function request(task) {
  const params = parameters();
  const kind = task.input;
  if (kind === "image" || kind === "video") {
    if (!state.file) throw new Error(`Choose ${kind === "image" ? "an image" : "a video"} first.`);
    const form = new FormData();
    form.append("file", state.file, state.file.name);
    if (Object.keys(params).length) form.append("parameters", JSON.stringify(params));
    return { body: form, ctx: { fileUrl: state.fileUrl } };
  }
  let inputs = null;
  const ctx = {};
  if (kind === "text") {
    inputs = ctx.text = $("text").value;
    if (!inputs.trim()) throw new Error("Type some text first.");
  } else if (kind === "text-pair") {
    inputs = { question: $("question").value, context: $("context").value };
    ctx.context = inputs.context;
    if (!inputs.question.trim() || !inputs.context.trim()) throw new Error("Give a question and a context.");
  } else if (kind === "question-candidates") {
    const candidates = $("candidates").value.split("\n").map((c) => c.trim()).filter(Boolean);
    inputs = { question: $("question").value, candidates };
    if (!inputs.question.trim() || !candidates.length) throw new Error("Give a question and candidate answers.");
  } else if (kind !== "none") {
    try { inputs = JSON.parse($("json").value); } catch (err) { throw new Error(`The input is not JSON: ${err.message}`); }
  }
  return { body: JSON.stringify({ inputs, parameters: params }), json: true, ctx };
}

async function run() {
  const task = state.task;
  if (!task) return;
  clearError();
  let req;
  try { req = request(task); } catch (err) { showError(err.message); return; }
  const result = $("result");
  result.dataset.state = "running";
  $("run").disabled = true;
  $("busy").hidden = false;
  try {
    const res = await fetch(task.path || `/v1/${encodeURIComponent(task.task)}/predict`, {
      method: "POST", body: req.body, headers: req.json ? { "Content-Type": "application/json" } : {},
    });
    const body = await readBody(res);
    if (!res.ok) { showError(errorText(body, res.status)); return; }
    await render(task, body, req.ctx);
  } catch (err) {
    showError(`The request failed: ${err.message}`);
  } finally {
    $("run").disabled = false;
    $("busy").hidden = true;
  }
}

// ---------------------------------------------------------------- drawing the answer
const isObj = (x) => x !== null && typeof x === "object" && !Array.isArray(x);
const listOf = (out, key) => Array.isArray(out) && out.every((d) => isObj(d) && key in d);
const SHAPES = {
  "image": (out) => isObj(out) && typeof out.image === "string" && out.image.startsWith("data:image/"),
  "object-detection": (out) => listOf(out, "box"),
  "token-classification": (out) => listOf(out, "entity_group") && out.length > 0,
  "image-to-text": (out) => listOf(out, "generated_text") && out.length > 0,
  "question-answering": (out) => isObj(out) && "answer" in out,
  "text-classification": (out) => listOf(out, "label") && out.length > 0,
  "summarization": (out) => listOf(out, "summary_text") && out.length > 0,
  "ranking": (out) => listOf(out, "text") && out.length > 0 && out.every((d) => typeof d.score === "number"),
};

function kindOf(task, out) {
  if (SHAPES.image(out)) return "image";
  if (task.hf_task && SHAPES[task.hf_task] && SHAPES[task.hf_task](out)) return task.hf_task;
  return Object.keys(SHAPES).find((k) => SHAPES[k](out) && (k !== "object-detection" || out.length)) || "json";
}

async function render(task, answer, ctx) {
  const result = $("result");
  // one input's answer in a list of one (text classification answers [[...]], as HF does)
  const out = Array.isArray(answer) && answer.length === 1 && Array.isArray(answer[0]) ? answer[0] : answer;
  const kind = kindOf(task, out);
  result.textContent = "";
  result.hidden = false;
  result.dataset.kind = kind;
  result.dataset.task = task.task;
  result.append(el("h2", { text: "Result" }));
  await RENDER[kind](result, out, ctx);
  if (kind !== "json") result.append(el("details", { class: "raw" }, el("summary", { text: "JSON" }),
                   el("pre", { class: "mono", text: JSON.stringify(answer, shorten, 2) })));
  result.dataset.state = "done";
}

function shorten(key, value) {  // a data: URL is shown by its start in the raw view
  return typeof value === "string" && value.length > 200 ? `${value.slice(0, 60)}… (${value.length} chars)` : value;
}

async function drawDetections(result, out, ctx) {
  const image = new Image();
  image.src = ctx.fileUrl;
  await image.decode();
  const canvas = el("canvas", { id: "boxes", width: image.naturalWidth, height: image.naturalHeight,
                                "aria-label": `the image with ${out.length} boxes drawn` });
  const g = canvas.getContext("2d");
  g.drawImage(image, 0, 0);
  const line = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 250));
  const font = Math.max(12, Math.round(line * 5));
  g.lineWidth = line;
  g.font = `600 ${font}px system-ui, sans-serif`;
  const list = el("ol", { id: "box-list", class: "boxes" });
  for (const d of out) {
    const [x0, y0, x1, y1] = ["xmin", "ymin", "xmax", "ymax"].map((k) => Math.round(Number(d.box[k])));
    const colour = colourOf(d.label);
    const caption = `${d.label} ${percent(d.score)}`;
    g.strokeStyle = colour;
    g.strokeRect(x0, y0, x1 - x0, y1 - y0);
    const w = g.measureText(caption).width + 8;
    const top = y0 - font - 4 >= 0 ? y0 - font - 4 : y0;
    g.fillStyle = colour;
    g.fillRect(x0 - line / 2, top, w, font + 4);
    g.fillStyle = "#fff";
    g.fillText(caption, x0 + 4 - line / 2, top + font);
    list.append(el("li", { class: "box", dataset: { label: d.label, score: d.score, xmin: x0, ymin: y0,
                                                    xmax: x1, ymax: y1, colour } },
                   el("span", { class: "swatch", style: `background:${colour}` }),
                   el("span", { class: "name", text: d.label }), el("span", { class: "score", text: percent(d.score) })));
  }
  canvas.dataset.count = String(out.length);
  result.append(el("div", { class: "canvas-wrap" }, canvas),
                out.length ? list : el("p", { class: "hint", text: "Nothing found above the threshold." }));
}

function drawClasses(result, out) {
  const top = out[0];
  result.append(el("p", { class: "top" }, el("span", { id: "label", text: top.label }),
                   el("span", { class: "score", text: percent(top.score) })));
  const rows = el("div", { class: "classes" });
  for (const d of out) {
    const bar = el("span", { class: "bar" }, el("span", { style: `width:${percent(Math.min(1, Math.max(0, d.score)))}` }));
    rows.append(el("div", { class: "class-row", dataset: { label: d.label, score: d.score } },
                   el("span", { class: "name", text: d.label }), bar, el("span", { class: "score", text: percent(d.score) })));
  }
  result.append(rows);
}

function drawTags(result, out, ctx) {
  const line = el("p", { id: "tags", class: "tags" });
  let at = 0;
  const text = ctx.text || "";
  for (const d of out) {
    const start = Number.isInteger(d.start) ? d.start : null;
    if (start !== null && start >= at && text) line.append(text.slice(at, start));
    else if (line.childNodes.length) line.append(" ");
    const hue = hash(d.entity_group) % 360;
    line.append(el("span", { class: "tag", style: `--hue:${hue}`, title: `${d.entity_group} ${percent(d.score)}`,
                             dataset: { tag: d.entity_group, word: d.word } },
                   el("span", { class: "word", text: d.word }), el("span", { class: "pos", text: d.entity_group })));
    if (Number.isInteger(d.end)) at = d.end;
  }
  result.append(line);
}

function drawRanking(result, out) {
  const list = el("ol", { id: "ranking", class: "classes" });
  for (const d of out) {
    const bar = el("span", { class: "bar" }, el("span", { style: `width:${percent(Math.min(1, Math.max(0, d.score)))}` }));
    list.append(el("li", { class: "class-row rank", dataset: { score: d.score } },
                   el("span", { class: "name", text: d.text }), bar, el("span", { class: "score", text: percent(d.score) })));
  }
  result.append(list);
}

function drawSummary(result, out) {
  result.append(el("p", { id: "summary", class: "summary", text: out[0].summary_text }));
}

function drawCaption(result, out, ctx) {
  if (ctx.fileUrl) result.append(el("img", { class: "thumb", src: ctx.fileUrl, alt: "the input image" }));
  result.append(el("p", { id: "caption", class: "caption", text: out[0].generated_text }));
}

function drawAnswer(result, out, ctx) {
  result.append(el("p", { class: "top" }, el("span", { id: "answer", text: out.answer }),
                   el("span", { class: "score", text: percent(out.score ?? 0) })));
  const context = ctx.context || "";
  let start = out.start, end = out.end;
  if (!(Number.isInteger(start) && Number.isInteger(end) && context.slice(start, end) === out.answer)) {
    start = context.indexOf(out.answer);
    end = start + String(out.answer).length;
  }
  const para = el("p", { id: "context-view", class: "context" });
  if (start >= 0 && out.answer) para.append(context.slice(0, start), el("mark", { text: context.slice(start, end) }), context.slice(end));
  else para.append(context);
  result.append(para);
}

async function drawImage(result, out, ctx) {
  const pair = el("div", { class: "pair" });
  if (ctx.fileUrl) pair.append(el("figure", {}, el("img", { src: ctx.fileUrl, alt: "the input image" }), el("figcaption", { text: "input" })));
  const img = el("img", { id: "output-image", src: out.image, alt: "the output image" });
  pair.append(el("figure", {}, img, el("figcaption", { text: "output" })));
  result.append(pair);
  await img.decode().catch(() => showError("The server's image could not be decoded."));
}

function drawJson(result, out) {
  result.append(el("pre", { id: "json-out", class: "mono", text: JSON.stringify(out, shorten, 2) }));
}

const RENDER = {
  "image": drawImage, "object-detection": drawDetections, "token-classification": drawTags,
  "image-to-text": drawCaption, "question-answering": drawAnswer, "text-classification": drawClasses,
  "summarization": drawSummary, "ranking": drawRanking, "json": drawJson,
};

boot();
