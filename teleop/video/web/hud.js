// The heads-up display drawn over the endoscope video: one drawing for the surgeon page (the
// console's figures) and the watch-only viewer (the frame metadata). The server inlines this file
// into both pages. hudDraw(g, h, w, h) takes a 2D canvas context and
//   h = { state, reason, engaged (absent: not shown), force_N, force_limits_N: [warn, stop],
//         force_band_N: [low, high] or null (the task's target band), task: { name, seed, success,
//         episode_s, achieved, desired }, figures (a line of latencies), alerts: { key: text },
//         overlay: { ghost, forbidden, path } in fractions of the image }
"use strict";

function hudFmt(v, digits = 1) { return v === null || v === undefined || Number.isNaN(v) ? "–" : v.toFixed(digits); }

function hudDraw(g, h, W, H) {
  g.fillStyle = "rgba(0,0,0,0.55)";
  g.fillRect(0, 0, W, 52);
  g.font = "bold 15px system-ui"; g.fillStyle = { ENGAGED: "#5e5", IDLE: "#ccc", HOLD: "#fc3", ESTOP: "#f44" }[h.state] || "#ccc";
  g.fillText(`${h.state || "?"}${h.engaged === false ? " (not engaged)" : ""}`, 10, 20);
  g.font = "13px system-ui"; g.fillStyle = "#ddd";
  g.fillText((h.reason || "").slice(0, 60), 10, 40);
  const t = h.task;
  if (t) {
    let progress = "";
    if (t.achieved && t.desired && t.achieved.length >= 3) {
      const d = Math.hypot(t.achieved[0] - t.desired[0], t.achieved[1] - t.desired[1], t.achieved[2] - t.desired[2]);
      progress = ` · goal ${hudFmt(d * 1000)} mm`;
    }
    g.fillText(`${t.name} seed ${t.seed} · ${t.success ? "SUCCESS" : "in progress"} · ${hudFmt(t.episode_s)} s${progress}`, 250, 20);
  }
  if (h.figures) g.fillText(h.figures, 250, 40);
  // Force bar: the task's target band shaded, the warn and stop limits marked, full scale 1.25 × stop.
  const lim = h.force_limits_N;
  const f = h.force_N || 0, x0 = 10, y0 = H - 30, w = 300, hh = 16;
  g.fillStyle = "rgba(0,0,0,0.55)"; g.fillRect(x0 - 4, y0 - 20, w + 110, hh + 26);
  g.fillStyle = "#333"; g.fillRect(x0, y0, w, hh);
  if (lim) {
    const full = 1.25 * lim[1];
    const band = h.force_band_N;
    if (band) { g.fillStyle = "rgba(80,160,255,0.45)"; g.fillRect(x0 + (band[0] / full) * w, y0, ((band[1] - band[0]) / full) * w, hh); }
    g.fillStyle = f >= lim[1] ? "#f33" : f >= lim[0] ? "#fb3" : "#3c3";
    g.fillRect(x0, y0 + 4, Math.min(1, f / full) * w, hh - 8);
    for (const [v, c] of [[lim[0], "#fb3"], [lim[1], "#f33"]]) { g.fillStyle = c; g.fillRect(x0 + (v / full) * w - 1, y0 - 4, 2, hh + 8); }
    const target = band ? `, target ${band[0]}–${band[1]}` : "";
    g.fillStyle = "#ddd"; g.fillText(`force ${hudFmt(f, 2)} N (warn ${lim[0]}, stop ${lim[1]}${target})`, x0, y0 - 6);
  } else {
    g.fillStyle = "#ddd"; g.fillText(`force ${hudFmt(f, 2)} N (limits not known yet)`, x0, y0 - 6);
  }
  // Early warnings, before the event (the console computes them; the robot still acts on its own).
  const alerts = Object.values(h.alerts || {});
  if (alerts.length) {
    g.fillStyle = "rgba(90,60,0,0.8)"; g.fillRect(0, 56, W, 20 * alerts.length + 6);
    g.fillStyle = "#fd5"; g.font = "bold 14px system-ui";
    alerts.forEach((text, i) => g.fillText("⚠ " + text, 10, 74 + 20 * i));
  }
  hudOverlay(g, h.overlay || {}, W, H);
}

// The console projects the twin's ghost, the forbidden regions and the guidance path into the image
// (fractions of its width and height); the page only draws them.
function hudPolyline(g, points, colour, width, W, H, dash = []) {
  g.strokeStyle = colour; g.lineWidth = width; g.setLineDash(dash); g.beginPath();
  let drawing = false;
  for (const p of points) {
    if (!p) { drawing = false; continue; }
    if (drawing) g.lineTo(p[0] * W, p[1] * H); else g.moveTo(p[0] * W, p[1] * H);
    drawing = true;
  }
  g.stroke(); g.setLineDash([]);
}

function hudOverlay(g, o, W, H) {
  if (o.path) hudPolyline(g, o.path, "rgba(80,200,255,0.8)", 2, W, H, [6, 4]);
  for (const [a, b] of o.forbidden || []) hudPolyline(g, [a, b], "rgba(255,60,60,0.8)", 2, W, H);
  if (o.ghost) {
    hudPolyline(g, o.ghost, "rgba(0,200,255,0.6)", 5, W, H);
    const tip = o.ghost[o.ghost.length - 1];
    if (tip) { g.strokeStyle = "rgba(0,200,255,0.9)"; g.lineWidth = 3; g.beginPath(); g.arc(tip[0] * W, tip[1] * H, 8, 0, 2 * Math.PI); g.stroke(); }
  }
}
