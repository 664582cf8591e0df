// Write actions: the console token the operator gave (kept in this tab's sessionStorage,
// never in a cookie) goes in the Authorization header of each write request, so another
// site cannot make the browser act with it. See docs/console.md.
(function () {
  "use strict";
  const KEY = "fedorch-console-token";

  function token() { return sessionStorage.getItem(KEY) || ""; }
  function byId(id) { return document.getElementById(id); }
  function say(id, text, ok) {
    const el = byId(id);
    if (!el) return;
    el.textContent = text;
    el.className = ok ? "notice ok" : "notice bad";
  }

  async function post(url, body) {
    const headers = { "Content-Type": "application/json" };
    if (token()) headers["Authorization"] = "Bearer " + token();
    const reply = await fetch(url, {
      method: "POST", headers: headers, body: JSON.stringify(body || {}),
      credentials: "omit", cache: "no-store",
    });
    let data = {};
    try { data = await reply.json(); } catch (e) { data = { error: reply.statusText }; }
    return { status: reply.status, data: data };
  }

  // Who the stored token names, as this console verifies it.
  async function showIdentity() {
    const who = byId("identity");
    if (!who) return;
    if (!token()) { who.textContent = "no identity"; who.dataset.principal = ""; return; }
    const { status, data } = await post("/api/identity");
    if (status !== 200) {
      sessionStorage.removeItem(KEY);
      who.textContent = "no identity";
      who.dataset.principal = "";
      say("token-error", data.error || ("refused: " + status), false);
      return;
    }
    const until = new Date(data.expires_s * 1000).toISOString().slice(11, 16);
    who.textContent = data.principal + " (" + (data.allowed_here.join(", ") || "no write allowed here")
      + ", until " + until + " UTC)";
    who.dataset.principal = data.principal;
    say("token-error", "", true);
  }

  function useToken(value) {
    value = (value || "").trim();
    if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY);
    return showIdentity();
  }

  // A URL printed by `fedorch console token --url` carries the token in its fragment,
  // which the browser never sends to a server: keep it, then drop it from the address.
  // True when it found one.
  function tokenFromAddress() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!m) return false;
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
    return true;
  }

  // Opening such a URL on the page already open changes only the fragment: no new load.
  window.addEventListener("hashchange", function () { if (tokenFromAddress()) showIdentity(); });

  document.addEventListener("DOMContentLoaded", function () {
    tokenFromAddress();
    const input = byId("token-input");
    const use = byId("token-use");
    if (use) use.addEventListener("click", function () { useToken(input.value); input.value = ""; });
    const forget = byId("token-forget");
    if (forget) forget.addEventListener("click", function () { useToken(""); });
    showIdentity();
  });

  // The cancel button is inside the part of the page that live updates replace.
  document.addEventListener("click", async function (event) {
    const button = event.target.closest("#cancel-workflow");
    if (!button) return;
    const id = button.dataset.workflow;
    if (!confirm("Cancel workflow " + id + "?")) return;
    button.disabled = true;
    const { status, data } = await post("/workflows/" + encodeURIComponent(id) + "/cancel",
      { reason: "cancelled from the console" });
    if (status === 200) {
      say("action-result", "cancelled by " + (data.principal || "anonymous") + ": now " + data.state, true);
    } else {
      say("action-result", "cancel refused (" + status + "): " + (data.error || ""), false);
      button.disabled = false;
    }
  });
})();
