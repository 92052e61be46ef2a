// The console's only script: CSRF-carrying POSTs, the live-calls poller, confirmations.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

async function postJson(url, fields) {
  const body = new URLSearchParams(fields || {});
  const response = await fetch(url, {
    method: "POST",
    headers: { "X-CSRF-Token": csrfToken(), "Accept": "application/json" },
    body: body,
    credentials: "same-origin",
  });
  let data = {};
  try { data = await response.json(); } catch (e) { /* an empty or HTML body */ }
  if (!response.ok) throw new Error(data.message || ("HTTP " + response.status));
  return data;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text == null || text === "" ? "—" : String(text);
  row.appendChild(td);
  return td;
}

function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

function liveCalls(table) {
  const body = table.querySelector("tbody");
  const empty = document.getElementById("live-empty");
  const count = document.getElementById("live-count");
  const updated = document.getElementById("live-updated");
  const error = document.getElementById("live-error");
  const pollMs = Number(table.dataset.pollMs) || 1000;

  function showError(message) {
    error.textContent = message;
    error.hidden = !message;
  }

  function render(data) {
    body.replaceChildren();
    for (const call of data.calls) {
      const row = document.createElement("tr");
      row.dataset.callId = call.call_id;
      const link = document.createElement("a");
      link.href = "/console/calls/" + encodeURIComponent(call.call_id);
      link.textContent = call.call_id;
      const first = document.createElement("td");
      first.appendChild(link);
      row.appendChild(first);
      cell(row, call.channel);
      cell(row, call.agent);
      cell(row, call.from_number);
      cell(row, call.to_number);
      cell(row, clock(call.duration_s), "num");
      cell(row, call.turns, "num");
      const actions = cell(row, "");
      actions.textContent = "";
      if (data.can_change) {
        const hangUp = document.createElement("button");
        hangUp.className = "danger small hang-up";
        hangUp.textContent = "Hang up";
        hangUp.addEventListener("click", async () => {
          hangUp.disabled = true;
          try { await postJson("/console/live/" + encodeURIComponent(call.call_id) + "/hangup"); showError(""); }
          catch (e) { showError(e.message); hangUp.disabled = false; }
        });
        const transfer = document.createElement("button");
        transfer.className = "small";
        transfer.textContent = "Transfer";
        if (!call.can_transfer) {
          transfer.disabled = true;
          transfer.title = call.channel + " calls cannot be transferred";
        } else {
          transfer.addEventListener("click", async () => {
            const target = window.prompt("Transfer to (SIP URI or number):");
            if (!target) return;
            try { await postJson("/console/live/" + encodeURIComponent(call.call_id) + "/transfer", { target }); showError(""); }
            catch (e) { showError(e.message); }
          });
        }
        actions.append(hangUp, " ", transfer);
      }
      body.appendChild(row);
    }
    empty.hidden = data.calls.length > 0;
    table.hidden = data.calls.length === 0;
    count.textContent = data.calls.length + " live";
    updated.textContent = "updated " + new Date().toLocaleTimeString();
  }

  async function poll() {
    try {
      const response = await fetch("/console/live.json", { headers: { "Accept": "application/json" }, credentials: "same-origin" });
      if (response.status === 401) { window.location.href = "/console/login?next=/console/live"; return; }
      if (!response.ok) throw new Error("HTTP " + response.status);
      render(await response.json());
      if (error.dataset.source === "poll") showError("");
    } catch (e) {
      error.dataset.source = "poll";
      showError("Cannot reach the server (" + e.message + "); retrying.");
    }
    window.setTimeout(poll, pollMs);
  }
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("live-calls");
  if (table) liveCalls(table);
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
