// The console works without this script (every action is a plain form post). It adds two things:
// - elements with data-refresh-url replace their content with that URL's HTML every data-refresh-seconds,
//   until the new content carries a [data-refresh-done] marker;
// - forms with data-confirm ask before they submit.
"use strict";

function startRefresh(element) {
  const url = element.dataset.refreshUrl;
  const seconds = Number(element.dataset.refreshSeconds || "5");
  const tick = async () => {
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.redirected || !response.ok) {
        element.dataset.refreshState = "stopped";
        return; // signed out or refused: stop quietly, the next navigation shows why
      }
      element.innerHTML = await response.text();
      element.dataset.refreshState = "fresh";
      if (element.querySelector("[data-refresh-done]")) {
        return;
      }
    } catch (error) {
      element.dataset.refreshState = "offline";
    }
    setTimeout(tick, seconds * 1000);
  };
  setTimeout(tick, seconds * 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh-url]").forEach(startRefresh);
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  });
});
