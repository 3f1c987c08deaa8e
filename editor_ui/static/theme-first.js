// Applies the saved theme before the page's first paint (loaded without defer, in <head>). It is a
// file rather than an inline script because the Content-Security-Policy runs only this site's files.
try { const t = localStorage.getItem("cowrite.theme"); if (t === "light" || t === "dark") document.documentElement.dataset.theme = t; } catch {}
