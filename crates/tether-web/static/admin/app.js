// Tether admin: the only script (served from /admin/static/app.js; the CSP allows no other).
// Copy buttons: <button data-copy="#selector">.
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const target = document.querySelector(button.getAttribute("data-copy"));
  if (!target) return;
  const text = "value" in target ? target.value : target.textContent;
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text.trim());
    button.textContent = "Copied";
  } catch (_) {
    if (target.select) target.select();
    button.textContent = "Press Ctrl+C";
  }
  setTimeout(() => { button.textContent = label; }, 2000);
});
