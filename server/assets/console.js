// Kipper console: the little the pages need beyond HTML. Everything here is an extra; every
// page reads and every form works without it.
(function () {
  "use strict";

  // The theme switch: remembered in this browser, applied before the page paints again.
  function applyTheme() {
    var theme = localStorage.getItem("kip-theme");
    if (theme) document.documentElement.setAttribute("data-theme", theme);
  }
  applyTheme();
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-theme-switch]");
    if (!button) return;
    var dark = document.documentElement.getAttribute("data-theme") === "dark" ||
      (!document.documentElement.getAttribute("data-theme") &&
        window.matchMedia("(prefers-color-scheme: dark)").matches);
    var next = dark ? "light" : "dark";
    localStorage.setItem("kip-theme", next);
    document.documentElement.setAttribute("data-theme", next);
  });

  // A destructive button stays disabled until the name it asks for is typed (the server
  // checks it again).
  function watchConfirmations(root) {
    root.querySelectorAll("input[data-confirm]").forEach(function (input) {
      var button = input.form && input.form.querySelector("button[type=submit]");
      if (!button) return;
      var check = function () { button.disabled = input.value.trim() !== input.dataset.confirm; };
      input.addEventListener("input", check);
      check();
    });
  }
  // Live logs: a WebSocket per shown log, closed when the page changes.
  var logSocket = null;
  function streamLogs(root) {
    var pre = root.querySelector ? root.querySelector("pre[data-logs]") : null;
    if (!pre) return;
    if (logSocket) logSocket.close();
    var state = document.getElementById("logs-state");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + pre.dataset.logs);
    logSocket = socket;
    socket.onopen = function () {
      pre.textContent = "";
      if (state) state.textContent = "Streaming live.";
    };
    socket.onmessage = function (event) {
      var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent += event.data + "\n";
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    };
    socket.onclose = function () {
      if (state && logSocket === socket) state.textContent = "The stream ended: reload to follow again.";
    };
  }
  document.addEventListener("DOMContentLoaded", function () { streamLogs(document); });
  document.addEventListener("htmx:afterSettle", function (event) { streamLogs(event.target); });
  // A swap that replaces the shown log (a new page) ends its stream; others (the project
  // switcher loading) leave it.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!logSocket || !target || !target.querySelector) return;
    if (target.matches("pre[data-logs]") || target.querySelector("pre[data-logs]")) {
      logSocket.close();
      logSocket = null;
    }
  });

  document.addEventListener("DOMContentLoaded", function () { watchConfirmations(document); });

  // A filter box applies itself: it presses the button that applies it without JavaScript.
  document.addEventListener("change", function (event) {
    var box = event.target.closest("[data-submit]");
    var button = box && document.getElementById(box.dataset.submit);
    if (button && box.form) box.form.requestSubmit(button);
  });
  document.addEventListener("htmx:afterSettle", function (event) { watchConfirmations(event.target); });
})();
