/* The recording page: waveform from the stored peaks, the reason before the
   first play (which opens the playback grant), and the player. */
(function () {
  "use strict";

  var form = document.getElementById("reason-form");
  var audio = document.getElementById("player");
  var box = document.getElementById("player-box");
  var holder = document.getElementById("waveform");
  var errorBox = document.getElementById("reason-error");
  var note = document.getElementById("grant-note");
  if (!form || !audio || !holder) {
    return;
  }

  function activity() {
    document.dispatchEvent(new CustomEvent("callvault:activity"));
  }

  window.fetch(holder.getAttribute("data-peaks-url"), { credentials: "same-origin" })
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (data) {
      if (!data || !window.WaveSurfer) {
        return;
      }
      window.callvaultWave = window.WaveSurfer.create({
        container: holder,
        media: audio,
        peaks: [data.peaks],
        duration: data.duration,
        height: 96,
        normalize: true,
        waveColor: "#8094b4",
        progressColor: "#1f4e8c",
        cursorColor: "#b3261e",
        cursorWidth: 2
      });
      holder.setAttribute("data-ready", "1");
    });

  function showError(text) {
    errorBox.textContent = text || form.getAttribute("data-error-generic");
    errorBox.hidden = false;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    var body = new URLSearchParams(new FormData(form));
    window.fetch(form.action, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (response.status === 401) {
        window.location.assign("/signin?m=expired");
        return null;
      }
      return response.json().then(function (answer) {
        if (!response.ok) {
          showError(answer.error);
          return;
        }
        audio.src = answer.url;
        note.textContent = note.getAttribute("data-template").replace("{until}", answer.expires);
        form.hidden = true;
        box.hidden = false;
        audio.focus();
        activity();
        audio.play().catch(function () { /* the controls remain */ });
      });
    }, function () { showError(null); });
  });

  audio.addEventListener("play", activity);
  audio.addEventListener("seeked", activity);
})();
