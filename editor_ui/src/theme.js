// Light and dark themes: follow the system until the writer picks one, then remember the pick.
// The page's inline head script applies the stored pick before first paint; this module toggles it.

const STORAGE_KEY = "cowrite.theme";
const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");

/** @returns {"light" | "dark"} */
function currentTheme() {
  const explicit = document.documentElement.dataset.theme;
  if (explicit === "light" || explicit === "dark") return explicit;
  return darkQuery.matches ? "dark" : "light";
}

/** @param {HTMLButtonElement} button */
function labelButton(button) {
  const next = currentTheme() === "dark" ? "light" : "dark";
  button.setAttribute("aria-label", `Switch to ${next} theme`);
  button.title = `Switch to ${next} theme`;
  button.dataset.next = next;
  // In the "More" menu the button shows a label beside its icon.
  const label = button.querySelector(".menu-label");
  if (label) label.textContent = `${next === "dark" ? "Dark" : "Light"} theme`;
}

/** @param {HTMLButtonElement} button */
export function bindThemeToggle(button) {
  labelButton(button);
  darkQuery.addEventListener("change", () => labelButton(button));
  button.addEventListener("click", () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    try {
      localStorage.setItem(STORAGE_KEY, next);
    } catch {
      // Private windows may refuse storage; the theme still applies to this page.
    }
    labelButton(button);
  });
}
