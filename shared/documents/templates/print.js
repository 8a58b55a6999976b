// The print view's button: the consoles' Content-Security-Policy allows scripts from this server only.
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("print-button");
  if (button) { button.addEventListener("click", function () { window.print(); }); }
});
