/* The access-export page (R21): the form is sent with fetch, the answer is the
   age file itself with its passphrase in a header.  The passphrase is shown
   once in the page and the file saved through an object URL, so no server
   process has to keep a copy for a later download. */
(function () {
  "use strict";

  var form = document.getElementById("export-form");
  var ready = document.getElementById("export-ready");
  var errorBox = document.getElementById("export-error");
  var button = document.getElementById("export-make");
  var again = document.getElementById("export-download");
  if (!form || !ready || !errorBox || !button || !again) {
    return;
  }
  var saved = null; // {blob, name}: the ciphertext, in this page's memory only

  function save() {
    if (!saved) {
      return;
    }
    var url = window.URL.createObjectURL(saved.blob);
    var link = document.createElement("a");
    link.href = url;
    link.download = saved.name;
    link.hidden = true;
    document.body.appendChild(link);
    link.click();
    link.remove();
    // The click has handed the data to the download; drop the URL soon after.
    window.setTimeout(function () { window.URL.revokeObjectURL(url); }, 1000);
  }

  function size(bytes) {
    var lang = document.documentElement.lang || "sv";
    var mb = bytes >= 1024 * 1024;
    var digits = mb ? 1 : 0;
    var text = new Intl.NumberFormat(lang, {
      minimumFractionDigits: digits, maximumFractionDigits: digits
    }).format(mb ? bytes / (1024 * 1024) : bytes / 1024);
    return text + "\u00a0" + (mb ? "MB" : "kB");
  }

  function show(passphrase, count, blob, name) {
    saved = { blob: blob, name: name };
    var heading = document.getElementById("export-heading");
    heading.textContent = heading.getAttribute("data-text")
      .replace("{count}", count).replace("{size}", size(blob.size));
    document.getElementById("export-passphrase").value = passphrase;
    ready.hidden = false;
    save();
  }

  function fail(message) {
    var line = document.createElement("p");
    line.className = "error";
    line.setAttribute("role", "alert");
    line.textContent = message;
    errorBox.replaceChildren(line);
  }

  function failed(response) {
    if (response.redirected) { // signed out meanwhile: follow to the sign-in page
      window.location.assign(response.url);
      return null;
    }
    return response.text().then(function (html) {
      var page = new DOMParser().parseFromString(html, "text/html");
      var found = page.querySelector("#export-error .error") || page.querySelector("main h1");
      var generic = form.getAttribute("data-failed").replace("HTTP", "HTTP " + response.status);
      fail(found ? found.textContent.trim() : generic);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    errorBox.replaceChildren();
    ready.hidden = true;
    saved = null;
    document.getElementById("export-passphrase").value = "";
    window.fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Callvault-Export-Request": "1" },
      body: new URLSearchParams(new FormData(form))
    }).then(function (response) {
      var passphrase = response.headers.get("Callvault-Export-Passphrase");
      if (!response.ok || !passphrase) {
        return failed(response);
      }
      var count = response.headers.get("Callvault-Export-Recordings") || "?";
      var disposition = response.headers.get("Content-Disposition") || "";
      var match = /filename="([^"]+)"/.exec(disposition);
      return response.blob().then(function (blob) {
        show(passphrase, count, blob, match ? match[1] : "export.zip.age");
      });
    }).catch(function () {
      fail(form.getAttribute("data-failed").replace("HTTP", "—"));
    }).then(function () {
      button.disabled = false;
      document.dispatchEvent(new CustomEvent("callvault:activity"));
    });
  });

  again.addEventListener("click", save);
})();
