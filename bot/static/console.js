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

  if (page === "queue" || page === "conversation") {
    connect(1000);
    if (page === "queue") { window.setInterval(refreshQueue, 30000); }  // waiting times move on
    if (page === "conversation") {
      const box = document.getElementById("transcript");
      box.scrollTop = box.scrollHeight;
      quickReplies();
    }
  }
})();
