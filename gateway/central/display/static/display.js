// learnroom resident display: live cards over Server-Sent Events, kiosk paging.
(() => {
  "use strict";
  const body = document.body;
  const params = new URLSearchParams({ lang: body.dataset.lang });
  if (body.dataset.site) params.set("site", body.dataset.site);
  const announcer = document.getElementById("announcer");
  const summary = document.getElementById("summary");

  function rooms() { return Array.from(document.querySelectorAll("li.room")); }

  function summarize() {
    const all = rooms();
    const free = all.filter((li) =>
      li.querySelector(".status-free, .status-probably_free")).length;
    summary.textContent = body.dataset.summary
      .replace("{free}", free).replace("{total}", all.length);
  }

  // The server closes a stream that fell behind; the browser reconnects by itself and the
  // new stream begins with every card (the page's state is older than the server's). A
  // stream refused outright (the display restarting) is opened again here.
  params.set("since", body.dataset.state || "-1");
  function onRoom(event) {
    const m = JSON.parse(event.data);
    const li = document.getElementById(m.id);
    if (!li) { window.location.reload(); return; }  // a room the page does not know yet
    // announced when what the card leads with changes (free to full, booked to free), not
    // at every seat that is taken or left
    const before = li.querySelector("[data-look]");
    const was = before ? before.dataset.look : "";
    li.innerHTML = m.html;
    li.dataset.received = String(Date.now());
    const after = li.querySelector("[data-look]");
    if (m.announce && after && after.dataset.look !== was) announcer.textContent = m.announce;
    summarize();
    if (body.classList.contains("kiosk")) show(page);
  }
  function connect() {
    const source = new EventSource("/events?" + params.toString());
    source.addEventListener("room", onRoom);
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) window.setTimeout(connect, 5000);
    });
  }
  connect();

  // kiosk: page through the rooms by itself
  let page = 0;
  function show(n) {
    const all = rooms();
    const per = Number(body.dataset.perPage) || 6;
    const pages = Math.max(1, Math.ceil(all.length / per));
    page = n % pages;
    all.forEach((li, i) => { li.hidden = Math.floor(i / per) !== page; });
    document.querySelectorAll("main > section").forEach((s) => {
      s.hidden = !Array.from(s.querySelectorAll("li.room")).some((li) => !li.hidden);
    });
    const pager = document.getElementById("pager");
    pager.hidden = pages < 2;
    pager.textContent = body.dataset.pageText.replace("{n}", page + 1).replace("{total}", pages);
  }
  if (body.classList.contains("kiosk")) {
    show(0);
    const every = (Number(body.dataset.pageS) || 15) * 1000;
    window.setInterval(() => show(page + 1), every);
  }
})();
