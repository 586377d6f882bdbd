/* djq's one time policy, shared by the admin and the monitor: a time reads as relative
   ("3 min ago"), with the absolute time and its zone on hover ("2026-12-04 14:43:42 UTC"),
   in the server's time zone (<meta name="djq-time-zone">, else the <time>'s data-tz);
   a running task shows its elapsed time, counting live.

   Markup: <time class="djq-time" datetime="ISO">…</time> (data-style="both" shows the
   absolute time too), <span class="djq-elapsed" data-since="ISO">…</span>. */
(function () {
  "use strict";

  function zone() {
    var meta = document.querySelector('meta[name="djq-time-zone"]');
    var node = document.querySelector("[data-tz]");
    var name = (meta && meta.content) || (node && node.getAttribute("data-tz")) || "UTC";
    try {
      new Intl.DateTimeFormat("en-GB", { timeZone: name });
      return name;
    } catch (err) {
      return "UTC";
    }
  }

  var formatters = {};

  function formatter(name) {
    if (!formatters[name]) {
      formatters[name] = new Intl.DateTimeFormat("en-GB", {
        timeZone: name, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
      });
    }
    return formatters[name];
  }

  /* "2026-12-04 14:43:42 UTC" in the server's zone. */
  function absolute(iso) {
    if (!iso) return "–";
    var date = new Date(iso);
    if (isNaN(date.getTime())) return String(iso);
    var parts = {};
    formatter(zone()).formatToParts(date).forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" +
      parts.minute + ":" + parts.second + " " + (parts.timeZoneName || zone());
  }

  /* Seconds as "240 ms", "2.50 s", "14.2 s", "3 min 5 s", "2 h 10 min", "3 d 4 h". */
  function duration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "–";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 10) return seconds.toFixed(2) + " s";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    var s = Math.floor(seconds);
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  /* "just now", "12 s ago", "5 min ago", "3 h ago", "2 d ago", "in 4 min". */
  function relative(iso, now) {
    if (!iso) return "–";
    var seconds = ((now || Date.now()) - Date.parse(iso)) / 1000;
    if (isNaN(seconds)) return String(iso);
    var future = seconds < 0;
    var a = Math.abs(seconds);
    var text;
    if (a < 2) return "just now";
    if (a < 60) text = Math.floor(a) + " s";
    else if (a < 3600) text = Math.floor(a / 60) + " min";
    else if (a < 86400) text = Math.floor(a / 3600) + " h";
    else text = Math.floor(a / 86400) + " d";
    return future ? "in " + text : text + " ago";
  }

  /* Fill <time class="djq-time"> and .djq-elapsed elements under root (default: page). */
  function refresh(root) {
    var now = Date.now();
    (root || document).querySelectorAll("time.djq-time[datetime]").forEach(function (node) {
      var iso = node.getAttribute("datetime");
      var abs = absolute(iso);
      var rel = relative(iso, now);
      var text = node.getAttribute("data-style") === "both" ? abs + " (" + rel + ")" : rel;
      if (node.textContent !== text) node.textContent = text;
      var extra = node.getAttribute("data-extra");
      var title = abs + (extra ? "\n" + extra : "");
      if (node.getAttribute("title") !== title) node.setAttribute("title", title);
    });
    (root || document).querySelectorAll(".djq-elapsed[data-since]").forEach(function (node) {
      var since = Date.parse(node.getAttribute("data-since"));
      if (isNaN(since)) return;
      var text = (node.getAttribute("data-prefix") || "running ") + duration(Math.max(0, (now - since) / 1000));
      if (node.textContent !== text) node.textContent = text;
    });
  }

  /* A <time> element for iso (or a dash), as the server renders them. */
  function element(iso, extra) {
    if (!iso) return document.createTextNode("–");
    var node = document.createElement("time");
    node.className = "djq-time";
    node.setAttribute("datetime", iso);
    if (extra) node.setAttribute("data-extra", extra);
    node.textContent = relative(iso);
    node.setAttribute("title", absolute(iso) + (extra ? "\n" + extra : ""));
    return node;
  }

  window.djqTime = {
    absolute: absolute, relative: relative, duration: duration, refresh: refresh,
    element: element, zone: zone,
  };

  function start() {
    refresh();
    setInterval(function () { refresh(); }, 1000);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
