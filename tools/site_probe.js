// Probe of one loaded book page, run by tools/check_site.py once MathJax has finished.
// Returns plain JSON: what a reader would see wrong on this page.
(async () => {
  const out = {};
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // MathJax loads asynchronously: wait until it has started, then until it has typeset.
  const usesMathJax = [...document.scripts].some((s) => /mathjax/i.test(s.src));
  for (let i = 0; usesMathJax && i < 300 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++) {
    await sleep(50);
  }
  out.mathjaxLoaded = !usesMathJax || !!(window.MathJax && MathJax.startup && MathJax.startup.promise);
  if (usesMathJax && out.mathjaxLoaded) { await MathJax.startup.promise; }
  if (document.readyState !== "complete") {
    await new Promise((r) => window.addEventListener("load", r, { once: true }));
  }
  await sleep(100); // handlers run on load (e.g. the dropdown toggles)
  if (document.fonts) { await document.fonts.ready; }
  // Force lazy images to load, then wait for every image to settle.
  const imgs = [...document.images];
  imgs.forEach((i) => { i.loading = "eager"; });
  await Promise.all(imgs.map((i) => (i.complete ? null : new Promise((r) => {
    i.addEventListener("load", r); i.addEventListener("error", r); setTimeout(r, 5000);
  }))));
  out.images = imgs.length;
  out.brokenImages = imgs.filter((i) => i.naturalWidth === 0).map((i) => i.getAttribute("src"));

  const main = document.querySelector("main .bd-article, article[role=main], main") || document.body;
  const mathItems = (window.MathJax && MathJax.startup && MathJax.startup.document)
    ? MathJax.startup.document.getMathItemsWithin(document.body) : [];
  const texOf = (node) => {
    for (const item of mathItems) { if (item.typesetRoot === node) return item.math; }
    return "";
  };
  out.formulas = document.querySelectorAll("mjx-container").length;
  out.mathErrors = [...document.querySelectorAll("mjx-merror, [data-mjx-error]")].map(
    (e) => (e.getAttribute("data-mjx-error") || e.textContent).slice(0, 120));

  // Raw TeX left in the visible text: $...$ or \( \) \[ \] outside code, scripts and math.
  const skip = "script, style, code, textarea, mjx-container, .highlight, .cell_input, .MathJax";
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  const raw = [];
  const texPattern = /\$(?=\S)[^$\n]{1,80}?(?<=\S)\$|\\\(|\\\)|\\\[|\\\]/;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip)) continue;
    const m = n.textContent.match(texPattern);
    if (m) {
      const i = Math.max(0, m.index - 40);
      raw.push(n.textContent.slice(i, m.index + 60).replace(/\s+/g, " ").trim());
    }
  }
  out.rawTex = raw;

  // Display equations wider than their box (clipped or scrolled for the reader).
  const over = [];
  const article = main.getBoundingClientRect();
  for (const c of document.querySelectorAll('mjx-container[display="true"]')) {
    const math = c.querySelector("mjx-math");
    if (!math) continue;
    const box = c.getBoundingClientRect();
    const m = math.getBoundingClientRect();
    const limit = Math.min(box.right, article.right);
    if (m.width > box.width + 1 || m.right > limit + 1) {
      const holder = c.closest("div.math[id], div.proof[id], div.admonition[id], section[id]:not(#proof-content)");
      over.push({
        id: holder ? holder.id : "",
        tex: texOf(c).replace(/\s+/g, " ").trim().slice(0, 160),
        width: Math.round(m.width), box: Math.round(Math.min(box.width, article.width)),
        rect: { x: Math.max(0, box.left - 8), y: box.top + window.scrollY - 8,
                width: Math.min(Math.max(box.width, m.width) + 16, window.innerWidth), height: box.height + 16 },
      });
    }
  }
  out.overflowing = over;

  // Content wider than the screen that no scrolling box holds: cut off for the reader (on a
  // phone, wide figures, tables and equations must scroll inside their own box instead).
  const screen = document.documentElement.clientWidth;
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.getAttribute("src") ? " " + el.getAttribute("src").split("/").pop().slice(0, 24) : "") +
    (texOf(el) ? " " + texOf(el).replace(/\s+/g, " ").trim().slice(0, 60) : "");
  const reachable = (el) => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (/(auto|scroll)/.test(getComputedStyle(a).overflowX)) {
        const r = a.getBoundingClientRect();
        return r.left >= -1 && r.right <= screen + 1;
      }
    }
    return false;
  };
  out.cutOff = [];
  const wide = 'img, table, pre, figure, svg, video, iframe, mjx-container[display="true"]';
  const scrolls = (el) => /(auto|scroll)/.test(getComputedStyle(el).overflowX);
  // The extent of what the element shows: its box, or its content where that spills out
  // (an equation wider than its container, a code line wider than its block).
  const extent = (el) => {
    const b = el.getBoundingClientRect();
    let right = b.right;
    if (!scrolls(el)) {
      right = Math.max(right, b.left + el.scrollWidth);
      const m = el.tagName === "MJX-CONTAINER" && el.querySelector("mjx-math");
      if (m) right = Math.max(right, m.getBoundingClientRect().right);
    }
    return { left: b.left, right, width: right - b.left };
  };
  const beyond = (r) => r.width > 0 && (r.left < -1 || r.right > screen + 1);
  for (const el of main.querySelectorAll(wide)) {
    if (getComputedStyle(el).visibility !== "visible") continue; // e.g. the closed page-contents drawer
    const r = extent(el);
    if (!beyond(r)) continue;
    const outer = el.parentElement && el.parentElement.closest(wide);
    if (outer && main.contains(outer) && beyond(extent(outer))) continue; // judged as the outer one
    if (!reachable(el)) out.cutOff.push(`${describe(el)} (${Math.round(r.width)} px, right edge at ${Math.round(r.right)} px)`);
  }

  // Solutions: hidden until opened, visible once opened.
  const sols = [...document.querySelectorAll("div.solution, details.solution, .solution.dropdown")];
  const shown = (el) => el && el.offsetParent !== null && el.getBoundingClientRect().height > 0;
  const bodyOf = (s) => [...s.children].find((c) => !c.matches(".admonition-title, summary, button, .toggle-button"));
  out.solutions = sols.length;
  out.solutionsVisible = [];
  out.solutionsUnopenable = [];
  for (const s of sols) {
    const label = (s.querySelector(".admonition-title, summary") || s).textContent.trim().slice(0, 60);
    const body = bodyOf(s);
    if (shown(body) && !(s.tagName === "DETAILS" && !s.open)) { out.solutionsVisible.push(label); continue; }
    const toggle = s.tagName === "DETAILS" ? s.querySelector("summary") : s.querySelector("button.toggle-button, .admonition-title");
    if (toggle) toggle.click();
    await new Promise((r) => setTimeout(r, 50));
    if (!shown(bodyOf(s)) && !(s.tagName === "DETAILS" && s.open)) out.solutionsUnopenable.push(label);
    if (toggle) toggle.click();
  }
  // Open MathJax's context menu once, as a reader's right-click would: whatever it loads
  // must come from the site (failed requests are reported from the network events).
  const firstMath = document.querySelector("mjx-container");
  if (firstMath) {
    firstMath.dispatchEvent(new MouseEvent("contextmenu", { bubbles: true, cancelable: true, clientX: 5, clientY: 5 }));
    await sleep(300);
    document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    // keep the screenshot clear of the menu
    document.querySelectorAll(".CtxtMenu_MenuFrame, .CtxtMenu_Menu").forEach((m) => m.remove());
  }
  // Downloads offered on the page (notebooks, sources) must exist on the site.
  const files = [...new Set([...document.querySelectorAll("a[href]")]
    .map((a) => new URL(a.getAttribute("href"), location.href))
    .filter((u) => u.origin === location.origin && /\.(ipynb|md|txt|pdf|zip|py)$/.test(u.pathname))
    .map((u) => u.origin + u.pathname))];
  out.deadDownloads = [];
  for (const f of files) {
    const r = await fetch(f, { method: "HEAD" }).catch(() => null);
    if (!r || !r.ok) out.deadDownloads.push(f.replace(location.origin, ""));
  }
  out.downloads = files.length;
  out.pageWidth = document.documentElement.scrollWidth;
  out.screenWidth = screen;
  out.title = document.title;
  return out;
})()
