// Latchkey console: enhancements only; every page works without them.
"use strict";

// Validation as you type: the policy editor posts its text to the
// console's validator and shows the findings under it.
function watchPolicyEditor() {
  const area = document.querySelector("textarea[data-validate]");
  if (!area) return;
  const form = area.closest("form");
  const csrf = form ? form.querySelector("input[name=csrf]") : null;
  const out = document.getElementById("findings");
  let timer = null;
  let sent = 0;
  area.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++sent;
      try {
        const r = await fetch(area.dataset.validate, {
          method: "POST",
          headers: { "content-type": "application/json", "x-csrf-token": csrf ? csrf.value : "" },
          body: area.value,
          credentials: "same-origin",
        });
        if (!r.ok || mine !== sent) return;
        const answer = await r.json();
        const parsed = new DOMParser().parseFromString(answer.html, "text/html");
        const fresh = parsed.getElementById("findings");
        if (fresh && out) out.replaceChildren(...fresh.childNodes);
        if (out) out.dataset.count = String(answer.findings.length);
      } catch (e) {
        // Offline or signed out: the Validate button still works.
      }
    }, 300);
  });
}

// A finding's path selects what it names in the editor (offsets count
// characters, as the validator's spans do; the textarea counts UTF-16
// units).
function watchFindingLinks() {
  const area = document.querySelector("textarea[data-validate]");
  const out = document.getElementById("findings");
  if (!area || !out) return;
  out.addEventListener("click", (event) => {
    const link = event.target.closest("a.locate");
    const item = link ? link.closest("li[data-start]") : null;
    if (!item) return;
    event.preventDefault();
    const chars = Array.from(area.value);
    const at = (n) => chars.slice(0, Number(n)).join("").length;
    area.focus();
    area.setSelectionRange(at(item.dataset.start), at(item.dataset.end));
  });
}

// The switched role's time left, kept current.
function watchRoleClock() {
  const role = document.getElementById("active-role");
  if (!role) return;
  const left = role.querySelector(".left");
  const expires = Number(role.dataset.expires);
  const shown = Date.now() / 1000;
  const serverLeft = (() => {
    const m = /(?:(\d+) h )?(\d+) min/.exec(left.textContent);
    return m ? (Number(m[1] || 0) * 60 + Number(m[2])) * 60 : 0;
  })();
  const tick = () => {
    const secs = Math.max(0, serverLeft - (Date.now() / 1000 - shown));
    const minutes = Math.ceil(secs / 60);
    const h = Math.floor(minutes / 60), m = minutes % 60;
    left.textContent = h > 0 ? `${h} h ${String(m).padStart(2, "0")} min` : `${m} min`;
    if (secs <= 0) window.location.reload();
  };
  if (expires) setInterval(tick, 30000);
}

// Live lists (Sessions) re-read every data-refresh seconds, while the page
// is visible and someone has used it in the last ten minutes, so that an
// unattended console still reaches its idle timeout.
function watchLiveRegion() {
  const region = document.querySelector("[data-refresh]");
  if (!region) return;
  const every = Math.max(5, Number(region.dataset.refresh) || 10) * 1000;
  let used = Date.now();
  for (const e of ["keydown", "pointerdown", "pointermove", "scroll"]) {
    document.addEventListener(e, () => { used = Date.now(); }, { passive: true });
  }
  setInterval(async () => {
    if (document.visibilityState !== "visible" || Date.now() - used > 600000) return;
    try {
      const r = await fetch(window.location.pathname, { credentials: "same-origin" });
      if (!r.ok || r.redirected) return;
      const parsed = new DOMParser().parseFromString(await r.text(), "text/html");
      const fresh = parsed.getElementById(region.id);
      if (fresh) region.replaceChildren(...fresh.childNodes);
    } catch (e) {
      // Offline: the list stays as it was; reloading the page still works.
    }
  }, every);
}

document.addEventListener("DOMContentLoaded", () => {
  watchLiveRegion();
  watchPolicyEditor();
  watchFindingLinks();
  watchRoleClock();
});
