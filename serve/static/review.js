// binsight review pages: the box editor and the keyboard shortcuts. No framework, no build step.
//
// The item page draws the model's boxes on an SVG laid over the photo. Its
// viewBox is the photo's own pixel size, so a box is stored, drawn and edited
// in the same pixel coordinates the service and the dataset use. What the
// reviewer leaves on screen is sent with the decision as JSON (field `boxes`);
// without this script the decision still works and keeps the model's boxes.
(() => {
  "use strict";

  // Keys typed into a field belong to the field; the class menus of the box list let the page's keys through.
  const typing = (t) => t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || (t instanceof HTMLSelectElement && !t.closest("#boxes"));

  // The queue page: Enter starts reviewing.
  const start = document.querySelector("button.big");
  if (start) {
    document.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !typing(e.target) && !start.disabled) start.form.requestSubmit(start);
    });
  }

  // The queue page: a whole row opens its item.
  document.querySelectorAll("tr[data-href]").forEach((tr) => tr.addEventListener("click", (e) => {
    if (!e.target.closest("a")) window.location.href = tr.dataset.href;
  }));

  const dataEl = document.getElementById("review-data");
  if (!dataEl) return;
  const data = JSON.parse(dataEl.textContent);
  const stage = document.getElementById("stage");
  const svg = document.getElementById("overlay");
  const list = document.getElementById("boxes");
  const empty = document.getElementById("boxes-empty");
  const field = document.getElementById("boxes-field");
  const form = document.getElementById("decision");
  const skip = document.getElementById("skip");
  const drawButton = document.getElementById("draw");
  const W = Number(stage.dataset.width);
  const H = Number(stage.dataset.height);
  const SVG = "http://www.w3.org/2000/svg";
  const MIN_SIDE = 3; // pixels of the photo: a click is not a box
  // Labels and handles keep their size on screen whatever the photo's resolution: sizes in photo pixels per screen pixel.
  const photoPerScreen = () => W / (svg.getBoundingClientRect().width || W);

  let boxes = data.boxes.map((b) => ({ ...b, box: b.box.slice() }));
  let selected = null;
  let drawing = false;
  let drag = null;
  let lastClass = data.contaminants[0] || data.classes[0];

  const el = (name, attrs) => {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  };
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
  const round = (v) => Math.round(v * 10) / 10;
  const kind = (label) => (data.contaminants.includes(label) ? "contaminant" : "other");

  function photoPoint(evt) {
    const r = svg.getBoundingClientRect();
    return [clamp(((evt.clientX - r.left) * W) / r.width, 0, W), clamp(((evt.clientY - r.top) * H) / r.height, 0, H)];
  }

  function render() {
    svg.replaceChildren();
    const k = photoPerScreen();
    const fontSize = 14 * k;
    const handle = 11 * k;
    boxes.forEach((b, i) => {
      const [x0, y0, x1, y1] = b.box;
      const g = el("g", { class: `box ${kind(b.label)}${i === selected ? " selected" : ""}`, "data-index": i });
      g.append(el("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: "body" }));
      const label = el("text", { x: x0 + fontSize * 0.25, y: y0 > fontSize * 1.3 ? y0 - fontSize * 0.3 : y0 + fontSize, "font-size": fontSize, class: "label" });
      label.textContent = `${i + 1} ${b.label}${b.score != null ? " " + b.score.toFixed(2) : ""}`;  // score: the model's, for this label
      g.append(label);
      if (i === selected && data.editable) {
        for (const [cx, cy, corner] of [[x0, y0, "nw"], [x1, y0, "ne"], [x0, y1, "sw"], [x1, y1, "se"]]) {
          g.append(el("rect", { x: cx - handle / 2, y: cy - handle / 2, width: handle, height: handle, class: "handle", "data-corner": corner }));
        }
      }
      svg.append(g);
    });
    svg.classList.toggle("drawing", drawing);
    if (drawButton) drawButton.classList.toggle("active", drawing);

    list.replaceChildren();
    boxes.forEach((b, i) => {
      const li = document.createElement("li");
      li.className = `${kind(b.label)}${i === selected ? " selected" : ""}`;
      li.dataset.index = i;
      const select = document.createElement("select");
      select.setAttribute("aria-label", `Class of box ${i + 1}`);
      select.disabled = !data.editable;
      data.classes.forEach((name, k) => select.append(new Option(`${k + 1} ${name}`, name, false, name === b.label)));
      select.addEventListener("change", () => {
        setClass(i, select.value);
        list.querySelector(`li[data-index="${i}"] select`).focus(); // the list was rebuilt: keep stepping with the arrows
      });
      select.addEventListener("focus", () => { selected = i; highlight(); });
      const info = document.createElement("span");
      info.className = "info";
      info.textContent = b.modelLabel && b.modelLabel !== b.label ? `model: ${b.modelLabel} ${b.modelScore.toFixed(2)}` : b.score != null ? `model ${b.score.toFixed(2)}` : "drawn";
      const del = document.createElement("button");
      del.type = "button";
      del.className = "small delete";
      del.textContent = "Delete";
      del.disabled = !data.editable;
      del.setAttribute("aria-label", `Delete box ${i + 1}`);
      del.addEventListener("click", () => remove(i));
      li.append(`${i + 1}`, select, info, del);
      li.addEventListener("click", (e) => { if (e.target === li || e.target === info) { selected = i; render(); } });
      list.append(li);
    });
    empty.hidden = boxes.length > 0;
    field.value = JSON.stringify(boxes.map((b) => ({ label: b.label, box: b.box.map(round), score: b.score ?? null, origin: b.origin ?? null })));
  }

  // Selection changes only classes: re-rendering the list would steal the focus from a <select>.
  function highlight() {
    svg.querySelectorAll("g.box").forEach((g) => g.classList.toggle("selected", Number(g.dataset.index) === selected));
    list.querySelectorAll("li").forEach((li) => li.classList.toggle("selected", Number(li.dataset.index) === selected));
  }

  function setClass(i, name) {
    const b = boxes[i];
    if (b.modelLabel === undefined && b.score != null) [b.modelLabel, b.modelScore] = [b.label, b.score];
    b.label = name;
    // The model's score belongs to the model's class: a relabelled box carries none (the list still shows what the model said).
    b.score = name === b.modelLabel ? b.modelScore : null;
    lastClass = name;
    render();
  }

  function remove(i) {
    boxes.splice(i, 1);
    selected = boxes.length ? Math.min(i, boxes.length - 1) : null;
    render();
  }

  function setDrawing(on) {
    drawing = on && data.editable;
    render();
  }

  if (data.editable) {
    svg.addEventListener("pointerdown", (evt) => {
      if (evt.button !== 0) return;
      const [x, y] = photoPoint(evt);
      const handle = evt.target.closest(".handle");
      const group = evt.target.closest("g.box");
      if (drawing) {
        drag = { mode: "new", start: [x, y] };
        boxes.push({ label: lastClass, box: [x, y, x, y], score: null, origin: null });
        selected = boxes.length - 1;
      } else if (handle && group) {
        drag = { mode: "resize", index: Number(group.dataset.index), corner: handle.dataset.corner };
      } else if (group) {
        selected = Number(group.dataset.index);
        drag = { mode: "move", index: selected, start: [x, y], orig: boxes[selected].box.slice() };
      } else {
        selected = null;
        drag = null;
      }
      svg.setPointerCapture(evt.pointerId);
      evt.preventDefault();
      render();
    });

    svg.addEventListener("pointermove", (evt) => {
      if (!drag) return;
      const [x, y] = photoPoint(evt);
      if (drag.mode === "new") {
        const [sx, sy] = drag.start;
        boxes[selected].box = [Math.min(sx, x), Math.min(sy, y), Math.max(sx, x), Math.max(sy, y)];
      } else if (drag.mode === "move") {
        const [x0, y0, x1, y1] = drag.orig;
        const dx = clamp(x - drag.start[0], -x0, W - x1);
        const dy = clamp(y - drag.start[1], -y0, H - y1);
        boxes[drag.index].box = [x0 + dx, y0 + dy, x1 + dx, y1 + dy];
      } else if (drag.mode === "resize") {
        const b = boxes[drag.index].box;
        if (drag.corner.includes("w")) b[0] = Math.min(x, b[2] - MIN_SIDE);
        if (drag.corner.includes("e")) b[2] = Math.max(x, b[0] + MIN_SIDE);
        if (drag.corner.includes("n")) b[1] = Math.min(y, b[3] - MIN_SIDE);
        if (drag.corner.includes("s")) b[3] = Math.max(y, b[1] + MIN_SIDE);
      }
      render();
    });

    const finish = () => {
      if (drag && drag.mode === "new") {
        const [x0, y0, x1, y1] = boxes[selected].box;
        if (x1 - x0 < MIN_SIDE || y1 - y0 < MIN_SIDE) {
          boxes.pop();
          selected = null;
        }
        drawing = false;
      }
      drag = null;
      render();
    };
    svg.addEventListener("pointerup", finish);
    svg.addEventListener("pointercancel", finish);
    if (drawButton) drawButton.addEventListener("click", () => setDrawing(!drawing));
  }

  let sent = false; // one decision or skip per page: a second press would post again for an item no longer held
  for (const f of [form, skip]) f.addEventListener("submit", (e) => { if (sent) e.preventDefault(); else sent = true; });

  const decide = (value) => {
    const button = form.querySelector(`button[value="${value}"]`);
    if (button && !button.disabled) form.requestSubmit(button);
  };

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (typing(e.target) && e.key !== "Escape") return;
    if (e.repeat && e.key !== "Tab") return; // a held key must not decide the next item, unseen
    const key = e.key.toLowerCase();
    if (key === "c") decide("confirmed");
    else if (key === "r") decide("rejected");
    else if (key === "u") decide("unusable");
    else if (key === "s" && data.editable) skip.requestSubmit();
    else if (key === "b") setDrawing(!drawing);
    else if ((e.key === "Delete" || e.key === "Backspace") && selected !== null && data.editable) remove(selected);
    else if (/^[1-9]$/.test(e.key) && selected !== null && data.editable && data.classes[Number(e.key) - 1]) setClass(selected, data.classes[Number(e.key) - 1]);
    else if (e.key === "Tab" && boxes.length && e.target === document.body) {
      selected = selected === null ? 0 : (selected + (e.shiftKey ? boxes.length - 1 : 1)) % boxes.length;
      render();
    } else if (e.key === "Escape") {
      if (typing(e.target)) e.target.blur();
      drawing = false;
      selected = null;
      render();
    } else return;
    e.preventDefault();
  });

  new ResizeObserver(() => render()).observe(svg);
  render();
})();
