// smscast pages: live progress (SSE, polling when SSE fails), the editor's counter (asks the
// server, which owns the GSM-7/UCS-2 rules), merge-tag buttons and the send confirmation dialog.
// Every page works without this script wherever a plain form can do the job.
(function () {
  'use strict';

  var lang = document.documentElement.lang;

  // Same grouping as the server renders: 1,234 (en) and 1.234 (el).
  function fmt(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '—';
    var s = String(Math.abs(Math.round(n))).replace(/\B(?=(\d{3})+(?!\d))/g, lang === 'el' ? '.' : ',');
    return (n < 0 ? '-' : '') + s;
  }

  function dec1(x) {
    var s = (Math.round(x * 10) / 10).toFixed(1);
    return lang === 'el' ? s.replace('.', ',') : s;
  }

  function eta(sec) {
    if (sec === null || sec === undefined) return '—';
    var m = Math.floor(sec / 60), s = sec % 60;
    if (lang === 'el') return m ? m + ' λεπ. ' + s + ' δευτ.' : s + ' δευτ.';
    return m ? m + ' min ' + s + ' s' : s + ' s';
  }

  function postJson(url, body) {
    return fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (r) { return r.json(); });
  }

  // ---- Live campaign progress -------------------------------------------------------------
  function live(box) {
    var bar = document.getElementById('bar');
    var pct = document.getElementById('pct');
    var dot = document.getElementById('live-dot');
    var badge = document.getElementById('status-badge');
    var finals = { sent: 1, failed: 1, cancelled: 1 };
    var pollTimer = null, source = null;

    function show(p) {
      if (!p || typeof p.progress !== 'number') return;
      bar.value = p.progress;
      bar.textContent = p.progress + ' %';
      pct.textContent = p.progress + ' %';
      ['sent', 'pending', 'sending', 'failed', 'unknown', 'cancelled', 'delivered', 'total'].forEach(function (k) {
        var el = box.querySelector('[data-k="' + k + '"]');
        if (el && typeof p[k] === 'number') el.textContent = fmt(p[k]);
      });
      var rate = box.querySelector('[data-k="rate"]');
      if (rate) rate.textContent = dec1(p.rate_per_second || 0) + ' ' + box.dataset.perSecond;
      var e = box.querySelector('[data-k="eta"]');
      if (e) e.textContent = eta(p.eta_seconds);
      // The server never reports a final status while messages wait or are in flight; the page
      // shows exactly what it reports.
      if (p.status) setStatus(p.status);
    }

    function setStatus(status) {
      box.dataset.status = status;
      badge.dataset.status = status;
      badge.className = 'badge s-' + status;
      var label = box.getAttribute('data-l-' + status);
      if (label) badge.textContent = label;
      if (finals[status]) {
        stop();
        document.querySelectorAll('[data-live-only]').forEach(function (el) { el.hidden = true; });
      }
    }

    function stop() {
      if (source) { source.close(); source = null; }
      if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
      dot.hidden = true;
    }

    function poll() {
      if (pollTimer) return;
      box.dataset.transport = 'poll';
      var tick = function () {
        fetch(box.dataset.poll, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
          .then(function (r) { return r.json(); })
          .then(show)
          .catch(function () {});
      };
      tick();
      pollTimer = setInterval(tick, 2000);
    }

    if (box.dataset.live !== '1') return;
    dot.hidden = false;
    if (!window.EventSource || box.dataset.forcePoll === '1') { poll(); return; }
    source = new EventSource(box.dataset.events);
    box.dataset.transport = 'sse';
    source.addEventListener('progress', function (ev) { show(JSON.parse(ev.data)); });
    source.addEventListener('status', function (ev) {
      var d = JSON.parse(ev.data);
      show(d.progress);
      setStatus(d.status);
    });
    source.onerror = function () {
      // The stream ends after the final status; anything else means SSE does not get through.
      if (finals[box.dataset.status]) { stop(); return; }
      if (source) { source.close(); source = null; }
      poll();
    };
  }

  // ---- Dashboard: credits and campaign statuses as they change ---------------------------
  function dashboard(dash) {
    if (!window.EventSource) return;
    var source = new EventSource(dash.dataset.events);
    source.addEventListener('wallet', function (ev) {
      var w = JSON.parse(ev.data);
      document.getElementById('stat-available').textContent = fmt(w.available);
      document.getElementById('stat-held').textContent = fmt(w.held);
    });
    source.addEventListener('campaigns', function (ev) {
      JSON.parse(ev.data).forEach(function (c) {
        var badge = document.querySelector('.row[data-id="' + c.id + '"] .badge');
        var label = dash.getAttribute('data-l-' + c.status);
        if (!badge || !label || badge.dataset.status === c.status) return;
        badge.dataset.status = c.status;
        badge.className = 'badge s-' + c.status;
        badge.textContent = label;
      });
    });
    // A dashboard without live numbers still shows the numbers of its last load.
    source.onerror = function () { source.close(); };
  }

  // ---- Editor: live counter and merge tags ----------------------------------------------
  function editor(area) {
    var chars = document.getElementById('cnt-chars');
    var segs = document.getElementById('cnt-segments');
    var enc = document.getElementById('cnt-encoding');
    var ucs2 = document.getElementById('cnt-ucs2');
    var greek = document.getElementById('cnt-greek');
    var timer = null, seq = 0;

    function update() {
      var mine = ++seq;
      postJson(area.dataset.analyze, { text: area.value }).then(function (a) {
        if (mine !== seq || !a || a.ok === false) return;
        chars.textContent = fmt(a.characters);
        segs.textContent = fmt(a.with_footer.segments);
        enc.dataset.encoding = a.with_footer.encoding;
        enc.textContent = enc.getAttribute('data-' + a.with_footer.encoding);
        ucs2.hidden = a.ucs2_chars.length === 0;
        ucs2.querySelector('.chars').textContent = a.ucs2_chars.join(' ');
        greek.hidden = !a.greek_gsm;
        if (a.greek_gsm) greek.querySelector('strong').textContent = fmt(a.greek_gsm.segments);
      }).catch(function () {});
    }

    area.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(update, 250);
    });
    document.querySelectorAll('[data-insert]').forEach(function (b) {
      b.addEventListener('click', function () {
        var tag = b.dataset.insert, s = area.selectionStart, e = area.selectionEnd;
        area.value = area.value.slice(0, s) + tag + area.value.slice(e);
        area.focus();
        area.selectionStart = area.selectionEnd = s + tag.length;
        area.dispatchEvent(new Event('input'));
      });
    });
  }

  // ---- Send confirmation dialog ----------------------------------------------------------
  function sendDialog(dlg, opener) {
    var form = dlg.querySelector('form');
    var submit = dlg.querySelector('[data-slot="submit"]');
    var typed = dlg.querySelector('[data-slot="typed"]');
    var input = dlg.querySelector('#confirm-name');
    var canSend = false, needName = false;

    function refresh() {
      submit.disabled = !canSend || (needName && input.value.trim() !== dlg.dataset.name);
    }

    function fill(p) {
      dlg.querySelector('[data-slot="loading"]').hidden = true;
      dlg.querySelector('[data-slot="content"]').hidden = false;
      dlg.querySelectorAll('[data-k]').forEach(function (el) {
        var path = el.dataset.k.split('.'), v = p;
        path.forEach(function (k) { v = v == null ? v : v[k]; });
        if (typeof v === 'number') el.textContent = fmt(v);
      });
      var sample = dlg.querySelector('[data-k="sample"]');
      sample.textContent = p.samples && p.samples.length ? p.samples[0].text : '—';
      var blocked = dlg.querySelector('[data-slot="blocked"]');
      var reasons = dlg.querySelector('[data-slot="reasons"]');
      reasons.textContent = '';
      (p.blocking_reasons || []).forEach(function (r) {
        var li = document.createElement('li');
        li.textContent = r.message;
        reasons.appendChild(li);
      });
      blocked.hidden = p.can_send;
      canSend = !!p.can_send;
      needName = canSend && p.recipients > Number(dlg.dataset.typedAbove);
      typed.hidden = !needName;
      dlg.querySelector('[data-slot="expect"]').value = needName ? '1' : '0';
      submit.textContent = dlg.dataset.sendFmt.replace('{n}', fmt(p.recipients)).replace('{c}', fmt(p.estimated_cost));
      dlg.dataset.ready = '1';
      refresh();
    }

    opener.addEventListener('click', function (ev) {
      // Without this script the link opens the same review as a page.
      ev.preventDefault();
      dlg.dataset.ready = '0';
      canSend = false;
      refresh();
      dlg.showModal();
      fetch(dlg.dataset.preview, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (r) { return r.json(); })
        .then(function (p) {
          if (p.ok === false) {
            fill({ can_send: false, blocking_reasons: [{ message: p.message }], recipients: 0, estimated_cost: 0, samples: [] });
          } else {
            fill(p);
          }
        });
    });
    input.addEventListener('input', refresh);
    dlg.querySelector('[data-close]').addEventListener('click', function () { dlg.close(); });
    form.addEventListener('submit', function (ev) {
      if (submit.disabled) ev.preventDefault();
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    var box = document.getElementById('live');
    if (box) live(box);
    var dash = document.getElementById('dash');
    if (dash) dashboard(dash);
    var area = document.getElementById('message');
    if (area && area.dataset.analyze) editor(area);
    var dlg = document.getElementById('send-dialog');
    var opener = document.getElementById('open-send');
    if (dlg && opener) sendDialog(dlg, opener);
  });
})();
