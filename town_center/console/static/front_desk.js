// Township window: the signature pad (the same pad and thresholds as the village laptop's, see
// village_agent/ui/static/app.js; the server decides with shared/evidence_image.py) and the
// on-behalf panel. Vanilla JS, no libraries.
(function () {
  "use strict";
  var INK_ALPHA = 64, INK_LUMA = 200, MIN_INK_PIXELS = 60, MIN_INK_SPAN = 24;
  function inkOf(canvas) {
    var data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    var n = 0, minX = 1e9, maxX = -1, minY = 1e9, maxY = -1;
    for (var y = 0; y < canvas.height; y++) {
      for (var x = 0; x < canvas.width; x++) {
        var i = (y * canvas.width + x) * 4;
        if (data[i + 3] >= INK_ALPHA && (299 * data[i] + 587 * data[i + 1] + 114 * data[i + 2]) / 1000 < INK_LUMA) {
          n++; if (x < minX) minX = x; if (x > maxX) maxX = x; if (y < minY) minY = y; if (y > maxY) maxY = y;
        }
      }
    }
    return { pixels: n, span: n ? Math.max(maxX - minX + 1, maxY - minY + 1) : 0 };
  }
  document.querySelectorAll(".sigpad").forEach(function (pad) {
    var canvas = pad.querySelector("canvas");
    var field = pad.querySelector("input[type=hidden]");
    var ctx = canvas.getContext("2d");
    var drawing = false, last = null, dirty = false;
    ctx.lineWidth = 2.6; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#111"; ctx.fillStyle = "#111";
    function point(e) {
      var r = canvas.getBoundingClientRect();
      return { x: (e.clientX - r.left) * canvas.width / r.width, y: (e.clientY - r.top) * canvas.height / r.height };
    }
    canvas.addEventListener("pointerdown", function (e) {
      drawing = true; last = point(e); canvas.setPointerCapture(e.pointerId); e.preventDefault();
      pad.querySelector(".sig-problem").hidden = true;
      ctx.beginPath(); ctx.arc(last.x, last.y, 1.2, 0, Math.PI * 2); ctx.fill(); dirty = true;
    });
    canvas.addEventListener("pointermove", function (e) {
      if (!drawing) return;
      var p = point(e);
      ctx.beginPath(); ctx.moveTo(last.x, last.y); ctx.lineTo(p.x, p.y); ctx.stroke();
      last = p; dirty = true; e.preventDefault();
    });
    function end() { if (drawing) { drawing = false; if (dirty) field.value = canvas.toDataURL("image/png"); } }
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("pointerleave", end);
    pad.querySelector(".sig-clear").addEventListener("click", function () {
      ctx.clearRect(0, 0, canvas.width, canvas.height); field.value = ""; dirty = false;
    });
    var form = pad.closest("form");
    if (form) form.addEventListener("submit", function (e) {
      var ink = inkOf(canvas), problem = "";
      if (ink.pixels === 0) problem = "签名框是空白的，请在框内签名";
      else if (ink.pixels < MIN_INK_PIXELS || ink.span < MIN_INK_SPAN) problem = "签名框内只有一点笔迹，不能作为签名，请完整签名";
      var out = pad.querySelector(".sig-problem");
      if (problem) { e.preventDefault(); out.textContent = problem; out.hidden = false; }
    });
  });
  document.querySelectorAll(".js-print").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  var behalf = document.querySelector("input[name=on_behalf]");
  if (behalf) {
    var panel = document.getElementById("behalf-panel");
    // display, not the hidden attribute: the panel's class sets its own display.
    var show = function () { panel.style.display = behalf.checked ? "" : "none"; };
    behalf.addEventListener("change", show); show();
  }
})();
