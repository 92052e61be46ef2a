// The call page: microphone → WebRTC → the agent, and the agent's voice, transcript and latency back.
// No framework, nothing fetched from elsewhere. `window.voiceagent` exposes the live call for tests.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const callButton = $("call");
  const hangupButton = $("hangup");
  const statusLine = $("status");
  const speaking = $("speaking");
  const transcript = $("transcript");
  const empty = $("empty");
  const latencyRows = document.querySelector("#latency tbody");
  const agentAudio = $("agent");
  const headset = $("headset");
  // ?headset=1 preselects it (links for headset users, and the browser tests' fake microphone).
  headset.checked = new URLSearchParams(location.search).get("headset") === "1";

  const call = { pc: null, channel: null, mic: null, callId: null, remoteStream: null, events: [] };
  window.voiceagent = call;

  function setStatus(text) {
    statusLine.textContent = text;
  }

  // One transcript line per (turn, side), updated in place as text arrives.
  function line(turn, side) {
    const id = `turn-${turn}-${side}`;
    let li = document.getElementById(id);
    if (!li) {
      li = document.createElement("li");
      li.id = id;
      li.className = side;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = side === "user" ? "You" : "Agent";
      const text = document.createElement("span");
      text.className = "text";
      li.append(who, text);
      transcript.append(li);
      empty.hidden = true;
    }
    return li;
  }

  function showLatency(turn, ms) {
    const id = `latency-${turn}`;
    let row = document.getElementById(id);
    if (!row) {
      row = document.createElement("tr");
      row.id = id;
      row.innerHTML = "<td></td><td class=\"ms\"></td>";
      latencyRows.append(row);
    }
    row.cells[0].textContent = String(turn + 1);
    row.cells[1].textContent = ms == null ? "—" : `${Math.round(ms)} ms`;
  }

  function onEvent(event) {
    call.events.push(event);
    switch (event.type) {
      case "call":
        if (event.state === "connected") setStatus("Connected — say something");
        if (event.state === "ended") finish(`Call ended (${event.reason || "hung up"})`);
        break;
      case "speech":
        speaking.hidden = event.state !== "started";
        break;
      case "user":
        line(event.turn, "user").querySelector(".text").textContent = event.text;
        break;
      case "agent": {
        const li = line(event.turn, "agent");
        li.classList.toggle("pending", !event.final);
        if (event.text) li.querySelector(".text").textContent = event.text;
        break;
      }
      case "latency":
        showLatency(event.turn, event.first_audio_ms);
        break;
      default:
        break;
    }
  }

  function waitForIce(pc, timeoutMs) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState === "complete") {
          pc.removeEventListener("icegatheringstatechange", done);
          resolve();
        }
      };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, timeoutMs); // host candidates come at once; do not wait on slow STUN
    });
  }

  async function start() {
    callButton.disabled = true;
    headset.disabled = true;
    transcript.replaceChildren();
    latencyRows.replaceChildren();
    empty.hidden = false;
    try {
      setStatus("Asking for the microphone…");
      call.mic = await navigator.mediaDevices.getUserMedia({
        // On speakers the browser's echo canceller keeps the agent's voice off the line. With a
        // headset there is no echo, and the canceller only eats the caller's words when both talk
        // at once, which is exactly a barge-in; the server's echo guard covers what is left.
        audio: { echoCancellation: !headset.checked, noiseSuppression: true, autoGainControl: true },
      });
      const pc = new RTCPeerConnection({ iceServers: [] });
      call.pc = pc;
      for (const track of call.mic.getAudioTracks()) pc.addTrack(track, call.mic);
      pc.ontrack = (event) => {
        call.remoteStream = event.streams[0] || new MediaStream([event.track]);
        agentAudio.srcObject = call.remoteStream;
        agentAudio.play().catch(() => setStatus("Click the page to hear the agent"));
      };
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === "failed") finish("Connection failed");
      };
      call.channel = pc.createDataChannel("events");
      call.channel.onmessage = (message) => onEvent(JSON.parse(message.data));
      setStatus("Connecting…");
      await pc.setLocalDescription(await pc.createOffer());
      await waitForIce(pc, 2000);
      const response = await fetch("/v1/webrtc/offer", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.message || `${response.status} ${response.statusText}`);
      call.callId = body.call_id;
      await pc.setRemoteDescription({ type: body.type, sdp: body.sdp });
      hangupButton.disabled = false;
    } catch (error) {
      finish(`Could not call: ${error.message}`);
    }
  }

  function finish(message) {
    if (call.pc) call.pc.close();
    if (call.mic) call.mic.getTracks().forEach((track) => track.stop());
    call.pc = null;
    call.mic = null;
    speaking.hidden = true;
    hangupButton.disabled = true;
    callButton.disabled = false;
    headset.disabled = false;
    setStatus(message);
  }

  async function hangUp() {
    const id = call.callId;
    call.callId = null;
    hangupButton.disabled = true;
    setStatus("Hanging up…");
    // Tell the server first, so the call log says "hangup" rather than "the peer went away".
    if (id) await fetch(`/v1/webrtc/calls/${encodeURIComponent(id)}`, { method: "DELETE" }).catch(() => {});
    finish("Call ended");
  }

  callButton.addEventListener("click", start);
  hangupButton.addEventListener("click", hangUp);
  window.addEventListener("pagehide", () => {
    // keepalive: the request outlives the page, so the agent hangs up when the tab closes.
    if (call.callId) fetch(`/v1/webrtc/calls/${call.callId}`, { method: "DELETE", keepalive: true });
  });
})();
