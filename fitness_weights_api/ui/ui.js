// The training dashboard: the job list over HTTP, one job over its WebSocket (/ws/jobs/{id}), the heatmaps of its
// latest checkpoint's weights (/train/{id}/weights), and the tuning studies with their trials (/studies/{name}), in
// plain JavaScript.
// The token stays in this tab's sessionStorage and travels in the Authorization header, or in the socket's first
// message (a browser cannot set WebSocket headers); never in a URL.
"use strict";

const PARAMS = ["learning_rate", "lr_scale", "ent_coef", "clip_range", "vf_coef", "max_grad_norm", "n_epochs",
  "target_kl", "cq_coef", "qx_coef", "error_coef"];
const CHARTS = {
  "chart-reward": { title: "episode reward and length", keys: ["rollout/ep_rew_mean", "rollout/ep_len_mean"] },
  "chart-eval": { title: "normalized score on held-out trainees", keys: ["eval/normalized_score"] },
  "chart-losses": { title: "policy, value and entropy losses",
    keys: ["train/policy_gradient_loss", "train/value_loss", "train/entropy_loss"] },
  "chart-aux": { title: "CQ, QX and error losses and accuracies",
    keys: ["train/cq_loss", "train/qx_loss", "train/error_loss", "train/cq_accuracy", "train/qx_accuracy"] },
  "chart-kl": { title: "approx_kl and clip fraction", keys: ["train/approx_kl", "train/clip_fraction"] },
  "chart-params": { title: "learning rate and live-changed parameters", keys: ["train/learning_rate"], live: true },
};
const DRAW_INTERVAL_MS = 1000; // charts redraw at most once a second, and not in a hidden tab: drawing takes CPU
const MARKERS_UP_TO = 100; // points per trace drawn with markers; a longer trace is a line (one SVG path)
const WEIGHTS_REFRESH_MS = 10000; // while a job trains, its heatmaps follow its checkpoints this often at most
const state = { token: sessionStorage.getItem("fw-token") || "", socket: null, jobId: null, rows: [], log: [],
  changes: new Map(), started: null, catalog: null, weightsAt: 0, drawTimer: null, drawnAt: 0, study: null };

function $(id) { return document.getElementById(id); }
function showError(text) { $("error").textContent = text || ""; }

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${state.token}` };
  const response = await fetch(path, { ...options, headers });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const detail = body && body.detail;
    throw new Error(Array.isArray(detail) ? detail.map((d) => `${d.loc.slice(-1)[0]}: ${d.msg}`).join("; ") : detail);
  }
  return body;
}

async function refreshJobs() {
  if (!state.token) return;
  try {
    const jobs = await api("/train?limit=50");
    const body = $("jobs").querySelector("tbody");
    body.replaceChildren(...jobs.map((job) => {
      const row = document.createElement("tr");
      row.dataset.jobId = job.job_id;
      row.className = job.job_id === state.jobId ? "selected" : "";
      const bar = document.createElement("progress");
      bar.max = job.total_timesteps;
      bar.value = job.timesteps_done;
      const cells = [job.job_id.slice(0, 8), job.state].map((text) => {
        const cell = document.createElement("td");
        cell.textContent = text;
        return cell;
      });
      const progress = document.createElement("td");
      progress.append(bar);
      row.append(...cells, progress);
      row.addEventListener("click", () => openJob(job.job_id));
      return row;
    }));
    $("token-state").textContent = "";
  } catch (error) {
    $("token-state").textContent = error.message;
  }
}

async function refreshStudies() {
  if (!state.token) return;
  try {
    const studies = await api("/studies");
    $("studies").querySelector("tbody").replaceChildren(...studies.map((study) => {
      const row = document.createElement("tr");
      const states = Object.entries(study.states).map(([name, count]) => `${count} ${name}`).join(", ");
      const best = study.best_value === null ? "-" : `${study.best_value.toFixed(3)} (trial ${study.best_trial})`;
      for (const text of [study.study, states || "0", best]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      row.title = JSON.stringify(study.best_params); // the best trial's parameters on hover
      row.addEventListener("click", () => openStudy(study.study));
      return row;
    }));
    if (state.study) openStudy(state.study);
  } catch (error) {
    $("token-state").textContent = error.message;
  }
}

function cell(content) {
  const td = document.createElement("td");
  td.append(content);
  return td;
}

function shortParams(params) {
  return Object.entries(params).map(([name, value]) =>
    `${name}=${typeof value === "number" ? Number(value.toPrecision(3)) : value}`).join(", ");
}

// One study: every trial's curve (its reports to the pruner), and the trials, each linked to the job it became.
async function openStudy(name) {
  try {
    const study = await api(`/studies/${encodeURIComponent(name)}`);
    state.study = study.study;
    $("study-panel").hidden = false;
    $("study-name").textContent = study.study;
    const traces = study.trial_details.filter((trial) => trial.curve.length).map((trial) => ({
      x: trial.curve.map((point) => point[0]), y: trial.curve.map((point) => point[1]), type: "scatter",
      name: trial.pbt_member === null ? `trial ${trial.number}` : `member ${trial.pbt_member} (trial ${trial.number})`,
      mode: trial.curve.length <= MARKERS_UP_TO ? "lines+markers" : "lines",
      line: { dash: trial.state === "pruned" ? "dot" : "solid" } }));
    Plotly.react("chart-study", traces, { title: { text: "validation score of each trial (dotted: pruned)",
      font: { size: 13 } }, margin: { t: 30, r: 10, b: 30, l: 50 }, xaxis: { title: { text: "timesteps" } } },
    { displayModeBar: false });
    $("study-trials").querySelector("tbody").replaceChildren(...study.trial_details.slice().reverse().map((trial) => {
      const row = document.createElement("tr");
      let job = "-";
      if (trial.job_id) {
        job = document.createElement("button");
        job.type = "button";
        job.textContent = `job ${trial.job_id.slice(0, 8)}`;
        job.addEventListener("click", () => openJob(trial.job_id));
      }
      const score = trial.value === null ? "-" : trial.value.toFixed(3);
      row.append(...[String(trial.number), trial.state, score, shortParams(trial.params)].map(cell), cell(job));
      row.dataset.trial = trial.number;
      return row;
    }));
    for (const row of $("studies").querySelectorAll("tbody tr")) {
      row.className = row.firstChild.textContent === study.study ? "selected" : "";
    }
  } catch (error) {
    showError(error.message);
  }
}

function series(key) {
  const points = state.rows.filter((row) => row.metrics[key] !== undefined && row.metrics[key] !== null);
  return { x: points.map((row) => row.step), y: points.map((row) => row.metrics[key]), name: key.split("/")[1],
    mode: points.length <= MARKERS_UP_TO ? "lines+markers" : "lines", type: "scatter" };
}

// Coalesce the redraws of the charts and the log: metrics arrive several times a second from a busy job.
function scheduleDraw() {
  if (state.drawTimer !== null) return;
  state.drawTimer = setTimeout(() => {
    state.drawTimer = null;
    if (document.hidden) return; // visibilitychange draws when the tab is shown again
    state.drawnAt = Date.now();
    draw();
    drawLog();
  }, Math.max(0, state.drawnAt + DRAW_INTERVAL_MS - Date.now()));
}

function draw() {
  const appliedChanges = [...state.changes.values()].filter((change) => change.applied);
  const marks = appliedChanges.map((change) => ({ type: "line", x0: change.timestep, x1: change.timestep, yref: "paper",
    y0: 0, y1: 1, line: { dash: "dot", color: "#d62728" } }));
  for (const [id, chart] of Object.entries(CHARTS)) {
    const keys = chart.live ? [...chart.keys, ...new Set(appliedChanges.map((c) => `live/${c.name}`))] : chart.keys;
    const traces = keys.map(series).filter((trace) => trace.x.length);
    Plotly.react(id, traces, { title: { text: chart.title, font: { size: 13 } }, margin: { t: 30, r: 10, b: 30, l: 50 },
      xaxis: { title: { text: "timesteps" } }, shapes: marks, legend: { orientation: "h" } }, { displayModeBar: false });
  }
  const last = state.rows[state.rows.length - 1];
  if (last) {
    const reward = [...state.rows].reverse().find((row) => row.metrics["rollout/ep_rew_mean"] != null);
    $("fig-reward").textContent = reward ? reward.metrics["rollout/ep_rew_mean"].toFixed(3) : "-";
    const score = [...state.rows].reverse().find((row) => row.metrics["eval/normalized_score"] != null);
    $("fig-score").textContent = score ? score.metrics["eval/normalized_score"].toFixed(3) : "-";
    $("fig-fps").textContent = last.metrics["time/fps"] != null ? Math.round(last.metrics["time/fps"]) : "-";
    $("charts").dataset.seq = String(last.seq); // the last row drawn (benchmarks/bench_dashboard.py reads it)
  }
}

function drawLog() {
  const search = $("log-search").value.toLowerCase();
  const level = $("log-level").value;
  const lines = state.log.filter((line) => (!level || line.level === level) && line.text.toLowerCase().includes(search));
  $("log").replaceChildren(...lines.map((line) => {
    const span = document.createElement("span");
    span.className = line.level;
    span.textContent = `${line.recorded.slice(11, 19)} ${line.level.padEnd(7)} ${line.text}\n`;
    return span;
  }));
  if ($("log-follow").checked) $("log").scrollTop = $("log").scrollHeight;
}

function drawChanges() {
  const body = $("param-history").querySelector("tbody");
  body.replaceChildren(...[...state.changes.values()].map((change) => {
    const row = document.createElement("tr");
    const status = change.error ? `refused: ${change.error}` : change.applied ? "applied" : "waiting for the rollout";
    for (const text of [change.seq, change.name, change.value, change.previous ?? "", change.requested_by,
      change.timestep ?? "", status]) {
      const cell = document.createElement("td");
      cell.textContent = String(text);
      row.append(cell);
    }
    return row;
  }));
}

async function catalog() {
  if (!state.catalog) state.catalog = await api("/catalog");
  return state.catalog;
}

// The CQ and QX matrices the job's latest checkpoint predicts for the trainee picked (GET or POST .../weights).
async function showWeights() {
  const jobId = state.jobId;
  if (!jobId) return;
  state.weightsAt = Date.now();
  try {
    const names = await catalog();
    let body;
    if (document.querySelector("input[name=who]:checked").value === "held-out") {
      body = await api(`/train/${jobId}/weights?trainee=${encodeURIComponent($("trainee").value)}`);
    } else {
      let trainee;
      try { trainee = JSON.parse($("profile").value); } catch { throw new Error("profile: not valid JSON"); }
      body = await api(`/train/${jobId}/weights`, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(trainee) });
    }
    if (jobId === state.jobId) {
      drawWeights(body, names);
      $("weights-state").textContent = "";
    }
  } catch (error) {
    if (jobId === state.jobId) $("weights-state").textContent = error.message;
  }
}

function drawWeights(body, names) {
  const subjects = names.subjects.map((s) => s.name_en);
  const qualities = names.qualities.map((q) => q.name_en);
  const exercises = names.exercises.map((e) => e.name_en);
  const targets = body.target_subjects;
  $("weights-source").textContent = `${body.source} at ${body.timesteps ?? "?"} timesteps, ${body.trainee}, ` +
    `confidence ${body.prediction_confidence.toFixed(2)}`;
  const heatmap = { type: "heatmap", colorscale: "Viridis", colorbar: { thickness: 10 } };
  const layout = (title, left, bottom = 40) => ({ title: { text: title, font: { size: 13 } },
    margin: { t: 30, r: 10, b: bottom, l: left } });
  Plotly.react("heatmap-cq", [{ ...heatmap, z: body.cq_matrix, x: qualities, y: subjects.map((_, i) => i),
    text: body.cq_matrix.map((row, i) => row.map(() => subjects[i])),
    hovertemplate: "%{text}<br>%{x}: %{z:.3f}<extra></extra>" }], {
    ...layout("CQ: subjects x qualities (target subjects outlined)", 150, 80), xaxis: { tickangle: -40 },
    yaxis: { autorange: "reversed", tickvals: targets, ticktext: targets.map((t) => subjects[t]) },
    shapes: targets.map((t) => ({ type: "rect", x0: -0.5, x1: qualities.length - 0.5, y0: t - 0.5, y1: t + 0.5,
      line: { color: "#d62728", width: 2 } })),
  }, { displayModeBar: false });
  Plotly.react("heatmap-qx", [{ ...heatmap, z: body.qx_matrix, x: exercises.map((_, j) => j), y: qualities,
    text: body.qx_matrix.map((row) => row.map((_, j) => exercises[j])),
    hovertemplate: "%{text}<br>%{y}: %{z:.3f}<extra></extra>" }], {
    ...layout("QX: qualities x exercises", 80), xaxis: { title: { text: "exercise (its name on hover)" } },
    yaxis: { autorange: "reversed" },
  }, { displayModeBar: false });
}

function onMessage(event) {
  const message = JSON.parse(event.data);
  if (message.type === "state") {
    const job = message.job;
    $("job-state").textContent = job.state;
    $("fig-steps").textContent = `${job.timesteps_done} / ${job.total_timesteps}`;
    state.started = job.started ? new Date(job.started) : null;
    const end = job.finished ? new Date(job.finished) : new Date();
    $("fig-elapsed").textContent = state.started ? `${Math.round((end - state.started) / 1000)} s` : "-";
    if (!job.has_checkpoint) $("weights-state").textContent = "no checkpoint yet: the first comes after a rollout";
    else if (Date.now() - state.weightsAt > WEIGHTS_REFRESH_MS) showWeights();
  } else if (message.type === "metrics") {
    state.rows.push(...message.rows);
    scheduleDraw();
  } else if (message.type === "log") {
    state.log.push(...message.lines);
    scheduleDraw();
  } else if (message.type === "param_ack") {
    state.changes.set(message.change.seq, message.change);
    drawChanges();
    scheduleDraw();
  } else if (message.type === "error") {
    showError(`${message.field}: ${message.detail}`);
  }
}

function openJob(jobId) {
  if (state.socket) state.socket.close();
  Object.assign(state, { jobId, rows: [], log: [], changes: new Map(), weightsAt: 0 });
  for (const id of ["heatmap-cq", "heatmap-qx"]) Plotly.purge(id);
  delete $("charts").dataset.seq;
  $("weights-source").textContent = "";
  $("job-panel").hidden = false;
  $("job-id").textContent = jobId.slice(0, 8);
  drawLog();
  drawChanges();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/jobs/${jobId}`);
  socket.addEventListener("open", () => socket.send(JSON.stringify({ type: "auth", token: state.token })));
  socket.addEventListener("message", onMessage);
  state.socket = socket;
  refreshJobs();
}

function init() {
  $("token").value = state.token;
  $("param-name").replaceChildren(...PARAMS.map((name) => new Option(name, name)));
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("fw-token", state.token);
    refreshJobs();
    refreshStudies();
  });
  $("param-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("param-value").value.trim();
    const value = text === "null" || text === "" ? null : Number(text);
    showError("");
    state.socket?.send(JSON.stringify({ type: "set_params", name: $("param-name").value, value }));
  });
  $("cancel").addEventListener("click", async () => {
    try { await api(`/train/${state.jobId}`, { method: "DELETE" }); } catch (error) { showError(error.message); }
  });
  $("start-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const body = { timesteps: Number(form.get("timesteps")), env_id: form.get("env_id"), policy: form.get("policy"),
      preset: form.get("preset"), activate: form.get("activate") === "on" };
    for (const name of ["n_envs", "seed", "learning_rate", "eval_trainees", "eval_rollouts"]) {
      if (form.get(name) !== "") body[name] = Number(form.get(name)); // empty: the service's default
    }
    try {
      const job = await api("/train", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body) });
      openJob(job.job_id);
    } catch (error) { showError(error.message); }
  });
  for (const id of ["log-search", "log-level"]) $(id).addEventListener("input", drawLog);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) scheduleDraw(); });
  $("weights-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showWeights();
  });
  refreshJobs();
  setInterval(refreshJobs, 2000);
  refreshStudies();
  setInterval(refreshStudies, 15000);
}

document.addEventListener("DOMContentLoaded", init);
