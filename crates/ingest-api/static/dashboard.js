// The dashboard reads the read routes with a user token taken from the URL fragment
// (#user=U&token=T), which browsers never send to the server or write to its logs. It follows the
// user's live event stream (GET /v1/users/{user}/events) and redraws when a sync is processed.
// The stream is read with fetch, not EventSource, so the token goes in a header, not the URL.
(function () {
  "use strict";
  const params = new URLSearchParams(location.hash.slice(1));
  const user = params.get("user");
  const token = params.get("token");
  const DAY = 86400;

  function fail(message) {
    const e = document.getElementById("error");
    e.hidden = false;
    e.textContent = message;
    document.body.dataset.state = "error";
  }

  async function get(path) {
    const res = await fetch(path, { headers: { Authorization: "Bearer " + token } });
    const body = await res.json();
    if (!res.ok) throw new Error((body && (body.detail || body.title)) || res.statusText);
    return body;
  }

  function toSeconds(date) {
    return Date.parse(date + "T00:00:00Z") / 1000;
  }

  let window30 = [0, 0];

  function chart(id, series, data, opts) {
    const el = document.getElementById(id);
    el.replaceChildren();
    // Always the whole 30-day window, also with only a day or two of data.
    const base = { width: Math.min(el.clientWidth || 900, 1100), height: 260, series: [{}].concat(series), scales: { x: { time: true, range: window30 } } };
    return new uPlot(Object.assign(base, opts || {}), data, el);
  }

  function num(v) {
    return typeof v === "number" && isFinite(v) ? v : null;
  }

  async function render() {
    const to = new Date().toISOString().slice(0, 10);
    const from = new Date(Date.now() - 29 * DAY * 1000).toISOString().slice(0, 10);
    window30 = [toSeconds(from) - DAY / 2, toSeconds(to) + DAY / 2];
    const [days, syncs] = await Promise.all([
      get(`/v1/users/${encodeURIComponent(user)}/days?from=${from}&to=${to}&limit=1000`),
      get(`/v1/users/${encodeURIComponent(user)}/syncs?limit=20`),
    ]);
    const f = days.freshness;
    document.getElementById("freshness").textContent =
      `processed up to offset ${f.committed_offset} of partition ${f.partition} — data newer than that is not shown yet`;

    const d = days.days;
    const x = d.map((r) => toSeconds(r.date));
    const rhr = d.map((r) => num(r.resting_hr));
    const base = d.map((r) => (r.rolling && r.rolling.resting_hr) || {});
    const lo = base.map((b) => (num(b.baseline_mean) !== null && num(b.baseline_sd) !== null ? b.baseline_mean - b.baseline_sd : null));
    const hi = base.map((b) => (num(b.baseline_mean) !== null && num(b.baseline_sd) !== null ? b.baseline_mean + b.baseline_sd : null));
    const flagged = d.map((r, i) => (base[i].z_flag || base[i].night_signal ? rhr[i] : null));
    chart("rhr", [
      { label: "baseline − SD", stroke: "#9bc", width: 1 },
      { label: "baseline + SD", stroke: "#9bc", width: 1 },
      { label: "resting HR", stroke: "#c33", width: 2, points: { show: true } },
      { label: "anomaly", stroke: "transparent", points: { show: true, size: 10, stroke: "#000", fill: "#fc0" } },
    ], [x, lo, hi, rhr, flagged], { bands: [{ series: [2, 1], fill: "rgba(120,170,200,0.2)" }] });

    const roll = d.map((r) => r.rolling || {});
    chart("pmc", [
      { label: "fitness (CTL)", stroke: "#1565c0", width: 2 },
      { label: "fatigue (ATL)", stroke: "#c2185b", width: 2 },
      { label: "form (TSB)", stroke: "#2e7d32", width: 2 },
    ], [x, roll.map((r) => num(r.fitness)), roll.map((r) => num(r.fatigue)), roll.map((r) => num(r.form))]);

    const sleep = d.map((r) => (r.summary && r.summary.sleep) || {});
    const bars = uPlot.paths.bars({ size: [0.6, 40] });
    chart("sleep", [
      { label: "total sleep", stroke: "#5e35b1", fill: "rgba(94,53,177,0.25)", paths: bars },
      { label: "light", stroke: "#90caf9", width: 2 },
      { label: "deep", stroke: "#1a237e", width: 2 },
      { label: "REM", stroke: "#00897b", width: 2 },
      { label: "awake", stroke: "#ef6c00", width: 2 },
    ], [x, sleep.map((s) => num(s.total_sleep_min)), sleep.map((s) => num(s.light_min)), sleep.map((s) => num(s.deep_min)),
        sleep.map((s) => num(s.rem_min)), sleep.map((s) => num(s.awake_min))]);

    const tbody = document.querySelector("#syncs tbody");
    tbody.replaceChildren();
    for (const s of syncs.syncs) {
      const tr = document.createElement("tr");
      const dropped = Object.entries(s.dropped_samples || {}).map(([k, v]) => `${k}: ${v}`).join(", ") || "none";
      for (const text of [new Date(s.processed_at).toLocaleString(), s.device_id, s.status, String(s.heart_rate_samples), dropped]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      if (s.status === "failed") tr.className = "failed";
      tbody.appendChild(tr);
    }
    document.body.dataset.points = String(rhr.filter((v) => v !== null).length + roll.filter((r) => num(r.fitness) !== null).length);
    document.body.dataset.syncs = String(syncs.syncs.length);
    document.body.dataset.state = "rendered";
  }

  // Redraws at most once per second however many events arrive.
  let redraw = null;
  function scheduleRender() {
    if (redraw) return;
    redraw = setTimeout(() => {
      redraw = null;
      render()
        .then(() => { document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1); })
        .catch((e) => fail(String(e.message || e)));
    }, 1000);
  }

  // Follows the live stream, reconnecting with the last event id (the server replays what was
  // missed); any sync or model event redraws the page.
  async function follow() {
    let lastId = null;
    for (;;) {
      try {
        const headers = { Authorization: "Bearer " + token, Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const res = await fetch(`/v1/users/${encodeURIComponent(user)}/events`, { headers });
        // A token that is refused will not be accepted later: say so and stop.
        if (res.status === 401 || res.status === 403) {
          document.body.dataset.live = "refused";
          return;
        }
        if (!res.ok) throw new Error("live updates: " + res.status);
        document.body.dataset.live = "open";
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const message = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let kind = null;
            for (const line of message.split("\n")) {
              if (line.startsWith("id: ")) lastId = line.slice(4);
              else if (line.startsWith("event: ")) kind = line.slice(7);
            }
            if (kind) scheduleRender();
          }
        }
      } catch (e) {
        document.body.dataset.live = "reconnecting";
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  async function main() {
    if (!user || !token) return fail("Open this page as /dashboard#user=USER&token=TOKEN (mint one with `ingest-api token --user USER`).");
    document.getElementById("user").textContent = user;
    // The stream first, then the first drawing: a sync processed in between still redraws.
    follow();
    await render();
  }

  main().catch((e) => fail(String(e.message || e)));
})();
