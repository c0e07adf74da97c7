/* callvault web UI: CSRF header for htmx, the enrolment link, the idle timer.
   Loaded as a file (the Content-Security-Policy forbids inline scripts). */
(function () {
  "use strict";

  var csrf = document.querySelector('meta[name="csrf-token"]');
  document.addEventListener("htmx:configRequest", function (event) {
    if (csrf) {
      event.detail.headers["X-CSRF-Token"] = csrf.content;
    }
  });

  // An enrolment link carries its token in the fragment (#...), which the
  // browser never sends: move it into the form, drop it from the address bar.
  var startForm = document.getElementById("enrol-start");
  var tokenField = document.getElementById("token");
  if (startForm && tokenField && window.location.hash.length > 1) {
    tokenField.value = decodeURIComponent(window.location.hash.slice(1));
    window.history.replaceState(null, "", window.location.pathname);
    startForm.submit();
  }

  // Sign out after a quiet spell, with a warning first.  The server ends the
  // session on its own clock whatever happens here.
  var body = document.body;
  var idle = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
  var warn = parseInt(body.getAttribute("data-warn-seconds") || "0", 10);
  var box = document.getElementById("idle-warning");
  var left = document.getElementById("idle-left");
  var signoutForm = document.getElementById("signout-form");
  if (!(idle > 0) || !box || !left || !signoutForm) {
    return;
  }
  var deadline = 0;
  var timer = 0;

  function reset() {
    deadline = Date.now() + idle * 1000;
    box.hidden = true;
  }

  function format(seconds) {
    var m = Math.floor(seconds / 60);
    var s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function signOut() {
    window.clearInterval(timer);
    document.getElementById("signout-why").value = "idle";
    signoutForm.submit();
  }

  function tick() {
    var remaining = Math.ceil((deadline - Date.now()) / 1000);
    if (remaining <= 0) {
      signOut();
    } else if (remaining <= warn) {
      left.textContent = format(remaining);
      if (box.hidden) {
        box.hidden = false;
        document.getElementById("idle-stay").focus();
      }
    }
  }

  document.getElementById("idle-stay").addEventListener("click", function () {
    window.fetch("/keepalive", { credentials: "same-origin" }).then(function (response) {
      if (response.ok) {
        reset();
      } else {
        signOut();
      }
    }, signOut);
  });
  document.addEventListener("htmx:afterRequest", reset);
  document.addEventListener("callvault:activity", reset);
  reset();
  timer = window.setInterval(tick, 1000);
})();
