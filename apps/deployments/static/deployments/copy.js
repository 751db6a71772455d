// Copy buttons: <button data-copy="#id"> copies the text of #id (the clipboard API where the page is a secure
// context, else a selection and execCommand), then says "Copied" for a moment.
(function () {
  "use strict";
  function fallback(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const done = document.execCommand("copy");
    area.remove();
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }
  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const source = document.querySelector(button.dataset.copy);
    if (!source) return;
    const text = source.textContent;
    const copy = navigator.clipboard && window.isSecureContext ? navigator.clipboard.writeText(text) : fallback(text);
    copy.then(
      () => { button.textContent = "Copied"; button.classList.add("copied"); },
      () => { button.textContent = "Select and copy"; }
    ).finally(() => window.setTimeout(() => { button.textContent = "Copy"; button.classList.remove("copied"); }, 1800));
  });
})();
