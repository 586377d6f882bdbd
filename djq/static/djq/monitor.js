/* djq monitor: polls the JSON endpoints under djq/data/ and redraws the page.
   Plain ES2017, no dependencies; charts are drawn as SVG. */
(function () {
  "use strict";

  var djq = (window.djq = {});
  var SVG = "http://www.w3.org/2000/svg";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /* fetch JSON; resolves to {status, data, etag}. */
  function request(url, options) {
    options = options || {};
    var headers = { Accept: "application/json" };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = csrfToken();
    }
    if (options.etag) headers["If-None-Match"] = options.etag;
    return fetch(url, {
      method: options.method || "GET",
      credentials: "same-origin",
      headers: headers,
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
    }).then(function (response) {
      var etag = response.headers.get("ETag");
      if (response.status === 304 || response.status === 204) {
        return { status: response.status, data: null, etag: etag };
      }
      return response.json().then(
        function (data) { return { status: response.status, data: data, etag: etag }; },
        function () { return { status: response.status, data: null, etag: etag }; }
      );
    });
  }

  function errorText(data) {
    if (!data) return "request failed";
    if (typeof data === "string") return data;
    if (data.detail) return String(data.detail);
    return Object.keys(data).map(function (key) {
      var value = data[key];
      return key + ": " + (Array.isArray(value) ? value.join(" ") : JSON.stringify(value));
    }).join("; ");
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function cell(value, className) {
    return el("td", { className: className || "", text: value === null || value === undefined ? "–" : String(value) });
  }

  var T = window.djqTime;
  var duration = T.duration;

  /* A table cell holding a relative time, absolute time and zone on hover. */
  function timeCell(iso, extra) {
    return el("td", { className: "djq-when" }, [T.element(iso, extra)]);
  }

  /* "240 ms", or a live "running 3.2 s" for a task that started and has not finished. */
  function runtimeNode(task) {
    if (task.runtime !== null && task.runtime !== undefined) {
      var hover = "started " + T.absolute(task.date_started) + "\nfinished " + T.absolute(task.date_done);
      return el("span", { title: hover, text: duration(task.runtime) });
    }
    if (task.date_started && !task.date_done) {
      var since = Date.parse(task.date_started);
      return el("span", { className: "djq-elapsed", "data-since": task.date_started,
                          title: "started " + T.absolute(task.date_started),
                          text: "running " + duration(Math.max(0, (Date.now() - since) / 1000)) });
    }
    return document.createTextNode(task.status === "waiting" ? "waiting" : "–");
  }

  function stateBadge(state) {
    return el("span", { className: "djq-state", "data-state": state, text: state });
  }

  function progressBar(percent) {
    if (percent === null || percent === undefined) return el("td", { text: "" });
    var bar = el("span", { className: "djq-bar", title: percent.toFixed(0) + "%" },
                 [el("span", { style: "width:" + percent.toFixed(1) + "%" })]);
    return el("td", {}, [bar, " " + percent.toFixed(0) + "%"]);
  }

  function replaceRows(table, rows, columns) {
    var body = table.tBodies[0];
    var fresh = document.createElement("tbody");
    if (!rows.length) {
      fresh.appendChild(el("tr", {}, [el("td", { colspan: columns, className: "djq-empty", text: "Nothing here." })]));
    }
    rows.forEach(function (row) { fresh.appendChild(row); });
    table.replaceChild(fresh, body);
  }

  /* Run `step` now and again `interval` ms after each run ends; paused while hidden. */
  function poll(step, interval) {
    var timer = null;
    var live = document.getElementById("djq-live");
    function delay() { return typeof interval === "function" ? interval() : interval; }
    function run() {
      timer = null;
      if (document.hidden) { timer = setTimeout(run, delay()); return; }
      Promise.resolve().then(step).then(function () {
        if (live) live.classList.remove("djq-stale");
      }, function () {
        if (live) live.classList.add("djq-stale");
      }).then(function () {
        timer = setTimeout(run, delay());
      });
    }
    run();
    return {
      now: function () { if (timer !== null) { clearTimeout(timer); run(); } },
    };
  }

  /* ---- charts ------------------------------------------------------------------ */
  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    return node;
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= value) return steps[i] * power;
    return 10 * power;
  }

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  /* A line chart with hover values. spec.lines: [{label, values (null: no data, drawn as
     a gap), colour, colourVar, fill, dashed, format}]; spec.bars: {label, values} drawn
     faintly behind on their own scale (the volume), labelled on the right. */
  function lineChart(node, spec) {
    var width = 600, height = 180, left = 34, right = spec.bars ? 30 : 6, top = 8, bottom = 18;
    while (node.firstChild) node.removeChild(node.firstChild);
    var lines = spec.lines, minutes = spec.minutes;
    var count = minutes.length;
    var all = [0];
    lines.forEach(function (l) { l.values.forEach(function (v) { if (v !== null) all.push(v); }); });
    var max = spec.max || niceMax(Math.max.apply(null, all));
    var barMax = spec.bars ? niceMax(Math.max.apply(null, [0].concat(spec.bars.values))) : 1;
    function x(i) { return left + (count > 1 ? (i * (width - left - right)) / (count - 1) : 0); }
    function y(v) { return top + (height - top - bottom) * (1 - v / max); }
    function yBar(v) { return top + (height - top - bottom) * (1 - v / barMax); }
    [0, 0.5, 1].forEach(function (f) {
      node.appendChild(svg("line", { x1: left, x2: width - right, y1: y(max * f), y2: y(max * f), class: "axis" }));
      var label = svg("text", { x: left - 4, y: y(max * f) + 3, "text-anchor": "end" });
      label.textContent = (Math.round(max * f * 10) / 10) + (spec.unit || "");
      node.appendChild(label);
      if (spec.bars) {
        var rightLabel = svg("text", { x: width - right + 4, y: yBar(barMax * f) + 3, "text-anchor": "start" });
        rightLabel.textContent = String(Math.round(barMax * f));
        node.appendChild(rightLabel);
      }
    });
    spec.xLabels.forEach(function (item) {
      var label = svg("text", { x: x(item[0]), y: height - 4, "text-anchor": item[2] || "middle" });
      label.textContent = item[1];
      node.appendChild(label);
    });
    if (spec.bars) {
      var step = count > 1 ? (width - left - right) / (count - 1) : 10;
      spec.bars.values.forEach(function (v, i) {
        if (!v) return;
        node.appendChild(svg("rect", { x: (x(i) - step * 0.4).toFixed(1), width: (step * 0.8).toFixed(1),
          y: yBar(v).toFixed(1), height: (yBar(0) - yBar(v)).toFixed(1), class: "djq-volume" }));
      });
    }
    lines.forEach(function (line) {
      var colour = line.colourVar ? cssVar(line.colourVar, line.colour) : line.colour;
      // Runs of known values: a minute without data is a gap, not a zero.
      var runs = [[]];
      line.values.forEach(function (v, i) {
        if (v === null || v === undefined) { if (runs[runs.length - 1].length) runs.push([]); return; }
        runs[runs.length - 1].push([x(i), y(v)]);
      });
      runs.forEach(function (run) {
        if (!run.length) return;
        var points = run.map(function (p) { return p[0].toFixed(1) + "," + p[1].toFixed(1); });
        if (line.fill) {
          node.appendChild(svg("polygon", {
            points: run[0][0].toFixed(1) + "," + y(0) + " " + points.join(" ") + " " +
                    run[run.length - 1][0].toFixed(1) + "," + y(0),
            fill: colour, "fill-opacity": "0.12", stroke: "none",
          }));
        }
        if (run.length === 1) node.appendChild(svg("circle", { cx: run[0][0], cy: run[0][1], r: 1.8, fill: colour }));
        node.appendChild(svg("polyline", {
          points: points.join(" "), fill: "none", stroke: colour, "stroke-width": "1.6",
          "stroke-dasharray": line.dashed ? "5 3" : "none", "data-series": line.label,
          "stroke-linejoin": "round", "vector-effect": "non-scaling-stroke",
        }));
      });
    });
    // Hover: a cursor line and the values of the nearest minute.
    var cursor = svg("line", { x1: 0, x2: 0, y1: top, y2: height - bottom, class: "djq-cursor", visibility: "hidden" });
    node.appendChild(cursor);
    var box = node.parentNode;
    var tip = box.querySelector(".djq-tip");
    if (!tip) { tip = el("div", { className: "djq-tip" }); tip.hidden = true; box.appendChild(tip); }
    function show(i) {
      cursor.setAttribute("x1", x(i));
      cursor.setAttribute("x2", x(i));
      cursor.setAttribute("visibility", "visible");
      while (tip.firstChild) tip.removeChild(tip.firstChild);
      tip.appendChild(el("b", { text: T.absolute(minutes[i]) }));
      lines.concat(spec.bars ? [spec.bars] : []).forEach(function (line) {
        var v = line.values[i];
        tip.appendChild(el("div", { "data-series": line.label, text: line.label + ": " +
          (v === null || v === undefined ? "no data" : (line.format ? line.format(v) : String(v))) }));
      });
      tip.hidden = false;
      var rect = node.getBoundingClientRect();
      var px = (x(i) / width) * rect.width;
      tip.style.left = Math.max(0, Math.min(px + 12, rect.width - tip.offsetWidth)) + "px";
    }
    node.onmousemove = function (event) {
      if (!count) return;
      var rect = node.getBoundingClientRect();
      var vx = ((event.clientX - rect.left) / rect.width) * width;
      show(Math.max(0, Math.min(count - 1, Math.round(((vx - left) / (width - left - right)) * (count - 1)))));
    };
    node.onmouseleave = function () { cursor.setAttribute("visibility", "hidden"); tip.hidden = true; };
  }

  function drawCharts(series) {
    var n = series.length;
    var labels = n ? [[0, "-" + n + "m", "start"], [Math.floor((n - 1) / 2), "-" + Math.ceil(n / 2) + "m"], [n - 1, "now", "end"]] : [];
    var pick = function (key) { return series.map(function (p) { return p[key]; }); };
    var minutes = pick("minute");
    lineChart(document.getElementById("chart-throughput"), {
      minutes: minutes, xLabels: labels, lines: [
        { label: "done", values: pick("processed"), colour: "#198754", colourVar: "--djq-ok", fill: true },
        { label: "failed", values: pick("failed"), colour: "#dc3545", colourVar: "--djq-bad" },
        // Drawn last and dashed, so it stays visible where it equals "done".
        { label: "enqueued", values: pick("enqueued"), colour: "#4f7cc4", colourVar: "--djq-enqueued", dashed: true },
      ],
    });
    lineChart(document.getElementById("chart-failures"), {
      minutes: minutes, xLabels: labels, unit: "%", max: 100, lines: [
        { label: "failure rate", colour: "#dc3545", colourVar: "--djq-bad", fill: true,
          values: series.map(function (p) { return p.failure_rate === null ? null : 100 * p.failure_rate; }),
          format: function (v) { return v.toFixed(1) + "%"; } },
      ],
      bars: { label: "finished", values: pick("processed") },
    });
  }

  /* The admin's theme toggle (admin/js/theme.js cycles it): say which theme is on. */
  function themeLabel() {
    var button = document.querySelector(".djq-theme");
    if (!button) return;
    var mode = document.documentElement.dataset.theme || "auto";
    button.textContent = "theme: " + mode;
  }
  new MutationObserver(themeLabel).observe(document.documentElement,
                                           { attributes: true, attributeFilter: ["data-theme"] });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", themeLabel);
  else themeLabel();

  /* ---- the monitor page ---------------------------------------------------------------- */
  var PAGE = 50, MAX_PAGE = 500;

  djq.monitorPage = function (root) {
    var urls = root.dataset;
    var filters = document.getElementById("task-filters");
    var more = document.getElementById("tasks-more");
    var seen = null;
    var pageSize = PAGE;

    function taskPage(id) { return urls.taskPageUrl.replace("00000000-0000-0000-0000-000000000000", id); }

    // Filters live in the page's query string, so a filtered view can be shared.
    var KEYS = ["state", "name", "queue", "worker", "search"];
    var params = new URLSearchParams(window.location.search);
    KEYS.forEach(function (key) {
      var value = params.get(key);
      if (!value) return;
      var field = filters.elements[key];
      if (field.tagName === "SELECT" && !Array.prototype.some.call(field.options, function (o) { return o.value === value; })) {
        field.appendChild(el("option", { text: value }));
      }
      field.value = value;
    });

    function filterQuery() {
      var query = new URLSearchParams();
      KEYS.forEach(function (key) {
        var value = filters.elements[key].value.trim();
        if (value) query.set(key, value);
      });
      return query;
    }

    function apiQuery() {
      var query = filterQuery();
      if (query.get("state") === "running") {  // claimed or started, whatever the state
        query.delete("state");
        query.set("running", "true");
      }
      query.set("page_size", String(pageSize));
      return query;
    }

    function loadTasks() {
      return request(urls.tasksUrl + "?" + apiQuery().toString()).then(function (res) {
        if (res.status !== 200) throw new Error(errorText(res.data));
        var ids = {};
        var rows = res.data.results.map(function (task) {
          ids[task.id] = true;
          var idCell = el("td", { className: "djq-id" }, [
            el("a", { href: taskPage(task.id), title: task.id, text: task.id.slice(0, 8) })]);
          var row = el("tr", { "data-id": task.id, "data-state": task.state }, [
            idCell,
            el("td", { className: "djq-name", text: task.name }),
            el("td", { className: "djq-state-cell" }, [stateBadge(task.state)]),
            progressBar(task.progress),
            cell(task.queue, "djq-queue"),
            cell(task.worker, "djq-worker"),
            cell(task.retries, "djq-num"),
            timeCell(task.date_created),
            el("td", { className: "djq-when djq-runtime" }, [runtimeNode(task)]),
          ]);
          if (seen && !seen[task.id]) row.className = "djq-new";
          return row;
        });
        seen = ids;
        replaceRows(document.getElementById("tasks"), rows, 9);
        var full = res.data.next !== null && res.data.next !== undefined;
        more.hidden = !full || pageSize >= MAX_PAGE;
        document.getElementById("tasks-count").textContent = rows.length + " shown" +
          (full && pageSize >= MAX_PAGE ? " (the newest " + MAX_PAGE + "; the admin lists them all)" : "");
        document.getElementById("tasks-updated").textContent = "updated " + T.absolute(new Date().toISOString());
      });
    }

    function warnings(queues, workersKnown) {
      var box = document.getElementById("djq-warnings");
      while (box.firstChild) box.removeChild(box.firstChild);
      queues.forEach(function (q) {
        if (!(q.waiting > 0 && q.workers === 0)) return;
        box.appendChild(el("div", { className: "djq-warning", "data-queue": q.name }, [
          el("strong", { text: "Queue “" + q.name + "”" }),
          " has " + q.waiting + " waiting task(s) and no live worker reading it" +
          (q.oldest_waiting_age ? " (the oldest has waited " + duration(q.oldest_waiting_age) + ")" : "") +
          ". Start one with: manage.py djq_worker -Q " + q.name,
        ]));
      });
    }

    function loadOverview() {
      return Promise.all([
        request(urls.statsUrl),
        urls.workersUrl ? request(urls.workersUrl) : Promise.resolve({ status: 200, data: null }),
        request(urls.queuesUrl),
      ]).then(function (answers) {
        answers.forEach(function (res) { if (res.status !== 200) throw new Error(errorText(res.data)); });
        var stats = answers[0].data;
        document.getElementById("stat-waiting").textContent = stats.tasks.waiting;
        document.getElementById("stat-running").textContent = stats.tasks.claimed + stats.tasks.started;
        document.getElementById("stat-scheduled").textContent = stats.tasks.scheduled;
        document.getElementById("stat-processed").textContent = stats.rates.processed_per_minute;
        document.getElementById("stat-failed").textContent = stats.rates.failed_per_minute;
        document.getElementById("stat-workers").textContent = stats.workers.alive;

        if (answers[1].data) replaceRows(document.getElementById("workers"), answers[1].data.results.map(function (w) {
          var status = el("td", { className: "djq-num" }, [el("span", { className: "djq-dot" + (w.alive ? " djq-up" : "") }), w.alive ? "online" : "offline"]);
          var load = w.loadavg.map(function (v) { return v.toFixed(2); });
          return el("tr", { "data-hostname": w.hostname, "data-alive": String(w.alive) }, [
            el("td", { title: "pid " + w.pid + " · queues " + w.queues.join(", "), text: w.hostname }),
            status,
            cell(w.pool + " × " + w.concurrency, "djq-num"),
            cell(w.active, "djq-num"), cell(w.processed, "djq-num"), cell(w.failed, "djq-num"),
            el("td", { className: "djq-num", title: "load average (1, 5, 15 min): " + load.join(" "), text: load.length ? load[0] : "–" }),
            timeCell(w.last_heartbeat),
          ]);
        }), 8);

        var queues = answers[2].data.results;
        replaceRows(document.getElementById("queues"), queues.map(function (q) {
          var stuck = q.waiting > 0 && q.workers === 0;
          var name = el("td", {}, [q.name]);
          if (stuck) name.appendChild(el("span", { className: "djq-badge-warn", title: "Tasks are waiting and no live worker reads this queue", text: "no worker" }));
          return el("tr", { "data-queue": q.name, "data-stuck": String(stuck), className: stuck ? "djq-stuck" : "" }, [
            name, cell(q.waiting, "djq-num"), cell(q.scheduled, "djq-num"), cell(q.active, "djq-num"),
            cell(duration(q.oldest_waiting_age), "djq-num"), cell(q.enqueued_per_minute, "djq-num"),
            cell(q.processed_per_minute, "djq-num"), cell(q.failed_per_minute, "djq-num"), cell(q.workers, "djq-num"),
          ]);
        }), 9);
        warnings(queues);
      });
    }

    function loadCharts() {
      return request(urls.chartsUrl + "?minutes=60").then(function (res) {
        if (res.status !== 200) throw new Error(errorText(res.data));
        drawCharts(res.data.series);
      });
    }

    var tasks = poll(function () {
      return filters.elements.live.checked ? loadTasks() : null;
    }, 1500);
    poll(loadOverview, 3000);
    poll(loadCharts, 10000);

    function filtersChanged() {
      var query = filterQuery().toString();
      window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
      seen = null;
      pageSize = PAGE;
      tasks.now();
    }
    filters.addEventListener("change", filtersChanged);
    filters.addEventListener("submit", function (event) { event.preventDefault(); filtersChanged(); });
    filters.elements.search.addEventListener("input", filtersChanged);
    more.addEventListener("click", function () {
      pageSize = Math.min(MAX_PAGE, pageSize + PAGE);
      loadTasks();
    });

    var form = document.getElementById("enqueue");
    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var out = document.getElementById("enqueue-result");
        out.className = "djq-message";
        var body = { name: form.elements.name.value };
        try {
          body.args = JSON.parse(form.elements.args.value || "[]");
          body.kwargs = JSON.parse(form.elements.kwargs.value || "{}");
        } catch (err) {
          out.className = "djq-message djq-error";
          out.textContent = "args and kwargs must be JSON: " + err.message;
          return;
        }
        if (form.elements.queue.value.trim()) body.queue = form.elements.queue.value.trim();
        if (form.elements.countdown.value.trim()) body.countdown = Number(form.elements.countdown.value);
        request(urls.tasksUrl, { method: "POST", body: body }).then(function (res) {
          if (res.status !== 201) {
            out.className = "djq-message djq-error";
            out.textContent = errorText(res.data);
            return;
          }
          out.textContent = "Sent ";
          out.appendChild(el("a", { href: taskPage(res.data.id), text: res.data.id, "data-task-id": res.data.id }));
          tasks.now();
        });
      });
    }
  };

  var REVOKE_OUTCOMES = {
    revoked: "Revoked: it will not run.",
    terminating: "Revoked: the running task is being terminated.",
    running: "Revoked, but it is already running and will finish (use Revoke and terminate to stop it).",
    finished: "It had already finished; nothing to revoke.",
  };

  function revokeMessage(data) {
    return REVOKE_OUTCOMES[data.outcome] || "Revoke: " + data.outcome;
  }

  /* ---- one task ------------------------------------------------------------------------ */
  djq.taskPage = function (root) {
    var urls = root.dataset;
    var etag = null;
    var task = null;
    var retry = document.getElementById("btn-retry");
    var revoke = document.getElementById("btn-revoke");
    var terminate = document.getElementById("btn-terminate");
    var message = document.getElementById("action-result");

    function show(id, value) {
      var node = document.getElementById(id);
      if (node) node.textContent = value === null || value === undefined || value === "" ? "–" : String(value);
    }

    /* Absolute to the second with its zone, then relative: as the admin's task page. */
    function showTime(id, iso) {
      var node = document.getElementById(id);
      while (node.firstChild) node.removeChild(node.firstChild);
      if (!iso) { node.textContent = "–"; return; }
      var time = T.element(iso);
      time.setAttribute("data-style", "both");
      node.appendChild(time);
      T.refresh(node);
    }

    function render(t) {
      task = t;
      var badge = document.getElementById("task-state");
      badge.textContent = t.state;
      badge.setAttribute("data-state", t.state);
      root.setAttribute("data-state", t.state);
      root.setAttribute("data-status", t.status);
      show("f-status", t.status);
      show("f-queue", t.queue);
      show("f-worker", t.worker);
      show("f-retries", t.retries);
      show("f-priority", t.priority);
      showTime("f-date_created", t.date_created);
      showTime("f-eta", t.eta);
      showTime("f-date_started", t.date_started);
      showTime("f-date_done", t.date_done);
      var runtime = document.getElementById("f-runtime");
      while (runtime.firstChild) runtime.removeChild(runtime.firstChild);
      runtime.appendChild(runtimeNode(t));
      show("f-parent_id", t.parent_id);
      show("f-root_id", t.root_id);
      show("f-args", "args " + JSON.stringify(t.args, null, 2));
      show("f-kwargs", "kwargs " + JSON.stringify(t.kwargs, null, 2));
      show("f-result", t.result === null ? "–" : JSON.stringify(t.result, null, 2));
      document.getElementById("traceback-box").hidden = !t.traceback;
      show("f-traceback", t.traceback);
      var progress = document.getElementById("task-progress");
      progress.hidden = t.progress === null;
      if (t.progress !== null) {
        document.getElementById("task-progress-bar").value = t.progress;
        document.getElementById("task-progress-text").textContent = t.progress.toFixed(0) + "%";
      }
      var done = t.status === "done";
      if (retry) retry.disabled = !done;
      if (revoke) revoke.disabled = done;
      if (terminate) terminate.disabled = done;
    }

    function load() {
      return request(urls.taskUrl, { etag: etag }).then(function (res) {
        if (res.status === 304) return;
        if (res.status === 404) { message.textContent = "This task no longer exists."; return; }
        if (res.status !== 200) throw new Error(errorText(res.data));
        etag = res.etag;
        render(res.data);
      });
    }

    var poller = poll(load, function () { return task && task.status === "done" ? 5000 : 1000; });

    function act(url, body, describe) {
      message.className = "djq-message";
      message.textContent = "…";
      request(url, { method: "POST", body: body }).then(function (res) {
        if (res.status !== 200) {
          message.className = "djq-message djq-error";
          message.textContent = errorText(res.data);
          return;
        }
        message.textContent = describe(res.data);
        poller.now();
      });
    }

    function confirmed(button) {
      var question = button.getAttribute("data-confirm");
      return !question || window.confirm(question);
    }

    if (retry) retry.addEventListener("click", function () {
      act(urls.retryUrl, {}, function () { return "Sent again under the same id."; });
    });
    if (revoke) revoke.addEventListener("click", function () {
      if (!confirmed(revoke)) return;
      act(urls.revokeUrl, { terminate: false }, revokeMessage);
    });
    if (terminate) terminate.addEventListener("click", function () {
      if (!confirmed(terminate)) return;
      act(urls.revokeUrl, { terminate: true }, revokeMessage);
    });
  };
})();
