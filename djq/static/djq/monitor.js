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

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return (seconds * 1000).toFixed(0) + " ms";
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 2 : 1) + " s";
    var m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
    if (m < 60) return m + "m " + s + "s";
    return Math.floor(m / 60) + "h " + (m % 60) + "m";
  }

  function ago(iso) {
    if (!iso) return "–";
    var seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 60) return Math.floor(seconds) + "s ago";
    return duration(seconds).replace(/ \d+s$/, "") + " ago";
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "–";
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

  /* lines: [{values: [..], colour: "#..", fill: bool}], labels under the x axis. */
  function lineChart(node, lines, xLabels, unit, fixedMax) {
    var width = 600, height = 180, left = 34, right = 6, top = 8, bottom = 18;
    while (node.firstChild) node.removeChild(node.firstChild);
    var count = lines.length ? lines[0].values.length : 0;
    var max = fixedMax || niceMax(Math.max.apply(null, [0].concat.apply([], lines.map(function (l) { return l.values; }))));
    function x(i) { return left + (count > 1 ? (i * (width - left - right)) / (count - 1) : 0); }
    function y(v) { return top + (height - top - bottom) * (1 - v / max); }
    [0, 0.5, 1].forEach(function (f) {
      node.appendChild(svg("line", { x1: left, x2: width - right, y1: y(max * f), y2: y(max * f), class: "axis" }));
      var label = svg("text", { x: left - 4, y: y(max * f) + 3, "text-anchor": "end" });
      label.textContent = (Math.round(max * f * 10) / 10) + unit;
      node.appendChild(label);
    });
    xLabels.forEach(function (item) {
      var label = svg("text", { x: x(item[0]), y: height - 4, "text-anchor": item[2] || "middle" });
      label.textContent = item[1];
      node.appendChild(label);
    });
    lines.forEach(function (line) {
      var points = line.values.map(function (v, i) { return x(i).toFixed(1) + "," + y(v).toFixed(1); });
      if (line.fill && points.length) {
        node.appendChild(svg("polygon", {
          points: x(0) + "," + y(0) + " " + points.join(" ") + " " + x(count - 1) + "," + y(0),
          fill: line.colour, "fill-opacity": "0.12", stroke: "none",
        }));
      }
      node.appendChild(svg("polyline", {
        points: points.join(" "), fill: "none", stroke: line.colour, "stroke-width": "1.6",
        "stroke-linejoin": "round", "vector-effect": "non-scaling-stroke",
      }));
    });
  }

  function drawCharts(series) {
    var n = series.length;
    var labels = n ? [[0, "-" + n + "m", "start"], [Math.floor((n - 1) / 2), "-" + Math.ceil(n / 2) + "m"], [n - 1, "now", "end"]] : [];
    var pick = function (key) { return series.map(function (p) { return p[key]; }); };
    lineChart(document.getElementById("chart-throughput"), [
      { values: pick("enqueued"), colour: "#8aa4c8" },
      { values: pick("processed"), colour: "#198754", fill: true },
      { values: pick("failed"), colour: "#dc3545" },
    ], labels, "");
    lineChart(document.getElementById("chart-failures"), [
      { values: series.map(function (p) { return 100 * p.failure_rate; }), colour: "#dc3545", fill: true },
    ], labels, "%", 100);
  }

  /* ---- the monitor page ---------------------------------------------------------------- */
  djq.monitorPage = function (root) {
    var urls = root.dataset;
    var filters = document.getElementById("task-filters");
    var seen = null;

    function taskPage(id) { return urls.taskPageUrl.replace("00000000-0000-0000-0000-000000000000", id); }

    // Filters live in the page's query string, so a filtered view can be shared.
    var params = new URLSearchParams(window.location.search);
    ["state", "name", "queue", "worker", "search"].forEach(function (key) {
      if (params.get(key)) filters.elements[key].value = params.get(key);
    });

    function filterQuery() {
      var query = new URLSearchParams();
      ["state", "name", "queue", "worker", "search"].forEach(function (key) {
        var value = filters.elements[key].value.trim();
        if (value) query.set(key, value);
      });
      return query;
    }

    function loadTasks() {
      var query = filterQuery();
      query.set("page_size", "50");
      return request(urls.tasksUrl + "?" + query.toString()).then(function (res) {
        if (res.status !== 200) throw new Error(errorText(res.data));
        var ids = {};
        var rows = res.data.results.map(function (task) {
          ids[task.id] = true;
          var row = el("tr", { "data-id": task.id, "data-state": task.state }, [
            el("td", { className: "djq-id" }, [el("a", { href: taskPage(task.id), text: task.id.slice(0, 8) + "…" })]),
            cell(task.name),
            el("td", { className: "djq-state-cell" }, [stateBadge(task.state)]),
            progressBar(task.progress),
            cell(task.queue),
            cell(task.worker),
            cell(task.retries),
            el("td", { title: when(task.date_created), text: ago(task.date_created) }),
            cell(duration(task.runtime)),
          ]);
          if (seen && !seen[task.id]) row.className = "djq-new";
          return row;
        });
        seen = ids;
        replaceRows(document.getElementById("tasks"), rows, 9);
        document.getElementById("tasks-updated").textContent = "updated " + new Date().toLocaleTimeString();
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
          var status = el("td", {}, [el("span", { className: "djq-dot" + (w.alive ? " djq-up" : "") }), w.alive ? "online" : "offline"]);
          return el("tr", { "data-hostname": w.hostname, "data-alive": String(w.alive) }, [
            el("td", { title: "pid " + w.pid + " · queues " + w.queues.join(", "), text: w.hostname }),
            status,
            cell(w.pool + " × " + w.concurrency),
            cell(w.active), cell(w.processed), cell(w.failed),
            cell(w.loadavg.map(function (v) { return v.toFixed(2); }).join(" ")),
            el("td", { title: when(w.last_heartbeat), text: ago(w.last_heartbeat) }),
          ]);
        }), 8);

        replaceRows(document.getElementById("queues"), answers[2].data.results.map(function (q) {
          return el("tr", { "data-queue": q.name }, [
            cell(q.name), cell(q.waiting), cell(q.scheduled), cell(q.active),
            cell(duration(q.oldest_waiting_age)), cell(q.enqueued_per_minute),
            cell(q.processed_per_minute), cell(q.failed_per_minute), cell(q.workers),
          ]);
        }), 9);
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
      tasks.now();
    }
    filters.addEventListener("change", filtersChanged);
    filters.addEventListener("submit", function (event) { event.preventDefault(); filtersChanged(); });
    filters.elements.search.addEventListener("input", filtersChanged);

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
      show("f-date_created", when(t.date_created));
      show("f-eta", t.eta ? when(t.eta) : null);
      show("f-date_started", t.date_started ? when(t.date_started) : null);
      show("f-date_done", t.date_done ? when(t.date_done) : null);
      show("f-runtime", t.runtime === null ? null : duration(t.runtime));
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
