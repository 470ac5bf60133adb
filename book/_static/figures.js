// Multi-panel figures on a narrow screen: a row of panels (an image at least twice as wide
// as tall) keeps the size it has in the desktop column (at most 688 px, never enlarged) and
// scrolls sideways in its own box, instead of shrinking until its labels are unreadable.
// Single-panel figures still scale to the screen. Without this script every figure scales.
(() => {
  const COLUMN = 688; // px: the width of the book's text column on a desktop
  const MIN_ASPECT = 1.9; // width / height from which a figure is a row of panels
  const mark = (img) => {
    if (!img.naturalWidth || img.naturalWidth < MIN_ASPECT * img.naturalHeight) return;
    if (img.parentElement.classList.contains("wide-figure-scroll")) return;
    const box = document.createElement("div");
    box.className = "wide-figure-scroll";
    img.parentElement.insertBefore(box, img);
    box.appendChild(img);
    img.classList.add("wide-figure");
    img.style.setProperty("--wide-figure-width", `${Math.min(img.naturalWidth, COLUMN)}px`);
  };
  const run = () => {
    for (const img of document.querySelectorAll("main figure img, main .cell_output img")) {
      if (img.complete) mark(img); else img.addEventListener("load", () => mark(img), { once: true });
    }
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run); else run();
})();
