// Destructive buttons ask first. A form with data-confirm asks that question; with data-confirm-name too (a gated
// environment), the person must type that name. The API is unchanged: this guards clicks in the UI only.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.dataset && form.dataset.confirm;
  if (!question) return;
  const name = form.dataset.confirmName;
  const ok = name
    ? window.prompt(`${question}\n\nType ${name} to confirm.`) === name
    : window.confirm(question);
  if (!ok) event.preventDefault();
});
