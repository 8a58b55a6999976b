// Village agent UI: the signature pad, the live materials checklist, the authorization panels.
// Vanilla JS, no libraries: the laptop is offline and cheap.
(function () {
  "use strict";

  // ---- small behaviours kept out of the pages: the Content-Security-Policy allows no inline script
  document.addEventListener("change", function (e) {
    if (e.target.hasAttribute && e.target.hasAttribute("data-autosubmit") && e.target.form) e.target.form.submit();
  });
  document.addEventListener("click", function (e) {
    var el = e.target.closest ? e.target.closest("[data-print],[data-back]") : null;
    if (!el) return;
    if (el.hasAttribute("data-print")) window.print();
    else history.back();
  });

  // ---- signature pads: draw with mouse/touch/pen, keep a PNG data URL in the hidden field
  // The same thresholds as the server's check (village_agent/signature.py): a pixel is ink when
  // visible and darker than paper; a signature needs some ink spread across the pad. The server
  // decides; this only saves the villager a refused page.
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
  function padProblem(pad) {
    var ink = inkOf(pad.querySelector("canvas"));
    if (ink.pixels === 0) return "签名框是空白的，请群众在框内签名";
    if (ink.pixels < MIN_INK_PIXELS || ink.span < MIN_INK_SPAN) return "签名框内只有一点笔迹，不能作为签名，请群众完整签名";
    return "";
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
  });

  // ---- the villager's mark or a witness (委托书 at filing, 签收确认 at sign-off): show the chosen
  // panel only, and refuse before submitting what the server would refuse anyway
  document.querySelectorAll(".confirm").forEach(function (box) {
    var name = box.getAttribute("data-radio");
    var form = box.closest("form");
    var error = box.querySelector(".confirm-error");
    function chosen() {
      var r = form.querySelector("input[name='" + name + "']:checked");
      return r ? r.value : "";
    }
    function show() {
      var method = chosen();
      box.querySelectorAll(".auth-panel").forEach(function (p) {
        p.hidden = !method || p.getAttribute("data-method").split(" ").indexOf(method) < 0;
      });
      box.querySelectorAll("[data-when]").forEach(function (h) { h.hidden = h.getAttribute("data-when") !== method; });
      error.hidden = true;
    }
    form.querySelectorAll("input[name='" + name + "']").forEach(function (r) { r.addEventListener("change", show); });
    show();
    form.addEventListener("submit", function (e) {
      var method = chosen(), problem = "";
      if (method === "drawn_signature") {
        problem = padProblem(box.querySelector(".sigpad"));
      } else if (method === "photo_of_form" || method === "fingerprint") {
        var file = box.querySelector("input[type=file]");
        if (!file.files.length) problem = method === "fingerprint" ? "请拍摄群众按了手印的照片" : "请拍摄或选择已签字的照片";
      } else if (method === "witness") {
        if (!box.querySelector("input[name=witness_name]").value.trim()) problem = "请填写见证人姓名";
      } else if (name === "method") {
        problem = "请选择签收确认方式";
      }
      if (problem) {
        e.preventDefault();
        error.textContent = problem; error.hidden = false;
        error.scrollIntoView({ block: "center" });
      }
    });
  });

  // ---- confirmations for irreversible actions
  document.querySelectorAll("[data-confirm]").forEach(function (b) {
    b.addEventListener("click", function (e) { if (!window.confirm(b.getAttribute("data-confirm"))) e.preventDefault(); });
  });

  // ---- file pickers: show the chosen file's name beside the Chinese button
  document.querySelectorAll(".filepick input[type=file]").forEach(function (input) {
    input.addEventListener("change", function () {
      var label = input.closest(".filepick").nextElementSibling;
      if (label) label.textContent = input.files.length ? input.files[0].name : "未选择文件";
    });
  });

  var form = document.getElementById("request-form");
  if (!form) return;

  // ---- live materials checklist (一次性告知): ask the server, which asks the catalogue
  var select = document.getElementById("matter-select");
  var outcome = document.getElementById("outcome");
  var missingBox = document.getElementById("missing-box");
  var missingList = document.getElementById("missing-list");
  var reason = document.getElementById("return-reason");
  var commitHint = document.getElementById("commit-hint");
  var clockHint = document.getElementById("clock-hint");
  var assessError = document.getElementById("assess-error");
  var seq = 0;

  // ---- the 委托书 text names the applicant and the matter being agreed to, as they are typed and chosen
  var authText = document.getElementById("authorization-text");
  var nameInput = form.querySelector("input[name=name]");
  function fillAuthorization() {
    if (!authText || !authText.dataset.template) return;
    var chosen = select && select.selectedOptions.length ? select.selectedOptions[0].dataset.name : "";
    var who = nameInput && nameInput.value.trim() ? nameInput.value.trim() : "委托人";
    authText.textContent = authText.dataset.template
      .replace("本人委托人委托", "本人" + who + "委托")
      .replace("“所选事项”", "“" + (chosen || "所选事项") + "”");
  }
  if (select) select.addEventListener("change", fillAuthorization);
  if (nameInput) nameInput.addEventListener("input", fillAuthorization);
  fillAuthorization();

  function currentSet() {
    var code = select.value;
    var found = null;
    form.querySelectorAll("fieldset.mats").forEach(function (fs) {
      var on = fs.getAttribute("data-code") === code;
      fs.hidden = !on; fs.disabled = !on;
      if (on) found = fs;
    });
    return found;
  }

  function refresh() {
    var fs = currentSet();
    if (!fs) {
      outcome.className = "outcome none"; outcome.textContent = "请先选择办理事项";
      missingBox.hidden = true; reason.hidden = true; commitHint.hidden = true; clockHint.hidden = true;
      return;
    }
    var q = new URLSearchParams();
    q.append("matter", select.value);
    fs.querySelectorAll("input[name=materials]:checked").forEach(function (c) { q.append("m", c.value); });
    fs.querySelectorAll("input[name=not_applicable]:checked").forEach(function (c) { q.append("na", c.value); });
    var mine = ++seq;
    fetch("/api/assess?" + q.toString(), { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (a) { if (mine === seq) show(fs, a); })
      .catch(function () { if (mine === seq) { assessError.hidden = false; assessError.textContent = "无法核对材料，请刷新页面重试"; } });
  }

  function show(fs, a) {
    assessError.hidden = true;
    if (!a.ok) { assessError.hidden = false; assessError.textContent = a.error; return; }
    outcome.className = "outcome " + a.outcome;
    outcome.textContent = a.outcome_zh + "（" + a.kind_zh + "）";
    missingList.innerHTML = "";
    a.missing.forEach(function (m) {
      var li = document.createElement("li");
      li.className = m.main ? "m-main" : "m-aux";
      li.textContent = m.name + (m.main ? "（主要材料，必须提交）" : (m.tolerated ? "（辅助材料，可容缺后补）" : "（辅助材料，须补齐）"));
      missingList.appendChild(li);
    });
    missingBox.hidden = a.missing.length === 0;
    if (a.missing.length === 0) { missingBox.hidden = false; var li = document.createElement("li"); li.className = "none"; li.textContent = "无，材料齐全"; missingList.appendChild(li); }
    reason.hidden = !a.return_reason; reason.textContent = a.return_reason ? "退回原因：" + a.return_reason : "";
    commitHint.hidden = a.commit_ids.length === 0;
    clockHint.hidden = !a.clock_waits;
    fs.querySelectorAll(".commit").forEach(function (c) {
      var need = a.commit_ids.indexOf(c.getAttribute("data-material")) >= 0;
      c.hidden = !need;
      c.querySelector("input").disabled = !need;
    });
  }

  select.addEventListener("change", refresh);
  form.addEventListener("change", function (e) {
    if (e.target.name === "materials" || e.target.name === "not_applicable") refresh();
  });
  refresh();
})();
