// Search result snippets are cut from the pages' HTML text, where formulas are still TeX
// source (MathJax only typesets the page being read). Before Sphinx extracts that text,
// turn each inline formula into readable plain text (Greek letters as symbols) or an
// ellipsis, drop display formulas and the page's button labels.
(function () {
  const GREEK = {
    alpha: "α", beta: "β", gamma: "γ", delta: "δ", varepsilon: "ε", epsilon: "ϵ", zeta: "ζ",
    eta: "η", theta: "θ", kappa: "κ", lambda: "λ", mu: "μ", nu: "ν", xi: "ξ", pi: "π", rho: "ρ",
    sigma: "σ", tau: "τ", phi: "φ", varphi: "φ", chi: "χ", psi: "ψ", omega: "ω",
    Gamma: "Γ", Delta: "Δ", Theta: "Θ", Lambda: "Λ", Sigma: "Σ", Phi: "Φ", Psi: "Ψ", Omega: "Ω",
    nabla: "∇", infty: "∞", le: "≤", leq: "≤", ge: "≥", geq: "≥", ll: "≪", gg: "≫",
    approx: "≈", sim: "∼", cdot: "·", times: "×", in: "∈", to: "→", pm: "±", ne: "≠",
  };
  function plain(tex) {
    let s = tex.replace(/^\\\(|\\\)$/g, "").trim();
    s = s.replace(/\\mathbb\s*\{?R\}?/g, "ℝ").replace(/\\mathbb\s*\{?E\}?/g, "𝔼");
    s = s.replace(/\\(?:mathrm|mathbf|mathcal|text|operatorname|rm|hat|bar|tilde)\s*\{([^{}]*)\}/g, "$1");
    s = s.replace(/\\([A-Za-z]+)/g, (m, name) => (name in GREEK ? GREEK[name] : m));
    s = s.replace(/[_^]\{([^{}]*)\}/g, "$1").replace(/[_^]/g, "").replace(/\\[,;!: ]/g, " ");
    return /[\\{}]/.test(s) ? "…" : s;
  }
  function install() {
    // searchtools.js declares Search with const: a global binding, not a window property.
    if (typeof Search === "undefined" || !Search.htmlToText || Search.htmlToText.mathAware) return;
    const original = Search.htmlToText;
    Search.htmlToText = (htmlString, anchor) => {
      const doc = new DOMParser().parseFromString(htmlString, "text/html");
      doc.querySelectorAll("div.math, .article-header-buttons, .header-article-items, .cell_input")
        .forEach((el) => el.remove());
      doc.querySelectorAll("span.math").forEach((el) => { el.textContent = plain(el.textContent); });
      return original(doc.documentElement.outerHTML, anchor);
    };
    Search.htmlToText.mathAware = true;
  }
  install();
  document.addEventListener("DOMContentLoaded", install);
})();
