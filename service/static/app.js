// facedet browser demo: webcam frames (or a dropped image) -> POST /v1/detect -> boxes on a canvas.
//
// One request is in flight at a time: the next frame is sent when the previous answer arrives,
// so a slow server lowers the frame rate instead of piling up requests.
// The page's own URL may preset the controls: ?min_score=0.3&max_faces=10&autostart=1
// After each drawn frame, <body> carries data-frames (frames drawn), data-last-count (faces in the
// last answer) and data-drawn-boxes (rectangles drawn for it): tests read them.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const video = $("video"), still = $("still"), overlay = $("overlay"), stage = $("stage");
  const ctx = overlay.getContext("2d");
  const grab = document.createElement("canvas");  // offscreen: the frame that is sent
  const params = new URLSearchParams(location.search);
  const BOX_COLOR = "#00ff00";

  let stream = null, running = false, frames = 0, fpsWindow = [];

  if (params.has("min_score")) { $("min-score").value = params.get("min_score"); }
  const showMinScore = () => { $("min-score-value").textContent = Number($("min-score").value).toFixed(2); };
  $("min-score").addEventListener("input", showMinScore);
  showMinScore();

  function status(text) { $("status").textContent = text || ""; }

  function detectUrl() {
    const q = new URLSearchParams({ min_score: $("min-score").value });
    if (params.has("max_faces")) q.set("max_faces", params.get("max_faces"));
    return "/v1/detect?" + q.toString();
  }

  async function detect(blob) {
    const t0 = performance.now();
    const response = await fetch(detectUrl(), {
      method: "POST", body: blob, headers: { "Content-Type": blob.type || "application/octet-stream" },
    });
    const body = await response.json().catch(() => ({ detail: response.statusText }));
    const latency = performance.now() - t0;
    if (!response.ok) { throw new Error(`${response.status}: ${body.detail}`); }
    return { body, latency };
  }

  // Boxes come back in the pixels of the image that was sent; the overlay has the same size.
  function draw(result, width, height) {
    if (overlay.width !== width || overlay.height !== height) { overlay.width = width; overlay.height = height; }
    ctx.clearRect(0, 0, width, height);
    const line = Math.max(2, Math.round(Math.min(width, height) / 200));
    ctx.lineWidth = line;
    ctx.font = `${Math.max(12, line * 6)}px sans-serif`;
    ctx.textBaseline = "bottom";
    let drawn = 0;
    for (const face of result.faces) {
      ctx.strokeStyle = BOX_COLOR;
      ctx.strokeRect(face.x, face.y, face.width, face.height);
      const label = face.score.toFixed(2);
      const tw = ctx.measureText(label).width + 6, th = line * 6 + 4;
      const ty = face.y >= th ? face.y : face.y + th;
      ctx.fillStyle = BOX_COLOR;
      ctx.fillRect(face.x, ty - th, tw, th);
      ctx.fillStyle = "#000";
      ctx.fillText(label, face.x + 3, ty - 1);
      drawn += 1;
    }
    frames += 1;
    document.body.dataset.frames = String(frames);
    document.body.dataset.lastCount = String(result.count);
    document.body.dataset.drawnBoxes = String(drawn);
    window.facedetLast = result;
    return drawn;
  }

  function showStats(result, latency) {
    const now = performance.now();
    fpsWindow.push(now);
    fpsWindow = fpsWindow.filter((t) => now - t < 2000);
    const fps = fpsWindow.length > 1 ? (fpsWindow.length - 1) / ((now - fpsWindow[0]) / 1000) : 0;
    $("fps").textContent = running ? fps.toFixed(1) : "–";
    $("latency").textContent = latency.toFixed(0);
    $("inference").textContent = result.inference_ms.toFixed(1);
    $("faces").textContent = String(result.count);
    $("model").textContent = result.model.name;
  }

  function frameBlob(width, height) {
    grab.width = width; grab.height = height;
    grab.getContext("2d").drawImage(video, 0, 0, width, height);
    return new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
  }

  async function loop() {
    while (running) {
      const width = video.videoWidth, height = video.videoHeight;
      if (!width || !height) { await new Promise((r) => setTimeout(r, 50)); continue; }
      try {
        const blob = await frameBlob(width, height);
        const { body, latency } = await detect(blob);
        if (!running) { break; }
        draw(body, width, height);
        showStats(body, latency);
        status("");
      } catch (err) {
        status(String(err.message || err));
        await new Promise((r) => setTimeout(r, 500));  // back off (e.g. 503 busy)
      }
    }
  }

  async function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      status("this browser has no camera access (getUserMedia needs https or localhost)");
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (err) {
      status(`camera unavailable: ${err.name}: ${err.message}`);
      document.body.dataset.state = "error";
      return;
    }
    still.hidden = true; video.hidden = false;
    video.srcObject = stream;
    await video.play();
    running = true;
    document.body.dataset.state = "camera";
    $("camera-btn").textContent = "Stop camera";
    loop();
  }

  function stopCamera() {
    running = false;
    if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
    video.srcObject = null;
    document.body.dataset.state = "idle";
    $("camera-btn").textContent = "Start camera";
    $("fps").textContent = "–";
  }

  async function detectFile(file) {
    stopCamera();
    const url = URL.createObjectURL(file);
    still.src = url;
    try {
      await still.decode();
    } catch (err) {
      status(`cannot show ${file.name} here; sending it anyway`);
    }
    video.hidden = true; still.hidden = false;
    document.body.dataset.state = "image";
    try {
      const { body, latency } = await detect(file);
      draw(body, body.image.width, body.image.height);
      showStats(body, latency);
      status("");
    } catch (err) {
      status(String(err.message || err));
      ctx.clearRect(0, 0, overlay.width, overlay.height);
    }
  }

  $("camera-btn").addEventListener("click", () => (running ? stopCamera() : startCamera()));
  $("file-input").addEventListener("change", (e) => { if (e.target.files[0]) { detectFile(e.target.files[0]); } });
  stage.addEventListener("dragover", (e) => { e.preventDefault(); stage.classList.add("dragging"); });
  stage.addEventListener("dragleave", () => stage.classList.remove("dragging"));
  stage.addEventListener("drop", (e) => {
    e.preventDefault();
    stage.classList.remove("dragging");
    const file = e.dataTransfer.files[0];
    if (file) { detectFile(file); }
  });

  if (params.get("autostart") === "1") { startCamera(); }
})();
