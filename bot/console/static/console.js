// The console's only script: live notices over a WebSocket, refetching the part that changed,
// and quick replies. Pages work without it (forms post normally); it only keeps them current.
"use strict";

(function () {
  const page = document.body.dataset.page;
  const conversation = document.body.dataset.conversation;
  const live = document.getElementById("live");
  let submitting = false;  // a form on its way: its own redirect decides the next page
  document.addEventListener("submit", function () { submitting = true; });

  async function refresh(url, id) {
    const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
    if (response.status === 401 || response.status === 403) {
      window.location.reload();  // signed out, or the conversation changed hands
      return;
    }
    if (response.ok) {
      document.getElementById(id).innerHTML = await response.text();  // server-rendered and escaped
    }
  }

  function refreshQueue() {
    return refresh("/agent/queue/rows" + window.location.search, "queue-rows");
  }

  async function refreshTranscript() {
    await refresh("/agent/c/" + conversation + "/transcript", "transcript");
    const box = document.getElementById("transcript");
    box.scrollTop = box.scrollHeight;
  }

  function onNotice(notice) {
    if (submitting) {
      return;
    }
    if (page === "queue") {
      refreshQueue();
    } else if (page === "conversation" && notice.conversation === conversation) {
      if (notice.type === "message") {
        refreshTranscript();
      } else if (notice.type === "viewers") {
        present();
      } else {
        window.location.reload();  // claimed, reassigned, handed back or closed
      }
    }
  }

  function connect(delay) {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + "/agent/ws");
    socket.onopen = function () {
      delay = 1000;
      if (live) { live.textContent = "live"; live.className = "live on"; }
    };
    socket.onmessage = function (event) { onNotice(JSON.parse(event.data)); };
    socket.onclose = function () {
      if (live) { live.textContent = "reconnecting…"; live.className = "live"; }
      window.setTimeout(function () { connect(Math.min(delay * 2, 30000)); }, delay);
    };
  }

  // Who else has this conversation open: the page says it is here every few seconds, and shows the others.
  function csrf() {
    const field = document.querySelector("form[action='/agent/logout'] input[name=csrf]");
    return field ? field.value : "";
  }

  async function present(leaving) {
    const body = new FormData();
    body.set("csrf", csrf());
    if (leaving) {
      body.set("leave", "1");
      navigator.sendBeacon("/agent/c/" + conversation + "/presence", body);
      return;
    }
    const response = await fetch("/agent/c/" + conversation + "/presence", {
      method: "POST", body: body, credentials: "same-origin", headers: { "Accept": "application/json" },
    }).catch(function () { return null; });
    if (!response || !response.ok) { return; }
    const others = (await response.json()).others;
    const box = document.getElementById("viewers");
    document.getElementById("viewer-names").textContent = others.map(function (viewer) {
      return viewer.username + (viewer.role === "supervisor" ? " (supervisor)" : "");
    }).join(", ");
    box.hidden = others.length === 0;
  }

  function quickReplies() {
    const text = document.getElementById("reply-text");
    const count = document.getElementById("reply-count");
    if (!text) { return; }
    const update = function () { count.textContent = String(text.value.length); };
    text.addEventListener("input", update);
    document.querySelectorAll(".quick-reply").forEach(function (button) {
      button.addEventListener("click", function () {
        text.value = button.dataset.text;
        update();
        text.focus();
      });
    });
  }

  // A visit's draft saves itself as the visitor goes. Without a connection it is kept on the
  // phone (this browser's storage, with the version it was based on) and sent when the connection
  // is back. The copy goes once saved, once the visit is submitted, at sign-out, or after a day.
  const DRAFT = "visit-draft:";
  const DRAFT_KEPT_MS = 24 * 3600 * 1000;

  function forgetDrafts(all) {
    for (let i = window.localStorage.length - 1; i >= 0; i--) {
      const name = window.localStorage.key(i);
      if (name && name.startsWith(DRAFT)) {
        const kept = JSON.parse(window.localStorage.getItem(name) || "{}");
        if (all || !(Date.now() - kept.at < DRAFT_KEPT_MS)) { window.localStorage.removeItem(name); }
      }
    }
  }

  function visitDrafts() {
    const form = document.getElementById("visit-form");
    const status = document.getElementById("save-status");
    if (document.body.dataset.state === "submitted") {
      window.localStorage.removeItem(DRAFT + document.body.dataset.booking);
    }
    if (!form || !status) { return; }
    const kept = DRAFT + form.dataset.booking;
    let timer = null;
    let inflight = null;  // the autosave on its way, if any
    let leaving = false;  // the form is being submitted: no more autosaves
    const show = function (text, kind) { status.textContent = text; status.className = "save-status " + kind; };
    const keep = function () {
      const values = [];
      new FormData(form).forEach(function (value, name) {
        if (name !== "csrf" && name !== "version") { values.push([name, value]); }
      });
      const previous = JSON.parse(window.localStorage.getItem(kept) || "null");
      const version = previous ? previous.version : form.elements.version.value;  // what the edits started from
      window.localStorage.setItem(kept, JSON.stringify({ version: version, at: Date.now(), values: values }));
    };
    const restore = function () {
      const copy = JSON.parse(window.localStorage.getItem(kept) || "null");
      if (!copy) { return null; }
      copy.values.forEach(function (pair) {
        form.querySelectorAll("[name='" + CSS.escape(pair[0]) + "']").forEach(function (field) {
          if (field.type === "radio" || field.type === "checkbox") {
            field.checked = field.value === pair[1];
          } else {
            field.value = pair[1];
          }
        });
      });
      return copy.version;
    };
    const save = function (basedOn) {
      if (leaving) { return Promise.resolve(); }
      inflight = saveNow(basedOn).finally(function () { inflight = null; });
      return inflight;
    };
    const saveNow = async function (basedOn) {
      keep();
      const body = new FormData(form);
      body.set("version", basedOn || form.elements.version.value);
      let response;
      try {
        response = await fetch(form.dataset.draftUrl, {
          method: "POST", body: body, credentials: "same-origin", headers: { "Accept": "application/json" },
        });
      } catch (offline) {
        show("Offline: kept on this phone, will save when the connection is back", "offline");
        return;
      }
      const answer = await response.json().catch(function () { return { error: "not saved (" + response.status + ")" }; });
      if (response.ok) {
        form.elements.version.value = String(answer.version);
        window.localStorage.removeItem(kept);
        show("Saved " + answer.saved_at, "saved");
      } else if (response.status === 409 && basedOn) {
        window.localStorage.removeItem(kept);  // the page now shows this phone's copy; saving it is a choice
        show("Someone else saved this visit after this phone's copy was made. The page shows this phone's " +
             "copy, not saved: check it, then press Save draft.", "problem");
      } else {
        show(answer.error, "problem");
      }
    };
    const later = function () { window.clearTimeout(timer); timer = window.setTimeout(save, 800); };
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    form.addEventListener("submit", function (event) {
      window.clearTimeout(timer);
      if (inflight) {  // let it land first, so that the form carries the version it produced
        event.preventDefault();
        const button = event.submitter;
        inflight.then(function () { form.requestSubmit(button); });
        return;
      }
      leaving = true;
    });
    window.addEventListener("online", function () { if (window.localStorage.getItem(kept)) { save(); } });
    const basedOn = restore();
    if (basedOn !== null) { save(basedOn); }
  }

  forgetDrafts(false);
  document.querySelectorAll("form[action='/agent/logout']").forEach(function (form) {
    form.addEventListener("submit", function () { forgetDrafts(true); });
  });
  if (page === "visit") { visitDrafts(); }

  if (page === "queue" || page === "conversation") {
    connect(1000);
    if (page === "queue") { window.setInterval(refreshQueue, 30000); }  // waiting times move on
    if (page === "conversation") {
      const box = document.getElementById("transcript");
      box.scrollTop = box.scrollHeight;
      quickReplies();
      present();
      window.setInterval(present, 8000);
      window.addEventListener("pagehide", function () { present(true); });
    }
  }
})();
